"""Forwarding a simulcast track: one layer per subscriber leg, switched on keyframes.

A :class:`SimulcastHub` receives every encoding of one published track (one SSRC per rid, from
a :class:`~media.aiortc_hooks.SimulcastReceiverTap`). Each leg receives one layer at a time: a
packet is handed only to the legs of its layer, so a leg costs what it costs without simulcast.
Every ``simulcast_tick_s`` the hub measures each layer and asks each leg's
:class:`~media.layers.LayerChooser` which layer it should get; a leg that should change layer
is switched at the next keyframe of the new layer (one is requested, throttled per layer), and
its own sequence numbers, timestamps and VP8 picture ids continue across the switch
(:class:`SimulcastLeg`). Subscribers' REMB choose layers here; they never lower the
publisher's bitrate (only the relay's own estimate of the publisher's link goes upstream).

Dynacast: a layer that no leg wants for ``dynacast_pause_delay_s`` is reported inactive through
``on_layers`` (the publisher's client stops encoding it); a wanted layer is reported active at
once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

from .aiortc_hooks import ReceiverTap, SimulcastReceiverTap
from .depacketize import MalformedPayload, h264_dimensions
from .events import TrackInfo
from .forwarding import KeyframeRequester, Leg, LegState, TrackHub, ntp_now
from .layers import Layer, LayerChooser, LayerPolicy, LayerRequest, rank
from .settings import MediaSettings
from .staleness import StalenessGate
from .vp8 import Vp8Rewriter, keyframe_size, temporal_id

logger = logging.getLogger(__name__)


class SimulcastLeg(Leg):
    """A :class:`Leg` that can change layer: VP8 picture ids are rewritten to stay continuous
    (sequence numbers and timestamps already are, through the leg's resync), and VP8 temporal
    layers above the chosen one are dropped. A leg that never switched and drops nothing
    forwards exactly as a plain leg (no payload edit)."""

    def __init__(
        self,
        subscriber_id: str,
        hub: TrackHub,
        initial_seq: int,
        initial_ts: int,
        policy: LayerPolicy,
    ) -> None:
        super().__init__(subscriber_id, hub, initial_seq, initial_ts)
        self.layer: Layer | None = None  # the layer received now
        self.target: Layer | None = None  # the layer it switches to at its next keyframe
        self.desired: Layer | None = None  # what the chooser wants (maybe paused at the source)
        self.chooser = LayerChooser(policy)
        self.switches = 0
        self.switches_deferred = 0  # keyframes not switched on: the old frame was unfinished
        self.deferred_since_switch = 0  # the same, since the leg last moved
        self._vp8 = Vp8Rewriter() if hub.codec.mimeType.lower() == "video/vp8" else None

    def keyframe_wanted(self) -> None:
        """Only the layer this leg receives (or moves to) is asked for a keyframe: a PLI for
        every layer would use up the throttle of the layer another leg is about to switch to."""
        hub = self.hub
        if isinstance(hub, SimulcastHub):
            hub.request_layer_keyframe(self.target or self.layer)
        else:
            hub.request_keyframe()

    def sent_already(self, pkt: RtpPacket) -> bool:
        """Whether this leg already sent ``pkt`` (a copy: an RTX repair or probe padding)."""
        if self.state is not LegState.FORWARDING or pkt.ssrc != self._source_ssrc:
            return False
        seq = (pkt.sequence_number + self._seq_off) & 0xFFFF
        sent = self._history.get(seq % RTP_HISTORY_SIZE)
        return sent is not None and sent.sequence_number == seq

    def _newest_sent(self) -> Any:
        """The history entry of the newest packet this leg sent (None: none, or overwritten)."""
        if self._last_seq is None:
            return None
        # The newest source packet's number as sent (a late packet sent after it does not
        # count: Leg._last_seq follows it).
        seq = (self._ext_max + self._seq_off) & 0xFFFF
        for candidate in (seq, self._last_seq):
            sent = self._history.get(candidate % RTP_HISTORY_SIZE)
            if sent is not None and sent.sequence_number == candidate:
                return sent
        return None

    def at_frame_end(self) -> bool:
        """Whether the leg's output ends on a whole frame (its newest packet has the marker
        bit), or sends nothing now: only then may it move to another layer."""
        if self.state is not LegState.FORWARDING:
            return True
        sent = self._newest_sent()
        return sent is None or bool(sent.data[1] & 0x80)

    def set_temporal(self, max_tid: int) -> None:
        """Forward VP8 temporal layers up to ``max_tid`` (3: all)."""
        vp8 = self._vp8
        if vp8 is not None and max_tid != vp8.wanted_tid:
            vp8.set_temporal(max_tid)
            self._apply_vp8(vp8)

    @property
    def max_temporal(self) -> int | None:
        """The highest VP8 TID forwarded now (None: not VP8)."""
        return self._vp8.max_tid if self._vp8 is not None else None

    @property
    def temporal_dropped(self) -> int:
        return self._vp8.dropped if self._vp8 is not None else 0

    def _sync(self, pkt: RtpPacket, now: float) -> None:
        vp8 = self._vp8
        if vp8 is not None:
            sent = self._newest_sent()
            vp8.sync(pkt.payload, sent.payload if sent is not None else None)
            self._apply_vp8(vp8)
        super()._sync(pkt, now)

    def _apply_vp8(self, vp8: Vp8Rewriter) -> None:
        """A payload edit only while temporal layers are dropped; picture ids that only need
        shifting are shifted by the packet builder (no copy of the payload for it)."""
        self.edit = vp8.rewrite if vp8.dropping else None
        self.payload_shift = vp8.shift


def h264_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the SPS a packet starting an H264 keyframe carries (alone or in a
    STAP-A, as browsers send it), else None."""
    if not payload:
        return None
    nal_type = payload[0] & 0x1F
    units: list[bytes] = []
    if nal_type == 7:
        units.append(payload)
    elif nal_type == 24:  # STAP-A
        pos, n = 1, len(payload)
        while pos + 2 <= n:
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > n:
                return None
            units.append(payload[pos : pos + size])
            pos += size
    for unit in units:
        if unit[0] & 0x1F == 7:
            try:
                return h264_dimensions(unit)
            except MalformedPayload:
                return None
    return None


