"""A participant of a room: a publisher PeerConnection and a subscriber PeerConnection.

- publisher PC: the client offers its tracks (``publish_offer``), the server answers; each sent
  track becomes a :class:`~media.forwarding.TrackHub`.
- subscriber PC: the server offers everyone else's tracks and renegotiates when they come and go,
  one negotiation at a time: changes made while an offer awaits its answer are batched into the
  next offer (a track wanted and dropped in between never touches the PC). An offer unanswered
  for ``subscriber_answer_timeout_s`` is sent again, ``subscriber_offer_retries`` times, then the
  participant fails. Each subscribed track is a sendonly transceiver fed by a
  :class:`~media.forwarding.Leg`.

A participant never imports its room: the room gives it narrow callbacks. Closing flows down
(``close`` closes hubs, legs and both PeerConnections); news flows up through the callbacks.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from .aiortc_hooks import (
    ReceiverTap,
    SenderTap,
    SimulcastReceiverTap,
    StunGuard,
    accept_header_extensions,
    add_send_transceiver,
    configure_ice,
    negotiated_codecs,
    release_recycled_mlines,
    restrict_codecs,
    server_configuration,
    watch_renegotiation,
)
from .errors import Closed, Forbidden, MediaError, SdpRejected, UnknownTrack
from .events import LayersActive, MediaEvent, SubscribeOffer, TrackInfo, TrackKind, TrackMuted
from .forwarding import Leg, TrackHub
from .layers import LayerRequest
from .sdp_policy import CheckedSdp, candidate_line_allowed, check_sdp
from .sdp_rewrite import answer_fits_offer, reject_mlines, rejected_mids
from .settings import MediaSettings
from .simulcast import answer_simulcast, offered_simulcast
from .simulcast_hub import SimulcastHub

logger = logging.getLogger(__name__)

PcName = Literal["publisher", "subscriber"]
MAX_EARLY_CANDIDATES = 64


class ParticipantState(enum.Enum):
    ACTIVE = "active"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class ParticipantCallbacks:
    """What a participant may tell its room."""

    emit: Callable[[MediaEvent], None]
    tracks_changed: Callable[[Participant, list[TrackHub], list[TrackHub]], None]
    """(publisher, added, removed): must not wait for other participants (it fans out)."""
    failed: Callable[[Participant, str], None]
    closed: Callable[[Participant], None]


@dataclass
class _Published:
    hub: TrackHub
    transceiver: RTCRtpTransceiver


class _Sending(NamedTuple):
    """An m-line the client sends on, with the codec it must use."""

    transceiver: RTCRtpTransceiver
    codec: RTCRtpCodecParameters
    rtx_pt: int | None
    rids: tuple[str, ...] = ()
    """Simulcast encodings, lowest quality first as offered (empty: one stream)."""


@dataclass
class _Subscription:
    hub: TrackHub
    leg: Leg
    transceiver: RTCRtpTransceiver


@dataclass
class _SubscribeOffer:
    """The subscriber offer awaiting its answer."""

    sdp: str
    number: int
    resent: int = 0


def _may_be_data_only(sdp: str) -> bool:
    return "m=audio" not in sdp and "m=video" not in sdp


def choose_codec(
    codecs: list[RTCRtpCodecParameters], settings: MediaSettings
) -> RTCRtpCodecParameters | None:
    """The codec a publisher must use: first in the server's allowlist order that it offered."""
    for name in settings.codecs:
        for codec in codecs:
            if codec.name.lower() != "rtx" and codec.name.lower() == name.lower():
                return codec
    return None


