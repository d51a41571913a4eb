"""Every use of aiortc's and aioice's private internals, in one place.

relayroom forwards RTP between PeerConnections without decoding, which aiortc does not offer as
public API. The hooks below were written against aiortc 1.16 and aioice 0.13 (see
``docs/media.md``); :func:`check_compatibility` verifies that each private name they rely on still
exists, and ``tests/media/test_hooks.py`` exercises each hook, so an upgrade fails loudly.

Nothing outside this module touches a name with a leading underscore on an aiortc object. The
one hook that must run before aiortc is imported, deferring PyAV, is ``relayroom/lazy_av.py``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import random
import socket
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from struct import unpack
from typing import Any

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtcsctptransport import WEBRTC_STRING, RTCSctpTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.stats import RTCStatsReport
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from .bitrate import BitrateEstimator
from .rtp_build import FastSender, Unprotector, compiled_parse_rtp
from .rtp_history import RtpHistory

logger = logging.getLogger(__name__)

TESTED_AIORTC = "1.16."
TESTED_AIOICE = "0.13."

# The private names the hooks use, by owner. check_compatibility() looks each one up.
_RECEIVER_INIT_NAMES = (
    "_RTCRtpReceiver__started",
    "_RTCRtpReceiver__codecs",
    "_RTCRtpReceiver__decoder_queue",
    "_RTCRtpReceiver__decoder_thread",
    "_RTCRtpReceiver__jitter_buffer",
    "_RTCRtpReceiver__kind",
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__rtx_ssrc",
    "_RTCRtpReceiver__rtcp_ssrc",
    "_RTCRtpReceiver__remote_streams",
    "_RTCRtpReceiver__nack_generator",
)
_SENDER_INIT_NAMES = (
    "_RTCRtpSender__rtp_history",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__lsr",
    "_RTCRtpSender__started",
)
_METHODS: tuple[tuple[type, str], ...] = (
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "receive"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_rtcp"),
    (RTCRtpSender, "_retransmit"),
    (RTCRtpSender, "send"),
    (RTCSctpTransport, "_data_channel_receive"),
    (RTCPeerConnection, "_RTCPeerConnection__connect"),
    (RtpRouter, "route_rtp"),
    (RTCRtpTransceiver, "_get_mline_index"),
    (RTCRtpTransceiver, "_set_mline_index"),
    (aioice.ice.Connection, "gather_candidates"),
    (aioice.ice.StunProtocol, "datagram_received"),
)


# Read by the stats readers below (the selected candidate pair, per-SSRC receive statistics,
# transport byte counters): aiortc's getStats() has none of them.
_STATS_METHODS: tuple[tuple[type, str], ...] = (
    (RTCDtlsTransport, "_get_stats"),
    (aioice.ice.CandidatePair, "local_candidate"),
    (StreamStatistics, "packets_expected"),
    (StreamStatistics, "jitter"),
    (NackGenerator, "truncate"),
)
_STATS_INIT_NAMES: tuple[tuple[type, str], ...] = (
    (RTCIceTransport, "_connection"),
    (aioice.ice.Connection, "_nominated"),
    (aioice.ice.CandidatePair, "remote_candidate"),
    (RTCRtpReceiver, "_RTCRtpReceiver__remote_streams"),
    (StreamStatistics, "base_seq"),
    (StreamStatistics, "packets_received"),
    # FastStreamStatistics / FastNackGenerator write these as aiortc's add() does
    (StreamStatistics, "max_seq"),
    (StreamStatistics, "cycles"),
    (StreamStatistics, "_clockrate"),
    (StreamStatistics, "_jitter_q4"),
    (StreamStatistics, "_last_arrival"),
    (StreamStatistics, "_last_timestamp"),
    (NackGenerator, "max_seq"),
    (NackGenerator, "missing"),
)


def _init_names(cls: type) -> set[str]:
    """The attribute names a class's ``__init__`` assigns or reads."""
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    return set(code.co_names) if code is not None else set()


def _stats_problems() -> list[str]:
    problems = [f"{cls.__name__}.{m}" for cls, m in _STATS_METHODS if not hasattr(cls, m)]
    problems += [f"{cls.__name__}.{n}" for cls, n in _STATS_INIT_NAMES if n not in _init_names(cls)]
    return problems


def _private(obj: object) -> Any:
    """Untyped view of an aiortc object, to reach its private attributes."""
    return obj


class HookError(RuntimeError):
    """The installed aiortc/aioice no longer has what the forwarding hooks need."""


def check_compatibility() -> None:
    """Raise :class:`HookError` if a private name the hooks use is missing.

    Cheap (inspects code objects, creates nothing); called once per Room.
    """
    problems: list[str] = []
    if not aiortc.__version__.startswith(TESTED_AIORTC):
        problems.append(f"aiortc {aiortc.__version__} (hooks written for {TESTED_AIORTC}x)")
    if not aioice.__version__.startswith(TESTED_AIOICE):
        problems.append(f"aioice {aioice.__version__} (hooks written for {TESTED_AIOICE}x)")
    recv_names = set(RTCRtpReceiver.__init__.__code__.co_names)
    problems += [f"RTCRtpReceiver.{n}" for n in _RECEIVER_INIT_NAMES if n not in recv_names]
    send_names = set(RTCRtpSender.__init__.__code__.co_names)
    problems += [f"RTCRtpSender.{n}" for n in _SENDER_INIT_NAMES if n not in send_names]
    problems += [f"{cls.__name__}.{m}" for cls, m in _METHODS if not hasattr(cls, m)]
    problems += _stats_problems()
    pc_names = set(RTCPeerConnection.__init__.__code__.co_names)
    for name in ("_RTCPeerConnection__dtlsTransports", "_RTCPeerConnection__iceTransports"):
        if name not in pc_names:
            problems.append(f"RTCPeerConnection.{name}")
    if "_rtp_router" not in RTCDtlsTransport.__init__.__code__.co_names:
        problems.append("RTCDtlsTransport._rtp_router")
    router_names = set(RtpRouter.__init__.__code__.co_names)
    for name in ("mid_table", "ssrc_table", "payload_type_table"):
        if name not in router_names:
            problems.append(f"RtpRouter.{name}")
    conn_names = set(aioice.ice.Connection.__init__.__code__.co_names)
    for name in ("_local_candidates", "_local_candidates_start", "_local_candidates_end"):
        if name not in conn_names:
            problems.append(f"aioice Connection.{name}")
    if "_queue" not in conn_names:
        problems.append("aioice Connection._queue")
    if "_remote_candidates" not in conn_names or not hasattr(
        aioice.ice.Connection, "check_incoming"
    ):
        problems.append("aioice Connection._remote_candidates/check_incoming")
    if "_protocols" not in conn_names or "_components" not in conn_names:
        problems.append("aioice Connection._protocols/_components")
    if "_data_channels" not in RTCSctpTransport.__init__.__code__.co_names:
        problems.append("RTCSctpTransport._data_channels")
    problems += _direct_send_problems()
    problems += _srtp_receive_problems()
    if problems:
        raise HookError("forwarding hooks do not fit: " + "; ".join(problems))


def server_configuration() -> RTCConfiguration:
    """PeerConnection configuration of the server side: no STUN/TURN, everything bundled."""
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


# --------------------------------------------------------------------------------------------
# DataChannels: text that is not UTF-8


def tolerate_invalid_text(transport: RTCSctpTransport) -> None:
    """Hand on text messages that are not UTF-8 instead of ending the connection.

    aiortc decodes a text (PPID 51) message with ``bytes.decode("utf8")`` inside its DTLS
    receive loop: one invalid byte raises there and closes the participant's whole
    PeerConnection, with a traceback in the log. Here such a message is emitted with each bad
    byte as a lone surrogate (``surrogateescape``), which the relay refuses like any other
    malformed message (``invalid_message``, counted). Idempotent.
    """
    sctp = _private(transport)
    if getattr(sctp, "_relayroom_text_guard", False):
        return
    original = sctp._data_channel_receive
    channels = sctp._data_channels

    async def receive(stream_id: int, pp_id: int, data: bytes) -> None:
        channel = channels.get(stream_id) if pp_id == WEBRTC_STRING else None
        if channel is None:
            await original(stream_id, pp_id, data)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "surrogateescape")
        channel.emit("message", text)

    sctp._data_channel_receive = receive
    sctp._relayroom_text_guard = True


# --------------------------------------------------------------------------------------------
# Renegotiation: media that a description adds while the transport is still connecting


