"""Schemas of DataChannel topics the server stores, checked before anything is persisted.

A persistent topic is replayed to every later joiner, so one malformed item would break the
page of everyone who joins after it (a negative ``width`` makes ``ctx.arc`` throw, a point
that is not ``[x, y]`` breaks destructuring). Topics without a schema are relayed as any
strict JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WHITEBOARD = "whiteboard"
MAX_STROKE_ID = 64
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,24}|(rgb|hsl)a?\([0-9., %]{1,40}\))$")


@dataclass(frozen=True)
class WhiteboardLimits:
    max_points: int = 1000
    """Most points in one stroke message."""
    max_width: float = 100.0
    """Widest stroke, in canvas pixels."""


def _finite(value: object, low: float, high: float) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and low <= value <= high
    )


def check_whiteboard(payload: Any, limits: WhiteboardLimits) -> str | None:
    """Why a whiteboard payload is refused, or None.

    ``{"op": "stroke", "id", "color", "width", "points": [[x, y], ...]}`` with x, y in [0, 1]
    and 0 < width <= max_width; ``{"op": "undo", "id"}``; ``{"op": "clear"}``. No other keys.
    """
    if not isinstance(payload, dict):
        return "a whiteboard payload must be an object"
    op = payload.get("op")
    if op == "clear":
        return None if payload.keys() == {"op"} else "clear takes no other field"
    stroke_id = payload.get("id")
    if not isinstance(stroke_id, str) or not 0 < len(stroke_id) <= MAX_STROKE_ID:
        return f"'id' must be a string of 1-{MAX_STROKE_ID} characters"
    if op == "undo":
        return None if payload.keys() == {"op", "id"} else "undo takes 'id' only"
    if op != "stroke":
        return "'op' must be stroke, undo or clear"
    if payload.keys() != {"op", "id", "color", "width", "points"}:
        return "a stroke has exactly op, id, color, width and points"
    color = payload["color"]
    if not isinstance(color, str) or not _COLOR.match(color):
        return "'color' must be a CSS color (#rgb, #rrggbb, a name, rgb()/hsl())"
    if not _finite(payload["width"], 0.0, limits.max_width) or payload["width"] <= 0:
        return f"'width' must be a number in (0, {limits.max_width:g}]"
    points = payload["points"]
    if not isinstance(points, list) or not 0 < len(points) <= limits.max_points:
        return f"'points' must be a list of 1-{limits.max_points} points"
    for point in points:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not _finite(point[0], 0.0, 1.0)
            or not _finite(point[1], 0.0, 1.0)
        ):
            return "each point must be [x, y] with x and y in [0, 1]"
    return None


def schema_for(topic: str, limits: WhiteboardLimits) -> Callable[[Any], str | None] | None:
    """The payload check of a topic, or None when it has no schema."""
    if topic == WHITEBOARD:
        return lambda payload: check_whiteboard(payload, limits)
    return None