def layer_policy(settings: MediaSettings) -> LayerPolicy:
    return LayerPolicy(
        upgrade_headroom=settings.simulcast_upgrade_headroom,
        upgrade_hold_s=settings.simulcast_upgrade_hold_s,
        upgrade_hold_max_s=max(settings.simulcast_upgrade_hold_s, 30.0),
        estimate_ttl_s=settings.remb_subscriber_ttl_s,
    )


def switchable_leg(subscriber_id: str, hub: TrackHub, settings: MediaSettings) -> SimulcastLeg:
    """A leg that may move between hubs of either kind (a WHEP viewer's): its VP8 picture ids
    stay continuous across every switch."""
    return SimulcastLeg(
        subscriber_id,
        hub,
        random.randrange(0x8000),
        random.randrange(1 << 32),
        layer_policy(settings),
    )


class _Route:
    """One layer and the legs that receive it."""

    __slots__ = (
        "keyframes",
        "layer",
        "legs",
        "shedding",
        "staleness",
        "switch_keyframes",
        "switchers",
    )

    def __init__(
        self,
        layer: Layer,
        keyframes: KeyframeRequester,
        switch_keyframes: KeyframeRequester,
        staleness: StalenessGate,
    ) -> None:
        self.layer = layer
        self.legs: tuple[SimulcastLeg, ...] = ()
        self.switchers: set[SimulcastLeg] = set()
        self.keyframes = keyframes  # subscribers' PLIs, a restarted stream
        self.switch_keyframes = switch_keyframes  # legs switching to this layer
        self.staleness = staleness  # one per SSRC: a gate follows one stream's timestamps
        self.shedding = False


LayersCallback = Callable[["SimulcastHub", tuple[str, ...]], None]


