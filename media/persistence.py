"""Persistent DataChannel topics: the store interface, write-behind, and the SQLite store.

The room's relay keeps the authoritative history of its persistent topics in memory
(:class:`media.datachannels.TopicLog`); a store only makes it outlive the process. Writes are
queued and applied in batches by one background task, so the event loop never waits on disk or
network; a room's history is read once, when the room starts on this node.

Two implementations: :class:`SqliteTopicStore` (single node, a file in the data dir) and
``media.persistence_redis.RedisTopicStore`` (multi-node; imported only when a Redis URL is set).

Expiry: when a room empties, the store starts its clock; a room empty for longer than
``ttl_s`` loses its history. Loading a room stops the clock.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

WRITE_QUEUE_MAX = 50_000
"""Queued writes before new ones are dropped (and counted); the in-memory log stays right."""


@dataclass(frozen=True)
class StoredMessage:
    """One persisted message: its topic and the exact text relayed (``from`` included)."""

    seq: int
    topic: str
    text: str


@dataclass(frozen=True)
class WriteOp:
    """A queued change to one room's history."""

    kind: Literal["append", "clear", "empty"]
    room: str
    seq: int = 0
    topic: str = ""
    text: str = ""
    at: float = 0.0


class TopicStore(abc.ABC):
    """Where persistent topics live between processes. Writes are fire-and-forget."""

    def __init__(self) -> None:
        self._pending: list[WriteOp] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.write_drops = 0
        self.write_failures = 0

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Open the backing storage and start the writer."""
        await self._open()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="store")

    async def close(self) -> None:
        """Write what is queued, then close; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 10)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._close()

    # ---------------------------------------------------------------- writes (queued)

    def append(self, room: str, seq: int, topic: str, text: str) -> None:
        self._queue(WriteOp("append", room, seq, topic, text))

    def clear(self, room: str, topic: str) -> None:
        """Delete a topic's history in a room (a ``clear`` message)."""
        self._queue(WriteOp("clear", room, topic=topic))

    def room_empty(self, room: str) -> None:
        """The room has no participant left on this node: its expiry clock starts."""
        self._queue(WriteOp("empty", room, at=time.time()))

    def _queue(self, op: WriteOp) -> None:
        if len(self._pending) >= WRITE_QUEUE_MAX:
            self.write_drops += 1
            if self.write_drops in (1, 10, 100) or self.write_drops % 1000 == 0:
                logger.warning("topic store: write queue full, %d writes dropped", self.write_drops)
            return
        self._pending.append(op)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every queued write has been applied (or has failed)."""
        if self._writer is None:
            return
        await self._idle.wait()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.write_failures += len(batch)
                    logger.warning("topic store: %d writes failed: %r", len(batch), exc)
            self._idle.set()

    # ---------------------------------------------------------------- reads

    async def load(self, room: str) -> list[StoredMessage]:
        """The room's persisted messages in order; stops its expiry clock (it is in use)."""
        await self.flush()
        return await self._load(room)

    # ---------------------------------------------------------------- implementation

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    async def _write(self, batch: list[WriteOp]) -> None: ...

    @abc.abstractmethod
    async def _load(self, room: str) -> list[StoredMessage]: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    emptied_at REAL            -- NULL while in use; set when the room empties (expiry clock)
);
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,       -- order within the room
    topic TEXT NOT NULL,
    text TEXT NOT NULL,         -- the relayed JSON text, "from" included
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_topic ON messages (room, topic);
"""


class SqliteTopicStore(TopicStore):
    """An embedded SQLite database (``<data dir>/rooms.sqlite3``), used by one process.

    Every database call runs on one dedicated thread; writes go in one transaction per batch.
    """

    def __init__(self, path: Path, *, ttl_s: float, sweep_interval_s: float | None = None):
        super().__init__()
        self.path = path
        self.ttl_s = ttl_s
        self._sweep_interval_s = sweep_interval_s or min(max(ttl_s / 4, 0.05), 60.0)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], object]) -> object:
        db, executor = self._db, self._executor
        if db is None or executor is None:
            raise RuntimeError("the topic store is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, db)

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            return db

        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._executor, connect)
        await self.sweep()
        self._sweeper = loop.create_task(self._sweep_loop(), name="store-sweep")
        logger.info("topic store: SQLite at %s", self.path)

    async def _close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _write(self, batch: list[WriteOp]) -> None:
        def apply(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                for op in batch:
                    if op.kind == "append":
                        db.execute(
                            "INSERT OR REPLACE INTO messages (room, seq, topic, text) "
                            "VALUES (?, ?, ?, ?)",
                            (op.room, op.seq, op.topic, op.text),
                        )
                    elif op.kind == "clear":
                        db.execute(
                            "DELETE FROM messages WHERE room = ? AND topic = ?", (op.room, op.topic)
                        )
                    else:
                        db.execute(
                            "INSERT INTO rooms (room, emptied_at) VALUES (?, ?) "
                            "ON CONFLICT (room) DO UPDATE SET emptied_at = excluded.emptied_at",
                            (op.room, op.at),
                        )

        await self._run(apply)

    async def _load(self, room: str) -> list[StoredMessage]:
        cutoff = time.time() - self.ttl_s

        def load(db: sqlite3.Connection) -> list[StoredMessage]:
            with db:
                db.execute("BEGIN")
                row = db.execute("SELECT emptied_at FROM rooms WHERE room = ?", (room,)).fetchone()
                if row is not None and row[0] is not None and row[0] < cutoff:
                    db.execute("DELETE FROM messages WHERE room = ?", (room,))
                db.execute(
                    "INSERT INTO rooms (room, emptied_at) VALUES (?, NULL) "
                    "ON CONFLICT (room) DO UPDATE SET emptied_at = NULL",
                    (room,),
                )
                rows = db.execute(
                    "SELECT seq, topic, text FROM messages WHERE room = ? ORDER BY seq", (room,)
                ).fetchall()
            return [StoredMessage(int(s), str(t), str(x)) for s, t, x in rows]

        result = await self._run(load)
        assert isinstance(result, list)
        return result

    async def sweep(self) -> int:
        """Delete the history of rooms empty for longer than ``ttl_s``; returns how many."""
        cutoff = time.time() - self.ttl_s

        def sweep(db: sqlite3.Connection) -> int:
            with db:
                db.execute("BEGIN")
                rooms = [
                    r[0]
                    for r in db.execute(
                        "SELECT room FROM rooms WHERE emptied_at IS NOT NULL AND emptied_at < ?",
                        (cutoff,),
                    )
                ]
                for room in rooms:
                    db.execute("DELETE FROM messages WHERE room = ?", (room,))
                    db.execute("DELETE FROM rooms WHERE room = ?", (room,))
            return len(rooms)

        count = await self._run(sweep)
        assert isinstance(count, int)
        if count:
            logger.info("topic store: %d empty rooms expired", count)
        return count

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            try:
                await self.flush()
                await self.sweep()
            except Exception as exc:
                logger.warning("topic store: sweep failed: %r", exc)


def open_store(
    *,
    data_dir: Path,
    redis_url: str | None,
    ttl_s: float,
    fence: Callable[[str], int | None] | None = None,
) -> TopicStore:
    """The store for this node: Redis in multi-node mode (fenced writes), else SQLite."""
    if redis_url:
        from .persistence_redis import RedisTopicStore

        return RedisTopicStore(redis_url, ttl_s=ttl_s, fence=fence or (lambda room: None))
    return SqliteTopicStore(data_dir / "rooms.sqlite3", ttl_s=ttl_s)
