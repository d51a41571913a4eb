"""Strict JSON at the edges: what a browser's ``JSON.parse`` accepts, and nothing that hurts.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``1e400`` (as ``inf``) and keeps lone
surrogates (``"\\ud800"``) in strings; echoed or relayed, the first are bare tokens a browser
cannot parse, and the second cannot be encoded as UTF-8 (a writer that tries raises). Client
input is parsed here, every bad spot becomes a reason, and the caller rejects the message (or,
in a DataChannel batch, the one item).

Used by the signaling protocol and the DataChannel relay alike (signaling may import media; the
reverse is forbidden, so this lives here).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer a JavaScript number holds exactly; larger ones are refused."""
_MAX_INT_DIGITS: Final = 16


class _Invalid:
    """Stands in for a number the strict rules refuse (so one bad item is attributable)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<invalid: {self.reason}>"


class JsonRejected(ValueError):
    """Input that is not strict JSON; ``reason`` is a short, safe explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _constant(name: str) -> _Invalid:
    return _Invalid(f"{name} is not JSON")


def _float(text: str) -> float | _Invalid:
    value = float(text)
    return value if math.isfinite(value) else _Invalid("a number is out of range")


def _int(text: str) -> int | _Invalid:
    digits = len(text) - (text[0] == "-")
    if digits > _MAX_INT_DIGITS:  # before int(): a 4000-digit string costs quadratic time
        return _Invalid("an integer is out of range")
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else _Invalid("an integer is out of range")


def parse(text: str) -> Any:
    """Parse JSON text; refused numbers are left in place as markers that :func:`problem` finds.

    Raises :class:`JsonRejected` when the text is not JSON at all (or is nested too deeply
    for the parser).
    """
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except (ValueError, RecursionError):
        raise JsonRejected("not valid JSON") from None


def clean_text(value: str) -> bool:
    """True when the string encodes to UTF-8 (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def problem(value: Any, max_depth: int) -> str | None:
    """Why a parsed value may not be relayed, or None: a refused number, a lone surrogate, or
    nesting deeper than ``max_depth`` (a scalar has depth 0)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not clean_text(item):
                return "a string holds a lone surrogate"
        elif isinstance(item, _Invalid):
            return item.reason
        elif isinstance(item, dict):
            if depth >= max_depth:
                return f"nested deeper than {max_depth}"
            for key, child in item.items():
                if not clean_text(key):
                    return "a key holds a lone surrogate"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                return f"nested deeper than {max_depth}"
            stack.extend((child, depth + 1) for child in item)
    return None


def loads(text: str, max_depth: int) -> Any:
    """Parse and check in one go; raises :class:`JsonRejected` with the first problem."""
    value = parse(text)
    reason = problem(value, max_depth)
    if reason is not None:
        raise JsonRejected(reason)
    return value


def _scrub(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Serialise so that any browser parses it and it always encodes to UTF-8.

    Values come from validated input, so the fallbacks are a safety net: a non-finite float
    becomes ``null`` and a lone surrogate is written as a ``\\u`` escape.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_scrub(value), separators=(",", ":"), ensure_ascii=False)
    if not clean_text(text):
        text = json.dumps(_scrub(value), separators=(",", ":"), ensure_ascii=True)
    return text
