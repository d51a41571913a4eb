"""The relay's receive statistics and NACK generator keep aiortc's results, packet for packet."""

from __future__ import annotations

import random

import pytest
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket

from relayroom.media.aiortc_hooks import FastNackGenerator, FastStreamStatistics


def _sequence(seed: int, count: int = 6000) -> list[RtpPacket]:
    """Packets with loss, reordering, duplicates and a sequence-number wrap (from 65000)."""
    rnd = random.Random(seed)
    packets = []
    seq = 65000
    for i in range(count):
        seq = (seq + (rnd.randint(2, 40) if rnd.random() < 0.03 else 1)) & 0xFFFF  # loss bursts
        packets.append(RtpPacket(sequence_number=seq, timestamp=(i // 5) * 3000 & 0xFFFFFFFF))
    for _ in range(count // 50):  # reordered neighbours and late duplicates
        j = rnd.randrange(count - 3)
        packets[j], packets[j + 2] = packets[j + 2], packets[j]
        packets.insert(j + rnd.randint(1, 30), packets[j])
    return packets


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_statistics_and_nacks_match_aiortc(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    rnd = random.Random(seed)
    theirs, ours = StreamStatistics(90000), FastStreamStatistics(90000)
    their_nacks, our_nacks = NackGenerator(), FastNackGenerator()
    reports = 0
    for packet in _sequence(seed):
        clock[0] += rnd.random() * 0.01  # both read the same arrival time
        theirs.add(packet)
        ours.add(packet)
        assert our_nacks.add(packet) == their_nacks.add(packet)
        assert our_nacks.missing == their_nacks.missing
        assert our_nacks.max_seq == their_nacks.max_seq
        if rnd.random() < 0.01:  # a receiver report reads (and resets) the interval loss
            reports += 1
            assert ours.fraction_lost == theirs.fraction_lost
        assert (ours.max_seq, ours.cycles, ours.packets_received, ours.jitter) == (
            theirs.max_seq,
            theirs.cycles,
            theirs.packets_received,
            theirs.jitter,
        )
    assert ours.packets_lost == theirs.packets_lost > 0
    assert ours.cycles == 1 << 16 and ours.jitter > 0 and reports > 10
    assert their_nacks.missing  # the sequence does leave gaps to NACK
