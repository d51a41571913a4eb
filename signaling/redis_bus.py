"""Redis node bus: node registry with heartbeats, room ownership with fencing, node channels.

Keys (prefix `rr:`):
- `rr:node:<id>`       this node is alive; SET with a TTL of `node_ttl_s`, refreshed every
                       `heartbeat_s`. A node whose key expired is dead.
- `rr:room:<room>`     "<node id>|<fence>": the room's owner. Claimed atomically (Lua); a claim
                       succeeds when the key is missing or its owner is dead, and takes a new
                       fencing token from `rr:fence:<room>` (INCR), so a stale owner can tell.
- `rr:resume:<token>`  owner node of a resumable session.
Channel `rr:chan:<id>` carries JSON operations to node `<id>` (see signaling/cluster.py).

Delivery to endpoints attached on this node stays in-process (the local bus); only traffic
between nodes touches Redis, so local rooms keep working while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relayroom.media.tasks import TaskOwner

from .bus import BusHandler, BusUnavailable, ClusterBus
from .config import ConfigError
from .logs import about

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "rr:"
OUTBOX_MAX = 10_000
MAX_CONNECTIONS = 32

# A node is alive while its key exists and its channel has a subscriber: a killed process
# loses its subscription at once (the kernel closes its socket), long before the key expires.
# KEYS: room key, fence key, node-key prefix, channel prefix. ARGV: node id.
# Returns "<owner>|<fence>" after the claim (the caller compares the owner with itself).
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local owner = string.match(current, '^([^|]+)')
  if owner == ARGV[1] then return current end
  if redis.call('EXISTS', KEYS[3] .. owner) == 1 then
    local subs = redis.call('PUBSUB', 'NUMSUB', KEYS[4] .. owner)
    if tonumber(subs[2]) > 0 then return current end
  end
end
local fence = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. fence
redis.call('SET', KEYS[1], value)
return value
"""

# KEYS: room key. ARGV: "<node>|<fence>". Deletes only our own claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: room key, fence key. ARGV: node id, our "<node>|<fence>". Keeps an owned room's claim
# (re-creating it after a Redis restart emptied the keys); returns the current value.
_REFRESH = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return current end
if not current then
  local fence = redis.call('INCR', KEYS[2])
  local value = ARGV[1] .. '|' .. fence
  redis.call('SET', KEYS[1], value)
  return value
