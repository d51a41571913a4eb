"""The Redis topic store, for multi-node mode (imported only when a Redis URL is configured).

Keys (prefix ``rr:``, shared with ``signaling/redis_bus.py``):

- ``rr:data:<room>``   LIST of ``"<topic>\\n<relayed JSON text>"``, in order.
- ``rr:fence:<room>``  the room's fencing token, incremented by every ownership claim.

Every write is a Lua script that first compares ``rr:fence:<room>`` with the fence this node
got when it claimed the room: a node that lost the room (a stale owner) cannot write.
Expiry: when a room empties its list gets ``EXPIRE ttl``; loading it ``PERSIST``s it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from .persistence import StoredMessage, TopicStore, WriteOp

logger = logging.getLogger(__name__)

PREFIX = "rr:"
OP_TIMEOUT_S = 2.0

# KEYS: fence key, data key. ARGV: fence, then the op: "append" text | "clear" topic |
# "empty" ttl_ms. Returns 1, or -1 when the fence does not match (a stale owner).
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local op = ARGV[2]
if op == 'append' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
elseif op == 'clear' then
  local prefix = ARGV[3] .. '\\n'
  local items = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2])
  for _, item in ipairs(items) do
    if string.sub(item, 1, #prefix) ~= prefix then redis.call('RPUSH', KEYS[2], item) end
  end
elseif op == 'empty' then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""


class RedisTopicStore(TopicStore):
    """Room histories in Redis, written only by the room's current (fenced) owner."""

    def __init__(self, url: str, *, ttl_s: float, fence: Callable[[str], int | None]) -> None:
        super().__init__()
        self._url = url
        self.ttl_s = ttl_s
        self._fence = fence
        self._redis: aioredis.Redis | None = None
        self.stale_writes = 0

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the topic store is not open")
        return self._redis

    async def _open(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self._url,
            decode_responses=True,
            socket_timeout=OP_TIMEOUT_S,
            socket_connect_timeout=OP_TIMEOUT_S,
        )
        logger.info("topic store: Redis")

    async def _close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _write(self, batch: list[WriteOp]) -> None:
        pipe = self._client().pipeline(transaction=False)
        ops: list[WriteOp] = []
        for op in batch:
            fence = self._fence(op.room)
            if fence is None:
                self.stale_writes += 1
                continue
            if op.kind == "append":
                arg = f"{op.topic}\n{op.text}"
            elif op.kind == "clear":
                arg = op.topic
            else:
                arg = str(int(self.ttl_s * 1000))
            pipe.eval(
                _WRITE,
                2,
                PREFIX + "fence:" + op.room,
                PREFIX + "data:" + op.room,
                fence,
                op.kind,
                arg,
            )
            ops.append(op)
        if not ops:
            return
        results = await asyncio.wait_for(pipe.execute(), OP_TIMEOUT_S * 2)
        stale = [op.room for op, result in zip(ops, results, strict=True) if result == -1]
        if stale:
            self.stale_writes += len(stale)
            logger.warning(
                "topic store: %d writes refused (stale owner of %s)", len(stale), sorted(set(stale))
            )

    async def _load(self, room: str) -> list[StoredMessage]:
        key = PREFIX + "data:" + room
        pipe = self._client().pipeline(transaction=False)
        pipe.persist(key)
        pipe.lrange(key, 0, -1)
        _, items = await asyncio.wait_for(pipe.execute(), OP_TIMEOUT_S * 2)
        out = []
        for seq, item in enumerate(items):
            topic, _, text = str(item).partition("\n")
            out.append(StoredMessage(seq, topic, text))
        return out
