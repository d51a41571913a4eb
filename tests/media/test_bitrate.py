"""media/bitrate.py gives the estimates aiortc's RemoteBitrateEstimator gives, packet for packet."""

from __future__ import annotations

import random

import pytest
from aiortc.rate import BandwidthUsage, RemoteBitrateEstimator

from relayroom.media.bitrate import BitrateEstimator

Packet = tuple[int, int, int, int]  # arrival ms, abs-send-time (24 bits), payload bytes, SSRC
NTP_MS = 3_900_000_000_000  # arrival times are NTP milliseconds, as aiortc gives them


def _trace(
    seed: int, *, seconds: float = 30.0, congest: bool = False, gap: bool = False
) -> list[Packet]:
    """Video frames (30 fps, a paced burst each) and audio (50/s) on one path.

    ``congest``: from 8 s to 14 s a queue builds (each packet later than the last), then
    drains; ``gap``: the publisher goes silent for 1.5 s at 20 s. Send times start near the
    24-bit wrap of abs-send-time (64 s) so it wraps, and a few send stamps are swapped.
    """
    rnd = random.Random(seed)
    sends: list[tuple[float, int, int]] = []
    frame = 0
    t = 0.0
    while t < seconds:
        t = frame / 30
        if not (gap and 20 <= t < 21.5):
            for i in range(rnd.randint(2, 9)):
                sends.append((t + i * 0.0011 + rnd.random() * 0.0002, 1000 + rnd.randrange(200), 1))
        frame += 1
    sends += [(k / 50, 120 + rnd.randrange(40), 2) for k in range(int(seconds * 50))]
    if gap:
        sends = [s for s in sends if not 20 <= s[0] < 21.5]
    sends.sort()
    offset = 63.5  # seconds: abs-send-time wraps after 64 s
    packets: list[Packet] = []
    last_arrival = 0
    queue = 0.0
    for send, size, ssrc in sends:
        if congest and 8 <= send < 14:
            queue += 0.0006
        else:
            queue = max(0.0, queue - 0.002)
        arrival = NTP_MS + int((send + 0.003 + queue + rnd.random() * 0.004) * 1000)
        arrival = max(arrival, last_arrival)  # arrival times are read in order
        last_arrival = arrival
        abs_send = int((send + offset) * (1 << 18)) & 0xFFFFFF
        packets.append((arrival, abs_send, size, ssrc))
    for _ in range(len(packets) // 200):  # a few send stamps out of order
        i = rnd.randrange(len(packets) - 1)
        a, b = packets[i], packets[i + 1]
        packets[i], packets[i + 1] = (a[0], b[1], a[2], a[3]), (b[0], a[1], b[2], b[3])
    return packets


def _estimates(estimator: object, packets: list[Packet]) -> list[tuple[int, int, list[int]]]:
    out = []
    for arrival, abs_send, size, ssrc in packets:
        remb = estimator.add(  # type: ignore[attr-defined]
            arrival_time_ms=arrival, abs_send_time=abs_send, payload_size=size, ssrc=ssrc
        )
        if remb is not None:
            out.append((arrival, remb[0], remb[1]))
    return out


@pytest.mark.parametrize(
    ("seed", "congest", "gap"),
    [(1, False, False), (2, True, False), (3, False, True), (4, True, True), (5, True, False)],
)
def test_same_estimates_as_aiortc(seed: int, congest: bool, gap: bool) -> None:
    packets = _trace(seed, congest=congest, gap=gap)
    theirs = RemoteBitrateEstimator()
    ours = BitrateEstimator()
    expected = _estimates(theirs, packets)
    got = _estimates(ours, packets)
    assert len(expected) > 40
    assert got == expected
    assert ours.detector.hypothesis == theirs.detector.state()
    assert ours.estimator.offset() == theirs.estimator.offset()


def test_a_congested_path_lowers_the_estimate() -> None:
    """The traces above do exercise the overuse detector (or comparing them proves little)."""
    packets = _trace(2, congest=True)
    ours = BitrateEstimator()
    overused = False
    before = after = 0
    for arrival, abs_send, size, ssrc in packets:
        remb = ours.add(
            arrival_time_ms=arrival, abs_send_time=abs_send, payload_size=size, ssrc=ssrc
        )
        overused |= ours.detector.hypothesis is BandwidthUsage.OVERUSING
        if remb is not None:
            if arrival - NTP_MS < 8000:
                before = remb[0]
            elif arrival - NTP_MS < 16000:
                after = remb[0]
    assert overused
    assert 0 < after < before
