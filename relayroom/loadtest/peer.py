"""One synthetic participant: a signaling WebSocket, a publisher PC and a subscriber PC.

Publishers send looped pre-encoded media (aiortc only packetizes it) and timestamped
DataChannel messages. Subscribers receive the way the relay receives from its publishers: SRTP
is unprotected and routed in the socket's callback (`watch_renegotiation(receive_directly=True)`)
and each track is tapped below aiortc's jitter buffer and decoder (`ReceiverTap`), so a received
packet costs no queue hop, no frame assembly and no decoding. They still send receiver reports,
NACKs, REMB and PLIs like a browser (PLI when the probe gives up on a frame). A load generator
must cost much less per packet than the server it measures, or it saturates first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from relayroom.loadtest.probe import DataProbe, StreamProbe
from relayroom.loadtest.receive import FastStream, ProbeReceivePath
from relayroom.loadtest.sources import audio_track, video_track
from relayroom.media.aiortc_hooks import (
    ReceiverTap,
    configure_ice,
    negotiated_codecs,
    receive_srtp_directly,
    watch_renegotiation,
)

DATA_TOPIC = "loadtest"
REMB_INTERVAL_S = 1.0
REMB_FLOOR_BPS = 300_000
LOOPBACK_HOSTS = ("127.0.0.1",)
PLI_INTERVAL_S = 1.0  # at most one keyframe request per stream per interval, like a browser


class SignalingError(Exception):
    """The server refused or dropped the participant; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class MediaSpec:
    video: bool = True
    audio: bool = True
    width: int = 640
    height: int = 360
    fps: int = 30
    video_bitrate: int = 800_000
    keyframe_s: float = 2.0
    data_per_s: float = 2.0
    """DataChannel messages per second; 0 opens the channels but sends nothing, < 0 opens none."""


DATA_ONLY = MediaSpec(video=False, audio=False, data_per_s=0.0)


@dataclass
class PeerReport:
    """What one participant saw: timings, errors and its received streams."""

    role: str
    room: str
    join_s: float | None = None
    first_media_s: float | None = None
    errors: list[str] = field(default_factory=list)
    streams: list[StreamProbe] = field(default_factory=list)
    data: DataProbe = field(default_factory=DataProbe)
    receive_data: bool = True
    data_sent: int = 0
    direct_packets: int = 0
    """SRTP/SRTCP packets the subscriber handled in the socket's callback (the cheap path)."""
    plis: int = 0


def _pc(*, receive_directly: bool) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    # SRTP(C) straight from the socket's callback (needs configure_ice's sockets); subscribers
    # install their own, header-only path instead (ProbeReceivePath).
    watch_renegotiation(pc, receive_directly=receive_directly)
    return pc


def _on_sender_report(probe: StreamProbe, _ssrc: int, ntp: int, rtp_timestamp: int) -> None:
    probe.on_sender_report(ntp, rtp_timestamp)


def _vp8_frame_start(payload: bytes) -> bool:
    """VP8 payload descriptor (RFC 7741): S bit set and partition index 0."""
    return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0


