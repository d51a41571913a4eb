"""Active speaker detection from the audio level header extension (RFC 6464), never decoding.

Publishers' audio packets carry their level in -dBov (0 is the loudest, 127 silence). For each
window of ``interval_s`` the detector averages each publisher's power, keeps those louder than
``threshold_dbov``, and ranks them loudest first. A ranking is reported only when the ordered
list of speakers changes, so listeners hear at most one update per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SILENCE_DBOV = -127.0


@dataclass(frozen=True)
class SpeakerLevel:
    participant_id: str
    level_dbov: float
    """The window's mean level, in dBov (0 the loudest, -127 silence)."""


class SpeakerDetector:
    """Accumulates audio levels per publisher; `rank()` closes a window."""

    def __init__(self, threshold_dbov: float, max_speakers: int) -> None:
        self.threshold_dbov = threshold_dbov
        self.max_speakers = max_speakers
        self._power: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._last: tuple[str, ...] = ()

    def observe(self, participant_id: str, level: int) -> None:
        """One packet's level: its RFC 6464 value (0-127, the magnitude of -dBov)."""
        self._power[participant_id] = self._power.get(participant_id, 0.0) + 10.0 ** (-level / 10)
        self._count[participant_id] = self._count.get(participant_id, 0) + 1

    def forget(self, participant_id: str) -> None:
        self._power.pop(participant_id, None)
        self._count.pop(participant_id, None)

    def rank(self) -> list[SpeakerLevel] | None:
        """Close the window: the new ranking if it differs from the last one reported, else None."""
        levels = [
            SpeakerLevel(pid, round(_dbov(power / self._count[pid]), 1))
            for pid, power in self._power.items()
        ]
        self._power.clear()
        self._count.clear()
        speakers = sorted(
            (s for s in levels if s.level_dbov > self.threshold_dbov),
            key=lambda s: (-s.level_dbov, s.participant_id),
        )[: self.max_speakers]
        ids = tuple(s.participant_id for s in speakers)
        if ids == self._last:
            return None
        self._last = ids
        return speakers


def _dbov(mean_power: float) -> float:
    return max(SILENCE_DBOV, 10.0 * math.log10(mean_power)) if mean_power > 0 else SILENCE_DBOV
