"""The embedded STUN/TURN server: listeners, request handling and allocation ownership.

`TurnServer` owns its listeners and every allocation; closing it closes them all. Requests are
parsed at the edge by the codec; everything but Binding needs long-term credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import secrets
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from relayroom.turn.allocation import Allocation, AllocationState
from relayroom.turn.auth import Authenticated, Authenticator, NonceIssuer, Rejected
from relayroom.turn.clock import SYSTEM_CLOCK, Clock
from relayroom.turn.codec import (
    CHANNEL_MAX,
    CHANNEL_MIN,
    TRANSPORT_UDP,
    Address,
    Attr,
    Message,
    MessageClass,
    Method,
    StunError,
    Value,
    encode_message,
    error_attributes,
    is_address,
    parse_message,
)
from relayroom.turn.config import TurnConfig, TurnConfigError
from relayroom.turn.credentials import CredentialStore
from relayroom.turn.links import ClientLink
from relayroom.turn.listeners import StreamConnection, UdpListener
from relayroom.turn.peerfilter import PeerFilter
from relayroom.turn.ratelimit import SourceLimiter
from relayroom.turn.stats import TurnStats

logger = logging.getLogger(__name__)

_RELAY_BIND_ATTEMPTS = 32
_UDP_BUFFER = 1 << 20
_BINDING_RATE_PER_S = 20.0
_BINDING_BURST = 40.0
_MAX_UNKNOWN_LISTED = 16


class ServerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


def _family(host: str) -> int:
    """STUN address family code: 1 for IPv4, 2 for IPv6."""
    return 1 if ipaddress.ip_address(host).version == 4 else 2


class TurnServer:
    """STUN/TURN server over UDP, TCP and (when configured) TLS.

    Raises `TurnConfigError` when built without a secret or static users: there is no
    unauthenticated mode.
    """

    def __init__(self, config: TurnConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        if not config.has_credentials:
            raise TurnConfigError("refusing to run TURN without a secret or static users")
        self._config = config
        self._clock = clock
        self.stats = TurnStats()
        self._store = CredentialStore(config.secret, config.static_users, clock.wall)
        self._auth = Authenticator(
            config.realm, self._store, NonceIssuer(config.nonce_lifetime_s, clock.monotonic)
        )
        self._relay_family = _family(config.relay_host)
        self._relay_ports: set[int] = set()
        self._filter = PeerFilter(
            config.allowed_peers, config.denied_peers, is_live_relay=self._is_live_relay
        )
        self._reject_limiter = SourceLimiter(
            config.auth_reject_rate_per_s, config.auth_reject_burst
        )
        self._binding_limiter = SourceLimiter(_BINDING_RATE_PER_S, _BINDING_BURST)
        self._log_limiter = SourceLimiter(1.0, 1.0)
        self._allocations: set[Allocation] = set()
        self._user_counts: dict[str, int] = {}
        self._udp: UdpListener | None = None
        self._tcp: asyncio.Server | None = None
        self._tls: asyncio.Server | None = None
        self._connections: set[StreamConnection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._state = ServerState.NEW
        self._closed = asyncio.Event()
        self._handlers: dict[int, Callable[[Message, ClientLink, Authenticated], None]] = {
            Method.ALLOCATE: self._handle_allocate,
            Method.REFRESH: self._handle_refresh,
            Method.CREATE_PERMISSION: self._handle_create_permission,
            Method.CHANNEL_BIND: self._handle_channel_bind,
        }

    # -- public API ----------------------------------------------------------------------------

    @property
    def config(self) -> TurnConfig:
        return self._config

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def udp_address(self) -> Address | None:
        return self._udp.local_address if self._udp is not None else None

    @property
    def tcp_address(self) -> Address | None:
        return _server_address(self._tcp)

    @property
    def tls_address(self) -> Address | None:
        return _server_address(self._tls)

    @property
    def allocations_active(self) -> int:
        return len(self._allocations)

    async def start(self) -> None:
        """Bind the listeners and start the expiry sweep. On failure everything is closed."""
        if self._state is not ServerState.NEW:
            raise RuntimeError(f"TurnServer cannot start from state {self._state.value}")
        self._set_state(ServerState.RUNNING)
        try:
            await self._start_listeners()
        except BaseException:
            await self.close()
            raise
        self._filter.set_own_addresses(self._listener_addresses(), self._own_hosts())
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        logger.info(
            "TURN server listening udp=%s tcp=%s tls=%s relay=%s",
            self.udp_address,
            self.tcp_address,
            self.tls_address,
            self._config.relay_host,
        )

    async def close(self) -> None:
        """Idempotent: closes listeners, connections and allocations; a second caller waits."""
        if self._state in (ServerState.CLOSING, ServerState.CLOSED):
            await self._closed.wait()
            return
        self._set_state(ServerState.CLOSING)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._udp is not None:
            self._udp.close()
        servers = [s for s in (self._tcp, self._tls) if s is not None]
        for server in servers:
            server.close()
        for connection in list(self._connections):
            connection.close()
        for allocation in list(self._allocations):
            allocation.close()
        for server in servers:
            await server.wait_closed()
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        # Let transports run their connection_lost callbacks before reporting closed.
        await asyncio.sleep(0)
        self._set_state(ServerState.CLOSED)
        self._closed.set()

    # -- lifecycle helpers ---------------------------------------------------------------------

    def _set_state(self, state: ServerState) -> None:
        logger.info("TURN server %s -> %s", self._state.value, state.value)
        self._state = state

    async def _start_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self._config
        if cfg.udp_port is not None:
            family = socket.AF_INET6 if ":" in cfg.listen_host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _UDP_BUFFER)
                sock.bind((cfg.listen_host, cfg.udp_port))
            except OSError:
                sock.close()
                raise
            self._udp = UdpListener(sock, self._on_stun, self.stats, loop)
        if cfg.tcp_port is not None:
            self._tcp = await loop.create_server(
                lambda: self._new_connection("tcp"), cfg.listen_host, cfg.tcp_port
            )
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
            self._tls = await loop.create_server(
                lambda: self._new_connection("tls"),
                cfg.listen_host,
                cfg.tls_port,
                ssl=context,
                ssl_handshake_timeout=10.0,
            )

    def _listener_addresses(self) -> list[Address]:
        return [a for a in (self.udp_address, self.tcp_address, self.tls_address) if a]

    def _own_hosts(self) -> list[str]:
        cfg = self._config
        hosts = [cfg.listen_host, cfg.relay_host]
        if cfg.relay_public_host is not None:
            hosts.append(cfg.relay_public_host)
        return hosts

    def _new_connection(self, transport_name: str) -> StreamConnection:
        return StreamConnection(
            transport_name,
            self._on_stun,
            self._connection_opened,
            self._connection_lost,
            self.stats,
            self._config.max_stream_write_buffer,
        )

    def _connection_opened(self, connection: StreamConnection) -> bool:
        if self._state is not ServerState.RUNNING:
            return False
        if len(self._connections) >= self._config.max_tcp_connections:
            self.stats.dropped += 1
            return False
        self._connections.add(connection)
        self.stats.tcp_connections = len(self._connections)
        self.stats.tcp_connections_accepted += 1
        return True

    def _connection_lost(self, connection: StreamConnection) -> None:
        self._connections.discard(connection)
        self.stats.tcp_connections = len(self._connections)

    async def _sweep(self) -> None:
        interval = self._config.sweep_interval_s
        idle_timeout = self._config.tcp_idle_timeout_s
        while True:
            await asyncio.sleep(interval)
            now = self._clock.monotonic()
            for allocation in list(self._allocations):
                allocation.expire(now)
            for connection in list(self._connections):
                if connection.idle_expired(now, idle_timeout):
                    connection.close()

    def _is_live_relay(self, addr: Address) -> bool:
        return addr[1] in self._relay_ports

    def _log(self, host: str, level: int, fmt: str, *args: object) -> None:
        """At most one line per second per source: hostile traffic cannot flood the log."""
        if logger.isEnabledFor(level) and self._log_limiter.allow(host):
            logger.log(level, fmt, *args)

    # -- message entry point -------------------------------------------------------------------

    def _on_stun(self, data: bytes, link: ClientLink) -> None:
        if self._state is not ServerState.RUNNING:
            return
        host = link.client_address[0]
        try:
            message = parse_message(data)
        except StunError as exc:
            self.stats.malformed += 1
            self._log(host, logging.DEBUG, "malformed STUN from %s: %s", host, exc)
            return
        try:
            if message.cls is MessageClass.REQUEST:
                self._handle_request(message, link)
            elif message.cls is MessageClass.INDICATION and message.method == Method.SEND:
                self._handle_send(message, link)
            else:
                self.stats.dropped += 1
        except Exception as exc:  # a bug must not take the listener down
            self._log(
                host, logging.ERROR, "error handling %s from %s: %r", message.method, host, exc
            )

    def _handle_request(self, msg: Message, link: ClientLink) -> None:
        if msg.method == Method.BINDING:
            self._handle_binding(msg, link)
            return
        handler = self._handlers.get(msg.method)
        if handler is None:
            self.stats.dropped += 1  # unknown methods get no reply: nothing to reflect
            return
        # An allocation outlives the REST credential it was made with (as a call outlives its
        # 5-minute TURN credential): requests on it keep using that username.
        allocation = link.get_allocation()
        live_user = (
            allocation.username
            if allocation is not None and allocation.state is not AllocationState.CLOSED
            else None
        )
        auth = self._auth.check(msg, link.client_address, link.transport_name, live_user)
        if isinstance(auth, Rejected):
            self._reject(msg, link, auth)
            return
        unknown = msg.unknown_required()
        if unknown:
            self._error(
                msg, link, auth, 420, [(Attr.UNKNOWN_ATTRIBUTES, unknown[:_MAX_UNKNOWN_LISTED])]
            )
            return
        handler(msg, link, auth)

    def _reject(self, msg: Message, link: ClientLink, rejected: Rejected) -> None:
        self.stats.auth_failures += 1
        host = link.client_address[0]
        if not self._reject_limiter.allow(host):
            self.stats.dropped += 1
            return
        self._log(
            host,
            logging.INFO,
            "TURN %s from %s rejected %d: %s",
            _method_name(msg.method),
            host,
            rejected.code,
            rejected.reason,
        )
        attrs: list[tuple[int, Value]] = [error_attributes(rejected.code)]
        if rejected.nonce is not None:
            attrs += [(Attr.REALM, self._auth.realm), (Attr.NONCE, rejected.nonce)]
        link.send(
            encode_message(
                msg.method,
                MessageClass.ERROR,
                msg.transaction_id,
                attrs,
                fingerprint=msg.has(Attr.FINGERPRINT),
            )
        )

    def _reply(
        self,
        msg: Message,
        link: ClientLink,
        auth: Authenticated,
        attrs: Sequence[tuple[int, Value]],
    ) -> bytes:
        data = encode_message(
            msg.method,
            MessageClass.SUCCESS,
            msg.transaction_id,
            attrs,
            key=auth.key,
            sha256=auth.sha256,
            fingerprint=msg.has(Attr.FINGERPRINT),
        )
        link.send(data)
        return data

    def _error(
        self,
        msg: Message,
        link: ClientLink,
        auth: Authenticated,
        code: int,
        extra: Sequence[tuple[int, Value]] = (),
    ) -> None:
        attrs = [error_attributes(code), *extra]
        link.send(
            encode_message(
                msg.method,
                MessageClass.ERROR,
                msg.transaction_id,
                attrs,
                key=auth.key,
                sha256=auth.sha256,
                fingerprint=msg.has(Attr.FINGERPRINT),
            )
        )

    # -- Binding -------------------------------------------------------------------------------

    def _handle_binding(self, msg: Message, link: ClientLink) -> None:
        # Unauthenticated, so keep it small: only XOR-MAPPED-ADDRESS (no SOFTWARE, no
        # OTHER-ADDRESS) and a per-source budget, so spoofed sources gain next to nothing.
        if not self._binding_limiter.allow(link.client_address[0]):
            self.stats.dropped += 1
            return
        fingerprint = msg.has(Attr.FINGERPRINT)
        unknown = msg.unknown_required()
        if unknown:
            attrs: list[tuple[int, Value]] = [
                error_attributes(420),
                (Attr.UNKNOWN_ATTRIBUTES, unknown[:_MAX_UNKNOWN_LISTED]),
            ]
            cls = MessageClass.ERROR
        else:
            attrs = [(Attr.XOR_MAPPED_ADDRESS, link.client_address)]
            cls = MessageClass.SUCCESS
        link.send(
            encode_message(Method.BINDING, cls, msg.transaction_id, attrs, fingerprint=fingerprint)
        )

    # -- Allocate ------------------------------------------------------------------------------

    def _lifetime(self, requested: int | None) -> int:
        cfg = self._config
        if requested is None:
            return cfg.default_allocation_lifetime_s
        return max(cfg.default_allocation_lifetime_s, min(requested, cfg.max_allocation_lifetime_s))

    def _handle_allocate(self, msg: Message, link: ClientLink, auth: Authenticated) -> None:
        existing = link.get_allocation()
        if existing is not None:
            if (
                existing.allocate_txid == msg.transaction_id
                and existing.username == auth.username
                and existing.allocate_response is not None
            ):
                # A retransmission: answer again with the same response (RFC 8656 7.2).
                link.send(existing.allocate_response)
                return
            self._error(msg, link, auth, 437)
            return
        requested_transport = msg.get_int(Attr.REQUESTED_TRANSPORT)
        if requested_transport is None:
            self._error(msg, link, auth, 400)
            return
        if requested_transport != TRANSPORT_UDP:
            self._error(msg, link, auth, 442)
            return
        if msg.has(Attr.RESERVATION_TOKEN) or msg.get_int(Attr.EVEN_PORT) == 1:
            # Port reservations (RFC 8656 7.2) are not kept: no state is held for a maybe.
            self._error(msg, link, auth, 508)
            return
        family = msg.get_int(Attr.REQUESTED_ADDRESS_FAMILY)
        if family is not None and family not in (1, 2):
            self._error(msg, link, auth, 400)
            return
        if family is not None and family != self._relay_family:
            self._error(msg, link, auth, 440)
            return
        quota_user = self._store.quota_user(auth.username)
        cfg = self._config
        if (
            len(self._allocations) >= cfg.max_allocations_total
            or self._user_counts.get(quota_user, 0) >= cfg.max_allocations_per_user
        ):
            self.stats.quota_rejections += 1
            self._error(msg, link, auth, 486)
            return
        try:
            sock = self._bind_relay_socket(msg.has(Attr.DONT_FRAGMENT), msg.has(Attr.EVEN_PORT))
        except OSError as exc:
            self._log(link.client_address[0], logging.WARNING, "no relay socket: %s", exc)
            self._error(msg, link, auth, 508)
            return
        lifetime = self._lifetime(msg.get_int(Attr.LIFETIME))
        allocation = Allocation(
            link=link,
            username=auth.username,
            quota_user=quota_user,
            key=auth.key,
            sha256=auth.sha256,
            lifetime_s=lifetime,
            allocate_txid=msg.transaction_id,
            peer_filter=self._filter,
            stats=self.stats,
            bandwidth_bytes_per_s=cfg.bandwidth_bytes_per_s,
            max_permissions=cfg.max_permissions_per_allocation,
            on_close=self._release,
            clock=self._clock.monotonic,
        )
        # Quota is taken here and given back in _release, called once by Allocation.close().
        self._allocations.add(allocation)
        self._user_counts[quota_user] = self._user_counts.get(quota_user, 0) + 1
        self.stats.allocations_active = len(self._allocations)
        self.stats.allocations_created += 1
        link.set_allocation(allocation)
        port = int(sock.getsockname()[1])
        allocation.attach_relay(sock, (cfg.relay_host, port), asyncio.get_running_loop())
        self._relay_ports.add(port)
        advertised = (cfg.relay_public_host or cfg.relay_host, port)
        allocation.allocate_response = self._reply(
            msg,
            link,
            auth,
            [
                (Attr.XOR_RELAYED_ADDRESS, advertised),
                (Attr.LIFETIME, lifetime),
                (Attr.XOR_MAPPED_ADDRESS, link.client_address),
            ],
        )
        logger.info(
            "TURN allocation %s:%d for %s over %s (%d active)",
            advertised[0],
            port,
            quota_user,
            link.transport_name,
            len(self._allocations),
        )

    def _bind_relay_socket(self, dont_fragment: bool, even: bool) -> socket.socket:
        cfg = self._config
        family = socket.AF_INET if self._relay_family == 1 else socket.AF_INET6
        last_error: OSError = OSError("relay port range exhausted")
        for _ in range(_RELAY_BIND_ATTEMPTS):
            port = 0
            if cfg.relay_port_min:
                span = cfg.relay_port_max - cfg.relay_port_min + 1
                port = cfg.relay_port_min + secrets.randbelow(span)
                if even and port % 2:
                    port = port - 1 if port > cfg.relay_port_min else port + 1
                    if port > cfg.relay_port_max:
                        break
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if (
                    dont_fragment
                    and family == socket.AF_INET
                    and hasattr(socket, "IP_MTU_DISCOVER")
                ):
                    sock.setsockopt(
                        socket.IPPROTO_IP,
                        socket.IP_MTU_DISCOVER,
                        getattr(socket, "IP_PMTUDISC_DO", 2),
                    )
                sock.bind((cfg.relay_host, port))
                if even and sock.getsockname()[1] % 2:
                    raise OSError("odd port")  # EVEN-PORT (RFC 8656 14.6): try again
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            return sock
        raise last_error

    def _release(self, allocation: Allocation) -> None:
        """Called once per allocation, by Allocation.close(): the only place quota is freed."""
        self._allocations.discard(allocation)
        remaining = self._user_counts.get(allocation.quota_user, 0) - 1
        if remaining > 0:
            self._user_counts[allocation.quota_user] = remaining
        else:
            self._user_counts.pop(allocation.quota_user, None)
        self.stats.allocations_active = len(self._allocations)
        if allocation.relay_address is not None:
            self._relay_ports.discard(allocation.relay_address[1])
        if allocation.link.get_allocation() is allocation:
            allocation.link.set_allocation(None)
        logger.info(
            "TURN allocation %s for %s closed (%d active)",
            allocation.relay_address,
            allocation.quota_user,
            len(self._allocations),
        )

    # -- Refresh, CreatePermission, ChannelBind, Send ------------------------------------------

    def _owned_allocation(
        self, msg: Message, link: ClientLink, auth: Authenticated
    ) -> Allocation | None:
        allocation = link.get_allocation()
        if allocation is None or allocation.state is AllocationState.CLOSED:
            self._error(msg, link, auth, 437)
            return None
        if allocation.username != auth.username:
            self._error(msg, link, auth, 441)
            return None
        return allocation

    def _handle_refresh(self, msg: Message, link: ClientLink, auth: Authenticated) -> None:
        allocation = self._owned_allocation(msg, link, auth)
        if allocation is None:
            return
        family = msg.get_int(Attr.REQUESTED_ADDRESS_FAMILY)
        if family is not None and family != self._relay_family:
            self._error(msg, link, auth, 443)
            return
        requested = msg.get_int(Attr.LIFETIME)
        if requested == 0:
            allocation.close()
            self._reply(msg, link, auth, [(Attr.LIFETIME, 0)])
            return
        lifetime = self._lifetime(requested)
        allocation.refresh(lifetime)
        self._reply(msg, link, auth, [(Attr.LIFETIME, lifetime)])

    def _check_peer(
        self, msg: Message, link: ClientLink, auth: Authenticated, peer: Address
    ) -> bool:
        if not self._filter.allows(peer):
            self.stats.denied_peers += 1
            self._log(
                link.client_address[0],
                logging.INFO,
                "TURN peer %s denied for %s: %s",
                peer[0],
                auth.username,
                self._filter.verdict(peer).value,
            )
            self._error(msg, link, auth, 403)
            return False
        if _family(peer[0]) != self._relay_family:
            self._error(msg, link, auth, 443)
            return False
        return True

    def _handle_create_permission(
        self, msg: Message, link: ClientLink, auth: Authenticated
    ) -> None:
        allocation = self._owned_allocation(msg, link, auth)
        if allocation is None:
            return
        peers = [v for v in msg.get_all(Attr.XOR_PEER_ADDRESS) if is_address(v)]
        if not peers:
            self._error(msg, link, auth, 400)
            return
        # All or nothing (RFC 8656 9.2): one denied peer fails the whole request.
        for peer in peers:
            if not self._check_peer(msg, link, auth, peer):
                return
        ips = {peer[0] for peer in peers}
        if not allocation.can_add_permissions(ips):
            self._error(msg, link, auth, 508)
            return
        for ip in ips:
            allocation.add_permission(ip, self._config.permission_lifetime_s)
        self._reply(msg, link, auth, [])

    def _handle_channel_bind(self, msg: Message, link: ClientLink, auth: Authenticated) -> None:
        allocation = self._owned_allocation(msg, link, auth)
        if allocation is None:
            return
        number = msg.get_int(Attr.CHANNEL_NUMBER)
        peer = msg.get_address(Attr.XOR_PEER_ADDRESS)
        if number is None or peer is None or not CHANNEL_MIN <= number <= CHANNEL_MAX:
            self._error(msg, link, auth, 400)
            return
        if not self._check_peer(msg, link, auth, peer):
            return
        if allocation.channel_conflict(number, peer):
            self._error(msg, link, auth, 400)
            return
        if not allocation.can_add_permissions({peer[0]}):
            self._error(msg, link, auth, 508)
            return
        allocation.bind_channel(number, peer, self._config.channel_lifetime_s)
        allocation.add_permission(peer[0], self._config.permission_lifetime_s)
        self._reply(msg, link, auth, [])

    def _handle_send(self, msg: Message, link: ClientLink) -> None:
        allocation = link.get_allocation()
        peer = msg.get_address(Attr.XOR_PEER_ADDRESS)
        data = msg.get_bytes(Attr.DATA)
        if allocation is None or peer is None or data is None:
            self.stats.dropped += 1
            return
        if not self._filter.allows(peer):
            # Silently dropped: an indication has no reply.
            self.stats.denied_peers += 1
            self.stats.dropped += 1
            return
        allocation.from_client_send(peer, data)


def _server_address(server: asyncio.Server | None) -> Address | None:
    if server is None or not server.sockets:
        return None
    name: Any = server.sockets[0].getsockname()
    return (str(name[0]), int(name[1]))


def _method_name(method: int) -> str:
    with contextlib.suppress(ValueError):
        return Method(method).name
    return hex(method)
