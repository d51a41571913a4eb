"""Simulcast layers and the choice of one per subscriber, sans-IO.

A :class:`Layer` is one encoding of a simulcast track (one rid, one SSRC at a time) with what
the relay measures of it: bitrate, frame rate, resolution (read from its keyframes). A
:class:`LayerChooser` picks the layer one subscriber should receive from what it asks for
(:class:`LayerRequest`: a size, a quality or paused) and from its downlink estimate (REMB):

- the wanted layer is the smallest that covers the asked size (none asked: the top one);
- with an estimate, the leg steps down to a layer the estimate carries when the estimate is
  below the current layer's bitrate and falls or stalls (:class:`LayerChooser`), and steps up
  one layer at a time only when the estimate shows headroom (``upgrade_headroom`` times the
  current bitrate) and the hold since the last step down is over; each step down soon after a
  step up doubles the hold (up to ``upgrade_hold_max_s``), so a link that cannot carry a layer
  is not probed every few seconds. A new request for more goes straight to its layer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from aiortc.rtp import RtpPacket

from .vp8 import ALL_TEMPORAL

Quality = Literal["low", "medium", "high"]
QUALITIES: tuple[Quality, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class LayerRequest:
    """What a subscriber asked for one track (``subscription`` message)."""

    max_width: int | None = None
    max_height: int | None = None
    quality: Quality | None = None
    paused: bool = False


@dataclass(frozen=True)
class LayerPolicy:
    """The knobs of the choice (from :class:`~media.settings.MediaSettings`)."""

    upgrade_headroom: float = 1.25
    upgrade_hold_s: float = 2.0
    upgrade_hold_max_s: float = 30.0
    estimate_ttl_s: float = 5.0
    grace_s: float = 5.0
    """After a change, how long the estimate has to grow before a stall counts."""
    growth: float = 1.2
    """How much the estimate must have grown within ``grace_s`` (else the link is full)."""


class Layer:
    """One simulcast encoding and what the relay measured of it."""

    WINDOW_S = 1.0

    def __init__(self, rid: str, index: int) -> None:
        self.rid = rid
        self.index = index  # position in the offer's a=simulcast list
        self.ssrc: int | None = None
        self.width = 0
        self.height = 0
        self.bitrate_bps = 0  # over the last window
        self.fps = 0.0
        self.last_bitrate_bps = 0  # last non-zero bitrate (a paused layer keeps it)
        self.packets = 0
        self.octets = 0
        self.frames = 0
        self.keyframes = 0
        self.last_packet_at = -1e9
        self.last_keyframe_at = -1e9
        self.newest_seq = -1
        self._win_start = time.monotonic()
        self._win_octets = 0
        self._win_frames = 0
        self._win_tid_octets = [0, 0, 0, 0]
        self.temporal_bps: tuple[int, ...] = ()
        """VP8 temporal layers: the bitrate of TIDs 0..k at index k, over the last window
        (empty: the layer has none)."""

    def is_newest(self, seq: int) -> bool:
        """Whether ``seq`` is newer than every sequence number seen on this layer's SSRC."""
        newest = self.newest_seq
        if newest >= 0:
            ahead = (seq - newest) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:
                return False
        self.newest_seq = seq
        return True

    def account(self, pkt: RtpPacket, keyframe: bool, now: float, tid: int = 0) -> None:
        """Count one new packet of this layer (on the packet path: keep it cheap). Copies
        (RTX retransmissions, and the padding browsers send as RTX to probe) are not counted:
        they say nothing of what the layer costs."""
        size = len(pkt.payload)
        self.packets += 1
        self.octets += size
        self._win_octets += size
        self._win_tid_octets[tid] += size
        self.last_packet_at = now
        if pkt.marker:
            self.frames += 1
            self._win_frames += 1
        if keyframe:
            self.keyframes += 1
            self.last_keyframe_at = now

    def roll(self, now: float) -> None:
        """Close the measuring window when it is over (called from a timer, not per packet)."""
        elapsed = now - self._win_start
        if elapsed < self.WINDOW_S:
            return
        self.bitrate_bps = int(self._win_octets * 8 / elapsed)
        self.fps = round(self._win_frames / elapsed, 1)
        if self.bitrate_bps:
            self.last_bitrate_bps = self.bitrate_bps
        tids = self._win_tid_octets
        top = max((i for i, n in enumerate(tids) if n), default=0)
        cumulative: list[int] = []
        total = 0
        for n in tids[: top + 1]:
            total += n
            cumulative.append(int(total * 8 / elapsed))
        self.temporal_bps = tuple(cumulative) if top else ()
        self._win_start = now
        self._win_octets = 0
        self._win_frames = 0
        self._win_tid_octets = [0, 0, 0, 0]

    def live(self, now: float, timeout_s: float) -> bool:
        """Whether packets of this layer arrive (a paused or dropped encoding sends none)."""
        return now - self.last_packet_at <= timeout_s

    def set_stream(self, ssrc: int) -> None:
        """A new SSRC carries this layer (first seen, or the encoder restarted)."""
        self.ssrc = ssrc
        self.newest_seq = -1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def stats(self) -> dict[str, object]:
        return {
            "rid": self.rid,
            "ssrc": self.ssrc,
            "width": self.width,
            "height": self.height,
            "bitrate_bps": self.bitrate_bps,
            "fps": self.fps,
            "packets": self.packets,
            "keyframes": self.keyframes,
            "temporal_bps": list(self.temporal_bps),
        }


