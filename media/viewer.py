"""A WHEP viewer: one PeerConnection that answers the client's offer with one audio and one
video track of the room, fed by a publisher's hubs.

WHEP has no renegotiation, so the m-lines stay for the whole session: when the publisher
leaves, a slot idles; when it (or another selected publisher) publishes again, the same leg is
moved to the new hub. The leg then waits for a keyframe (one is requested) and continues its own
sequence numbers and timestamps, so the player sees one continuous stream (media.md,
"Continuity").

Created by :meth:`media.room.Room.add_viewer` only; it never imports its room.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from .aiortc_hooks import (
    SenderTap,
    StunGuard,
    configure_ice,
    negotiated_codecs,
    prepare_answer_sender,
    restrict_codecs,
    server_configuration,
    watch_renegotiation,
)
from .errors import Closed, SdpRejected
from .events import TrackInfo
from .forwarding import Leg, TrackHub
from .sdp_policy import candidate_line_allowed, check_sdp
from .settings import MediaSettings
from .simulcast_hub import switchable_leg
from .tasks import TaskOwner

logger = logging.getLogger(__name__)

# Which tracks a viewer wants: (publisher participant id, track) -> bool.
Selector = Callable[[str, TrackInfo], bool]


class ViewerState(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class _Slot:
    """One answered m-line (audio or video) and the leg that feeds it, if any."""

    kind: str
    transceiver: RTCRtpTransceiver
    codec: RTCRtpCodecParameters
    tap: SenderTap | None = None
    leg: Leg | None = None
    feeding: TrackHub | None = None  # the hub the leg takes packets from now (None: idle)
    switches: int = field(default=0)

    def accepts(self, hub: TrackHub) -> bool:
        return hub.info.kind == self.kind and (
            hub.codec.mimeType.lower() == self.codec.mimeType.lower()
        )


def _pick_codec(
    transceiver: RTCRtpTransceiver, preferred: list[TrackHub], settings: MediaSettings
) -> RTCRtpCodecParameters | None:
    """The codec of the first selectable publisher if the client offered it, else the first
    of the server's allowlist that the client offered."""
    offered = [c for c in negotiated_codecs(transceiver) if c.name.lower() != "rtx"]
    for hub in preferred:
        for codec in offered:
            if codec.mimeType.lower() == hub.codec.mimeType.lower():
                return codec
    for name in settings.codecs:
        for codec in offered:
            if codec.name.lower() == name.lower():
                return codec
    return None