def watch_renegotiation(
    pc: RTCPeerConnection, *, receive_directly: bool = False, compiled: bool = True
) -> None:
    """Make media negotiated at any time start, and route bundled RTP by MID too.

    aiortc starts a transceiver's receiver and sender (``receive()``/``send()``, which register
    them on the DTLS transport's RTP router) only from the connect task that each
    ``setLocalDescription``/``setRemoteDescription`` spawns, and only if the DTLS transport is
    connected by then. A renegotiation that lands while a first connect task is still in its DTLS
    handshake (a browser offering DataChannels, then at once audio/video) starts nothing, and no
    later task comes: SRTP arrives but the router drops it. Running the connect task again each
    time the PeerConnection becomes connected starts what was skipped (``receive``, ``send``
    and the SCTP start are idempotent).

    With ``receive_directly`` (the server's PeerConnections), once connected its SRTP is also
    received in the socket's callback (:func:`receive_srtp_directly`); peers that only stand in
    for clients (tests, load generators) keep aiortc's own receive path. ``compiled``: that
    path unprotects and parses in C when the compiled module is built.

    Call once, right after creating the PeerConnection.
    """
    rpc = _private(pc)
    if getattr(rpc, "_relayroom_watched", False):
        return
    rpc._relayroom_watched = True
    tasks: set[asyncio.Future[None]] = set()

    def on_state_change() -> None:
        for dtls in rpc._RTCPeerConnection__dtlsTransports:
            route_by_mid(dtls)
        if pc.connectionState != "connected":
            return
        if receive_directly:
            for dtls in rpc._RTCPeerConnection__dtlsTransports:
                receive_srtp_directly(dtls, compiled=compiled)
        task = asyncio.ensure_future(rpc._RTCPeerConnection__connect())
        tasks.add(task)
        task.add_done_callback(functools.partial(_connect_done, tasks))

    pc.on("connectionstatechange", on_state_change)


def _connect_done(tasks: set[asyncio.Future[None]], task: asyncio.Future[None]) -> None:
    tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("restarting negotiated media failed: %r", task.exception())


def route_by_mid(dtls: RTCDtlsTransport) -> None:
    """Let the RTP router of a bundled transport use the MID header extension (RFC 8843 9.2).

    aiortc routes by SSRC (from ``a=ssrc`` lines) and else by payload type only if a single
    receiver has it. Two video m-lines (camera and screen share, or a track removed and added
    again on a new m-line) share payload types, so without ``a=ssrc`` lines every packet of both
    would be dropped. Browsers put the MID in the first packets of each stream: bind the SSRC
    to that m-line's receiver then.
    """
    router = _private(dtls)._rtp_router
    if getattr(router, "_relayroom_mid_routing", False):
        return
    router._relayroom_mid_routing = True
    router.route_rtp = functools.partial(_route_rtp, router, router.route_rtp)


def _route_rtp(router: Any, original: Callable[[RtpPacket], Any], packet: RtpPacket) -> Any:
    mid = packet.extensions.mid
    if mid is not None:
        receiver = router.mid_table.get(mid)
        if receiver is not None and receiver in router.payload_type_table.get(
            packet.payload_type, ()
        ):
            router.ssrc_table[packet.ssrc] = receiver
            return receiver
    return original(packet)


def release_recycled_mlines(pc: RTCPeerConnection) -> None:
    """Let a stopped transceiver give up its m-line slot once another transceiver holds it.

    A client may put a new transceiver (new MID) in the m-line slot of a stopped one (JSEP
    m-line recycling; Chromium does). aiortc then has two transceivers with that m-line index,
    and ``setLocalDescription`` looks transceivers up by index, finds the stopped one first and
    gives it the new MID. Call after ``setRemoteDescription`` and before ``setLocalDescription``.
    """
    transceivers = pc.getTransceivers()
    live = {t._get_mline_index() for t in transceivers if not t.stopped and t.mid is not None} - {
        None
    }
    for t in transceivers:
        if t.stopped and t._get_mline_index() in live:
            _private(t)._set_mline_index(None)


# --------------------------------------------------------------------------------------------
# ICE: host addresses, port range, malformed STUN containment


class StunGuard:
    """Counts datagrams that crash aioice's STUN parser, logging at most once a second per source.

    aioice catches only ``ValueError`` from its parser; a 28-byte STUN message with a 2-byte
    LIFETIME attribute raises ``struct.error`` and would reach the event loop's exception handler
    with a traceback, once per packet.
    """

    MAX_SOURCES = 4096

    def __init__(self, log_interval_s: float = 1.0) -> None:
        self.count = 0
        self._interval = log_interval_s
        self._sources: dict[str, tuple[float, int]] = {}

    def record(self, addr: tuple[Any, ...], exc: BaseException) -> None:
        self.count += 1
        source = str(addr[0])
        now = time.monotonic()
        last, suppressed = self._sources.get(source, (-1e9, 0))
        if now - last >= self._interval:
            if len(self._sources) >= self.MAX_SOURCES:
                self._sources.clear()
            self._sources[source] = (now, 0)
            frames = traceback.extract_tb(exc.__traceback__)
            frame = frames[-1] if frames else None
            where = f"{os.path.basename(frame.filename)}:{frame.lineno}" if frame else "?"
            logger.warning(
                "malformed STUN datagram from %s:%s dropped (%s at %s: %s; %d more suppressed)",
                source,
                addr[1] if len(addr) > 1 else "?",
                type(exc).__name__,
                where,
                exc,
                suppressed,
            )
        else:
            self._sources[source] = (last, suppressed + 1)


class GuardedStunProtocol(aioice.ice.StunProtocol):  # type: ignore[misc]
    """aioice's STUN protocol with a parser crash contained (see :class:`StunGuard`).

    Once its DTLS transport is connected, SRTP and SRTCP datagrams go straight to a
    :class:`SrtpReceivePath` (``srtp``) instead of aioice's queue.
    """

    def __init__(self, receiver: aioice.ice.Connection, guard: StunGuard) -> None:
        super().__init__(receiver)
        self._guard = guard
        self.srtp: SrtpReceivePath | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        srtp = self.srtp
        # 128-191: an RTP or RTCP first byte (RFC 7983); STUN and DTLS never start so.
        if srtp is not None and 127 < data[0] < 192 and srtp.handle(data):  # type: ignore[operator,arg-type]
            return
        try:
            super().datagram_received(data, addr)
        except Exception as exc:  # struct.error and whatever else a crafted datagram triggers
            self._guard.record(addr, exc)


async def _bind_udp(
    conn: aioice.ice.Connection,
    address: str,
    port_range: tuple[int, int] | None,
    guard: StunGuard,
) -> GuardedStunProtocol | None:
    loop = asyncio.get_running_loop()
    if port_range is None:
        ports: Sequence[int] = (0,)
    else:
        low, high = port_range
        count = high - low + 1
        start = random.randrange(count)
        ports = [low + (start + i) % count for i in range(count)]
    for port in ports:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                functools.partial(GuardedStunProtocol, conn, guard), local_addr=(address, port)
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port != 0:
                continue
            logger.warning("cannot bind UDP on %s:%s: %s", address, port, exc)
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        assert isinstance(protocol, GuardedStunProtocol)
        return protocol
    logger.warning("no free UDP port on %s in %s-%s", address, *(port_range or (0, 0)))
    return None


async def _gather_host_candidates(
    conn: aioice.ice.Connection,
    hosts: tuple[str, ...],
    port_range: tuple[int, int] | None,
    guard: StunGuard,
) -> None:
    # Replaces aioice.ice.Connection.gather_candidates (host candidates only, no STUN/TURN).
    if conn._local_candidates_start:
        return
    conn._local_candidates_start = True
    addresses = list(hosts) or aioice.ice.get_host_addresses(
        use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6
    )
    for component in sorted(conn._components):
        for address in addresses:
            protocol = await _bind_udp(conn, address, port_range, guard)
            if protocol is None:
                continue
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            conn._protocols.append(protocol)
            conn._local_candidates.append(protocol.local_candidate)
    conn._local_candidates_end = True


def configure_ice(
    pc: RTCPeerConnection,
    hosts: tuple[str, ...],
    port_range: tuple[int, int] | None = None,
    guard: StunGuard | None = None,
    receive_queue_max: int | None = None,
) -> None:
    """Make every ICE transport of ``pc`` gather host candidates on ``hosts`` only.

    Call before each ``setLocalDescription`` (new transports may have appeared). Sockets are bound
    in ``port_range`` when given, and their STUN parsing is guarded. aioice's own gathering skips
    127.0.0.1, which is why tests (and servers on loopback) need this. With
    ``receive_queue_max``, each connection's receive queue (unbounded in aioice) keeps at most
    that many datagrams, dropping the oldest (:class:`DropOldestQueue`).
    """
    for ice_transport in _private(pc)._RTCPeerConnection__iceTransports:
        conn = ice_transport._connection
        if getattr(conn, "_relayroom_configured", False):
            continue
        conn.gather_candidates = functools.partial(
            _gather_host_candidates, conn, tuple(hosts), port_range, guard or StunGuard()
        )
        if receive_queue_max is not None:
            bound_receive_queue(conn, receive_queue_max)
        conn.check_incoming = functools.partial(
            _check_incoming_any_component, conn, conn.check_incoming
        )
        conn._relayroom_configured = True