class SimulcastHub(TrackHub):
    """A published track received as 2-3 simulcast encodings (see the module docstring)."""

    def __init__(
        self,
        publisher_id: str,
        info: TrackInfo,
        codec: RTCRtpCodecParameters,
        rtx_payload_type: int | None,
        settings: MediaSettings,
        rids: tuple[str, ...],
    ) -> None:
        super().__init__(publisher_id, info, codec, rtx_payload_type, settings)
        self.rids = rids
        self.policy = layer_policy(settings)
        self._is_vp8 = codec.mimeType.lower() == "video/vp8"
        # A keyframe's picture size: layers are ranked, and tiles matched, by it.
        self._size_of = {"video/vp8": keyframe_size, "video/h264": h264_keyframe_size}.get(
            codec.mimeType.lower()
        )
        self._routes: dict[str, _Route] = {}
        for i, rid in enumerate(rids):
            layer = Layer(rid, i)
            requester = KeyframeRequester(
                settings.keyframe_request_interval_s,
                self._pli_sender(layer),
                self._tasks,
            )
            for_switches = KeyframeRequester(
                settings.simulcast_switch_keyframe_interval_s, self._pli_sender(layer), self._tasks
            )
            gate = StalenessGate(self.clock_rate, settings.max_delay_video_ms / 1000)
            self._routes[rid] = _Route(layer, requester, for_switches, gate)
        self._by_ssrc: dict[int, _Route] = {}
        self._ranked: list[Layer] = [r.layer for r in self._routes.values()]
        self._sim_legs: dict[str, SimulcastLeg] = {}
        self.on_layers: LayersCallback | None = None
        """Dynacast: gets the rids the publisher should keep sending, when that changes."""
        self.active_rids: tuple[str, ...] = rids
        self._unneeded_since: dict[str, float] = {}
        self._held_estimate = 0  # the upstream estimate before dynacast paused a layer
        self._ticker: asyncio.TimerHandle | None = None
        self.switches = 0
        self.switches_deferred = 0  # a new layer's keyframe came while a leg was mid-frame
        self.copies_dropped = 0  # RTX copies not forwarded: every leg had the original

    # ---- wiring

    def attach(self, tap: ReceiverTap) -> None:
        super().attach(tap)
        if isinstance(tap, SimulcastReceiverTap):
            tap.on_new_stream = self.add_stream
            for ssrc, rid in tap.ssrc_rid.items():
                self.add_stream(ssrc, rid)
        self._schedule_tick()

    def add_stream(self, ssrc: int, rid: str) -> None:
        """SSRC ``ssrc`` carries encoding ``rid`` (told by the tap when it learns one)."""
        route = self._routes.get(rid)
        if route is None:
            return
        old = route.layer.ssrc
        if old is not None and old != ssrc:
            self._by_ssrc.pop(old, None)
            # The encoder restarted: its legs continue at the new stream's first keyframe.
            for leg in route.legs:
                leg.resync()
            route.keyframes.request()
        route.layer.set_stream(ssrc)
        self._by_ssrc[ssrc] = route

    def _pli_sender(self, layer: Layer) -> Callable[[], Any]:
        async def send() -> bool:
            tap = self._tap
            return tap is not None and layer.ssrc is not None and await tap.send_pli(layer.ssrc)

        return send

    def new_leg(self, subscriber_id: str, initial_seq: int, initial_ts: int) -> Leg:
        return SimulcastLeg(subscriber_id, self, initial_seq, initial_ts, self.policy)

    def add_leg(self, leg: Leg) -> None:
        if not isinstance(leg, SimulcastLeg):
            raise TypeError("a simulcast track needs a SimulcastLeg (SimulcastHub.new_leg)")
        self._legs[leg.subscriber_id] = leg
        self._leg_list = tuple(self._legs.values())
        self._sim_legs[leg.subscriber_id] = leg
        self._evaluate(leg, time.monotonic())
        self._dynacast(time.monotonic())

    def remove_leg(self, subscriber_id: str) -> Leg | None:
        leg = self._sim_legs.pop(subscriber_id, None)
        if leg is not None:
            self._detach(leg)
            for route in self._routes.values():
                route.switchers.discard(leg)
        return super().remove_leg(subscriber_id)

    def leg(self, subscriber_id: str) -> SimulcastLeg | None:
        return self._sim_legs.get(subscriber_id)

    # ---- packets

    def on_packet(self, pkt: RtpPacket) -> None:
        if self._muted:
            return
        route = self._by_ssrc.get(pkt.ssrc)
        if route is None:
            return  # not (yet) known to be one of the encodings
        self.packets_in += 1
        self.octets_in += len(pkt.payload)
        now = time.monotonic()
        layer = route.layer
        newest = layer.is_newest(pkt.sequence_number)
        # Only new packets say whether the relay is late: a copy (an RTX repair, or padding
        # a browser probes with) carries an old timestamp by nature, and shedding on it would
        # send the legs back to waiting for a keyframe again and again.
        if newest:
            if route.staleness.late(pkt.ssrc, pkt.timestamp, now) and self._behind():
                self.packets_stale += 1
                self._shed_layer(route)
                return
            route.shedding = False
        keyframe = newest and self._detect(pkt.payload)
        if newest:
            layer.account(pkt, keyframe, now, temporal_id(pkt.payload) if self._is_vp8 else 0)
            if pkt.marker:
                self.frames_in += 1
        if keyframe:
            self.keyframes_in += 1
            if self._size_of is not None:
                size = self._size_of(pkt.payload)
                if size is not None and size != (layer.width, layer.height):
                    layer.width, layer.height = size
                    self._ranked = rank(self._ranked)
            self._switch_at_keyframe(route)
        if self.recorder is not None and layer is self._ranked[-1]:
            self.recorder(pkt)
        legs = route.legs
        if not legs:
            return
        abs3 = ((ntp_now() >> 14) & 0xFFFFFF).to_bytes(3, "big")
        if not newest:
            # A copy: only to the legs that never got the original (it was lost upstream).
            # Browsers pad over RTX with copies of recent packets; forwarding those would
            # multiply what a subscriber receives.
            for leg in legs:
                if not leg.sent_already(pkt):
                    leg.forward(pkt, keyframe, abs3, now)
                else:
                    self.copies_dropped += 1
            return
        for leg in legs:
            leg.forward(pkt, keyframe, abs3, now)

    def _shed_layer(self, route: _Route) -> None:
        """A stale packet was dropped: this layer's legs continue at its next keyframe."""
        if route.shedding:
            return
        route.shedding = True  # once per run of stale packets
        for leg in route.legs:
            leg.resync()
        if route.legs:
            route.keyframes.request()

    def _switch_at_keyframe(self, route: _Route) -> None:
        """Move the legs waiting for this layer onto it: those it was chosen for, and those
        that want it while it was not arriving (a resumed layer starts with this keyframe)."""
        layer = route.layer
        now = time.monotonic()
        timeout = self._live_timeout()
        legs = [*route.switchers]
        legs += [x for x in self._sim_legs.values() if x.desired is layer and x.layer is not layer]
        for leg in dict.fromkeys(legs):  # (a leg may be in both lists)
            if leg.layer is layer or leg.state in (LegState.NEGOTIATING, LegState.CLOSED):
                continue  # already moved, or not ready to send (it moves at a later keyframe)
            if (
                leg.deferred_since_switch < self._settings.simulcast_switch_max_deferrals
                and not leg.at_frame_end()
                and leg.layer is not None
                and leg.layer.live(now, timeout)
            ):
                # The old layer's frame is not finished: moving now would leave the subscriber
                # a truncated frame. Finish it, and move at the new layer's next keyframe (a
                # sender that interleaves its layers' packets may do this every time: so only
                # a few times, then the frame is cut short).
                leg.deferred_since_switch += 1
                leg.switches_deferred += 1
                self.switches_deferred += 1
                route.switch_keyframes.request()
                continue
            if leg.target is not None:
                self._routes[leg.target.rid].switchers.discard(leg)
            if leg.layer is not None:  # a switch (not a start)
                leg.switches += 1
                self.switches += 1
            leg.deferred_since_switch = 0
            self._detach(leg)
            leg.layer = route.layer
            leg.target = None
            leg.resync()  # the keyframe about to be forwarded starts the new layer
            route.legs = (*route.legs, leg)

    def _detach(self, leg: SimulcastLeg) -> None:
        layer = leg.layer
        if layer is None:
            return
        route = self._routes[layer.rid]
        route.legs = tuple(x for x in route.legs if x is not leg)
        leg.layer = None

    async def leg_ready(self, leg: Leg) -> None:
        """A leg can send: ask for a keyframe of the layer it waits for."""
        if self._closed or not isinstance(leg, SimulcastLeg):
            return
        self._evaluate(leg, time.monotonic())
        target = leg.target or leg.layer
        if target is not None:
            if leg.layer is target:  # (re)started on its own layer: it needs a keyframe too
                leg.resync()
            self._routes[target.rid].switch_keyframes.request()

    # ---- choosing layers

    def set_request(self, subscriber_id: str, request: LayerRequest) -> bool:
        """What one subscriber asks for this track; False if it does not receive it."""
        leg = self._sim_legs.get(subscriber_id)
        if leg is None:
            return False
        leg.chooser.ask(request)
        now = time.monotonic()
        self._evaluate(leg, now)
        self._dynacast(now)
        return True

    def subscriber_remb(self, subscriber_id: str, bitrate: int) -> None:
        """A subscriber's estimate chooses its layer; it never goes upstream."""
        leg = self._sim_legs.get(subscriber_id)
        if leg is not None and not self._closed:
            leg.chooser.set_estimate(bitrate, time.monotonic())

    def _upstream_estimate(self, bitrate: int) -> None:
        """The relay's estimate of the publisher link goes upstream (never a subscriber's).

        A receive-side estimate only stays above what arrives by about half: while dynacast
        pauses layers, it would sink to what the remaining ones need, and a resumed layer would
        wait for it to climb back (8% a second). So while a layer is paused the estimate seen
        before the pause is held; over-use on the link still shows as loss to the browser.
        """
        if self._closed:
            return
        if len(self.active_rids) < len(self.rids):
            bitrate = max(bitrate, self._held_estimate)
        else:
            self._held_estimate = bitrate
        self._bandwidth.update("", bitrate)

    def _live_timeout(self) -> float:
        return self._settings.simulcast_layer_timeout_s

    def _evaluate(self, leg: SimulcastLeg, now: float) -> None:
        ranked = self._ranked
        desired = leg.chooser.choose(ranked, leg.layer, now)
        leg.desired = desired
        effective = desired
        timeout = self._live_timeout()
        if desired is not None and not desired.live(now, timeout):
            # Not sent right now (paused, or not started): the best one sent below it, until
            # it comes (dynacast resumes it).
            top = ranked.index(desired)
            live = [x for x in ranked if x.live(now, timeout)]
            below = [x for x in live if ranked.index(x) <= top]
            if below:
                effective = below[-1]
            elif live:
                effective = live[0]
            if leg.layer is not None and leg.layer.live(now, timeout):
                cur = ranked.index(leg.layer)
                if effective is not None and ranked.index(effective) < cur <= top:
                    effective = leg.layer  # no step down while waiting for a step up
        self._set_target(leg, effective)
        # Even the lowest layer too much for the leg's estimate: fewer frames a second.
        leg.set_temporal(leg.chooser.choose_temporal(ranked, leg.layer, now))

    def _set_target(self, leg: SimulcastLeg, target: Layer | None) -> None:
        if target is leg.layer:
            if leg.target is not None:
                self._routes[leg.target.rid].switchers.discard(leg)
                leg.target = None
            return
        if target is None:  # paused: stop at once; a later layer starts on a keyframe
            self._detach(leg)
            if leg.target is not None:
                self._routes[leg.target.rid].switchers.discard(leg)
                leg.target = None
            leg.resync()
            return
        if leg.target is not target:
            if leg.target is not None:
                self._routes[leg.target.rid].switchers.discard(leg)
            leg.target = target
            self._routes[target.rid].switchers.add(leg)
        if leg.state is not LegState.NEGOTIATING:
            self._routes[target.rid].switch_keyframes.request()

    def _schedule_tick(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._ticker = loop.call_later(self._settings.simulcast_tick_s, self._tick)

    def _tick(self) -> None:
        self._ticker = None
        try:
            self.tick(time.monotonic())
        finally:
            self._schedule_tick()

    def tick(self, now: float) -> None:
        """Measure the layers, re-choose every leg's layer, update dynacast."""
        if self._closed:
            return
        for route in self._routes.values():
            route.layer.roll(now)
        self._ranked = rank(self._ranked)
        for leg in list(self._sim_legs.values()):
            self._evaluate(leg, now)
        self._dynacast(now)

    # ---- dynacast

    def _dynacast(self, now: float) -> None:
        """Tell the publisher which encodings someone needs (see the module docstring)."""
        if not self._settings.dynacast or self.on_layers is None:
            return
        needed: set[str] = {self._ranked[0].rid}  # the lowest always: new subscribers start fast
        if self.recorder is not None:
            needed.add(self._ranked[-1].rid)
        for leg in self._sim_legs.values():
            for layer in (leg.desired, leg.layer, leg.target):
                if layer is not None:
                    needed.add(layer.rid)
        if any(r.layer.pixels == 0 and r.layer.live(now, 5.0) for r in self._routes.values()):
            # Sizes not all known yet: pause nothing (the ranking may still change).
            needed = set(self.rids)
        active: list[str] = []
        delay = self._settings.dynacast_pause_delay_s
        for rid in self.rids:
            if rid in needed:
                self._unneeded_since.pop(rid, None)
                active.append(rid)
                continue
            since = self._unneeded_since.setdefault(rid, now)
            if rid in self.active_rids and now - since < delay:
                active.append(rid)
        result = tuple(active)
        if result != self.active_rids:
            logger.debug(
                "track %s/%s: active layers %s -> %s",
                self.publisher_id,
                self.info.id,
                ",".join(self.active_rids),
                ",".join(result),
            )
            self.active_rids = result
            self.on_layers(self, result)

    # ---- feedback and state

    def request_keyframe(self) -> None:
        """Every layer a leg receives or waits for gets a (throttled) keyframe request."""
        if self._closed:
            return
        wanted: set[str] = set()
        for leg in self._sim_legs.values():
            for layer in (leg.layer, leg.target):
                if layer is not None:
                    wanted.add(layer.rid)
        for rid in wanted:
            self._routes[rid].keyframes.request()

    def request_layer_keyframe(self, layer: Layer | None) -> None:
        if layer is not None and not self._closed:
            self._routes[layer.rid].keyframes.request()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for route in self._routes.values():
            route.keyframes.close()
            route.switch_keyframes.close()
        await super().close()

    def leg_layer(self, subscriber_id: str) -> dict[str, Any]:
        leg = self._sim_legs.get(subscriber_id)
        if leg is None:
            return {}
        return {
            "layer": leg.layer.rid if leg.layer else None,
            "target": leg.target.rid if leg.target else None,
            "width": leg.layer.width if leg.layer else 0,
            "height": leg.layer.height if leg.layer else 0,
        }

    def layer_stats(self) -> list[dict[str, Any]] | None:
        return [
            {
                "rid": layer.rid,
                "width": layer.width,
                "height": layer.height,
                "bitrate_bps": layer.bitrate_bps,
                "fps": layer.fps,
                "active": layer.rid in self.active_rids,
                "subscribers": len(self._routes[layer.rid].legs),
            }
            for layer in self._ranked
        ]

    def layers(self) -> list[Layer]:
        """The layers, lowest first."""
        return list(self._ranked)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["simulcast"] = {
            "layers": [layer.stats() for layer in self._ranked],
            "active_rids": list(self.active_rids),
            "switches": self.switches,
            "switches_deferred": self.switches_deferred,
            "copies_dropped": self.copies_dropped,
        }
        for sid, leg in self._sim_legs.items():
            entry = out["legs"].get(sid)
            if entry is not None:
                entry["layer"] = leg.layer.rid if leg.layer else None
                entry["target"] = leg.target.rid if leg.target else None
                entry["estimate_bps"] = leg.chooser.estimate_bps
                entry["max_temporal"] = leg.max_temporal
                entry["temporal_dropped"] = leg.temporal_dropped
                entry["switches_deferred"] = leg.switches_deferred
        return out
