"""Log output: plain text for people (the default) or one JSON object per line.

`log_format = "json"` writes `{"time", "level", "logger", "message", "room", "participant",
"node"}` per line (plus `exception` with a traceback); `room` and `participant` only on lines
about them. A line learns them in one of two ways:

- explicitly, as the record attributes `room` and `participant`:
  `log.info("...", extra=about(room, participant_id))`. relayroom.media, which does not import
  signaling, passes the same two keys in a plain dict;
- from its task's context: the connection handler calls `bind(room, participant)` once joined,
  so every later line of that task and of the tasks it starts (aiortc's, aioice's) carries them;
  work started for someone else runs in `context_about(...)`.

An explicit `room` wins over the context, with its own `participant` (or none). The node id is
the same on every line of a process (`set_node`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# (room, participant id) of the current task; tasks inherit it from the task that made them.
_CONTEXT: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "relayroom_log_context", default=(None, None)
)


def about(room: str | None, participant: str | None = None) -> dict[str, Any]:
    """`extra=` for a line about a room (and one of its participants)."""
    return {"room": room, "participant": participant}


def bind(room: str | None, participant: str | None = None) -> None:
    """Label the rest of the current task (and the tasks it starts) with these ids."""
    _CONTEXT.set((room, participant))


def context_about(room: str | None, participant: str | None = None) -> contextvars.Context:
    """A copy of the current context labelled with these ids, for `create_task(context=...)`."""
    context = contextvars.copy_context()
    context.run(_CONTEXT.set, (room, participant))
    return context


class ContextFilter(logging.Filter):
    """Puts `room`, `participant` and `node` on every record that passes the handler."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "room", None) is None:
            record.room, record.participant = _CONTEXT.get()
        elif not hasattr(record, "participant"):
            record.participant = None
        record.node = self.node
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; absent ids are left out rather than null."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("room", "participant", "node"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str, log_format: str) -> None:
    """Send every logger's records to stderr in `log_format` (`text` or `json`)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def set_node(node_id: str) -> None:
    """Name this process's node on every line from now on."""
    for handler in logging.getLogger().handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, ContextFilter):
                log_filter.node = node_id