end
return current
"""

__all__ = ["BusHandler", "BusUnavailable", "RedisBus", "require_redis"]

REDIS_EXTRA = "pip install 'relayroom[redis]'"


def require_redis() -> None:
    """Fail early, before anything is started or written, when the extra is missing."""
    _import_redis()


def _import_redis() -> tuple[Any, tuple[type[BaseException], ...]]:
    """redis.asyncio and the errors that mean "Redis is away"; imported on use because the
    `redis` package is an optional extra that a single-node install does not have."""
    try:
        import redis.asyncio as aioredis_module
        from redis.exceptions import RedisError
    except ImportError:
        raise ConfigError(
            "redis_url", f"multi-node mode needs the redis extra: {REDIS_EXTRA}"
        ) from None
    return aioredis_module, (RedisError, OSError, TimeoutError)


class RedisBus(ClusterBus):
    """A ClusterBus over Redis; wraps a LocalBus for the endpoints attached on this node."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        heartbeat_s: float = 2.0,
        node_ttl_s: float = 6.0,
        op_timeout_s: float = 2.0,
    ) -> None:
        self._aioredis, self._errors = _import_redis()
        super().__init__(node_id or "N_" + secrets.token_hex(6))
        self._url = url
        self._heartbeat_s = heartbeat_s
        self._node_ttl_ms = int(node_ttl_s * 1000)
        self._timeout = op_timeout_s
        self._redis: aioredis.Redis | None = None
        self._owned: dict[str, str] = {}  # room -> "<node>|<fence>"
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(OUTBOX_MAX)
        self._tasks = TaskOwner()
        self._info: dict[str, Any] = {"id": self.node_id}
        self.load: Callable[[], dict[str, Any]] | None = None
        """This node's load (participants, draining), published with each heartbeat."""
        self._healthy = False
        self._started_at = 0.0
        self._recovered_at = 0.0
        self._last_error_log = 0.0

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._started_at = time.monotonic()
        # A blocking pool: a burst of calls waits for a connection (up to the op timeout)
        # instead of failing with "too many connections".
        pool = self._aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=MAX_CONNECTIONS,
            timeout=self._timeout,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            decode_responses=True,
        )
        self._redis = self._aioredis.Redis(connection_pool=pool)
        try:
            await self._register()
        except self._errors as exc:
            self._log_error("cannot reach Redis at start-up: %s", exc)
        self._tasks.spawn(self._heartbeat_loop(), "bus-heartbeat")
        self._tasks.spawn(self._subscribe_loop(), "bus-subscribe")
        self._tasks.spawn(self._publish_loop(), "bus-publish")

    async def close(self) -> None:
        # Let queued operations (for example "reconnect elsewhere") reach the other nodes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), self._timeout)
        await self._tasks.close()
        if self._redis is not None:
            with contextlib.suppress(*self._errors):
                for room, claim in list(self._owned.items()):
                    await self._redis.eval(_RELEASE, 1, self._room_key(room), claim)
                await self._redis.delete(PREFIX + "node:" + self.node_id)
            await self._redis.aclose()
            self._redis = None
        self._owned.clear()
        await self._local.close()

    # --- health -------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._healthy

    @healthy.setter
    def healthy(self, value: bool) -> None:
        if value and not self._healthy:
            self._recovered_at = time.monotonic()
        self._healthy = value

    @property
    def settling(self) -> bool:
        """Just after Redis came back every node key may be missing until the nodes' next
        heartbeat: no node counts as dead and no room is claimed meanwhile."""
        return not self._healthy or (
            time.monotonic() - self._recovered_at < 2 * self._heartbeat_s
            and self._recovered_at > self._started_at + self._heartbeat_s
        )

    # --- ownership ----------------------------------------------------------------------------

    def _room_key(self, room: str) -> str:
        return PREFIX + "room:" + room

    async def claim_room(self, room: str) -> bool:
        if room in self._owned:
            return True
        if self.settling:
            raise BusUnavailable("the cluster is recovering from a Redis outage")
        value = await self._call(
            self._redis_client().eval(
                _CLAIM,
                4,
                self._room_key(room),
                PREFIX + "fence:" + room,
                PREFIX + "node:",
                PREFIX + "chan:",
                self.node_id,
            )
        )
        owner = str(value).split("|", 1)[0]
        if owner == self.node_id:
            self._owned[room] = str(value)
            log.info(
                "room=%s claimed (fence %s)", room, str(value).split("|", 1)[1], extra=about(room)
            )
            return True
        return False

    async def owner_of(self, room: str) -> str | None:
        """The live node owning `room`, if any."""
        value = await self._call(self._redis_client().get(self._room_key(room)))
        if not value:
            return None
        owner = str(value).split("|", 1)[0]
        return owner if await self.node_alive(owner) else None

    def fence(self, room: str) -> int | None:
        claim = self._owned.get(room)
        return int(claim.split("|", 1)[1]) if claim else None

    async def release_room(self, room: str) -> None:
        claim = self._owned.pop(room, None)
        if claim is not None:
            # If Redis is away the claim is taken over once this node's key expires anyway.
            with contextlib.suppress(BusUnavailable):
                await self._call(
                    self._redis_client().eval(_RELEASE, 1, self._room_key(room), claim)
                )

    async def node_alive(self, node_id: str) -> bool:
        """Key present and channel subscribed (see _CLAIM for why both)."""
        if node_id == self.node_id:
            return True
        pipe = self._redis_client().pipeline(transaction=False)
        pipe.exists(PREFIX + "node:" + node_id)
        pipe.pubsub_numsub(PREFIX + "chan:" + node_id)
        exists, numsub = await self._call(pipe.execute())
        return bool(exists) and bool(numsub) and int(numsub[0][1]) > 0

    async def set_resume(self, token: str, ttl_s: int) -> None:
        with contextlib.suppress(BusUnavailable):
            await self._call(
                self._redis_client().set(PREFIX + "resume:" + token, self.node_id, ex=ttl_s)
            )

    async def resume_owner(self, token: str) -> str | None:
        value = await self._call(self._redis_client().get(PREFIX + "resume:" + token))
        return str(value) if value else None

    async def drop_resume(self, token: str) -> None:
        with contextlib.suppress(BusUnavailable):
            await self._call(self._redis_client().delete(PREFIX + "resume:" + token))

    # --- messaging ----------------------------------------------------------------------------

    def publish(self, node_id: str, op: dict[str, Any]) -> bool:
        """Queue an operation for another node; ordered per node. False when the outbox is full."""
        try:
            self._outbox.put_nowait((PREFIX + "chan:" + node_id, json.dumps(op)))
        except asyncio.QueueFull:
            self._log_error("outbox full: dropping an operation for node %s", node_id)
            return False
        return True

    # --- internals ----------------------------------------------------------------------------

    def _redis_client(self) -> aioredis.Redis:
        if self._redis is None:
            raise BusUnavailable("the Redis bus is not started")
        return self._redis

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self._timeout)
        except self._errors as exc:
            self._log_error("Redis call failed: %s", exc)
            raise BusUnavailable(str(exc) or type(exc).__name__) from None

    def advertise(self, url: str) -> None:
        """The base URL other nodes use for this node's HTTP API (sent with the heartbeat)."""
        self._info["url"] = url

    async def node_info(self, node_id: str) -> dict[str, Any] | None:
        raw = await self._call(self._redis_client().get(PREFIX + "node:" + node_id))
        return json.loads(raw) if raw else None

    async def live_nodes(self) -> dict[str, dict[str, Any]]:
        """Every registered node and its info (id, url, started)."""
        client = self._redis_client()

        async def scan() -> list[str]:
            return [k async for k in client.scan_iter(match=PREFIX + "node:*", count=100)]

        keys = await self._call(scan())
        values = await self._call(client.mget(keys)) if keys else []
        nodes: dict[str, dict[str, Any]] = {}
        for key, raw in zip(keys, values, strict=True):
            if raw:
                nodes[str(key)[len(PREFIX) + 5 :]] = json.loads(raw)
        return nodes

    async def _register(self) -> None:
        self._info.setdefault("started", time.time())
        if self.load is not None:  # what shard placement reads (cluster_shard.py)
            try:
                self._info["load"] = self.load()
            except Exception:
                log.exception("the node's load report failed")
        info = json.dumps(self._info)
        await self._redis_client().set(PREFIX + "node:" + self.node_id, info, px=self._node_ttl_ms)
        if not self.healthy:
            log.info("node %s registered in Redis", self.node_id)
        self.healthy = True

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._register(), self._timeout)
                await self._refresh_rooms()
            except self._errors as exc:
                self.healthy = False
                self._log_error("heartbeat failed: %s", exc)
            await asyncio.sleep(self._heartbeat_s)

    async def _refresh_rooms(self) -> None:
        client = self._redis_client()
        for room, claim in list(self._owned.items()):
            value = await asyncio.wait_for(
                client.eval(
                    _REFRESH, 2, self._room_key(room), PREFIX + "fence:" + room, self.node_id, claim
                ),
                self._timeout,
            )
            if str(value).split("|", 1)[0] == self.node_id:
                self._owned[room] = str(value)
            elif self._owned.pop(room, None) is not None:
                log.warning(
                    "room=%s now owned by another node: giving it up", room, extra=about(room)
                )
                if self.on_room_lost is not None:
                    await self.on_room_lost(room)

    async def _subscribe_loop(self) -> None:
        channel = PREFIX + "chan:" + self.node_id
        while True:
            try:
                pubsub = self._redis_client().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel)
                try:
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            await self._dispatch(message["data"])
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except self._errors as exc:
                self.healthy = False
                self._log_error("subscription lost: %s; resubscribing", exc)
                await asyncio.sleep(0.5)

    async def _dispatch(self, raw: str) -> None:
        try:
            op = json.loads(raw)
        except ValueError:
            log.warning("ignoring a malformed bus message")
            return
        if self.handler is not None and isinstance(op, dict):
            try:
                await self.handler(op)
            except Exception:
                log.exception("bus handler failed on %s", op.get("op"))

    async def _publish_loop(self) -> None:
        while True:
            channel, data = await self._outbox.get()
            while True:
                try:
                    await asyncio.wait_for(
                        self._redis_client().publish(channel, data), self._timeout
                    )
                    self._outbox.task_done()  # close() waits for the outbox to be sent
                    break
                except self._errors as exc:
                    self.healthy = False
                    self._log_error("publish failed: %s; retrying", exc)
                    await asyncio.sleep(0.5)

    def _log_error(self, fmt: str, *args: object) -> None:
        # At most one line a second while Redis is down.
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            log.warning(fmt, *args)
