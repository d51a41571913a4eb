"""The load-test probe's arithmetic: loss, duplicates, frame completeness, latency."""

from __future__ import annotations

import pytest

from relayroom.loadtest.probe import NTP_EPOCH_OFFSET, DataProbe, StreamProbe, percentile


def ntp(unix: float) -> int:
    seconds = int(unix)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((unix - seconds) * 2**32)


def send_frame(
    probe: StreamProbe,
    first_seq: int,
    ts: int,
    packets: int,
    now: float,
    *,
    skip: frozenset[int] = frozenset(),
) -> None:
    for i in range(packets):
        seq = (first_seq + i) & 0xFFFF
        if i in skip:
            continue
        probe.on_packet(seq, ts, i == packets - 1, 1000, now, frame_start=i == 0)


def test_complete_frames_and_no_loss() -> None:
    probe = StreamProbe("video", 90000)
    for f in range(30):
        send_frame(probe, 65530 + 3 * f, 3000 * f, 3, 100.0 + f / 30)  # wraps at 65535
    assert probe.frames == 30
    assert probe.lost == 0 and probe.expected == 90
    assert probe.incomplete_frames == 0
    assert probe.fps() == pytest.approx(30 / (29 / 30), rel=0.01)


def test_a_frame_missing_a_packet_is_incomplete_and_counted_lost() -> None:
    probe = StreamProbe("video", 90000)
    send_frame(probe, 100, 0, 3, 10.0)
    send_frame(probe, 103, 3000, 3, 10.03, skip=frozenset({1}))
    send_frame(probe, 106, 6000, 3, 10.07)
    assert probe.frames == 2
    assert probe.lost == 1
    send_frame(probe, 109, 9000, 3, 12.0)  # later than the timeout: the broken frame is given up
    assert probe.incomplete_frames == 1 and probe.frames == 3


def test_a_lost_first_packet_is_noticed_with_frame_starts() -> None:
    probe = StreamProbe("video", 90000)
    send_frame(probe, 100, 0, 3, 10.0, skip=frozenset({0}))
    assert probe.frames == 0


def test_a_retransmission_completes_the_frame_and_duplicates_count_once() -> None:
    probe = StreamProbe("video", 90000)
    send_frame(probe, 100, 0, 3, 10.0, skip=frozenset({1}))
    assert probe.frames == 0
    probe.on_packet(101, 0, False, 1000, 10.05, frame_start=False)  # the NACKed packet
    probe.on_packet(101, 0, False, 1000, 10.06, frame_start=False)  # and a duplicate
    assert probe.frames == 1 and probe.duplicates == 1 and probe.packets == 3 and probe.lost == 0


def test_latency_from_the_sender_report_mapping() -> None:
    probe = StreamProbe("video", 90000)
    probe.on_sender_report(ntp(1000.0), 90000)  # RTP 90000 was sent at t=1000
    send_frame(probe, 1, 90000 + 9000, 1, 1000.1 + 0.025)  # sent 0.1 s later, arrived 25 ms after
    assert probe.latencies_ms == [pytest.approx(25.0, abs=0.1)]
    probe.on_sender_report(ntp(2000.0), 0xFFFFFF00)  # and across the RTP timestamp wrap
    send_frame(probe, 2, 0x100, 1, 2000.0 + 512 / 90000 + 0.040)
    assert probe.latencies_ms[-1] == pytest.approx(40.0, abs=0.1)


def test_audio_packets_are_frames() -> None:
    probe = StreamProbe("audio", 48000)
    for i in range(50):
        probe.on_packet(i, 960 * i, False, 80, 5.0 + i * 0.02)
    probe.on_packet(60, 960 * 60, False, 80, 6.2)
    assert (
        probe.frames == 51 and probe.lost == 10 and probe.loss_fraction() == pytest.approx(10 / 61)
    )


def test_data_probe_counts_gaps_per_sender() -> None:
    data = DataProbe()
    for n in (3, 4, 6):
        data.on_message("a", n, 1.0, 1.01)
    data.on_message("b", 0, 1.0, 1.5)
    assert data.received == 4 and data.expected == 5
    assert percentile(data.latencies_ms, 50) == pytest.approx(10.0)


def test_a_sender_report_with_an_absurd_ntp_time_gives_no_latency() -> None:
    # A report whose NTP time is zero (1900) would give a latency of 126 years.
    probe = StreamProbe("video", 90000)
    probe.on_sender_report(0, 90000)
    send_frame(probe, 1, 90000 + 3000, 1, 1_800_000_000.0)
    assert probe.latencies_ms == [] and probe.implausible_latencies == 1


def test_a_frame_given_up_asks_for_a_keyframe() -> None:
    probe = StreamProbe("video", 90000)
    asked: list[int] = []
    probe.on_incomplete_frame = lambda: asked.append(probe.incomplete_frames)
    send_frame(probe, 100, 0, 3, 10.0, skip=frozenset({1}))  # never completes
    send_frame(probe, 103, 3000, 3, 10.5)
    assert asked == []  # still waiting for a retransmission
    send_frame(probe, 106, 6000, 3, 11.2)
    assert asked == [1] and probe.frames == 2
