"""WebSocket client helpers."""

from __future__ import annotations

import asyncio
from typing import Any


async def drop(client: Any) -> None:
    """Vanish without a close handshake, as a phone losing its network does."""
    client.ws._response.connection.transport.abort()
    await asyncio.wait_for(client.closed.wait(), 5)