class Viewer:
    """One WHEP session's media. ``close()`` is idempotent."""

    def __init__(
        self,
        viewer_id: str,
        *,
        room_name: str,
        settings: MediaSettings,
        stun_guard: StunGuard,
        selector: Selector,
        on_failed: Callable[[Viewer, str], None],
    ) -> None:
        self.id = viewer_id
        self._room_name = room_name
        self._settings = settings
        self._guard = stun_guard
        self._selector = selector
        self._on_failed = on_failed
        self._log_extra = {"room": room_name, "participant": viewer_id}
        self._state = ViewerState.ACTIVE
        self._failed = False
        self._slots: dict[str, _Slot] = {}
        self._publisher: str | None = None
        self._tasks = TaskOwner()
        self._timer: asyncio.TimerHandle | None = None
        self._pc = RTCPeerConnection(server_configuration())
        watch_renegotiation(self._pc, receive_directly=True, compiled=self._settings.fast_path)
        self._pc.on("connectionstatechange", self._pc_state_changed)

    # ---------------------------------------------------------------- queries

    @property
    def state(self) -> ViewerState:
        return self._state

    @property
    def publisher(self) -> str | None:
        """The participant id whose tracks feed this viewer now (None while idle)."""
        return self._publisher

    @property
    def pc(self) -> RTCPeerConnection:
        return self._pc

    def feeding(self) -> dict[str, tuple[str, str] | None]:
        """kind -> (publisher id, track id) feeding that slot, or None."""
        return {
            kind: (s.feeding.publisher_id, s.feeding.info.id) if s.feeding else None
            for kind, s in self._slots.items()
        }

    def stats(self) -> dict[str, object]:
        return {
            kind: {
                "publisher": s.feeding.publisher_id if s.feeding else None,
                "packets": s.leg.stats.packets if s.leg else 0,
                "frames": s.leg.stats.frames if s.leg else 0,
                "switches": s.switches,
            }
            for kind, s in self._slots.items()
        }

    # ---------------------------------------------------------------- negotiation

    async def answer(self, offer_sdp: str, hubs: list[TrackHub]) -> str:
        """Apply the client's offer; answer one audio and one video m-line (sendonly)."""
        if self._state is not ViewerState.ACTIVE:
            raise Closed(f"viewer {self.id} is closed")
        checked = check_sdp(offer_sdp, self._settings, "offer")
        if any(s.sends for s in checked.sections):
            raise SdpRejected("a WHEP offer only receives: no m-line may send")
        pc = self._pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=checked.sdp, type="offer"))
        except Exception as exc:
            raise SdpRejected(f"offer not applicable: {exc}") from None
        wanted = [h for h in hubs if self._selector(h.publisher_id, h.info)]
        for transceiver in pc.getTransceivers():
            kind = transceiver.kind
            if kind not in ("audio", "video") or kind in self._slots:
                continue  # one of each kind; the others are answered inactive
            codec = _pick_codec(
                transceiver, [h for h in wanted if h.info.kind == kind], self._settings
            )
            if codec is None:
                continue
            restrict_codecs(transceiver, codec)
            prepare_answer_sender(transceiver, stream_id=self.id, track_id=f"{self.id}-{kind}")
            slot = _Slot(kind, transceiver, codec)
            slot.tap = SenderTap(
                transceiver,
                on_ready=functools.partial(self._sender_ready, slot),
                on_keyframe_request=functools.partial(self._keyframe_request, slot),
                on_remb=functools.partial(self._remb, slot),
                sr_source=functools.partial(self._sender_report, slot),
                send_buffer_max_bytes=self._settings.send_buffer_max_bytes,
                fast_path=self._settings.fast_path,
            )
            self._slots[kind] = slot
        if not self._slots:
            raise SdpRejected("the offer has no audio or video m-line with an allowed codec")
        configure_ice(pc, self._settings.ice_hosts, self._settings.port_range, self._guard)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise SdpRejected(f"cannot answer offer: {exc}") from None
        self._timer = asyncio.get_running_loop().call_later(
            self._settings.connect_timeout_s, self._connect_overdue
        )
        self.tracks_changed(hubs)
        return str(pc.localDescription.sdp)

    async def add_candidate(self, candidate: Mapping[str, object]) -> bool:
        """Add a trickled candidate; False when the policy refuses it."""
        value = str(candidate.get("candidate") or "")
        if value and not candidate_line_allowed(value, self._settings):
            return False
        pc = self._pc
        try:
            if not value:
                await pc.addIceCandidate(None)
                return True
            parsed = candidate_from_sdp(value.removeprefix("candidate:"))
            transceivers = pc.getTransceivers()
            parsed.sdpMid = transceivers[0].mid if transceivers else None
            parsed.sdpMLineIndex = 0
            await pc.addIceCandidate(parsed)
        except Exception as exc:
            logger.debug("viewer %s: candidate %r not added: %r", self.id, value, exc)
            return False
        return True

    # ---------------------------------------------------------------- following publishers

    def tracks_changed(self, hubs: list[TrackHub]) -> None:
        """The room's tracks changed (``hubs``: every track published now): refeed the slots.

        Synchronous: called before a removed hub closes, so no leg is closed with it.
        """
        if self._state is not ViewerState.ACTIVE:
            return
        wanted = [h for h in hubs if self._selector(h.publisher_id, h.info)]
        usable = [h for h in wanted if any(s.accepts(h) for s in self._slots.values())]
        publishers = [h.publisher_id for h in usable]
        if self._publisher not in publishers:
            self._publisher = publishers[0] if publishers else None
        for slot in self._slots.values():
            hub = next(
                (h for h in usable if h.publisher_id == self._publisher and slot.accepts(h)),
                None,
            )
            self._feed(slot, hub)

    def _feed(self, slot: _Slot, hub: TrackHub | None) -> None:
        leg = slot.leg
        if slot.feeding is hub:
            return
        slot.feeding = hub
        if leg is not None:
            leg.hub.remove_leg(self.id)
            if hub is None:
                return  # idle: the leg keeps its position for the next publisher
            # Same sender, new source: the leg resyncs on the new hub's next keyframe and
            # continues its own sequence and timestamps.
            leg.hub = hub
            leg.resync()
            hub.add_leg(leg)  # asks the publisher for a keyframe
            slot.switches += 1
            logger.info(
                "viewer %s/%s: %s now from %s/%s",
                self._room_name,
                self.id,
                slot.kind,
                hub.publisher_id,
                hub.info.id,
                extra=self._log_extra,
            )
            if slot.tap is not None and slot.tap.ready:
                self._tasks.spawn(hub.leg_ready(leg), f"viewer-switch-{self.id}")
            return
        if hub is None:
            return
        leg = switchable_leg(self.id, hub, self._settings)
        assert slot.tap is not None
        leg.bind(slot.tap)
        slot.leg = leg
        hub.add_leg(leg)
        if slot.tap.ready:
            self._tasks.spawn(leg.on_sender_ready(), f"viewer-start-{self.id}")

    async def _sender_ready(self, slot: _Slot) -> None:
        if slot.leg is not None:
            await slot.leg.on_sender_ready()

    def _keyframe_request(self, slot: _Slot) -> None:
        if slot.leg is not None:
            slot.leg.keyframe_wanted()

    def _remb(self, slot: _Slot, bitrate: int) -> None:
        if slot.leg is not None:
            slot.leg.hub.subscriber_remb(self.id, bitrate)

    def _sender_report(self, slot: _Slot) -> tuple[int, int, int, int] | None:
        return slot.leg.sender_report_values() if slot.leg is not None else None

    # ---------------------------------------------------------------- lifecycle

    def _pc_state_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elif state in ("failed", "closed"):
            self._fail(f"connection {state} (ICE/DTLS, consent lost or the remote end left)")

    def _connect_overdue(self) -> None:
        self._timer = None
        if self._pc.connectionState != "connected":
            self._fail("connection not established in time")

    def _fail(self, reason: str) -> None:
        if self._failed or self._state is not ViewerState.ACTIVE:
            return
        self._failed = True
        logger.info(
            "viewer %s/%s failed: %s", self._room_name, self.id, reason, extra=self._log_extra
        )
        self._on_failed(self, reason)

    async def close(self) -> None:
        if self._state is ViewerState.CLOSED:
            return
        self._state = ViewerState.CLOSED
        logger.info("viewer %s/%s closing", self._room_name, self.id, extra=self._log_extra)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for slot in self._slots.values():
            if slot.leg is not None:
                slot.leg.hub.remove_leg(self.id)
                slot.leg.close()
            elif slot.tap is not None:
                slot.tap.detach()
        await self._tasks.close()
        try:
            await self._pc.close()
        except Exception:
            logger.exception("viewer %s: closing its PeerConnection", self.id)
