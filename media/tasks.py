"""`TaskOwner`: the one way relayroom owns background tasks (media and signaling alike)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

logger = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended.

    One cancel() is not always enough: Python 3.11's `asyncio.wait_for` drops a cancellation
    that arrives as the call it waits on finishes, and a loop that survives errors (the Redis
    bus's heartbeat, for one) then runs on, so its closer would wait forever. Cancel again until
    done.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


class TaskOwner:
    """Owns fire-and-forget tasks so that they are cancelled and awaited on close.

    A task that fails is logged: its exception would otherwise be lost with the task.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        context: contextvars.Context | None = None,
    ) -> None:
        """Run `coro` as a task of this owner (`context`: e.g. logs.context_about)."""
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("task %s failed: %r", task.get_name(), task.exception())

    async def close(self) -> None:
        """Cancel every task and wait for them to end; idempotent."""
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()
