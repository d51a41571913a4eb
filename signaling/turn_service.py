"""The embedded TURN server's place in `relayroom serve`, and the ICE servers clients get."""

from __future__ import annotations

import errno
import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from relayroom.turn.config import TurnConfig, TurnConfigError
from relayroom.turn.credentials import rest_credentials
from relayroom.turn.server import TurnServer

from .addresses import interface_addresses, is_wildcard, relay_host
from .config import Config, ConfigError

log = logging.getLogger(__name__)


def turn_secret(config: Config, api_secret: str) -> str:
    """The TURN REST secret: configured, or derived from the API secret (never equal to it)."""
    if config.turn_secret:
        return config.turn_secret
    return hmac.new(api_secret.encode(), b"relayroom turn rest secret", hashlib.sha256).hexdigest()


def public_turn_host(config: Config, relay: str | None = None) -> str:
    """The address clients are told to reach TURN on."""
    if config.turn_public_host:
        return config.turn_public_host
    if config.ice_hosts:
        return config.ice_hosts[0]
    return relay or relay_host(config)


def turn_config(config: Config, secret: str, interfaces: Sequence[str] | None = None) -> TurnConfig:
    """The embedded TURN server's settings; `interfaces` (default: this machine's) decide the
    relay address when listening on every interface."""
    host = config.turn_host or config.host
    if interfaces is None:
        interfaces = interface_addresses() if is_wildcard(host) or config.ice_hosts else []
    relay = relay_host(config, interfaces)
    # Behind a 1:1 NAT the ice host is not local: relay from the local address, advertise it.
    public = config.turn_public_host
    if public is None and config.ice_hosts:
        first = config.ice_hosts[0]
        if first not in (relay, *interfaces) and not ipaddress.ip_address(first).is_loopback:
            public = first
    try:
        return TurnConfig(
            listen_host="127.0.0.1" if host == "localhost" else host,
            udp_port=config.turn_port,
            tcp_port=config.turn_port,
            tls_port=config.turn_tls_port,
            tls_cert=str(config.tls_cert) if config.tls_cert else None,
            tls_key=str(config.tls_key) if config.tls_key else None,
            relay_host=relay,
            relay_public_host=public,
            relay_port_min=config.turn_relay_port_min,
            relay_port_max=config.turn_relay_port_max,
            secret=secret,
            credential_ttl_s=config.turn_credential_ttl_s,
            allowed_peers=config.turn_allowed_peers,
            max_allocations_per_user=config.turn_max_allocations_per_user,
            max_allocations_total=config.turn_max_allocations_total,
            bandwidth_bytes_per_s=config.turn_bandwidth_bytes_per_s,
        )
    except TurnConfigError as exc:
        raise ConfigError("turn", str(exc)) from None


def _free_port_pair(host: str) -> int:
    """A port free for both UDP and TCP on `host` right now (dev mode's TURN fallback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise ConfigError("turn_port", f"found no free UDP+TCP port on {host}")


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class TurnService:
    """Runs the embedded TURN server (unless disabled) and mints credentials for clients."""

    def __init__(self, config: Config, api_secret: str) -> None:
        self._config = config
        self._secret = turn_secret(config, api_secret)
        self.server: TurnServer | None = None
        if config.turn_enabled and not config.turn_urls:
            self.server = TurnServer(turn_config(config, self._secret))

    async def start(self) -> None:
        server = self.server
        if server is None:
            return
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not self._config.dev:
                raise self._start_error(exc) from None
            # A second dev server on the same machine: any free port beats dying; the CLI
            # prints the port taken.
            cfg = server.config
            port = _free_port_pair(cfg.listen_host)
            log.warning(
                "TURN port %s is in use: dev mode uses %s instead (set turn_port to choose)",
                cfg.udp_port,
                port,
            )
            tls_port = 0 if cfg.tls_cert else cfg.tls_port
            self.server = TurnServer(replace(cfg, udp_port=port, tcp_port=port, tls_port=tls_port))
            try:
                await self.server.start()
            except OSError as exc2:
                raise self._start_error(exc2) from None

    def _start_error(self, exc: OSError) -> ConfigError:
        cfg = self._config
        host = cfg.turn_host or cfg.host
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRNOTAVAIL:
            name = "turn_host" if cfg.turn_host else "host"
            return ConfigError(name, f"{host} is not an address of this machine ({reason})")
        if exc.errno == errno.EADDRINUSE:
            return ConfigError(
                "turn_port",
                f"TURN port {cfg.turn_port} (or turn_tls_port {cfg.turn_tls_port}) on {host} "
                "is in use, by another relayroom or a TURN server: choose another with "
                "--turn-port N (RELAYROOM_TURN_PORT), or run without TURN (--no-turn)",
            )
        return ConfigError("turn_port", f"cannot start the TURN server on {host}: {reason}")

    def allocations_active(self) -> int:
        """Allocations on the embedded TURN server (0 when it is not running)."""
        return self.server.allocations_active if self.server is not None else 0

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def urls(self) -> list[str]:
        if self._config.turn_urls:
            return list(self._config.turn_urls)
        server = self.server
        if server is None:
            return []
        relay = server.config.relay_public_host or server.config.relay_host
        host = _url_host(public_turn_host(self._config, relay))
        urls = []
        if server.udp_address is not None:
            urls.append(f"stun:{host}:{server.udp_address[1]}")
            urls.append(f"turn:{host}:{server.udp_address[1]}?transport=udp")
        if server.tcp_address is not None:
            urls.append(f"turn:{host}:{server.tcp_address[1]}?transport=tcp")
        if server.tls_address is not None:
            urls.append(f"turns:{host}:{server.tls_address[1]}?transport=tcp")
        return urls

    def credentials(self, user: str) -> tuple[str, str]:
        safe_user = user.replace(":", "_")
        return rest_credentials(self._secret, safe_user, self._config.turn_credential_ttl_s)

    def ice_servers(self, user: str) -> list[dict[str, Any]]:
        """RTCIceServer objects for a client: STUN plus TURN with ephemeral credentials."""
        urls = self.urls()
        if not urls:
            return []
        stun = [u for u in urls if u.startswith("stun:")]
        turn = [u for u in urls if not u.startswith("stun:")]
        servers: list[dict[str, Any]] = []
        if stun:
            servers.append({"urls": stun})
        if turn:
            username, credential = self.credentials(user)
            servers.append({"urls": turn, "username": username, "credential": credential})
        return servers
