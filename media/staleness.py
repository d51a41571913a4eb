"""How long a received packet waited before the relay got to it, from its RTP timestamp (sans-IO).

When the relay falls behind (its CPU starved, its event loop blocked), packets wait in the
kernel's socket buffer; forwarding them late only builds latency, and costs as much as
forwarding fresh ones. A stream's RTP timestamps advance with the sender's clock, so
``arrival - timestamp / clock_rate`` is constant for packets that did not wait, plus the delay
of those that did. The smallest value seen is the base; a packet's lateness is its value minus
the base.

- Packets of one video frame share a timestamp but a sender paces a big frame out over tens or
  hundreds of milliseconds: the decision made on a frame's first packet holds for the whole
  frame, so a keyframe is never cut by its own pacing.
- The base may rise a little per window (``rise_per_window_s`` every ``window_s``) so that clock
  drift between sender and relay, or a slower path, is followed; a sustained backlog is not
  mistaken for a slower path (it would need minutes).
- A lateness beyond ``jump_s`` is a timestamp jump (a new source, a sender restart), not a
  wait: the base starts again there.
"""

from __future__ import annotations

_MOD = 1 << 32
_HALF = 1 << 31


class StalenessGate:
    """Decides per packet whether it is later than ``max_delay_s`` against its stream's base.

    Lateness also comes from the sender (a slow encoder) and the network (jitter); the caller
    sheds a late packet only when the relay itself is behind (datagrams wait on its socket).
    """

    def __init__(
        self,
        clock_rate: int,
        max_delay_s: float,
        *,
        window_s: float = 10.0,
        rise_per_window_s: float = 0.005,
        jump_s: float = 3.0,
    ) -> None:
        self._clock = clock_rate
        self._limit = int(max_delay_s * clock_rate)
        self._window_s = window_s
        self._rise = int(rise_per_window_s * clock_rate)
        self._jump = int(jump_s * clock_rate)
        self._ssrc = -1
        self._base = 0
        self._window_end = 0.0
        self._window_min = self._jump
        self._frame_ts = -1
        self._frame_stale = False
        self.lateness_s = 0.0  # of the last frame decided

    def late(self, ssrc: int, timestamp: int, now: float) -> bool:
        """Whether this packet (read at ``now``, monotonic seconds) is late beyond the limit."""
        if timestamp == self._frame_ts and ssrc == self._ssrc:
            return self._frame_stale
        value = (int(now * self._clock) - timestamp) % _MOD
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._base = value
            self._window_end = now + self._window_s
            self._window_min = self._jump
            late = 0
        else:
            late = ((value - self._base + _HALF) % _MOD) - _HALF
            if late < 0 or late > self._jump:
                self._base = value  # faster than any before, or a timestamp jump
                late = 0
            if late < self._window_min:
                self._window_min = late
            if now >= self._window_end:
                self._base = (self._base + min(self._window_min, self._rise)) % _MOD
                self._window_min = self._jump
                self._window_end = now + self._window_s
        self._frame_ts = timestamp
        self._frame_stale = late > self._limit
        self.lateness_s = late / self._clock
        return self._frame_stale
