"""A 64-bit stamp drawn into a video frame's luma as 16x16 blocks, so it survives VP8.

Bits 0-15: frame counter; 16-47: wall-clock milliseconds (mod 2**32) when the frame was made;
48-63: a check word, so a frame whose blocks were smeared by the codec reads as None.
"""

from __future__ import annotations

from typing import Any

BLOCK = 16
COLUMNS = 16
BITS = 64
WIDTH = BLOCK * COLUMNS  # the stamp needs frames at least this wide
HEIGHT = BLOCK * (BITS // COLUMNS)


def _check(counter: int, ms: int) -> int:
    return ~(counter ^ (ms & 0xFFFF) ^ (ms >> 16)) & 0xFFFF


def draw(y: Any, counter: int, ms: int) -> None:
    """Draw the stamp into the top-left corner of a luma plane (numpy, rows x columns)."""
    counter &= 0xFFFF
    ms &= 0xFFFFFFFF
    value = counter | (ms << 16) | (_check(counter, ms) << 48)
    for i in range(BITS):
        row, col = divmod(i, COLUMNS)
        y[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = (
            235 if (value >> i) & 1 else 16
        )


def read(y: Any) -> tuple[int, int] | None:
    """(counter, ms) from a luma plane, or None when the check word does not match."""
    value = 0
    half = BLOCK // 2
    for i in range(BITS):
        row, col = divmod(i, COLUMNS)
        cy, cx = row * BLOCK + half, col * BLOCK + half
        if y[cy - 3 : cy + 3, cx - 3 : cx + 3].mean() > 128:
            value |= 1 << i
    counter, ms, check = value & 0xFFFF, (value >> 16) & 0xFFFFFFFF, value >> 48
    return (counter, ms) if check == _check(counter, ms) else None