def _check_incoming_any_component(
    conn: aioice.ice.Connection,
    original: Callable[[Any, tuple[str, int], Any], None],
    message: Any,
    addr: tuple[str, int],
    protocol: Any,
) -> None:
    """aioice's ``check_incoming``, minus its crash on a remote candidate of another component.

    aioice asserts that a remote candidate at the request's address has the component of the
    socket it came in on. Every transport here is bundled with rtcp-mux (component 1 only), so
    a candidate of another component at that address can never be paired: it is dropped (and
    logged, with what it was) and the check goes on. Without this, each of the browser's
    binding requests from that address crashed before its nomination was recorded, and ICE
    never completed (seen with Chromium under load).
    """
    try:
        original(message, addr, protocol)
        return
    except AssertionError:
        component = protocol.local_candidate.component
        strays = [
            c
            for c in conn._remote_candidates
            if c._network_host == addr[0] and c.port == addr[1] and c.component != component
        ]
        if not strays:
            raise
    logger.warning(
        "ICE: remote candidates %s at %s:%s are not of component %d: dropped",
        [str(c) for c in strays],
        *addr,
        component,
    )
    for stray in strays:
        conn._remote_candidates.remove(stray)
    original(message, addr, protocol)


class DropOldestQueue(asyncio.Queue[Any]):
    """aioice's per-connection receive queue with a bound: the oldest datagram goes first.

    aioice puts every datagram of a connection in an unbounded ``asyncio.Queue`` that the DTLS
    transport drains. When the relay falls behind, old media is worth less than new, so the
    oldest is dropped (and counted) rather than the newest refused. ``None`` (connection lost)
    is always kept.
    """

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound
        self.dropped = 0

    def put_nowait(self, item: Any) -> None:
        if self.qsize() >= self.bound:
            self.get_nowait()
            self.dropped += 1
        super().put_nowait(item)


def bound_receive_queue(conn: aioice.ice.Connection, bound: int) -> DropOldestQueue:
    """Replace an aioice connection's receive queue (still empty) by a bounded one."""
    private = _private(conn)
    if isinstance(private._queue, DropOldestQueue):
        return private._queue
    if private._queue.qsize():
        raise HookError("receive queue replaced after datagrams arrived")
    queue = DropOldestQueue(bound)
    private._queue = queue
    return queue


def local_udp_ports(pc: RTCPeerConnection) -> list[tuple[str, int]]:
    """The host addresses and ports the PeerConnection's sockets are bound to."""
    out: list[tuple[str, int]] = []
    for ice_transport in _private(pc)._RTCPeerConnection__iceTransports:
        for c in ice_transport._connection.local_candidates:
            out.append((c.host, c.port))
    return out


def remote_candidate_hosts(pc: RTCPeerConnection) -> list[str]:
    """Addresses of the remote candidates the PeerConnection's ICE agents hold."""
    out: list[str] = []
    for ice_transport in _private(pc)._RTCPeerConnection__iceTransports:
        out += [c.host for c in ice_transport._connection.remote_candidates]
    return out


# --------------------------------------------------------------------------------------------
# Receive side: SRTP handled in the socket's callback

_NTP_EPOCH_MS = 2208988800 * 1000  # aiortc's arrival times are milliseconds since 1900


def _no_srtp(data: bytes) -> bytes:
    raise pylibsrtp.Error("no SRTP session")


def _srtp_address(name: str) -> int:
    """libsrtp's ``srtp_protect``/``srtp_unprotect`` as the compiled steps call them (libsrtp
    2's signature), or 0 if pylibsrtp's differs (then packets go through Python)."""
    expected = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    if _srtp_ffi.typeof(getattr(_srtp_lib, name)).cname != expected:
        return 0
    return int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, name)))


_SRTP_PROTECT_ADDRESS = _srtp_address("srtp_protect")
_SRTP_UNPROTECT_ADDRESS = _srtp_address("srtp_unprotect")


def srtp_function(
    session: pylibsrtp.Session, *, protect: bool, compiled: bool = False
) -> Callable[[bytes], bytes]:
    """``session.protect`` (or ``unprotect``) without pylibsrtp's per-call overhead.

    pylibsrtp allocates an ``int *`` and checks types and lengths in three Python calls per
    packet; this binds the session's libsrtp handle and buffer once (about 1 µs less per
    packet, on every forwarded packet). Same errors: ``ValueError`` for a packet too long,
    ``pylibsrtp.Error`` for what libsrtp refuses. ``compiled``: unprotect in one C call
    (``media/_fastpath.c``'s ``Unprotector``) when it is built.
    """
    private = _private(session)
    if not protect and compiled and Unprotector is not None and _SRTP_UNPROTECT_ADDRESS:
        unprotect: Callable[[bytes], bytes] = Unprotector(
            session=int(_srtp_ffi.cast("uintptr_t", private._srtp[0])),
            unprotect=_SRTP_UNPROTECT_ADDRESS,
            owner=session,
            error=pylibsrtp.Error,
        )
        return unprotect
    handle = private._srtp  # owns the libsrtp session: kept alive by this closure
    cdata = private._cdata
    buffer = private._buffer
    length = _srtp_ffi.new("int *")
    func = _srtp_lib.srtp_protect if protect else _srtp_lib.srtp_unprotect
    limit = len(cdata) - (pylibsrtp.SRTP_MAX_TRAILER_LEN if protect else 0)
    ok = _srtp_lib.srtp_err_status_ok

    def process(data: bytes) -> bytes:
        size = len(data)
        if size > limit:
            raise ValueError("packet is too long")
        buffer[0:size] = data
        length[0] = size
        status = func(handle[0], cdata, length)
        if status != ok:
            errors = pylibsrtp.ERRORS
            raise pylibsrtp.Error(errors[status] if 0 <= status < len(errors) else status)
        result: bytes = buffer[0 : length[0]]
        return result

    return process


def _srtp_receive_problems() -> list[str]:
    problems = [
        f"RTCDtlsTransport.{m}"
        for m in ("_handle_rtp_data", "_handle_rtcp_data")
        if not hasattr(RTCDtlsTransport, m)
    ]
    dtls_names = _init_names(RTCDtlsTransport)
    for name in ("_rx_srtp", "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets"):
        if name not in dtls_names:
            problems.append(f"RTCDtlsTransport.{name}")
    if "_protocols" not in _init_names(aioice.ice.Connection):
        problems.append("aioice Connection._protocols")
    if "_rtp_header_extensions_map" not in dtls_names:
        problems.append("RTCDtlsTransport._rtp_header_extensions_map")
    if set(RtpPacket().__dict__) != _RTP_PACKET_FIELDS:
        problems.append("RtpPacket fields")
    if "_HeaderExtensionsMap__ids" not in _init_names(HeaderExtensionsMap) or any(
        f not in HeaderExtensions.__dataclass_fields__ for f in _EXTENSION_FIELDS
    ):
        problems.append("HeaderExtensionsMap.__ids")
    srtp_names = _init_names(pylibsrtp.Session)
    for name in ("_srtp", "_cdata", "_buffer"):
        if name not in srtp_names:
            problems.append(f"pylibsrtp Session.{name}")
    for name in ("srtp_protect", "srtp_unprotect", "srtp_err_status_ok"):
        if not hasattr(_srtp_lib, name):
            problems.append(f"pylibsrtp lib.{name}")
    if not hasattr(pylibsrtp, "SRTP_MAX_TRAILER_LEN") or not hasattr(pylibsrtp, "ERRORS"):
        problems.append("pylibsrtp SRTP_MAX_TRAILER_LEN/ERRORS")
    return problems


_RTP_HEADER = struct.Struct("!BBHLL")
_new_rtp_packet = object.__new__
# What RtpPacket.__init__ sets; RtpReader sets the same (checked by check_compatibility).
_RTP_PACKET_FIELDS = frozenset(
    (
        "version",
        "marker",
        "payload_type",
        "sequence_number",
        "timestamp",
        "ssrc",
        "csrc",
        "extensions",
        "payload",
        "padding_size",
    )
)
# Header extension kinds, as HeaderExtensionsMap names them.
_MID, _RRID, _RID, _ABS, _TOFFSET, _LEVEL, _TCC = range(7)
_EXTENSION_FIELDS = (
    "mid",
    "repaired_rtp_stream_id",
    "rtp_stream_id",
    "abs_send_time",
    "transmission_offset",
    "audio_level",
    "transport_sequence_number",
)


