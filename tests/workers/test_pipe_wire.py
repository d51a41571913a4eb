"""The pipe datagram format alone (sans-IO): sealing, authentication, the replay window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relayroom.media.pipe_wire import (
    OVERHEAD,
    Kind,
    ReplayWindow,
    authentic,
    body,
    estimate_body,
    parse_estimate,
    parse_sender_report,
    peek,
    pipe_key,
    seal,
    sender_report_body,
)

KEY = pipe_key("secret")


def test_a_sealed_datagram_is_authentic_and_keeps_its_header_and_body() -> None:
    data = seal(KEY, Kind.RTP, 0xDEADBEEF, 7, b"payload")
    header = peek(data)
    assert header is not None
    assert (header.kind, header.pipe_id, header.counter) == (Kind.RTP, 0xDEADBEEF, 7)
    assert authentic(KEY, data) and body(data) == b"payload"
    assert len(data) == OVERHEAD + len(b"payload")


def test_another_clusters_key_is_not_authentic() -> None:
    data = seal(pipe_key("other"), Kind.KEEPALIVE, 1, 1)
    assert peek(data) is not None and not authentic(KEY, data)


@given(st.binary(max_size=64), st.integers(0, OVERHEAD + 63), st.integers(1, 255))
def test_any_changed_byte_breaks_the_tag(payload: bytes, at: int, bit: int) -> None:
    data = bytearray(seal(KEY, Kind.RTP, 5, 9, payload))
    at %= len(data)
    data[at] ^= bit
    assert not authentic(KEY, bytes(data))


@given(st.binary(max_size=OVERHEAD - 1))
def test_short_datagrams_are_malformed(data: bytes) -> None:
    assert peek(data) is None


def test_feedback_bodies_round_trip() -> None:
    assert parse_estimate(estimate_body(1_234_567)) == 1_234_567
    assert parse_estimate(b"\x00") is None
    assert parse_sender_report(sender_report_body(1, 2, 3)) == (1, 2, 3)
    assert parse_sender_report(b"") is None


@given(st.lists(st.integers(1, 600), max_size=300))
def test_replay_window_accepts_each_counter_once_and_nothing_too_old(counters: list[int]) -> None:
    window = ReplayWindow(64)
    seen: set[int] = set()
    highest = 0
    for counter in counters:
        fresh = counter not in seen and counter > highest - 64
        assert window.accept(counter) is fresh, (counter, highest)
        if fresh:
            seen.add(counter)
            highest = max(highest, counter)


def test_replay_window_takes_a_big_jump_and_refuses_zero() -> None:
    window = ReplayWindow()
    assert not window.accept(0)
    assert window.accept(1) and window.accept(1 << 62) and not window.accept(1)