class LoadPeer:
    """A participant that joins, publishes and/or subscribes until `close()`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws_url: str,
        token: str,
        report: PeerReport,
        *,
        publish: MediaSpec | None,
        loopback: bool,
    ) -> None:
        self._http = session
        self._ws_url = ws_url
        self._token = token
        self.report = report
        self._publish = publish
        # () gathers on the host's addresses (as aioice would), through configure_ice's sockets.
        self._hosts: tuple[str, ...] = LOOPBACK_HOSTS if loopback else ()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pub: RTCPeerConnection | None = None
        self._sub = _pc(receive_directly=False)
        self._taps: dict[RTCRtpTransceiver, ReceiverTap] = {}
        self._video_taps: dict[ReceiverTap, StreamProbe] = {}  # for REMB
        self._paths: dict[int, ProbeReceivePath] = {}  # by id of the DTLS transport
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        self._offers: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = time.monotonic()
        self._sub.on("datachannel", self._on_datachannel)
        # aiortc emits "track" once codecs are negotiated and before it starts the receiver,
        # the only moment a tap can replace the decoder.
        self._sub.on("track", lambda _track: self._tap_new_receivers())
        self._sub.on("connectionstatechange", self._install_receive_paths)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, join_timeout_s: float) -> None:
        """Join (and publish): raises SignalingError or TimeoutError."""
        self._ws = await self._http.ws_connect(self._ws_url, heartbeat=None)
        await self._send({"type": "join", "room": self.report.room, "token": self._token})
        msg = await asyncio.wait_for(self._next_message(), join_timeout_s)
        if msg.get("type") != "joined":
            raise SignalingError(str(msg.get("code", msg.get("type"))), str(msg.get("message", "")))
        self.report.join_s = time.monotonic() - self._started
        self._spawn(self._read_loop())
        self._spawn(self._answer_loop())
        self._spawn(self._remb_loop())
        if self._publish is not None:
            await self._start_publishing(self._publish, join_timeout_s)
        elif self.report.receive_data:
            # The relay opens data channels toward a client once the client opened its own.
            await self._start_publishing(DATA_ONLY, join_timeout_s)

    async def close(self) -> None:
        self.report.direct_packets = self.direct_packets
        for task in list(self._tasks):
            task.cancel()
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send({"type": "leave"})
            await self._ws.close()
        for pc in (self._pub, self._sub):
            if pc is not None:
                await pc.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.report.errors.append(f"{type(task.exception()).__name__}: {task.exception()}")

    # ------------------------------------------------------------------ signaling

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(message))

    async def _next_message(self) -> dict[str, Any]:
        assert self._ws is not None
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if isinstance(data, dict):
                    return data
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                raise SignalingError("closed", f"WebSocket closed ({self._ws.close_code})")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise SignalingError("closed", str(self._ws.exception()))

    async def _read_loop(self) -> None:
        while True:
            msg = await self._next_message()
            kind = msg.get("type")
            if kind == "subscribe_offer":
                self._offers.put_nowait(str(msg["sdp"]))
            elif kind == "publish_answer":
                self._answers.put_nowait(str(msg["sdp"]))
            elif kind == "error":
                self.report.errors.append(f"{msg.get('code')}: {msg.get('message')}")
            elif kind == "reconnect":
                raise SignalingError("reconnect", str(msg.get("reason")))

    # ------------------------------------------------------------------ publishing

    async def _start_publishing(self, spec: MediaSpec, timeout_s: float) -> None:
        pc = self._pub = _pc(receive_directly=True)
        if spec.video:
            track = video_track(
                spec.width, spec.height, spec.fps, spec.video_bitrate, spec.keyframe_s
            )
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities("video").codecs
                    if c.mimeType.lower() in ("video/vp8", "video/rtx")
                ]
            )
        if spec.audio:
            pc.addTransceiver(audio_track(), direction="sendonly")
        if spec.data_per_s >= 0:
            channel = pc.createDataChannel("reliable")
            pc.createDataChannel("lossy", ordered=False, maxRetransmits=0)
            if spec.data_per_s > 0:
                channel.on("open", lambda: self._spawn(self._send_data(channel, spec.data_per_s)))
        configure_ice(pc, self._hosts)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send({"type": "publish_offer", "sdp": pc.localDescription.sdp})
        answer = await asyncio.wait_for(self._answers.get(), timeout_s)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def _send_data(self, channel: Any, per_s: float) -> None:
        interval = 1.0 / per_s
        n = 0
        while channel.readyState == "open":
            channel.send(json.dumps({"topic": DATA_TOPIC, "payload": {"t": time.time(), "n": n}}))
            n += 1
            self.report.data_sent += 1
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ subscribing

    async def _answer_loop(self) -> None:
        pc = self._sub
        while True:
            sdp = await self._offers.get()
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            configure_ice(pc, self._hosts)
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})

    def _tap_new_receivers(self) -> None:
        for transceiver in self._sub.getTransceivers():
            if transceiver in self._taps or transceiver.kind not in ("audio", "video"):
                continue
            codecs = negotiated_codecs(transceiver)
            if not codecs:
                continue
            # No jitter buffer: the probe checks frames, and asks for keyframes itself.
            tap = ReceiverTap(transceiver.receiver)
            media = codecs[0]
            rtx = next(
                (
                    c
                    for c in codecs
                    if c.name.lower() == "rtx" and c.parameters.get("apt") == media.payloadType
                ),
                None,
            )
            if media.payloadType is None:
                continue
            tap.set_codec(media.payloadType, rtx.payloadType if rtx else None)
            probe = StreamProbe(transceiver.kind, media.clockRate)
            self.report.streams.append(probe)
            frame_start = _vp8_frame_start if media.name.lower() == "vp8" else None
            fast = FastStream(tap, probe, media.payloadType, frame_start)
            tap.sink = self._sink(probe, frame_start, transceiver.receiver.transport, fast)
            tap.on_sender_report = functools.partial(_on_sender_report, probe)
            if transceiver.kind == "video":
                probe.on_incomplete_frame = functools.partial(self._send_pli, tap, [0.0])
                self._video_taps[tap] = probe
            self._taps[transceiver] = tap
        self._install_receive_paths()

    def _install_receive_paths(self) -> None:
        # Once the DTLS transport is connected (its sockets exist); idempotent.
        if self._sub.connectionState != "connected":
            return
        for transceiver in self._taps:
            dtls = transceiver.receiver.transport
            if id(dtls) not in self._paths:
                path = ProbeReceivePath(dtls)
                if receive_srtp_directly(dtls, path) is not None:
                    self._paths[id(dtls)] = path

    @property
    def direct_packets(self) -> int:
        """RTP packets the subscriber read header-only (the cheap path)."""
        return sum(path.fast_packets for path in self._paths.values())

    async def _remb_loop(self) -> None:
        # Like a browser, each subscriber reports its downlink estimate about once a second.
        # Its estimator is not fed (headers only): the estimate is twice what arrived, as a
        # browser's would be on a link that is not the limit.
        sent: dict[ReceiverTap, tuple[float, int]] = {}
        while True:
            await asyncio.sleep(REMB_INTERVAL_S)
            now = time.monotonic()
            for tap, probe in list(self._video_taps.items()):
                then, before = sent.get(tap, (now - REMB_INTERVAL_S, probe.bytes))
                sent[tap] = (now, probe.bytes)
                rate = (probe.bytes - before) * 8 / max(now - then, 1e-3)
                await tap.send_remb(max(REMB_FLOOR_BPS, int(2 * rate)))

    def _send_pli(self, tap: ReceiverTap, last: list[float]) -> None:
        # A browser's decoder asks for a keyframe when a frame cannot be completed.
        now = time.monotonic()
        if now - last[0] < PLI_INTERVAL_S:
            return
        last[0] = now
        self.report.plis += 1
        self._spawn(tap.send_pli())

    def _sink(
        self, probe: StreamProbe, frame_start: Any, dtls: RTCDtlsTransport, fast: FastStream
    ) -> Any:
        # Packets that take the full path: a stream's first ones, RTX, what the fast path left.
        def sink(packet: RtpPacket) -> None:
            now = time.time()
            if self.report.first_media_s is None:
                self.report.first_media_s = time.monotonic() - self._started
            path = self._paths.get(id(dtls))
            if path is not None and not path.has_stream(packet.ssrc):
                path.add_stream(packet.ssrc, fast)  # its next packets: header-only
            start = frame_start(packet.payload) if frame_start is not None else None
            probe.on_packet(
                packet.sequence_number,
                packet.timestamp,
                bool(packet.marker),
                len(packet.payload),
                now,
                start,
            )

        return sink

    def _on_datachannel(self, channel: Any) -> None:
        def on_message(message: Any) -> None:
            now = time.time()
            try:
                items = json.loads(message)
            except (TypeError, ValueError):
                return
            for item in items if isinstance(items, list) else [items]:
                if not isinstance(item, dict) or item.get("topic") != DATA_TOPIC:
                    continue
                payload, sender = item.get("payload"), item.get("from")
                if isinstance(payload, dict) and isinstance(sender, str):
                    sent, n = payload.get("t"), payload.get("n")
                    if isinstance(sent, (int, float)) and isinstance(n, int):
                        self.report.data.on_message(sender, n, float(sent), now)

        channel.on("message", on_message)