class Participant:
    """One client in a room. Created by :meth:`media.room.Room.add_participant` only."""

    def __init__(
        self,
        participant_id: str,
        *,
        room_name: str,
        settings: MediaSettings,
        can_publish: bool,
        can_subscribe: bool,
        stun_guard: StunGuard,
        callbacks: ParticipantCallbacks,
    ) -> None:
        self.id = participant_id
        self.can_publish = can_publish
        self.can_subscribe = can_subscribe
        self._room_name = room_name
        # Log records about this participant carry its ids (signaling/logs.py renders them).
        self._log_extra = {"room": room_name, "participant": participant_id}
        self._settings = settings
        self._guard = stun_guard
        self._cb = callbacks
        self._state = ParticipantState.ACTIVE
        self._closed_future: asyncio.Future[None] | None = None
        self._failed = False
        self._pub_pc = self._new_pc("publisher")
        self._sub_pc = self._new_pc("subscriber")
        self._pub_lock = asyncio.Lock()
        self._sub_lock = asyncio.Lock()
        self._published: dict[str, _Published] = {}
        self._taps: dict[str, ReceiverTap] = {}  # by publisher-PC mid
        self._subs: dict[tuple[str, str], _Subscription] = {}
        # Subscriber changes not yet on the PC: applied when the next offer is made.
        self._wanted: dict[tuple[str, str], TrackHub] = {}
        self._requests: dict[str, LayerRequest] = {}  # for wanted tracks, by track id
        self._to_stop: list[RTCRtpTransceiver] = []
        self._renegotiate_needed = False
        self._offer: _SubscribeOffer | None = None
        self._answer_timer: asyncio.TimerHandle | None = None
        self._late_answers = 0  # answers still to come for offers already answered (resent)
        self.negotiation_timeouts = 0
        self.stale_answers = 0
        self._early_candidates: dict[PcName, list[dict[str, object]]] = {
            "publisher": [],
            "subscriber": [],
        }
        self._timers: dict[PcName, asyncio.TimerHandle] = {}
        self.dropped_candidates = 0
        self.offers_sent = 0  # subscriber offers the relay made
        self.offers_answered = 0  # publisher offers the client made and the relay answered
        self._data_stats: Callable[[], dict[str, int]] | None = None

    # ---------------------------------------------------------------- properties

    @property
    def state(self) -> ParticipantState:
        return self._state

    @property
    def publisher_pc(self) -> RTCPeerConnection:
        """The publisher PeerConnection (exists from the start, for stats and DataChannels)."""
        return self._pub_pc

    @property
    def subscriber_pc(self) -> RTCPeerConnection:
        """The subscriber PeerConnection; exists from the start (a data-only participant too)."""
        return self._sub_pc

    def published_tracks(self) -> list[TrackInfo]:
        return [p.hub.info for p in self._published.values()]

    def published_hubs(self) -> list[TrackHub]:
        return [p.hub for p in self._published.values()]

    def subscriptions(self) -> list[tuple[str, str]]:
        """(publisher id, track id) of every track this participant receives."""
        return list(self._subs)

    def leg(self, publisher_id: str, track_id: str) -> Leg | None:
        sub = self._subs.get((publisher_id, track_id))
        return sub.leg if sub else None

    def stats(self) -> dict[str, Any]:
        """The forwarder's own counters (aiortc's getStats() lacks most of them)."""
        return {
            "published": {tid: p.hub.stats() for tid, p in self._published.items()},
            "subscribed": {
                f"{pid}/{tid}": {
                    "state": s.leg.state.value,
                    "packets": s.leg.stats.packets,
                    "octets": s.leg.stats.octets,
                    "keyframe_requests": s.leg.tap.keyframe_requests if s.leg.tap else 0,
                    "nacks": s.leg.tap.nacks if s.leg.tap else 0,
                    **s.hub.leg_layer(self.id),
                }
                for (pid, tid), s in self._subs.items()
            },
            "dropped_candidates": self.dropped_candidates,
            "offers_sent": self.offers_sent,
            "offers_answered": self.offers_answered,
            "negotiation_timeouts": self.negotiation_timeouts,
            "stale_answers": self.stale_answers,
        }

    def data_stats(self) -> dict[str, int]:
        """DataChannel counters (``messages_relayed``, ``messages_dropped``...; zeros without)."""
        if self._data_stats is None:
            return {"messages_relayed": 0, "messages_dropped": 0}
        return self._data_stats()

    def set_data_stats(self, source: Callable[[], dict[str, int]]) -> None:
        """Where :meth:`data_stats` reads from (the room's DataChannel relay)."""
        self._data_stats = source

    # ---------------------------------------------------------------- state

    def _set_state(self, state: ParticipantState) -> None:
        if state is not self._state:
            logger.info(
                "participant %s/%s: %s -> %s",
                self._room_name,
                self.id,
                self._state.value,
                state.value,
                extra=self._log_extra,
            )
            self._state = state

    def _check_open(self) -> None:
        if self._state is not ParticipantState.ACTIVE:
            raise Closed(f"participant {self.id} is {self._state.value}")

    def _new_pc(self, name: PcName) -> RTCPeerConnection:
        pc = RTCPeerConnection(server_configuration())
        watch_renegotiation(pc, receive_directly=True, compiled=self._settings.fast_path)
        pc.on("connectionstatechange", functools.partial(self._pc_state_changed, name, pc))
        return pc

    def _pc_state_changed(self, name: PcName, pc: RTCPeerConnection) -> None:
        state = pc.connectionState
        logger.debug("participant %s %s pc: %s", self.id, name, state, extra=self._log_extra)
        if state == "connected":
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()
        elif state == "failed":
            self._fail(f"{name} connection failed (ICE/DTLS or consent lost)")
        elif state == "closed" and self._state is ParticipantState.ACTIVE:
            self._fail(f"{name} connection closed (the remote end left, or consent was lost)")

    def _start_timer(self, name: PcName, pc: RTCPeerConnection) -> None:
        if name in self._timers or pc.connectionState == "connected":
            return
        loop = asyncio.get_running_loop()

        def expired() -> None:
            self._timers.pop(name, None)
            if pc.connectionState != "connected":
                self._fail(f"{name} connection not established in time")

        self._timers[name] = loop.call_later(self._settings.connect_timeout_s, expired)

    def _fail(self, reason: str) -> None:
        if self._failed or self._state is not ParticipantState.ACTIVE:
            return
        self._failed = True
        logger.info(
            "participant %s/%s failed: %s", self._room_name, self.id, reason, extra=self._log_extra
        )
        self._cb.failed(self, reason)

    def _configure_ice(self, pc: RTCPeerConnection) -> None:
        configure_ice(
            pc,
            self._settings.ice_hosts,
            self._settings.port_range,
            self._guard,
            receive_queue_max=self._settings.receive_queue_max,
        )

    # ---------------------------------------------------------------- publishing

    async def publish_offer(self, sdp: str) -> str:
        """Apply the client's publisher offer; return the answer SDP.

        Each m-line the client sends on becomes a published track, keyed by the track id of its
        msid; m-lines that stopped sending are unpublished. The answer does not wait for the
        other participants: they are renegotiated in the background.
        """
        self._check_open()
        if not self.can_publish and not _may_be_data_only(sdp):
            raise Forbidden("this participant may not publish")
        checked = check_sdp(sdp, self._settings, "offer")
        if not self.can_publish and any(s.sends for s in checked.sections):
            raise Forbidden("this participant may not publish media")
        async with self._pub_lock:
            self._check_open()
            answer, sending = await self._answer_offer(checked)
            self.offers_answered += 1
            added, removed = self._update_published(sending)
            # Events and the others' renegotiations go out now, without waiting for them.
            if added or removed:
                self._cb.tracks_changed(self, added, removed)
            for hub in removed:
                await hub.close()
        return answer

    async def _answer_offer(self, checked: CheckedSdp) -> tuple[str, dict[str, _Sending]]:
        """Step 1: apply the offer, pin each m-line's codec, answer; return what is sent."""
        pc = self._pub_pc
        if pc.signalingState != "stable":
            raise SdpRejected(f"publisher is in signaling state {pc.signalingState}")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=checked.sdp, type="offer"))
        except Exception as exc:
            raise SdpRejected(f"offer not applicable: {exc}") from None
        sections = {s.mid: s for s in checked.sections}
        rejected = rejected_mids(checked.sdp)
        simulcast = offered_simulcast(checked.sdp, self._settings.simulcast_max_layers)
        sending: dict[str, _Sending] = {}
        offered = [t for t in pc.getTransceivers() if t.mid in sections]
        for t in offered:
            # Tap each receiver now, before aiortc's connect task can start it (and its
            # decoder): no await between setRemoteDescription and here.
            if t.mid is not None and t.mid not in self._taps and t.mid not in rejected:
                sim = simulcast.get(t.mid)
                self._taps[t.mid] = (
                    SimulcastReceiverTap(t.receiver, sim.rids)
                    if sim is not None
                    else ReceiverTap(t.receiver)
                )
        # Simulcast only where the tap can tell the encodings apart (the m-line's first offer
        # said so); elsewhere the answer leaves it out and the client sends one stream.
        simulcast = {
            mid: sim
            for mid, sim in simulcast.items()
            if isinstance(self._taps.get(mid), SimulcastReceiverTap)
        }
        for t in offered:
            section = sections[t.mid]
            if t.mid in rejected:
                continue  # stopped by the client: no codec to pin, answered as rejected
            codec = choose_codec(negotiated_codecs(t), self._settings)
            if codec is None:
                raise SdpRejected(f"m-line {t.mid}: no codec both allowed and supported")
            restrict_codecs(t, codec)
            rtx = next((c for c in negotiated_codecs(t) if c.name.lower() == "rtx"), None)
            sim = simulcast.get(t.mid or "")
            if sim is not None:
                accept_header_extensions(t, sim.extension_ids)
            if section.sends and t.mid is not None:
                track_id = section.track_id or f"mid-{t.mid}"
                sending[track_id] = _Sending(
                    t, codec, rtx.payloadType if rtx else None, sim.rids if sim else ()
                )
        # A client that reuses a rejected m-line's slot for a new transceiver (Chromium does)
        # must not have the new one mistaken for the stopped one.
        release_recycled_mlines(pc)
        self._configure_ice(pc)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise SdpRejected(f"cannot answer offer: {exc}") from None
        for t in offered:
            if t.mid in rejected and not t.stopped:
                await self._stop_rejected(t)
        self._start_timer("publisher", pc)
        for item in self._early_candidates["publisher"]:
            await self._apply_candidate("publisher", item)
        self._early_candidates["publisher"].clear()
        answer = answer_simulcast(
            pc.localDescription.sdp,
            {mid: sim for mid, sim in simulcast.items() if mid not in rejected},
        )
        return reject_mlines(answer, rejected), sending

    async def _stop_rejected(self, transceiver: RTCRtpTransceiver) -> None:
        tap = self._taps.pop(transceiver.mid or "", None)
        if tap is not None:
            tap.detach()
        try:
            await transceiver.stop()
        except Exception as exc:
            logger.debug("participant %s: stopping a rejected m-line: %r", self.id, exc)

    def _update_published(
        self, sending: dict[str, _Sending]
    ) -> tuple[list[TrackHub], list[TrackHub]]:
        """Step 2: a hub for each track now sent, none for a track no longer sent."""
        removed: list[TrackHub] = []
        for track_id, pub in list(self._published.items()):
            now = sending.get(track_id)
            if now is None or now.transceiver is not pub.transceiver:
                removed.append(pub.hub)
                del self._published[track_id]
        added: list[TrackHub] = []
        for track_id, (t, codec, rtx_pt, rids) in sending.items():
            if track_id in self._published:
                continue
            kind: TrackKind = "video" if t.kind == "video" else "audio"
            info = TrackInfo(
                id=track_id,
                kind=kind,
                muted=False,
                codec=codec.mimeType.split("/", 1)[-1],
            )
            hub: TrackHub
            if rids:
                hub = SimulcastHub(self.id, info, codec, rtx_pt, self._settings, rids)
                hub.on_layers = self._layers_changed
            else:
                hub = TrackHub(self.id, info, codec, rtx_pt, self._settings)
            assert t.mid is not None
            hub.attach(self._taps[t.mid])
            self._published[track_id] = _Published(hub, t)
            added.append(hub)
            logger.info(
                "participant %s/%s publishes %s track %s (%s%s)",
                self._room_name,
                self.id,
                kind,
                track_id,
                info.codec,
                f", simulcast {'/'.join(rids)}" if rids else "",
                extra=self._log_extra,
            )
        return added, removed

    def _layers_changed(self, hub: SimulcastHub, active: tuple[str, ...]) -> None:
        if self._state is ParticipantState.ACTIVE:
            self._cb.emit(LayersActive(self.id, hub.info.id, active))

    async def set_muted(self, track_id: str, muted: bool) -> TrackInfo:
        """Mute or unmute a published track; forwarding pauses while muted."""
        self._check_open()
        pub = self._published.get(track_id)
        if pub is None:
            raise UnknownTrack(f"no published track {track_id!r}")
        if pub.hub.info.muted != muted:
            pub.hub.info = replace(pub.hub.info, muted=muted)
            pub.hub.set_muted(muted)
            self._cb.emit(TrackMuted(self.id, pub.hub.info))
        return pub.hub.info

    # ---------------------------------------------------------------- subscribing

    def subscribe(self, hub: TrackHub) -> bool:
        """Want ``hub``'s track: it goes on the PC with the next offer (the caller renegotiates).

        Returns whether anything changed.
        """
        key = (hub.publisher_id, hub.info.id)
        if (
            self._state is not ParticipantState.ACTIVE
            or not self.can_subscribe
            or hub.publisher_id == self.id
            or key in self._subs
            or key in self._wanted
        ):
            return False
        self._wanted[key] = hub
        return True

    def set_subscription(self, track_id: str, request: LayerRequest) -> None:
        """What this subscriber asks of a track it receives (size or quality, or paused).

        Raises :class:`UnknownTrack` if it neither receives nor is about to receive it.
        """
        self._check_open()
        for (_, tid), sub in self._subs.items():
            if tid == track_id:
                sub.hub.set_request(self.id, request)
                return
        for _, tid in self._wanted:
            if tid == track_id:
                self._requests[track_id] = request  # applied when its leg exists
                return
        raise UnknownTrack(f"not subscribed to track {track_id!r}")

    def unsubscribe(self, hub: TrackHub) -> bool:
        """Stop receiving ``hub``'s track: its m-line is rejected in the next offer (the caller
        renegotiates). Returns whether the PC has something to renegotiate."""
        key = (hub.publisher_id, hub.info.id)
        self._requests.pop(hub.info.id, None)
        if self._wanted.pop(key, None) is not None:
            return False  # never offered: the PC never knew about it
        sub = self._subs.pop(key, None)
        if sub is None:
            return False
        sub.hub.remove_leg(self.id)
        sub.leg.close()
        sub.transceiver.direction = "inactive"
        self._to_stop.append(sub.transceiver)
        return True

    def _attach_wanted(self) -> None:
        """Put the wanted tracks on the PC: a sendonly transceiver and a leg each."""
        wanted, self._wanted = self._wanted, {}
        for key, hub in wanted.items():
            transceiver = add_send_transceiver(
                self._sub_pc,
                kind=hub.info.kind,
                stream_id=hub.publisher_id,
                track_id=hub.info.id,
                codec=hub.codec,
                rtx=hub.is_video,
            )
            leg = hub.new_leg(self.id, random.randrange(0x8000), random.randrange(1 << 32))
            tap = SenderTap(
                transceiver,
                on_ready=leg.on_sender_ready,
                on_keyframe_request=leg.keyframe_wanted,
                on_remb=functools.partial(hub.subscriber_remb, self.id),
                sr_source=leg.sender_report_values,
                send_buffer_max_bytes=self._settings.send_buffer_max_bytes,
                fast_path=self._settings.fast_path,
            )
            leg.bind(tap)
            self._subs[key] = _Subscription(hub, leg, transceiver)
            hub.add_leg(leg)
            request = self._requests.pop(hub.info.id, None)
            if request is not None:
                hub.set_request(self.id, request)

    async def _stop_dropped(self) -> None:
        to_stop, self._to_stop = self._to_stop, []
        for transceiver in to_stop:
            try:
                # Stops the sender, which sends RTCP BYE: receivers end the track.
                await transceiver.stop()
            except Exception as exc:
                logger.debug(
                    "participant %s: stopping transceiver: %r", self.id, exc, extra=self._log_extra
                )

    async def renegotiate(self) -> None:
        """Offer the subscriber PC's current state; if an offer awaits its answer, the changes
        go into the next offer (one negotiation in flight)."""
        await self._offer_subscriber(follow_up=False)

    async def _offer_subscriber(self, *, follow_up: bool) -> None:
        """``follow_up``: after an answer, offer only what changed while it was awaited (and
        nothing if another offer already went out meanwhile)."""
        try:
            await self._make_subscriber_offer(follow_up)
        except Exception:
            if self._state is ParticipantState.ACTIVE:
                raise  # a closing participant's PC may close under the offer: not an error

    async def _make_subscriber_offer(self, follow_up: bool) -> None:
        async with self._sub_lock:
            if self._state is not ParticipantState.ACTIVE:
                return
            pc = self._sub_pc
            await self._stop_dropped()
            if pc.signalingState == "have-local-offer":
                self._renegotiate_needed |= not follow_up
                return
            if follow_up and not (self._renegotiate_needed or self._wanted):
                return
            self._attach_wanted()
            if not pc.getTransceivers() and pc.sctp is None:
                return
            self._renegotiate_needed = False
            self._configure_ice(pc)
            await pc.setLocalDescription(await pc.createOffer())
            # Removed tracks' m-lines stay as aiortc writes them: `inactive`, still bundled.
            # Rejecting them (port 0, unbundled) made Firefox stop answering later offers, and
            # rejecting the BUNDLE-tag m-line took the shared transport down.
            sdp = pc.localDescription.sdp
            self.offers_sent += 1
            self._offer = _SubscribeOffer(sdp, self.offers_sent)
            self._start_timer("subscriber", pc)
            self._arm_answer_timer()
        self._cb.emit(SubscribeOffer(self.id, sdp))

    def _arm_answer_timer(self) -> None:
        if self._answer_timer is not None:
            self._answer_timer.cancel()
        offer = self._offer
        if offer is None:
            return
        self._answer_timer = asyncio.get_running_loop().call_later(
            self._settings.subscriber_answer_timeout_s, self._answer_overdue, offer.number
        )

    def _answer_overdue(self, number: int) -> None:
        """No answer in time: send the same offer again, or fail after the last retry."""
        self._answer_timer = None
        offer = self._offer
        if offer is None or offer.number != number or self._state is not ParticipantState.ACTIVE:
            return
        if self._sub_lock.locked():  # an answer is being applied right now
            self._arm_answer_timer()
            return
        self.negotiation_timeouts += 1
        timeout = self._settings.subscriber_answer_timeout_s
        if offer.resent >= self._settings.subscriber_offer_retries:
            logger.warning(
                "participant %s/%s: subscribe offer %d unanswered after %d tries of %.1f s",
                self._room_name,
                self.id,
                number,
                offer.resent + 1,
                timeout,
                extra=self._log_extra,
            )
            self._fail(f"subscriber negotiation stuck: offer {number} never answered")
            return
        offer.resent += 1
        logger.warning(
            "participant %s/%s: subscribe offer %d unanswered after %.1f s: sending it again "
            "(%d of %d)",
            self._room_name,
            self.id,
            number,
            timeout,
            offer.resent,
            self._settings.subscriber_offer_retries,
            extra=self._log_extra,
        )
        self._arm_answer_timer()
        self._cb.emit(SubscribeOffer(self.id, offer.sdp))

    async def subscribe_answer(self, sdp: str) -> None:
        """Apply the client's answer to the pending subscriber offer.

        A late answer to an offer that was sent again (its duplicate) is ignored and counted.
        """
        self._check_open()
        checked = check_sdp(sdp, self._settings, "answer")
        async with self._sub_lock:
            self._check_open()
            pc = self._sub_pc
            offer = self._offer
            waiting = pc.signalingState == "have-local-offer" and offer is not None
            if not waiting or not answer_fits_offer(offer.sdp if offer else "", checked.sdp):
                if self._late_answers > 0:
                    self._late_answers -= 1
                    self.stale_answers += 1
                    logger.info(
                        "participant %s: late answer to an earlier subscribe offer ignored",
                        self.id,
                        extra=self._log_extra,
                    )
                    return
                if not waiting:
                    raise SdpRejected("no subscribe offer is waiting for an answer")
                raise SdpRejected("answer does not match the pending subscribe offer")
            assert offer is not None
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=checked.sdp, type="answer"))
            except Exception as exc:
                raise SdpRejected(f"answer not applicable: {exc}") from None
            if self._answer_timer is not None:
                self._answer_timer.cancel()
                self._answer_timer = None
            self._offer = None
            self._late_answers = offer.resent
            for item in self._early_candidates["subscriber"]:
                await self._apply_candidate("subscriber", item)
            self._early_candidates["subscriber"].clear()
            again = self._renegotiate_needed or bool(self._wanted)
        if again:
            await self._offer_subscriber(follow_up=True)

    # ---------------------------------------------------------------- ICE

    async def add_candidate(self, pc: PcName, candidate: Mapping[str, object]) -> None:
        """Add a trickled remote candidate (RTCIceCandidateInit), unless the policy refuses it."""
        self._check_open()
        if pc not in ("publisher", "subscriber"):
            raise MediaError(f"unknown peer connection {pc!r}")
        value = candidate.get("candidate")
        if not isinstance(value, str):
            raise SdpRejected("candidate must be a string")
        if value and not candidate_line_allowed(value, self._settings):
            self.dropped_candidates += 1
            logger.debug(
                "participant %s: candidate refused: %s", self.id, value, extra=self._log_extra
            )
            return
        target = self._pub_pc if pc == "publisher" else self._sub_pc
        if target.remoteDescription is None:
            early = self._early_candidates[pc]
            if len(early) < MAX_EARLY_CANDIDATES:
                early.append(dict(candidate))
            return
        await self._apply_candidate(pc, candidate)

    async def _apply_candidate(self, pc_name: PcName, candidate: Mapping[str, object]) -> None:
        pc = self._pub_pc if pc_name == "publisher" else self._sub_pc
        value = str(candidate.get("candidate") or "")
        try:
            if not value:
                await pc.addIceCandidate(None)
                return
            if value.startswith("candidate:"):
                value = value[len("candidate:") :]
            parsed = candidate_from_sdp(value)
            # Everything is bundled on the first m-line's transport.
            transceivers = pc.getTransceivers()
            if transceivers:
                parsed.sdpMid = transceivers[0].mid
            elif pc.sctp is not None:
                parsed.sdpMid = pc.sctp.mid
            parsed.sdpMLineIndex = 0
            await pc.addIceCandidate(parsed)
        except Exception as exc:
            logger.debug(
                "participant %s: candidate %r not added: %r",
                self.id,
                value,
                exc,
                extra=self._log_extra,
            )

    # ---------------------------------------------------------------- closing

    async def close(self, reason: str) -> None:
        """Close everything this participant owns; a second caller waits for the first."""
        if self._closed_future is not None:
            await asyncio.shield(self._closed_future)
            return
        self._closed_future = asyncio.get_running_loop().create_future()
        self._set_state(ParticipantState.CLOSING)
        logger.info(
            "participant %s/%s closing: %s", self._room_name, self.id, reason, extra=self._log_extra
        )
        try:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            if self._answer_timer is not None:
                self._answer_timer.cancel()
                self._answer_timer = None
            hubs = [p.hub for p in self._published.values()]
            self._published.clear()
            if hubs:
                try:
                    self._cb.tracks_changed(self, [], hubs)
                except Exception:
                    logger.exception(
                        "participant %s: unpublishing failed", self.id, extra=self._log_extra
                    )
                for hub in hubs:
                    await hub.close()
            for tap in self._taps.values():
                tap.detach()
            self._taps.clear()
            self._wanted.clear()
            subs = list(self._subs.values())
            self._subs.clear()
            for sub in subs:
                sub.hub.remove_leg(self.id)
                sub.leg.close()
            for pc in (self._pub_pc, self._sub_pc):
                try:
                    await pc.close()
                except Exception:
                    logger.exception(
                        "participant %s: closing a PeerConnection", self.id, extra=self._log_extra
                    )
        finally:
            self._set_state(ParticipantState.CLOSED)
            self._cb.closed(self)
            self._closed_future.set_result(None)
