"""What the node counts for its metrics: errors sent to clients, and contained failures."""

from __future__ import annotations

from collections import Counter

from .protocol import ErrorCode


class NodeCounts:
    """Shared by the edges, the admin API and the HTTP guard; read by `/metrics`."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        """Protocol errors sent to clients, by code."""
        self.failures: Counter[str] = Counter()
        """Failures contained to one participant or one client, by place
        (metric relayroom_contained_failures)."""

    def error(self, code: ErrorCode) -> None:
        self.errors[code.value] += 1

    def failure(self, where: str) -> None:
        """A failure was contained (one message dropped, one client cut off): count it."""
        self.failures[where] += 1
