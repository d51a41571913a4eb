"""A relay that stalls sheds its backlog instead of delivering it late (real server process).

The `relayroom serve` process is stopped (SIGSTOP) for one second while an aiortc publisher
keeps sending, as if its event loop were blocked; the datagrams wait in its socket buffer.
When it runs again, what it forwards must be fresh: the backlog is dropped, not delivered a
second late, and media flows again (video from the next keyframe).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bench.hotpath import Call

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def delays(
    received: list[dict[str, list[tuple[float, float]]]], kind: str, after: float
) -> list[float]:
    return sorted(at - st for sub in received for st, at in sub[kind] if at >= after)


def delivered(
    received: list[dict[str, list[tuple[float, float]]]], kind: str, lo: float, hi: float
) -> int:
    return sum(1 for sub in received for st, _ in sub[kind] if lo <= st < hi)


def test_a_stalled_relay_drops_its_backlog_and_forwards_fresh_media() -> None:
    tree = Path(os.environ.get("RELAYROOM_OVERLOAD_TREE", str(ROOT)))
    with Call(tree, subscribers=2) as call:
        time.sleep(2.0)
        os.kill(call.server_pid, signal.SIGSTOP)
        stopped = time.monotonic()
        time.sleep(1.0)
        os.kill(call.server_pid, signal.SIGCONT)
        resumed = time.monotonic()
        time.sleep(3.0)
        sent, received = call.stamps(stopped - 1.0, resumed + 2.5)
    # What was sent during the stall, older than the limits (200 ms video, 300 ms audio) when
    # the relay read it, was dropped: at most a few slipped through before the gate's check.
    for kind, limit in (("video", 0.2), ("audio", 0.3)):
        stale_window = [t for t in sent[kind] if stopped + 0.05 <= t < resumed - limit - 0.05]
        assert len(stale_window) >= 10
        late = delivered(received, kind, stopped + 0.05, resumed - limit - 0.05)
        assert late <= 0.1 * len(stale_window) * len(received), (kind, late, len(stale_window))
    # Everything that arrived after the stall is fresh (slack for a busy test machine).
    for kind, limit in (("video", 0.2), ("audio", 0.3)):
        after = delays(received, kind, resumed)
        assert after, kind
        assert after[int(0.95 * (len(after) - 1))] <= limit + 0.2, (kind, after[-10:])
    # And media flows again: audio at once, video from the next keyframe (one a second).
    audio = [t for t in sent["audio"] if resumed + 0.5 <= t < resumed + 2.0]
    assert delivered(received, "audio", resumed + 0.5, resumed + 2.0) >= 0.9 * 2 * len(audio)
    video = [t for t in sent["video"] if resumed + 1.5 <= t < resumed + 2.5]
    assert delivered(received, "video", resumed + 1.5, resumed + 2.5) >= 0.5 * 2 * len(video)