def rank(layers: Sequence[Layer]) -> list[Layer]:
    """Layers from lowest to highest quality: by resolution when known, else bitrate, else the
    order of the offer."""
    return sorted(layers, key=lambda x: (x.pixels, x.last_bitrate_bps, x.index))


def wanted_index(ranked: Sequence[Layer], request: LayerRequest) -> int:
    """Index in ``ranked`` of the layer the request asks for (ignoring bandwidth)."""
    top = len(ranked) - 1
    if request.quality is not None:
        return {"low": 0, "medium": min(1, top), "high": top}[request.quality]
    if request.max_width is None and request.max_height is None:
        return top
    want_w = request.max_width or 0
    want_h = request.max_height or 0
    for i, layer in enumerate(ranked):
        if layer.pixels == 0:
            continue  # size not known yet: cannot say it covers the tile
        if layer.width >= want_w and layer.height >= want_h:
            return i
    if all(layer.pixels == 0 for layer in ranked):
        return top
    return top


class LayerChooser:
    """The layer one subscriber leg should receive (see the module docstring).

    A receiver's REMB (delay-based, AIMD) only grows while it is fed more than it estimates,
    so a layer above the estimate is the probe: after a step up, the estimate rises on a link
    that carries it and drops on one that does not. The leg steps down when the estimate is
    below the current layer's bitrate and either fell by 15% from its peak (over-use), or has
    not grown by ``growth`` within ``grace_s`` of the last change, or is below half of it
    outside the ``grace_s`` after a step up.
    """

    def __init__(self, policy: LayerPolicy) -> None:
        self.policy = policy
        self.request = LayerRequest()
        self.estimate_bps: int | None = None
        self._estimate_at = -1e9
        self._hold_until = -1e9
        self._hold_s = policy.upgrade_hold_s
        self._last_up_at = -1e9
        self._changed_at = -1e9  # the last change of layer (or the first estimate)
        self._base: int | None = None  # the estimate at that change
        self._peak = 0  # the highest estimate since
        self._jump = False  # a new request may go straight to the layer it asks for
        self.downgrades = 0
        self.upgrades = 0
        self._tid = ALL_TEMPORAL  # the highest VP8 temporal layer chosen
        self._tid_hold_until = -1e9

    def ask(self, request: LayerRequest) -> None:
        """A new request from the subscriber. Asking for more than it gets goes straight to
        the layer asked for (unless a step down is on hold): an estimate made while receiving
        a thumbnail cannot show that the link carries more, and a tile that just grew should
        not climb one layer per hold. The step-down rules catch a link that cannot."""
        self._jump = request != self.request
        self.request = request

    def set_estimate(self, bps: int, now: float) -> None:
        self.estimate_bps = bps
        self._estimate_at = now
        if self._base is None:
            self._base = bps
            self._changed_at = now
        self._peak = max(self._peak, bps)

    def _fresh_estimate(self, now: float) -> int | None:
        if self.estimate_bps is None or now - self._estimate_at > self.policy.estimate_ttl_s:
            return None
        return self.estimate_bps

    def _changed(self, now: float) -> None:
        self._changed_at = now
        self._base = self.estimate_bps
        self._peak = self.estimate_bps or 0

    def choose(self, ranked: Sequence[Layer], current: Layer | None, now: float) -> Layer | None:
        """The layer to receive (None: none, paused). ``current``: the one received now."""
        if self.request.paused or not ranked:
            return None
        chosen = self._choose(ranked, current, now)
        if chosen is not current:
            self._changed(now)
        return chosen

    def _choose(self, ranked: Sequence[Layer], current: Layer | None, now: float) -> Layer:
        wanted = wanted_index(ranked, self.request)
        estimate = self._fresh_estimate(now)
        cur = ranked.index(current) if current in ranked else None
        if estimate is None:
            return ranked[wanted]
        if cur is None:
            return ranked[self._fitting(ranked, wanted, estimate)]
        if cur > wanted:
            return ranked[wanted]
        jump, self._jump = self._jump, False
        if jump and cur < wanted and now >= self._hold_until:
            self.upgrades += 1
            self._last_up_at = now
            return ranked[wanted]
        policy = self.policy
        cur_rate = ranked[cur].last_bitrate_bps
        if cur > 0 and cur_rate and estimate < cur_rate:
            overuse = estimate < 0.85 * self._peak
            stalled = now - self._changed_at >= policy.grace_s and estimate < policy.growth * (
                self._base or 0
            )
            # Far below, and not because we just changed (a receiver's estimate starts low, and
            # a probe starts below by design).
            short = (
                now - self._changed_at >= policy.grace_s
                and now - self._last_up_at >= policy.grace_s
                and estimate < 0.5 * cur_rate
            )
            if overuse or stalled or short:
                self.downgrades += 1
                if now - self._last_up_at < policy.grace_s + 2 * self._hold_s:
                    self._hold_s = min(2 * self._hold_s, policy.upgrade_hold_max_s)
                self._hold_until = now + self._hold_s
                return ranked[self._fitting(ranked, cur - 1, estimate)]
            return ranked[cur]
        if (
            cur < wanted
            and now >= self._hold_until
            and estimate >= policy.upgrade_headroom * cur_rate
        ):
            self.upgrades += 1
            self._last_up_at = now
            return ranked[cur + 1]
        if now - self._last_up_at > 10 * self._hold_s:
            self._hold_s = policy.upgrade_hold_s  # stable for a while: forgive
        return ranked[cur]

    def choose_temporal(self, ranked: Sequence[Layer], layer: Layer | None, now: float) -> int:
        """The highest VP8 temporal layer (TID) to forward of ``layer`` (3: all).

        All of them, unless the leg receives the lowest layer and its estimate is below that
        layer's bitrate: then the most temporal layers the estimate carries (the base layer at
        least). Back up one at a time, when the estimate is ``upgrade_headroom`` times what the
        leg gets and the hold since the last step down is over.
        """
        rates = layer.temporal_bps if layer is not None else ()
        estimate = self._fresh_estimate(now)
        if not rates or estimate is None or not ranked or layer is not ranked[0]:
            self._tid = ALL_TEMPORAL
            return ALL_TEMPORAL
        top = len(rates) - 1
        cur = min(self._tid, top)
        if estimate < rates[cur]:
            fit = 0
            for k in range(cur - 1, 0, -1):
                if rates[k] <= estimate:
                    fit = k
                    break
            if fit < cur:
                self._tid_hold_until = now + self._hold_s
            cur = fit
        elif (
            cur < top
            and now >= self._tid_hold_until
            and estimate >= self.policy.upgrade_headroom * rates[cur]
        ):
            cur += 1
        self._tid = ALL_TEMPORAL if cur >= top else cur
        return self._tid

    @staticmethod
    def _fitting(ranked: Sequence[Layer], top: int, estimate: int) -> int:
        """The highest layer up to ``top`` whose known bitrate the estimate carries (else 0)."""
        for i in range(max(top, 0), 0, -1):
            rate = ranked[i].last_bitrate_bps
            if rate and rate <= estimate:
                return i
        return 0
