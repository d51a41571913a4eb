"""Temporal layers and frame boundaries on a simulcast leg, without sockets: synthetic VP8
packets as a simulcast encoder sends them (L1T3, several packets a frame)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from relayroom.media import MediaSettings, TrackInfo
from relayroom.media.layers import LayerRequest
from relayroom.media.simulcast_hub import SimulcastHub, SimulcastLeg
from relayroom.media.vp8 import parse_descriptor, picture_id, tl0picidx
from tests.media.legs import FakeTap
from tests.simulcast.vp8data import rtp, vp8

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
SSRC = {"q": 2001, "f": 2003}
SIZE = {"q": (320, 180), "f": (1280, 720)}
PACKETS = {"q": 2, "f": 3}  # packets a frame
PATTERN = (0, 2, 1, 2)  # libvpx's L1T3 TIDs


class Encoder:
    """Two layers, each frame on both, each layer numbered on its own; L1T3 on each."""

    def __init__(self, hub: SimulcastHub) -> None:
        self.hub = hub
        self.n = 0
        self.seq = {"q": 100, "f": 60_000}
        for rid, ssrc in SSRC.items():
            hub.add_stream(ssrc, rid)

    def packets(self, rid: str, key: bool = False) -> list[RtpPacket]:
        """One frame of ``rid`` (frame number ``self.n``)."""
        n = self.n
        tid = 0 if key else PATTERN[n % 4]
        pic = 1000 * len(rid) + n
        out = []
        count = PACKETS[rid]
        for i in range(count):
            payload = vp8(pic, n // 4, key=key, start=i == 0, size=SIZE[rid], tid=tid)
            ts = 90_000 * len(rid) + 3000 * n
            out.append(rtp(SSRC[rid], self.seq[rid], ts, payload, marker=int(i == count - 1)))
            self.seq[rid] += 1
        return out

    def send(self, frames: int = 1, key: tuple[str, ...] = ()) -> None:
        for _ in range(frames):
            for rid in ("q", "f"):
                for pkt in self.packets(rid, rid in key):
                    self.hub.on_packet(pkt)
            self.n += 1
            key = ()


async def make(**settings: Any) -> tuple[SimulcastHub, SimulcastLeg, FakeTap, Encoder]:
    info = TrackInfo(id="cam", kind="video", muted=False, codec="VP8")
    hub = SimulcastHub("alice", info, VP8, None, MediaSettings(**settings), ("q", "f"))
    encoder = Encoder(hub)
    leg = hub.new_leg("bob", 40_000, 5000)
    assert isinstance(leg, SimulcastLeg)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    return hub, leg, tap, encoder


def sent(tap: FakeTap) -> list[RtpPacket]:
    return [RtpPacket.parse(data) for data in tap.sent]


def pic_tl0(pkt: RtpPacket) -> tuple[int, int]:
    d = parse_descriptor(pkt.payload)
    assert d is not None
    pic, tl0 = picture_id(pkt.payload, d), tl0picidx(pkt.payload, d)
    assert pic is not None and tl0 is not None
    return pic, tl0


def frames(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    """The packets grouped by timestamp, in order."""
    return [list(g) for _, g in itertools.groupby(packets, key=lambda p: p.timestamp)]


async def test_dropped_temporal_layers_keep_sequence_numbers_and_picture_ids_continuous() -> None:
    hub, leg, tap, enc = await make(simulcast_upgrade_hold_s=0)
    hub.set_request("bob", LayerRequest(quality="low"))
    enc.send(1, key=("q", "f"))
    enc.send(7)
    assert leg.layer is not None and leg.layer.rid == "q"
    full = len(tap.sent)
    # The lowest layer is too much for the subscriber's estimate: only TID 0 fits.
    leg.layer.temporal_bps = (40_000, 70_000, 100_000)
    leg.layer.last_bitrate_bps = 100_000
    hub.subscriber_remb("bob", 50_000)
    hub.tick(time.monotonic())
    enc.send(16)
    packets = sent(tap)
    after = packets[full:]
    assert len(after) == 4 * PACKETS["q"]  # 4 of 16 frames: the TID 0 ones
    assert leg.temporal_dropped == 12 * PACKETS["q"]
    for a, b in itertools.pairwise(packets):
        assert b.sequence_number == (a.sequence_number + 1) & 0xFFFF  # dropped != lost
        assert 0 <= (b.timestamp - a.timestamp) & 0xFFFFFFFF < 0x80000000
    pics = [pic_tl0(p)[0] for p in packets if p.payload[0] & 0x10]  # one per frame
    assert all(b == a + 1 for a, b in itertools.pairwise(pics)), pics
    tl0s = [pic_tl0(p)[1] for p in after]
    assert all(0 <= b - a <= 1 for a, b in itertools.pairwise(tl0s)), tl0s
    assert leg.max_temporal == 0
    # The estimate recovers: one temporal layer a tick (hold 0 here), all of them again from
    # the next keyframe.
    hub.subscriber_remb("bob", 1_000_000)
    hub.tick(time.monotonic())
    hub.tick(time.monotonic())
    enc.send(1, key=("q",))
    before = len(tap.sent)
    enc.send(4)
    assert len(tap.sent) - before == 4 * PACKETS["q"]
    await hub.close()


async def test_a_switch_waits_until_the_old_layers_frame_is_complete() -> None:
    hub, leg, tap, enc = await make()
    enc.send(1, key=("q", "f"))
    enc.send(2)
    assert leg.layer is not None and leg.layer.rid == "f"
    hub.set_request("bob", LayerRequest(quality="low"))
    # q's keyframe lands while f's frame is half sent (its marker packet still to come).
    f_frame = enc.packets("f")
    q_key = enc.packets("q", key=True)
    hub.on_packet(f_frame[0])
    for pkt in q_key:
        hub.on_packet(pkt)
    assert leg.layer.rid == "f" and leg.switches_deferred == 1
    for pkt in f_frame[1:]:
        hub.on_packet(pkt)
    enc.n += 1
    enc.send(1, key=("q",))  # the next keyframe of q: the switch happens here
    enc.send(2)
    assert leg.layer.rid == "q" and leg.switches == 1
    groups = frames(sent(tap))
    for group in groups:  # every frame the subscriber got is whole
        assert group[-1].marker == 1 and not any(p.marker for p in group[:-1])
        assert group[0].payload[0] & 0x10
    assert len(groups) == 3 + 1 + 3
    await hub.close()


@pytest.mark.parametrize("max_deferrals", [0, 1, 2])
async def test_a_switch_is_deferred_at_most_max_deferrals_times(max_deferrals: int) -> None:
    # A sender that interleaves its layers' packets lands every keyframe of q mid-frame of f:
    # the leg lets go of max_deferrals of them, then switches anyway (cutting f's frame short).
    hub, leg, tap, enc = await make(simulcast_switch_max_deferrals=max_deferrals)
    enc.send(1, key=("q", "f"))
    enc.send(2)
    hub.set_request("bob", LayerRequest(quality="low"))
    for _ in range(max_deferrals + 1):
        f_frame = enc.packets("f")
        hub.on_packet(f_frame[0])
        for pkt in enc.packets("q", key=True):
            hub.on_packet(pkt)
        for pkt in f_frame[1:]:
            hub.on_packet(pkt)
        enc.n += 1
    assert leg.layer is not None and leg.layer.rid == "q"
    assert leg.switches == 1 and leg.switches_deferred == max_deferrals
    assert leg.deferred_since_switch == 0
    groups = frames(sent(tap))
    cut = [g for g in groups if g[-1].marker != 1]  # f's frame the switch cut short
    assert len(cut) == 1 and groups[-1][-1].marker == 1
    assert groups[-1][0].payload[0] & 0x10  # then q's keyframe, from its first packet
    await hub.close()


async def test_a_switch_at_a_frame_boundary_is_not_deferred() -> None:
    hub, leg, _tap, enc = await make()
    enc.send(1, key=("q", "f"))
    hub.set_request("bob", LayerRequest(quality="low"))
    enc.send(1, key=("q",))
    assert leg.layer is not None and leg.layer.rid == "q" and leg.switches_deferred == 0
    await hub.close()
