"""Rooms spanning workers: a room's home fills up, later members get their media on the other
worker (a shard), and published tracks are piped between the two. Real supervisor and worker
processes, real aiortc peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from tests.conftest import WsClient, token_for
from tests.data.peer import DataClient
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber
from tests.support.whip import WhipPublisher
from tests.workers.host import Host

pytestmark = pytest.mark.slow


class Peer:
    """A member that answers every subscriber offer and may publish; one task reads its
    socket (WsClient.expect is not for concurrent readers)."""

    def __init__(self, ws: WsClient, joined: dict[str, Any]) -> None:
        self.ws = ws
        self.joined = joined
        self.id = str(joined["participant"]["id"])
        self.sees = WsSubscriber(ws)
        self.pc: Any = None
        self.messages: list[dict[str, Any]] = []
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.inbox.get()
            self.messages.append(message)
            if message["type"] == "subscribe_offer":
                pc = self.sees.pc
                await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                configure_ice(pc, LOOPBACK)
                await pc.setLocalDescription(await pc.createAnswer())
                await self.ws.send({"type": "subscribe_answer", "sdp": pc.localDescription.sdp})
            elif message["type"] == "publish_answer":
                self._answers.put_nowait(message)

    async def publish(self) -> None:
        pc = client_pc()
        pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        configure_ice(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        await self.ws.send({"type": "publish_offer", "sdp": pc.localDescription.sdp})
        answer = await asyncio.wait_for(self._answers.get(), 15)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self.pc = pc

    def rates_after(self, before: dict[str, int], seconds: float) -> list[float]:
        return [
            (len(c) - before[t]) / seconds for t, c in self.sees.counters.items() if before.get(t)
        ]

    def counts(self) -> dict[str, int]:
        return {t: len(c) for t, c in self.sees.counters.items()}

    async def close(self) -> None:
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        await self.sees.close()
        if self.pc is not None:
            await self.pc.close()


async def join(session: aiohttp.ClientSession, url: str, room: str, identity: str) -> Peer:
    ws = WsClient(await session.ws_connect(url))
    return Peer(ws, await ws.join(room, identity, mode="sfu"))


def shard_lines(h: Host) -> list[str]:
    return [line for line in h.log().splitlines() if "media on shard" in line]


async def test_a_room_spans_two_workers_and_everyone_sees_everyone_at_25_fps(host) -> None:
    h = host("--no-turn", room_shard_max_participants="2")
    async with aiohttp.ClientSession() as session:
        peers: list[Peer] = []
        try:
            alice = await join(session, h.ws_url, "big", "alice")
            peers.append(alice)
            home = await h.room_node("big")
            peers.append(await join(session, h.ws_url, "big", "carol"))
            # The home has 2 members with media: the next ones go to the other worker.
            bob = await join(session, h.ws_url, "big", "bob")
            peers.append(bob)
            peers.append(await join(session, h.ws_url, "big", "dave"))
            assert await eventually(lambda: len(shard_lines(h)) == 2, 5), h.log()
            shard = {w["node"] for w in await h.workers()} - {home}
            assert all(next(iter(shard)) in line for line in shard_lines(h))
            await alice.publish()  # on the home
            await bob.publish()  # on the shard
            watchers = {
                "carol": peers[1],  # home member watching alice (local) and bob (piped in)
                "dave": peers[3],  # shard member watching alice (piped in) and bob (local)
                "alice": alice,  # sees bob through the pipe
                "bob": bob,  # sees alice through the pipe
            }

            def both_seen(p: Peer, n: int) -> bool:
                return sum(1 for c in p.sees.counters.values() if len(c) >= n) >= (
                    1 if p in (alice, bob) else 2
                )

            assert await eventually(lambda: all(both_seen(p, 30) for p in watchers.values()), 30), {
                k: {t: len(c) for t, c in p.sees.counters.items()} for k, p in watchers.items()
            }
            before = {name: p.counts() for name, p in watchers.items()}
            await asyncio.sleep(6)
            rates = {name: p.rates_after(before[name], 6) for name, p in watchers.items()}
            assert all(r and min(r) >= 25 for r in rates.values()), rates
            # /metrics (the whole host): alice's 2 tracks piped to the shard, bob's 2 to the home.
            async with session.get(h.url + "/metrics") as response:
                text = await response.text()

            def total(prefix: str) -> float:
                return sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith(prefix)
                )

            assert total('relayroom_pipes{type="in"') == 4, text
            assert total('relayroom_pipes{type="out"') == 4
            assert total('relayroom_pipe_datagrams_total{reason="accepted"') > 100
            assert total('relayroom_pipe_datagrams_total{reason="unauthenticated"') == 0
            # Everyone is in one room: the shard's members were announced to the home's.
            assert {p["identity"] for p in peers[3].joined["participants"]} == {
                "alice",
                "carol",
                "bob",
            }
        finally:
            for p in peers:
                await p.close()


async def test_data_messages_cross_between_the_home_and_a_shard_once_each(host) -> None:
    h = host("--no-turn", room_shard_max_participants="1")
    async with aiohttp.ClientSession() as session:
        clients: list[DataClient] = []
        try:
            for identity in ("alice", "bob", "carol"):  # alice on the home, the others not
                ws = WsClient(await session.ws_connect(h.ws_url))
                await ws.join("chat", identity, mode="sfu")
                clients.append(DataClient(ws))
                await clients[-1].start()
            alice, bob, carol = clients
            assert await eventually(lambda: len(shard_lines(h)) == 2, 5), h.log()
            alice.send("chat", {"n": 1})
            bob.send("chat", {"n": 2}, lossy=True)
            carol.send("chat", {"n": 3}, to=[alice.id])

            def got(c: DataClient) -> list[tuple[str, int]]:
                return sorted((m["from"], m["payload"]["n"]) for m in c.messages("chat"))

            expected = {
                "alice": [(bob.id, 2), (carol.id, 3)],
                "bob": [(alice.id, 1)],
                "carol": [(alice.id, 1), (bob.id, 2)],
            }
            names = dict(zip(("alice", "bob", "carol"), clients, strict=True))
            assert await eventually(
                lambda: all(got(names[n]) == sorted(e) for n, e in expected.items()), 10
            ), {n: got(c) for n, c in names.items()}
            await asyncio.sleep(0.5)  # and nothing twice
            assert all(got(names[n]) == sorted(e) for n, e in expected.items())
        finally:
            for c in clients:
                await c.close()


async def test_kill_9_of_a_shard_worker_its_members_rejoin_within_10s_and_tracks_come_back(
    host,
) -> None:
    h = host("--no-turn", room_shard_max_participants="2")
    async with aiohttp.ClientSession() as session:
        peers: dict[str, Peer] = {}
        try:
            for name in ("alice", "carol", "bob", "dave"):
                peers[name] = await join(session, h.ws_url, "big", name)
            assert await eventually(lambda: len(shard_lines(h)) == 2, 5), h.log()
            home = await h.room_node("big")
            shard = next(w for w in await h.workers() if w["node"] != home)
            await peers["alice"].publish()
            await peers["bob"].publish()  # his media is on the shard
            carol = peers["carol"]
            assert await eventually(
                lambda: sum(1 for c in carol.sees.counters.values() if len(c) >= 30) == 2, 30
            ), carol.counts()
            killed_at = time.monotonic()
            os.kill(int(shard["pid"]), signal.SIGKILL)
            # The home learns at once (its link to the supervisor says so): bob's piped track
            # ends for carol, and bob and dave are told to reconnect (node_failed).
            bob, dave = peers["bob"], peers["dave"]
            assert await eventually(lambda: bob.ws.closed.is_set() and dave.ws.closed.is_set(), 10)
            ended = await eventually(lambda: len(carol.sees.ended) >= 1, 10)
            assert ended, carol.sees.ended
            # They rejoin (a fresh join: their media died with the worker) and bob publishes.
            for name in ("bob", "dave"):
                await peers[name].close()
                peers[name] = await join(session, h.ws_url, "big", name)
            rejoined = time.monotonic() - killed_at
            assert rejoined < 10, rejoined
            await peers["bob"].publish()
            dave = peers["dave"]
            assert await eventually(
                lambda: (
                    sum(1 for c in carol.sees.counters.values() if len(c) >= 30) >= 2
                    and any(len(c) >= 30 for c in dave.sees.counters.values())
                ),
                30,
            ), (carol.counts(), dave.counts())
            # carol got bob's new track (a new track id) after the old one ended.
            assert len(carol.sees.counters) >= 3, carol.counts()
        finally:
            for p in peers.values():
                await p.close()


async def test_a_whip_publisher_past_the_homes_share_is_placed_on_a_shard_and_seen(host) -> None:
    h = host("--no-turn", room_shard_max_participants="1")
    async with aiohttp.ClientSession() as session:
        alice = await join(session, h.ws_url, "live", "alice")  # the home's one media member
        publisher = WhipPublisher(session, h.url + "/")
        try:
            created = await publisher.publish("live", token_for("live", "cam"))
            assert created.status == 201, created
            assert await eventually(lambda: len(shard_lines(h)) == 1, 5), h.log()
            assert await eventually(lambda: max(alice.counts().values(), default=0) >= 30, 20), (
                alice.counts()
            )
            assert await publisher.delete() == 200
        finally:
            await publisher.close()
            await alice.close()


async def test_kill_9_of_the_home_worker_everyone_rejoins_within_10s(host) -> None:
    h = host("--no-turn", room_shard_max_participants="2")
    async with aiohttp.ClientSession() as session:
        peers: dict[str, Peer] = {}
        try:
            for name in ("alice", "carol", "bob", "dave"):
                peers[name] = await join(session, h.ws_url, "big", name)
            assert await eventually(lambda: len(shard_lines(h)) == 2, 5), h.log()
            home = await h.room_node("big")
            home_pid = next(int(w["pid"]) for w in await h.workers() if w["node"] == home)
            await peers["bob"].publish()  # on the shard, which survives
            assert await eventually(
                lambda: max(peers["alice"].counts().values(), default=0) >= 30, 30
            )
            killed_at = time.monotonic()
            os.kill(home_pid, signal.SIGKILL)
            old = dict(peers)
            assert await eventually(lambda: all(p.ws.closed.is_set() for p in old.values()), 10)
            # The surviving worker drops the members the dead home had placed on it.
            assert await eventually(lambda: "its home is gone" in h.log(), 5)
            for name in ("alice", "carol", "bob", "dave"):
                await peers[name].close()
                peers[name] = await join(session, h.ws_url, "big", name)
            assert time.monotonic() - killed_at < 10
            await peers["bob"].publish()
            watchers = [peers[n] for n in ("alice", "carol", "dave")]
            assert await eventually(
                lambda: all(max(p.counts().values(), default=0) >= 30 for p in watchers), 30
            ), [p.counts() for p in watchers]
        finally:
            for p in peers.values():
                await p.close()