class RtpReader:
    """Parses RTP as aiortc's ``RtpPacket.parse`` with a transport's extension map does.

    The same packet, fields and ``ValueError`` for what is not RTP; one-byte header extensions
    are decoded with one table lookup per element instead of aiortc's list of pairs and chain
    of comparisons (parsing was a seventh of the relay's receive path). Two-byte extensions go
    to the map itself. The table follows the map: its ``configure`` (each negotiation) clears it.
    """

    def __init__(self, extensions_map: Any, *, compiled: bool = True) -> None:
        self._map = extensions_map
        self._kinds: dict[int, int] | None = None
        self._kind_bytes: bytes | None = None  # the same table for the compiled parser
        original = extensions_map.configure

        def configure(parameters: Any) -> None:
            original(parameters)
            self._kinds = None
            self._kind_bytes = None

        extensions_map.configure = configure
        if compiled and compiled_parse_rtp is not None:
            self.parse = self._parse_compiled  # type: ignore[method-assign]

    def _parse_compiled(self, data: bytes) -> RtpPacket:
        """:meth:`parse` in C (``media/_fastpath.c``): the same packet; ``ValueError`` for
        everything it refuses (an extension of the wrong size too, where aiortc's struct
        raises ``struct.error``)."""
        kinds = self._kind_bytes
        if kinds is None:
            table = self._kinds if self._kinds is not None else self._table()
            kinds = self._kind_bytes = bytes(table.get(i, 255) for i in range(16))
        parse: Any = compiled_parse_rtp
        return parse(data, kinds, RtpPacket, HeaderExtensions, self._map.get)  # type: ignore[no-any-return]

    def _table(self) -> dict[int, int]:
        ids = self._map._HeaderExtensionsMap__ids
        kinds: dict[int, int] = {}
        for kind, field in enumerate(_EXTENSION_FIELDS):
            x_id = getattr(ids, field)
            if x_id:
                kinds.setdefault(x_id, kind)  # aiortc's chain: the first field wins
        self._kinds = kinds
        return kinds

    def parse(self, data: bytes) -> RtpPacket:
        size = len(data)
        if size < 12:
            raise ValueError("RTP packet length is less than 12 bytes")
        b0, b1, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise ValueError("RTP packet has invalid version")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if size < pos:
            raise ValueError("RTP packet has truncated CSRC")
        # RtpPacket's own __init__ would build a HeaderExtensions that is replaced at once.
        packet = _new_rtp_packet(RtpPacket)
        packet.version = 2
        packet.marker = b1 >> 7
        packet.payload_type = b1 & 0x7F
        packet.sequence_number = seq
        packet.timestamp = ts
        packet.ssrc = ssrc
        packet.csrc = list(struct.unpack_from(f"!{cc}L", data, 12)) if cc else []
        packet.padding_size = 0
        if b0 & 0x10:
            if size < pos + 4:
                raise ValueError("RTP packet has truncated extension profile / length")
            profile = (data[pos] << 8) | data[pos + 1]
            end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3]) * 4
            pos += 4
            if size < end:
                raise ValueError("RTP packet has truncated extension value")
            if profile == 0xBEDE:
                packet.extensions = self._one_byte(data, pos, end)
            else:
                packet.extensions = self._map.get(profile, data[pos:end])
            pos = end
        else:
            packet.extensions = HeaderExtensions()
        if b0 & 0x20:
            padding = data[-1]
            if not padding or padding > size - pos:
                raise ValueError("RTP packet padding length is invalid")
            packet.padding_size = padding
            packet.payload = data[pos:-padding]
        else:
            packet.payload = data[pos:]
        return packet

    def _one_byte(self, data: bytes, pos: int, end: int) -> HeaderExtensions:
        kinds = self._kinds if self._kinds is not None else self._table()
        values = HeaderExtensions()
        while pos < end:
            first = data[pos]
            pos += 1
            if not first:
                continue  # padding
            length = (first & 0x0F) + 1
            if pos + length > end:
                raise ValueError("RTP one-byte header extension value is truncated")
            kind = kinds.get(first >> 4)
            if kind is not None:
                value = data[pos : pos + length]
                if kind == _ABS:
                    values.abs_send_time = unpack("!L", b"\x00" + value)[0]
                elif kind == _MID:
                    values.mid = value.decode("utf8")
                elif kind == _LEVEL:
                    level = unpack("!B", value)[0]
                    values.audio_level = (level & 0x80 == 0x80, level & 0x7F)
                elif kind == _RID:
                    values.rtp_stream_id = value.decode("ascii")
                elif kind == _RRID:
                    values.repaired_rtp_stream_id = value.decode("ascii")
                elif kind == _TOFFSET:
                    values.transmission_offset = unpack("!l", value + b"\x00")[0] >> 8
                else:
                    values.transport_sequence_number = unpack("!H", value)[0]
            pos += length
        return values


