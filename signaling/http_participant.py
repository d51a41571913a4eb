"""A participant without a WebSocket (a WHIP publisher, a WHEP viewer): the edge is HTTP.

`HttpEdge` is the `Recipient` such a participant's room side writes to. It speaks the same
protocol as a WebSocket edge: a request is a typed client message handed to the `RoomSide`, and
its reply (`publish_answer`, or `error`) comes back through `send()` matched by `ref`. Room
broadcasts (participant lists, track news) have no one to read them and are dropped. When the
room side ends the participant (removed by an admin, media failed, duplicate identity,
shutdown), `on_end` is told, and the owner leaves the room for it as a WebSocket edge would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

from .protocol import ClientMessage, ErrorCode, ProtocolError
from .router import RoomSide

log = logging.getLogger(__name__)

_refs = itertools.count(1)


class HttpEdge:
    """Implements `Recipient` for a participant whose client talks HTTP."""

    def __init__(self, label: str, on_end: Callable[[str], None]) -> None:
        self.label = label
        self._on_end = on_end
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ended: str | None = None

    # --- Recipient ------------------------------------------------------------------------

    def send(self, data: str) -> None:
        if not self._waiting or '"ref"' not in data:
            return  # room news: an HTTP client has no channel for it
        try:
            message = json.loads(data)
        except ValueError:
            return
        waiter = self._waiting.pop(str(message.get("ref")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            log.info("%s ended: %s", self.label, reason)
            self._on_end(reason)

    # --- requests -------------------------------------------------------------------------

    async def request(
        self, link: RoomSide, make: Callable[[str], ClientMessage], timeout_s: float
    ) -> dict[str, Any] | None:
        """Hand `make(ref)` to the room side; return its reply (None: it sends none).

        A reply of type `error` raises `ProtocolError`, as a local room side raises it.
        """
        ref = f"http-{next(_refs)}"
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[ref] = waiter
        try:
            await link.handle(make(ref))
            if not waiter.done():
                await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "the room did not answer in time") from None
        finally:
            self._waiting.pop(ref, None)
        reply: dict[str, Any] = waiter.result()
        if reply.get("type") == "error":
            try:
                code = ErrorCode(str(reply.get("code")))
            except ValueError:
                code = ErrorCode.INTERNAL
            raise ProtocolError(code, str(reply.get("message", "")))
        return reply
