"""A simulcast hub without sockets: which layer each leg gets, and a continuous stream for it
across switches (sequence numbers, timestamps, VP8 PictureID / TL0PICIDX)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from relayroom.media import MediaSettings, TrackInfo
from relayroom.media.forwarding import LegState
from relayroom.media.layers import LayerRequest
from relayroom.media.simulcast_hub import SimulcastHub, SimulcastLeg
from relayroom.media.vp8 import parse_descriptor, picture_id, tl0picidx
from tests.media.legs import FakeTap
from tests.simulcast.vp8data import rtp, vp8

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
SSRC = {"q": 1001, "h": 1002, "f": 1003}
SIZE = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
TS0 = {"q": 10_000, "h": 777_000, "f": 4_000_000_000}  # each SSRC has its own timestamp base
PIC0 = {"q": 5, "h": 20_000, "f": 32_700}


class Publisher:
    """Feeds a hub the way a simulcast encoder does: each frame on every layer, one packet
    per frame per layer, every layer numbered on its own."""

    def __init__(self, hub: SimulcastHub) -> None:
        self.hub = hub
        self.frame = 0
        for rid, ssrc in SSRC.items():
            hub.add_stream(ssrc, rid)

    def send(self, frames: int = 1, key: tuple[str, ...] = ()) -> None:
        for _ in range(frames):
            n = self.frame
            for rid in ("q", "h", "f"):
                payload = vp8(PIC0[rid] + n, 3 * n, key=rid in key, size=SIZE[rid], tid=n % 2)
                self.hub.on_packet(rtp(SSRC[rid], PIC0[rid] + n, TS0[rid] + 3000 * n, payload))
            self.frame += 1
            key = ()


async def make(**settings: Any) -> tuple[SimulcastHub, SimulcastLeg, FakeTap, Publisher]:
    info = TrackInfo(id="cam", kind="video", muted=False, codec="VP8")
    hub = SimulcastHub("alice", info, VP8, None, MediaSettings(**settings), ("q", "h", "f"))
    publisher = Publisher(hub)
    leg = hub.new_leg("bob", 1000, 5000)
    assert isinstance(leg, SimulcastLeg)
    tap = FakeTap()
    leg.bind(tap)  # type: ignore[arg-type]
    hub.add_leg(leg)
    await leg.on_sender_ready()
    return hub, leg, tap, publisher


def sent(tap: FakeTap) -> list[tuple[int, int, int, int, int]]:
    """(ssrc, seq, ts, picture id, tl0) of each packet the leg sent."""
    out = []
    for data in tap.sent:
        pkt = RtpPacket.parse(data)
        d = parse_descriptor(pkt.payload)
        assert d is not None
        pic, tl0 = picture_id(pkt.payload, d), tl0picidx(pkt.payload, d)
        assert pic is not None and tl0 is not None
        out.append((pkt.ssrc, pkt.sequence_number, pkt.timestamp, pic, tl0))
    return out


def assert_continuous(packets: list[tuple[int, int, int, int, int]]) -> None:
    for a, b in itertools.pairwise(packets):
        assert b[0] == a[0]  # one SSRC
        assert b[1] == (a[1] + 1) & 0xFFFF  # no gap, no repeat
        assert 0 < (b[2] - a[2]) & 0xFFFFFFFF < 0x80000000  # time moves forward
        assert b[3] == (a[3] + 1) & 0x7FFF  # one picture per packet here
        assert b[4] in (a[4], (a[4] + 1) & 0xFF, (a[4] + 3) & 0xFF)  # TL0 never jumps back


def ssrc_of(tap: FakeTap, index: int) -> int:
    return RtpPacket.parse(tap.sent[index]).ssrc


async def test_a_leg_gets_one_layer_and_waits_for_its_keyframe() -> None:
    hub, leg, tap, pub = await make()
    pub.send(2)
    assert tap.sent == []  # no keyframe yet
    pub.send(1, key=("q", "h", "f"))
    pub.send(3)
    assert len(tap.sent) == 4  # one layer only: the top one (no request: full size)
    assert leg.layer is not None and leg.layer.rid == "f"
    assert leg.state is LegState.FORWARDING
    await hub.close()


async def test_switching_down_and_up_keeps_the_stream_continuous() -> None:
    hub, leg, tap, pub = await make()
    pub.send(1, key=("q", "h", "f"))
    pub.send(4)
    assert hub.set_request("bob", LayerRequest(max_width=320, max_height=180))
    assert leg.target is not None and leg.target.rid == "q"
    pub.send(3)  # still f: q has no keyframe yet
    assert leg.layer is not None and leg.layer.rid == "f"
    pub.send(1, key=("q",))
    pub.send(4)
    assert leg.layer.rid == "q" and leg.switches == 1
    hub.set_request("bob", LayerRequest(quality="high"))
    pub.send(2)
    pub.send(1, key=("f",))
    pub.send(3)
    assert leg.layer.rid == "f"
    packets = sent(tap)
    # f: 1 + 4 + 3; q: 1 + 4 + 2 and, in the frame of f's keyframe, q's packet before it;
    # then f: 1 + 3.
    assert len(packets) == 8 + 8 + 4
    assert_continuous(packets)
    assert packets[0][1] == 1000 and packets[0][2] == 5000
    await hub.close()


async def test_size_requests_pick_the_smallest_layer_that_covers_the_tile() -> None:
    hub, leg, _tap, pub = await make()
    pub.send(1, key=("q", "h", "f"))  # sizes now known
    for request, rid in (
        (LayerRequest(max_width=320, max_height=180), "q"),
        (LayerRequest(max_width=400, max_height=200), "h"),
        (LayerRequest(max_width=960, max_height=540), "f"),
        (LayerRequest(max_width=4000), "f"),
        (LayerRequest(quality="medium"), "h"),
    ):
        hub.set_request("bob", request)
        target = leg.target or leg.layer
        assert target is not None and target.rid == rid, request
    await hub.close()


async def test_a_paused_leg_sends_nothing_and_resumes_on_a_keyframe() -> None:
    hub, leg, tap, pub = await make()
    pub.send(1, key=("q", "h", "f"))
    hub.set_request("bob", LayerRequest(paused=True))
    before = len(tap.sent)
    pub.send(3, key=("q", "h", "f"))
    assert len(tap.sent) == before and leg.layer is None
    hub.set_request("bob", LayerRequest(quality="low"))
    pub.send(2)
    assert len(tap.sent) == before
    pub.send(1, key=("q",))
    pub.send(2)
    assert len(tap.sent) == before + 3
    assert_continuous(sent(tap))
    await hub.close()


async def test_a_subscriber_estimate_picks_a_lower_layer_not_a_lower_publisher_rate() -> None:
    hub, leg, _tap, pub = await make(simulcast_upgrade_hold_s=0)
    pub.send(1, key=("q", "h", "f"))
    for layer, rate in zip(hub.layers(), (150_000, 500_000, 1_500_000), strict=True):
        layer.last_bitrate_bps = rate
    hub.subscriber_remb("bob", 1_600_000)
    hub.tick(time.monotonic())
    assert leg.target is None and leg.layer is not None and leg.layer.rid == "f"
    hub.subscriber_remb("bob", 300_000)  # fell far below f: over-use
    hub.tick(time.monotonic())
    assert leg.target is not None and leg.target.rid == "q"
    assert hub.upstream_remb is None  # nothing went to the publisher
    await hub.close()


async def test_dynacast_pauses_what_nobody_wants_and_resumes_at_once() -> None:
    hub, _leg, _tap, pub = await make(dynacast_pause_delay_s=0)
    changes: list[tuple[str, ...]] = []
    hub.on_layers = lambda _hub, active: changes.append(active)
    pub.send(1, key=("q", "h", "f"))
    hub.set_request("bob", LayerRequest(max_width=320, max_height=180))
    pub.send(1, key=("q",))
    hub.tick(time.monotonic())
    # h at once (nobody wants it), f once the leg left it for q's keyframe
    assert changes == [("q", "f"), ("q",)]
    hub.set_request("bob", LayerRequest(quality="high"))
    assert changes[-1] == ("q", "f")  # wanted again: resumed at once, not after a tick
    await hub.close()


async def test_copies_go_only_to_legs_that_missed_the_original() -> None:
    hub, _leg, tap, pub = await make()
    pub.send(1, key=("q", "h", "f"))
    pub.send(2)
    sent = len(tap.sent)
    ssrc, base, ts = SSRC["f"], PIC0["f"], TS0["f"]
    hub.on_packet(rtp(ssrc, base + 1, ts + 3000, vp8(PIC0["f"] + 1, 3)))  # padding: a copy
    assert len(tap.sent) == sent and hub.copies_dropped == 1
    # A packet lost upstream, then repaired over RTX: the repair goes out.
    hub.on_packet(rtp(ssrc, base + 4, ts + 12000, vp8(PIC0["f"] + 4, 12)))
    hub.on_packet(rtp(ssrc, base + 3, ts + 9000, vp8(PIC0["f"] + 3, 9)))
    assert len(tap.sent) == sent + 2
    await hub.close()