class SrtpReceivePath:
    """Unprotects and routes an SRTP/SRTCP datagram in the socket's own callback.

    aiortc reads every datagram through aioice's queue: ``datagram_received`` tries to parse
    it as STUN, queues it, and a task five coroutines deep (``RTCDtlsTransport.__run`` ->
    ``_recv_next`` -> ``RTCIceTransport._recv`` -> aioice ``recv``/``recvfrom``) wakes up to
    take it out; that hop cost more than a third of the relay's receive path. Here the packet
    goes through the same ``_handle_rtp_data``/``_handle_rtcp_data`` (parse, route, the
    receiver's statistics, NACK and our tap) at once. Their coroutines never wait on a server
    (sending RTCP ends in a non-blocking ``sendto``): they are run to completion right here,
    and one that does wait is finished by a task. DTLS, STUN and anything before the DTLS
    transport is connected still take aiortc's path.
    """

    def __init__(self, dtls: RTCDtlsTransport, *, compiled: bool = True) -> None:
        self._dtls = _private(dtls)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: Any = None
        self._unprotect: Callable[[bytes], bytes] = _no_srtp
        self._compiled = compiled  # unprotect and parse in C (media/_fastpath.c) when built
        self._reader = RtpReader(self._dtls._rtp_header_extensions_map, compiled=compiled)
        self.packets = 0
        self.errors = 0

    def handle(self, data: bytes) -> bool:
        """Handle one datagram whose first byte says RTP/RTCP; False: leave it to aiortc."""
        dtls = self._dtls
        srtp = dtls._rx_srtp
        if srtp is None or dtls._state is not DtlsState.CONNECTED:
            return False
        if srtp is not self._session:
            self._session = srtp
            self._unprotect = srtp_function(srtp, protect=False, compiled=self._compiled)
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        try:
            if len(data) > 1 and 191 < data[1] < 209:  # an RTCP packet type (aiortc's is_rtcp)
                coro = dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))
            else:
                arrival_ms = int(time.time() * 1000) + _NTP_EPOCH_MS
                packet = self._reader.parse(self._unprotect(data))
                # what aiortc's _handle_rtp_data does after parsing
                receiver = dtls._rtp_router.route_rtp(packet)
                if receiver is None:
                    return True
                tap: ReceiverTap | None = receiver.__dict__.get("_relayroom_tap")
                if tap is not None:
                    # no coroutine per packet: one comes back only when a NACK is to be sent
                    self.packets += 1
                    coro = tap.receive_now(packet, arrival_ms)
                    if coro is not None:
                        self._run(coro)
                    return True
                coro = receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_ms)
        except pylibsrtp.Error:
            return True  # not authentic, or replayed: aiortc drops it too
        except (ValueError, struct.error):
            return True  # not RTP (or an extension of the wrong size): dropped
        self.packets += 1
        self._run(coro)
        return True

    def _run(self, coro: Any) -> None:
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                logger.exception("handling a received packet failed (%d so far)", self.errors)
            return
        task = asyncio.ensure_future(_Resumed(coro, waiting).wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Resumed:
    """Lets a task finish a coroutine that was started by hand and is now waiting on ``waiting``."""

    def __init__(self, coro: Any, waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    async def wait(self) -> None:
        await self

    def __await__(self) -> Any:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # cancellation or an error thrown in by the task
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                waiting = coro.send(value)
            except StopIteration:
                return


def receive_srtp_directly(
    dtls: RTCDtlsTransport, path: SrtpReceivePath | None = None, *, compiled: bool = True
) -> SrtpReceivePath | None:
    """Route the SRTP of a connected DTLS transport through :class:`SrtpReceivePath`.

    Only sockets bound by :func:`configure_ice` (:class:`GuardedStunProtocol`) take part;
    None when there is none. Idempotent. ``path`` (a subclass, e.g. the load generator's
    header-only reader) replaces the transport's path.
    """
    if path is None:
        path = getattr(dtls, "_relayroom_srtp_path", None)
    if path is None:
        path = SrtpReceivePath(dtls, compiled=compiled)
    installed = False
    for protocol in _private(dtls).transport._connection._protocols:
        if isinstance(protocol, GuardedStunProtocol):
            protocol.srtp = path
            installed = True
    if not installed:
        return None
    _private(dtls)._relayroom_srtp_path = path
    return path


# --------------------------------------------------------------------------------------------
# Stats readers: what aiortc's getStats() lacks


def nominated_candidates(dtls: RTCDtlsTransport) -> tuple[Candidate, Candidate] | None:
    """The (local, remote) candidates of the nominated ICE pair (of the RTP component)."""
    nominated: dict[int, aioice.ice.CandidatePair] = _private(dtls.transport)._connection._nominated
    if not nominated:
        return None
    pair = nominated.get(1) or next(iter(nominated.values()))
    return pair.local_candidate, pair.remote_candidate


def media_stream_statistics(receiver: RTCRtpReceiver) -> list[StreamStatistics]:
    """The receiver's per-SSRC receive statistics of media streams (RTX streams left out)."""
    private = _private(receiver)
    streams: dict[int, StreamStatistics] = private._RTCRtpReceiver__remote_streams
    rtx: dict[int, int] = private._RTCRtpReceiver__rtx_ssrc
    return [s for ssrc, s in streams.items() if ssrc not in rtx]


def transport_stats(dtls: RTCDtlsTransport) -> RTCStatsReport:
    """The DTLS transport's own report (bytes sent and received), which getStats() omits.

    Packets the forwarder sent past aiortc (:class:`DirectRtpSender`) are added in.
    """
    report: RTCStatsReport = _private(dtls)._get_stats()
    direct: DirectRtpSender | None = getattr(dtls, "_relayroom_direct", None)
    if direct is not None:
        for entry in report.values():
            if entry.type == "transport":
                entry.packetsSent = int(entry.packetsSent or 0) + direct.packets
                entry.bytesSent = int(entry.bytesSent or 0) + direct.octets
    return report


# --------------------------------------------------------------------------------------------
# Codecs


def restrict_codecs(transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters) -> None:
    """Keep only ``codec`` (and its RTX) in a transceiver negotiated from a remote offer.

    ``setCodecPreferences`` is ignored after ``setRemoteDescription``; the answer and the receive
    parameters are built from ``transceiver._codecs``, so this narrows both.
    """
    kept: list[RTCRtpCodecParameters] = [codec]
    for c in transceiver._codecs:
        if c.name.lower() == "rtx" and c.parameters.get("apt") == codec.payloadType:
            kept.append(c)
            break
    transceiver._codecs = kept


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs of a transceiver after negotiation, first one used to send."""
    return list(transceiver._codecs)


def accept_header_extensions(transceiver: RTCRtpTransceiver, ids: dict[str, int]) -> None:
    """Negotiate header extensions aiortc does not offer itself (``rtp-stream-id``...).

    Call after ``setRemoteDescription`` (which kept only aiortc's own) and before
    ``createAnswer``: the answer then carries them, and the transport's extension map, built
    from the same list when the receiver starts, parses them from each packet.
    """
    have = {e.uri for e in transceiver._headerExtensions}
    taken = {e.id for e in transceiver._headerExtensions}
    for uri, ext_id in ids.items():
        if uri not in have and ext_id not in taken:
            transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(ext_id, uri))


def negotiated_extension_ids(transceiver: RTCRtpTransceiver) -> dict[str, int]:
    """Header extension URI -> id, as negotiated on this transceiver."""
    return {e.uri: e.id for e in transceiver._headerExtensions}


def codec_capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


# --------------------------------------------------------------------------------------------
# Receive side: tap packets, never decode


class _DropQueue:
    """Stands in for the receiver's decoder queue: counts frames, decodes nothing.

    The decoder thread reads ``get()`` once, gets ``None`` and exits at once.
    """

    def __init__(self) -> None:
        self.frames = 0

    def put(self, item: object) -> None:
        if item is not None:
            self.frames += 1

    def get(self, *args: object, **kwargs: object) -> None:
        return None


def _socket_fd(dtls: RTCDtlsTransport) -> int:
    """The file descriptor of the socket a DTLS transport receives on (-1 if not connected)."""
    pair = _private(dtls).transport._connection._nominated.get(1)
    transport = getattr(getattr(pair, "protocol", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    return int(sock.fileno()) if sock is not None else -1


class _FrameCounter:
    """Stands in for the receiver's jitter buffer: counts frames, assembles nothing.

    A forwarder never decodes, so reassembling frames (about 6% of the relay's CPU) is waste;
    aiortc's NACK generator, statistics and bitrate estimator run before it and are kept.
    """

    def __init__(self, is_video: bool) -> None:
        self._is_video = is_video
        self.frames = 0

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        if packet.marker or not self._is_video:
            self.frames += 1
        return False, None


class FastStreamStatistics(StreamStatistics):  # type: ignore[misc]
    """aiortc's per-SSRC receive statistics, ``add`` without its per-packet helper calls.

    The same fields and arithmetic (sequence comparison mod 2^16 inlined); receiver reports
    and the stats page read it through aiortc's own properties.
    """

    def add(self, packet: RtpPacket) -> None:
        seq = packet.sequence_number
        max_seq = self.max_seq
        self.packets_received += 1
        if self.base_seq is None:
            self.base_seq = seq
        if max_seq is None or (
            (seq > max_seq and seq - max_seq < 0x8000) or (seq < max_seq and max_seq - seq > 0x8000)
        ):
            arrival = int(time.time() * self._clockrate)
            if max_seq is not None and seq < max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
            timestamp = packet.timestamp
            if timestamp != self._last_timestamp and self.packets_received > 1:
                # the _last_ fields are set by the first packet, which is always in order
                diff = abs((arrival - self._last_arrival) - (timestamp - self._last_timestamp))  # type: ignore[operator]
                self._jitter_q4 += diff - ((self._jitter_q4 + 8) >> 4)
            self._last_arrival = arrival
            self._last_timestamp = timestamp


class FastNackGenerator(NackGenerator):  # type: ignore[misc]
    """aiortc's NACK generator; ``add`` inlined, and no pruning pass while nothing is missing."""

    def add(self, packet: RtpPacket) -> bool:
        seq = packet.sequence_number
        max_seq = self.max_seq
        if max_seq is None:
            self.max_seq = seq
            return False
        missed = False
        if (seq > max_seq and seq - max_seq < 0x8000) or (seq < max_seq and max_seq - seq > 0x8000):
            gap = (seq - max_seq) & 0xFFFF
            if gap > 1:
                missing = self.missing
                for i in range(1, gap):
                    missing.add((max_seq + i) & 0xFFFF)
                missed = True
            self.max_seq = seq
        else:
            self.missing.discard(seq)
        if self.missing:
            self.truncate()
        return missed


class _EstimatorTap:
    """Wraps the receiver's REMB estimator: estimates go to us, the receiver sends no REMB."""

    def __init__(self, inner: Any, on_estimate: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_estimate = on_estimate

    def add(self, **kwargs: Any) -> None:
        remb = self._inner.add(**kwargs)
        if remb is not None:
            self._on_estimate(int(remb[0]))
        return None


PacketSink = Callable[[RtpPacket], None]

_NOT_RTX = -1


def _rtx_apt(codec: RTCRtpCodecParameters) -> int:
    """The payload type an RTX codec carries (-2 if it names none); ``_NOT_RTX`` for media."""
    if not is_rtx(codec):
        return _NOT_RTX
    apt = codec.parameters.get("apt")
    return apt if isinstance(apt, int) else -2


class ReceiverTap:
    """Taps a publisher-side ``RTCRtpReceiver``: each media packet (RTX unwrapped) goes to a sink.

    The receiver keeps doing RTCP toward the publisher (receiver reports, NACK), but its decoder
    is replaced by a counter (no frames, bounded memory) and its REMB is handed to
    ``on_estimate`` so the hub can merge it with subscribers' estimates. Unless
    ``assemble_frames`` (a test client that wants aiortc's PLI on broken frames), its jitter
    buffer is replaced by a frame counter too.
    """

    def __init__(self, receiver: RTCRtpReceiver, *, assemble_frames: bool = False) -> None:
        self.receiver = receiver
        self.sink: PacketSink | None = None
        self.on_estimate: Callable[[int], None] = _noop_int
        self.on_sender_report: Callable[[int, int, int], None] = _noop_sr
        self.media_ssrc: int | None = None
        self.packets = 0
        self.errors = 0
        self._media_pt: int | None = None
        self._rtx_pt: int | None = None
        self._drop = _DropQueue()
        self._sock: socket.socket | None = None  # a duplicate of the receiving socket's fd
        self._wire_ssrc = -1
        self._wire_timestamp = -1
        rx = _private(receiver)
        self._rx = rx
        self._orig_rtp = rx._handle_rtp_packet
        self._orig_rtcp = rx._handle_rtcp_packet
        self._orig_receive = rx.receive
        rx._handle_rtp_packet = self._handle_rtp_packet
        rx._handle_rtcp_packet = self._handle_rtcp_packet
        rx._relayroom_tap = self  # SrtpReceivePath calls receive_now() directly
        rx.receive = self._receive
        if rx._RTCRtpReceiver__started:
            raise HookError("receiver tapped after it started decoding")
        self._counter: _FrameCounter | None = None
        if not assemble_frames:
            self._counter = _FrameCounter(rx._RTCRtpReceiver__kind == "video")
            rx._RTCRtpReceiver__jitter_buffer = self._counter
        estimator: BitrateEstimator | None = None
        if rx._RTCRtpReceiver__remote_bitrate_estimator is not None:
            # aiortc's estimates at a fraction of its per-packet cost (media/bitrate.py)
            estimator = BitrateEstimator()
            rx._RTCRtpReceiver__remote_bitrate_estimator = _EstimatorTap(estimator, self._estimate)
        self._estimator = estimator
        if isinstance(rx._RTCRtpReceiver__nack_generator, NackGenerator):
            rx._RTCRtpReceiver__nack_generator = FastNackGenerator()
        self._apt: dict[int, int] = {}  # payload type -> RTX's apt, or _NOT_RTX

    def _estimate(self, bitrate: int) -> None:
        self.on_estimate(bitrate)

    @property
    def frames_dropped(self) -> int:
        """Frames the receiver got (counted, or assembled and thrown away), never decoded."""
        return self._drop.frames + (self._counter.frames if self._counter else 0)

    def set_codec(self, media_pt: int, rtx_pt: int | None) -> None:
        self._media_pt = media_pt
        self._rtx_pt = rtx_pt

    async def _receive(self, parameters: Any) -> None:
        # aiortc calls receive() again at each negotiation; only the first call starts the
        # decoder thread, and it must start on our queue (swapping later would orphan it).
        if not self._rx._RTCRtpReceiver__started:
            self._rx._RTCRtpReceiver__decoder_queue = self._drop
        await self._orig_receive(parameters)
        self._apt = {}  # the negotiated codecs may have changed
        # aiortc registers only the media SSRCs: with two receivers of one kind, RTX (same
        # payload type on both) would be dropped. Bind the RTX SSRCs of the SDP too.
        router = _private(self.receiver.transport)._rtp_router
        for encoding in parameters.encodings:
            if encoding.ssrc and self.media_ssrc is None:
                self.media_ssrc = encoding.ssrc
            if encoding.rtx is not None and encoding.rtx.ssrc:
                router.ssrc_table.setdefault(encoding.rtx.ssrc, self.receiver)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        pending = self.receive_now(packet, arrival_time_ms)
        if pending is not None:
            await pending

    def receive_now(
        self, packet: RtpPacket, arrival_time_ms: int
    ) -> Coroutine[Any, Any, None] | None:
        """Handle a received packet; what is left to await (a NACK to send), if anything.

        The receive path calls this from the socket's callback: most packets need no
        coroutine at all (creating and running two per packet was a visible share of it).
        """
        sink = self.sink
        if sink is not None and self.receiver._enabled:
            self._wire_ssrc = packet.ssrc  # for backlogged(), asked while the sink runs
            self._wire_timestamp = packet.timestamp
            pt = packet.payload_type
            media: RtpPacket | None = None
            if pt == self._media_pt:
                media = packet
                if self.media_ssrc != packet.ssrc:
                    self.media_ssrc = packet.ssrc
            elif pt == self._rtx_pt and len(packet.payload) > 2:
                original_ssrc = self._rx._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc, self.media_ssrc)
                if original_ssrc is not None:
                    media = RtpPacket(
                        payload_type=self._media_pt or 0,
                        marker=packet.marker,
                        sequence_number=(packet.payload[0] << 8) | packet.payload[1],
                        timestamp=packet.timestamp,
                        ssrc=original_ssrc,
                        payload=packet.payload[2:],
                    )
                    media.csrc = packet.csrc
                    media.extensions = packet.extensions
            if media is not None:
                self.packets += 1
                try:
                    sink(media)
                except Exception:
                    # Never let forwarding break the publisher's DTLS loop.
                    self.errors += 1
                    if self.errors == 1 or self.errors % 1000 == 0:
                        logger.exception("forwarding error (%d so far)", self.errors)
        if self._counter is None:
            coro: Coroutine[Any, Any, None] = self._orig_rtp(packet, arrival_time_ms)
            return coro
        return self._account(packet, arrival_time_ms)

    def _account(self, packet: RtpPacket, arrival_time_ms: int) -> Coroutine[Any, Any, None] | None:
        """aiortc's receive bookkeeping, less what only a decoder needs.

        The same steps as ``RTCRtpReceiver._handle_rtp_packet``, in its order: the bitrate
        estimate (to the hub, not as our own REMB), per-SSRC statistics (receiver reports),
        RTX unwrapped for the NACK generator (NACKs), frames counted. Left out: payload
        parsing (``depayload``, for the jitter buffer), the jitter buffer itself, the
        synchronization-source timestamps (a ``datetime`` per packet, read only by
        ``getSynchronizationSources``) and the decoder-error PLI (no decoder runs).
        """
        rx = self._rx
        if not self.receiver._enabled:
            return None
        estimator = self._estimator
        if estimator is not None:
            abs_send_time = packet.extensions.abs_send_time
            if abs_send_time is not None:
                remb = estimator.add(
                    arrival_time_ms,
                    abs_send_time,
                    len(packet.payload) + packet.padding_size,
                    packet.ssrc,
                )
                if remb is not None:
                    self.on_estimate(int(remb[0]))
        codecs = rx._RTCRtpReceiver__codecs
        pt = packet.payload_type
        codec = codecs.get(pt)
        if codec is None:
            return None
        streams = rx._RTCRtpReceiver__remote_streams
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = FastStreamStatistics(codec.clockRate)
        stream.add(packet)
        apt = self._apt.get(pt)
        if apt is None:
            apt = self._apt[pt] = _rtx_apt(codec)
        if apt != _NOT_RTX:
            original_ssrc = rx._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None or apt not in codecs or len(packet.payload) < 2:
                return None
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nacks = rx._RTCRtpReceiver__nack_generator
        self._counter.add(packet)  # type: ignore[union-attr]  # not None on this path
        if nacks is not None and nacks.add(packet):
            nack: Coroutine[Any, Any, None] = rx._send_rtcp_nack(packet.ssrc, sorted(nacks.missing))
            return nack
        return None

    def account(self, packet: RtpPacket) -> Coroutine[Any, Any, None] | None:
        """The receiver's bookkeeping (statistics for receiver reports, NACK) for a media
        packet (not RTX) that a caller read itself, bypassing the sink: only its header
        fields are read, and not kept. Returns the NACK to send (await it), if one is due.
        Nothing is counted for an SSRC the receiver has not counted a packet of itself (or
        while it is disabled), as aiortc would not."""
        rx = self._rx
        stream = rx._RTCRtpReceiver__remote_streams.get(packet.ssrc)
        if stream is None or not self.receiver._enabled:
            return None
        stream.add(packet)
        nacks = rx._RTCRtpReceiver__nack_generator
        if nacks is not None and nacks.add(packet):
            nack: Coroutine[Any, Any, None] = rx._send_rtcp_nack(packet.ssrc, sorted(nacks.missing))
            return nack
        return None

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            self.on_sender_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await self._orig_rtcp(packet)

    async def send_pli(self, ssrc: int | None = None) -> bool:
        """Send a Picture Loss Indication to the publisher (for ``ssrc``, default the media
        SSRC); False if the SSRC is unknown yet."""
        ssrc = self.media_ssrc if ssrc is None else ssrc
        if ssrc is None:
            return False
        await self._rx._send_rtcp_pli(ssrc)
        return True

    def remb_ssrcs(self) -> list[int]:
        """The SSRCs a REMB to the publisher covers."""
        return [] if self.media_ssrc is None else [self.media_ssrc]

    async def send_remb(self, bitrate: int) -> bool:
        """Send a Receiver Estimated Maximum Bitrate to the publisher."""
        rtcp_ssrc = self._rx._RTCRtpReceiver__rtcp_ssrc
        ssrcs = self.remb_ssrcs()
        if not ssrcs or rtcp_ssrc is None:
            return False
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(bitrate, ssrcs),
        )
        await self._rx._send_rtcp(packet)
        return True

    def backlogged(self) -> bool:
        """Whether the relay is behind: a datagram that is not the rest of this frame waits.

        Asked (by the hub, while it handles the packet) only about packets that are already
        late. Packets are handled as the event loop reads them (:class:`SrtpReceivePath`), so
        the rest of a sender's burst (a frame its encoder was late with, a keyframe) waits on
        the socket while the frame's first packet is handled: that is not a backlog. So the
        next waiting datagram's RTP header (in the clear in SRTP) is peeked at: behind unless
        nothing waits or it is the same frame (same SSRC and timestamp) as this packet.
        False when the socket is unknown.
        """
        sock = self._sock
        if sock is None:
            fd = _socket_fd(self.receiver.transport)
            if fd < 0:
                return False
            sock = self._sock = socket.socket(fileno=os.dup(fd))
        try:
            head = sock.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            self._close_socket()
            return False
        if len(head) < 12 or not 127 < head[0] < 192 or 191 < head[1] < 209:
            return True  # something other than RTP waits behind this packet
        return (
            int.from_bytes(head[8:12], "big") != self._wire_ssrc
            or int.from_bytes(head[4:8], "big") != self._wire_timestamp
        )

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def detach(self, sink: PacketSink | None = None) -> None:
        """Stop delivering; with ``sink``, only if it is still the one delivered to.

        A publisher that stops a track and sends a new one on the same m-line gets a new hub on
        the same tap before the old hub closes: the old hub must not cut the new one off.
        """
        if sink is not None and self.sink != sink:
            return
        self.sink = None
        self.on_estimate = _noop_int
        self.on_sender_report = _noop_sr
        self._close_socket()


class _NackPerSsrc:
    """Stands in for the receiver's NACK generator: one generator per SSRC.

    aiortc keeps one sequence-number tracker per receiver; a simulcast m-line carries one
    SSRC per encoding, each numbered on its own, and a single tracker would see gaps everywhere
    and NACK packets that were never lost.
    """

    MAX_SSRCS = 16

    def __init__(self) -> None:
        self._by_ssrc: dict[int, NackGenerator] = {}
        self.missing: set[int] = set()

    def add(self, packet: RtpPacket) -> bool:
        gen = self._by_ssrc.get(packet.ssrc)
        if gen is None:
            if len(self._by_ssrc) >= self.MAX_SSRCS:
                self._by_ssrc.clear()
            gen = self._by_ssrc[packet.ssrc] = FastNackGenerator()
        missed = gen.add(packet)
        self.missing = gen.missing
        return missed


class SimulcastReceiverTap(ReceiverTap):
    """A :class:`ReceiverTap` for an m-line that receives simulcast (RFC 8853).

    No SSRC is signalled: each encoding's SSRC is learnt from the ``rtp-stream-id`` (rid) its
    first packets carry, and each RTX SSRC from ``repaired-rtp-stream-id``, which also tells
    aiortc's receiver (and the unwrapping here) which media SSRC an RTX stream repairs.
    ``ssrc_rid`` maps media SSRCs to rids; ``on_new_stream(ssrc, rid)`` tells of a new one.
    """

    MAX_STREAMS = 16  # SSRCs remembered per m-line (a restarted encoder takes a new one)

    def __init__(self, receiver: RTCRtpReceiver, rids: Sequence[str]) -> None:
        super().__init__(receiver)
        self.rids = tuple(rids)
        self.ssrc_rid: dict[int, str] = {}
        self.rid_ssrc: dict[str, int] = {}
        self.on_new_stream: Callable[[int, str], None] = _noop_stream
        self._rtx_map: dict[int, int] = self._rx._RTCRtpReceiver__rtx_ssrc
        self._rx._RTCRtpReceiver__nack_generator = _NackPerSsrc()

    def receive_now(
        self, packet: RtpPacket, arrival_time_ms: int
    ) -> Coroutine[Any, Any, None] | None:
        ssrc = packet.ssrc
        if ssrc not in self.ssrc_rid and ssrc not in self._rtx_map:
            self._learn(packet)
            if ssrc not in self.ssrc_rid and ssrc not in self._rtx_map:
                # Not known to belong to an encoding (yet): never guess which one.
                coro: Coroutine[Any, Any, None] = self._orig_rtp(packet, arrival_time_ms)
                return coro
        return super().receive_now(packet, arrival_time_ms)

    def _learn(self, packet: RtpPacket) -> None:
        ext = packet.extensions
        rid = ext.rtp_stream_id
        if rid is not None and rid in self.rids and packet.payload_type == self._media_pt:
            if len(self.ssrc_rid) >= self.MAX_STREAMS:
                self.ssrc_rid.clear()
            old = self.rid_ssrc.get(rid)
            if old is not None:
                self.ssrc_rid.pop(old, None)
            self.ssrc_rid[packet.ssrc] = rid
            self.rid_ssrc[rid] = packet.ssrc
            self.on_new_stream(packet.ssrc, rid)
            return
        repaired = ext.repaired_rtp_stream_id
        if repaired is not None and packet.payload_type == self._rtx_pt:
            media_ssrc = self.rid_ssrc.get(repaired)
            if media_ssrc is not None:
                if len(self._rtx_map) >= self.MAX_STREAMS:
                    self._rtx_map.clear()
                self._rtx_map[packet.ssrc] = media_ssrc

    def remb_ssrcs(self) -> list[int]:
        return list(self.rid_ssrc.values())

    def detach(self, sink: PacketSink | None = None) -> None:
        if sink is not None and self.sink != sink:
            return
        super().detach()
        self.on_new_stream = _noop_stream


def _noop_stream(ssrc: int, rid: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# Send side: a transceiver per subscribed track, fed by the forwarder


class SilentTrack(MediaStreamTrack):  # type: ignore[misc]
    """A track that never yields a frame, so the sender's own RTP loop idles (no polling).

    Its id becomes the msid track id of the subscriber's m-line.
    """

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.get_running_loop().create_future()  # until cancelled
        raise MediaStreamError  # pragma: no cover


def add_send_transceiver(
    pc: RTCPeerConnection,
    *,
    kind: str,
    stream_id: str,
    track_id: str,
    codec: RTCRtpCodecParameters,
    rtx: bool,
) -> RTCRtpTransceiver:
    """Add a sendonly transceiver whose offer carries ``msid:<stream_id> <track_id>``.

    Its codecs are restricted to ``codec`` (and RTX) before the offer is made, so the subscriber
    can only answer with the publisher's codec.
    """
    transceiver = pc.addTransceiver(SilentTrack(kind, track_id), direction="sendonly")
    _private(transceiver.sender)._stream_id = stream_id
    prefs = [codec_capability(codec)]
    if rtx:
        prefs.append(RTCRtpCodecCapability(mimeType=f"{kind}/rtx", clockRate=codec.clockRate))
    transceiver.setCodecPreferences(prefs)
    return transceiver


def prepare_answer_sender(transceiver: RTCRtpTransceiver, *, stream_id: str, track_id: str) -> None:
    """Make a transceiver created by a remote recvonly offer send, with ``msid:<stream> <track>``.

    For a WHEP viewer: the client offers, so the server's transceivers come from
    ``setRemoteDescription``; this gives one a silent track and the sendonly direction before
    ``createAnswer``.
    """
    transceiver.sender.replaceTrack(SilentTrack(transceiver.kind, track_id))
    _private(transceiver.sender)._stream_id = stream_id
    transceiver.direction = "sendonly"


class SenderTap:
    """Gives a forwarder direct access to an ``RTCRtpSender``'s transport and RTP history.

    - ``on_ready()`` runs once the sender is negotiated and its transport is connected
      (``sender.send()`` has run): the forwarder may start;
    - PLI/FIR from the subscriber go to ``on_keyframe_request``, REMB to ``on_remb`` (bits/s
      shared among the SSRCs it covers), NACK and receiver reports stay with aiortc, which
      retransmits from :attr:`history` (:class:`RtpHistory`), which the forwarder fills;
    - sender reports are rewritten from the forwarder's counters (``sr_source``);
    - ``send_rtp(data)`` protects and sends one RTP packet at once (:class:`DirectRtpSender`),
      and ``emit_rtp`` (when the compiled module is built) builds, records and sends one.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        *,
        on_ready: Callable[[], Awaitable[None]],
        on_keyframe_request: Callable[[], None],
        on_remb: Callable[[int], None],
        sr_source: Callable[[], tuple[int, int, int, int] | None],
        send_buffer_max_bytes: int = 262144,
        fast_path: bool = True,
    ) -> None:
        self.transceiver = transceiver
        self._send_buffer_max = send_buffer_max_bytes
        self._fast_path = fast_path
        sender = _private(transceiver.sender)
        self.sender = sender
        self.ssrc: int = sender._ssrc
        # The forwarder's history (the bytes sent), where aiortc retransmits from.
        self.history = sender._RTCRtpSender__rtp_history = RtpHistory()
        self._on_ready = on_ready
        self._on_keyframe_request = on_keyframe_request
        self._on_remb = on_remb
        self._sr_source = sr_source
        self._orig_send = sender.send
        self._orig_rtcp = sender._handle_rtcp_packet
        self._orig_send_rtcp = sender._send_rtcp
        sender.send = self._send
        sender._handle_rtcp_packet = self._handle_rtcp_packet
        sender._send_rtcp = self._send_rtcp
        self.send_rtp: Callable[[bytes], None] | None = None
        self.emit_rtp: Callable[..., bool] | None = None  # DirectRtpSender.emitter()
        self.mid: str | None = None
        self.payload_type: int | None = None
        self.extension_ids: dict[str, int] = {}
        self.keyframe_requests = 0
        self.nacks = 0

    @property
    def ready(self) -> bool:
        return self.send_rtp is not None

    async def _send(self, parameters: Any) -> None:
        await self._orig_send(parameters)
        if self.send_rtp is not None:
            return
        self.mid = parameters.muxId
        self.payload_type = parameters.codecs[0].payloadType
        self.extension_ids = {e.uri: e.id for e in parameters.headerExtensions}
        direct = direct_sender(
            self.sender.transport, self._send_buffer_max, fast_path=self._fast_path
        )
        self.send_rtp = direct.send
        self.emit_rtp = direct.emitter()
        try:
            await self._on_ready()
        except Exception:
            # This runs inside aiortc's connect task: never break it.
            logger.exception("starting a forwarder failed")

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.keyframe_requests += 1
                self._on_keyframe_request()
                return
            if packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self.ssrc in ssrcs:
                    self._on_remb(bitrate // max(1, len(ssrcs)))
                return
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacks += 1
        await self._orig_rtcp(packet)

    async def _send_rtcp(self, packets: list[Any]) -> None:
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.ssrc:
                values = self._sr_source()
                if values is not None:
                    ntp, rtp_ts, count, octets = values
                    info = packet.sender_info
                    info.ntp_timestamp = ntp
                    info.rtp_timestamp = rtp_ts
                    info.packet_count = count & 0xFFFFFFFF
                    info.octet_count = octets & 0xFFFFFFFF
                    s = self.sender
                    s._RTCRtpSender__ntp_timestamp = ntp
                    s._RTCRtpSender__rtp_timestamp = rtp_ts
                    s._RTCRtpSender__packet_count = count
                    s._RTCRtpSender__octet_count = octets
                    s._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF
        await self._orig_send_rtcp(packets)

    def detach(self) -> None:
        self.send_rtp = None
        self.emit_rtp = None
        self._on_ready = _noop
        self._on_keyframe_request = _noop_sync
        self._on_remb = _noop_int


async def _noop() -> None:
    return None


def _noop_sr(ssrc: int, ntp: int, rtp_ts: int) -> None:
    return None


def _noop_sync() -> None:
    return None


def _noop_int(value: int) -> None:
    return None


# --------------------------------------------------------------------------------------------
# Send side: straight to the socket


def _direct_send_problems() -> list[str]:
    problems: list[str] = []
    dtls_names = _init_names(RTCDtlsTransport)
    for name in ("_state", "_tx_srtp"):
        if name not in dtls_names:
            problems.append(f"RTCDtlsTransport.{name}")
    if not hasattr(RTCDtlsTransport, "transport"):
        problems.append("RTCDtlsTransport.transport")
    if not hasattr(DtlsState, "CONNECTED"):
        problems.append("aiortc DTLS State.CONNECTED")
    if "protocol" not in _init_names(aioice.ice.CandidatePair) or not hasattr(
        aioice.ice.CandidatePair, "remote_addr"
    ):
        problems.append("aioice CandidatePair.protocol/remote_addr")
    if not hasattr(aioice.ice.StunProtocol, "connection_made"):
        problems.append("aioice StunProtocol.connection_made")
    return problems


class DirectRtpSender:
    """Protects a forwarded RTP packet and writes it to the ICE pair's socket, synchronously.

    aiortc's own path is four coroutines deep per packet (``RTCDtlsTransport._send_rtp`` ->
    ``RTCIceTransport._send`` -> aioice ``Connection.send``/``sendto`` ->
    ``StunProtocol.send_data``) and ends in the same ``transport.sendto``. Going straight there
    is safe because the server's ICE agents only gather host UDP candidates (no TURN-relayed
    pair whose ``send_data`` would wrap the data). One per DTLS transport, shared by the legs
    of a subscriber PeerConnection; its counters are added to ``transport_stats``.

    A socket that cannot take more (asyncio buffers datagrams the kernel refused, without
    bound) gets no more packets while ``max_buffer_bytes`` are waiting: they are dropped and
    counted, so a stalled path never queues stale media.

    :meth:`emitter` hands legs the compiled step instead (``media/_fastpath.c``), which builds
    the packet too and writes to a duplicate of the socket, handing what the kernel refuses to
    this socket's asyncio transport (:class:`AsyncioOverflow`, the same bound); its counters
    are added to these.
    """

    def __init__(
        self, dtls: RTCDtlsTransport, max_buffer_bytes: int, *, fast_path: bool = True
    ) -> None:
        self._dtls = _private(dtls)
        self._max_buffer = max_buffer_bytes
        self._transport: Any = None  # asyncio's datagram transport (uvloop's is not a subclass)
        self._addr: tuple[str, int] = ("", 0)
        self._protect: Callable[[bytes], bytes] | None = None
        self._fast_path = fast_path and FastSender is not None and _SRTP_PROTECT_ADDRESS != 0
        self._fast: Any = None  # the FastSender, once bound
        self._overflow: AsyncioOverflow | None = None  # where it puts what the kernel refuses
        self._packets = 0
        self._octets = 0
        self._dropped = 0

    def _total(self, counter: str) -> int:
        """This path's count plus the compiled sender's and its overflow's."""
        parts = (self._fast, self._overflow)
        return int(getattr(self, "_" + counter)) + sum(
            int(getattr(p, counter)) for p in parts if p is not None
        )

    @property
    def packets(self) -> int:
        return self._total("packets")

    @property
    def octets(self) -> int:
        return self._total("octets")

    @property
    def dropped(self) -> int:
        return self._total("dropped")

    def _pair(self) -> Any:
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None or not isinstance(pair.protocol, aioice.ice.StunProtocol):
            raise ConnectionError("no nominated host candidate pair")
        return pair

    def _bind(self) -> Any:
        dtls = self._dtls
        pair = self._pair()
        transport = pair.protocol.transport
        self._protect = srtp_function(dtls._tx_srtp, protect=True)
        self._addr = pair.remote_addr
        self._transport = transport
        return transport

    def send(self, data: bytes) -> None:
        """Send one RTP packet; ``ConnectionError`` once the transport is not connected."""
        if self._dtls._state is not DtlsState.CONNECTED:
            raise ConnectionError("DTLS transport not connected")
        transport = self._transport or self._bind()
        if transport.get_write_buffer_size() > self._max_buffer:
            self._dropped += 1
            return
        out = self._protect(data)  # type: ignore[misc]  # set by _bind
        transport.sendto(out, self._addr)
        self._packets += 1
        self._octets += len(out)

    def emitter(self) -> Callable[..., bool] | None:
        """The compiled last step of a leg on this transport (``FastSender.emit``: build the
        packet, keep it in the history, protect and send it), or None: the leg builds it
        and calls :meth:`send` (not built, turned off, or this socket cannot take it)."""
        if self._fast is None and self._fast_path:
            try:
                self._fast = self._bind_fast()
            except (ConnectionError, OSError, ValueError) as exc:
                logger.info("forwarding in Python on this transport: %s", exc)
                self._fast_path = False
        return self._fast.emit if self._fast is not None else None

    def _bind_fast(self) -> Any:
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            raise ConnectionError("DTLS transport not connected")
        pair = self._pair()
        transport = pair.protocol.transport
        sock = transport.get_extra_info("socket")
        if sock is None:
            raise ConnectionError("the ICE pair's socket is unknown")
        self._overflow = AsyncioOverflow(transport, pair.remote_addr, self._max_buffer)
        fast = fast_sender(dtls._tx_srtp, sock.fileno(), pair.remote_addr, dtls, self._overflow)

        # The duplicated socket must not outlive the connection (its port stays bound).
        @dtls.on("statechange")  # type: ignore[untyped-decorator]
        def close_with_transport() -> None:
            if dtls._state in (DtlsState.CLOSED, DtlsState.FAILED):
                fast.close()

        return fast


class AsyncioOverflow:
    """Where the compiled sender puts a packet the kernel refused (its socket buffer full):
    the asyncio transport of the same socket, which sends it once the socket is writable, as
    the Python path's ``sendto`` would, up to ``max_buffer_bytes`` waiting; beyond that the
    packet is dropped and counted, so a stalled path never queues stale media. Returns whether
    packets still wait there (the sender then queues behind them, keeping their order)."""

    def __init__(self, transport: Any, addr: tuple[Any, ...], max_buffer_bytes: int) -> None:
        self._transport = transport
        self._addr = addr
        self._max_buffer = max_buffer_bytes
        self.packets = 0
        self.octets = 0
        self.dropped = 0

    def __call__(self, data: bytes) -> bool:
        transport = self._transport
        if transport.get_write_buffer_size() > self._max_buffer:
            self.dropped += 1
        else:
            transport.sendto(data, self._addr)
            self.packets += 1
            self.octets += len(data)
        return bool(transport.get_write_buffer_size())


def fast_sender(
    session: pylibsrtp.Session,
    fd: int,
    addr: tuple[Any, ...],
    dtls: Any,
    overflow: Callable[[bytes], bool] | None = None,
    connected: Any = DtlsState.CONNECTED,
) -> Any:
    """A compiled sender (``media/_fastpath.c``) protecting with ``session`` and writing to a
    duplicate of socket ``fd``, to ``addr``, while ``dtls._state is connected``; a packet the
    kernel refuses goes to ``overflow`` (:class:`AsyncioOverflow`; None: dropped). Raises
    ``ValueError`` when it cannot be made (not built; ``addr`` not a numeric address)."""
    if FastSender is None or not _SRTP_PROTECT_ADDRESS:
        raise ValueError("the compiled forwarding step is not built")
    return FastSender(
        fd=fd,
        host=addr[0],
        port=addr[1],
        session=int(_srtp_ffi.cast("uintptr_t", _private(session)._srtp[0])),
        protect=_SRTP_PROTECT_ADDRESS,
        owner=session,
        dtls=dtls,
        connected=connected,
        overflow=overflow,
    )


def direct_sender(
    dtls: RTCDtlsTransport, max_buffer_bytes: int, *, fast_path: bool = True
) -> DirectRtpSender:
    """The :class:`DirectRtpSender` of a DTLS transport (created on first use)."""
    sender: DirectRtpSender | None = getattr(dtls, "_relayroom_direct", None)
    if sender is None:
        sender = DirectRtpSender(dtls, max_buffer_bytes, fast_path=fast_path)
        _private(dtls)._relayroom_direct = sender
    return sender
