"""The supervisor's cluster state (sans-IO) and the IpcBus <-> IpcHub link over real sockets."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from relayroom.signaling.bus import BusUnavailable
from relayroom.signaling.config import ConfigError, load_config, worker_count
from relayroom.signaling.ipc_bus import IpcBus
from relayroom.signaling.ipc_hub import PLACEMENT_TTL_S, HostState, IpcHub
from tests.support.polling import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _state(*nodes: str) -> tuple[HostState, Clock]:
    clock = Clock()
    state = HostState(clock, ttl_s=3.0)
    for node in nodes:
        state.register(node, {"id": node})
    return state, clock


def test_a_new_room_goes_to_the_worker_with_the_fewest_participants() -> None:
    state, _ = _state("a", "b")
    state.heartbeat("a", {}, {"participants": 5, "forwarded_pps": 0})
    state.heartbeat("b", {}, {"participants": 1, "forwarded_pps": 9000})
    assert state.place("r1", asking="a").node == "b"
    # Equal participants: fewer forwarded packets per second wins.
    state.heartbeat("a", {}, {"participants": 1, "forwarded_pps": 100})
    state.heartbeat("b", {}, {"participants": 1, "forwarded_pps": 9000})
    assert state.place("r2", asking="b").node == "a"


def test_placements_since_the_last_heartbeat_count_as_load() -> None:
    state, _ = _state("a", "b")
    nodes = [state.place(f"r{i}", asking="a").node for i in range(4)]
    assert sorted(nodes) == ["a", "a", "b", "b"]


def test_ties_go_to_the_asking_worker_and_an_owned_room_stays_put() -> None:
    state, _ = _state("a", "b")
    assert state.place("r", asking="b").node == "b"
    state.heartbeat("b", {}, {"participants": 50})
    assert state.place("r", asking="a").node == "b"


def test_a_draining_worker_gets_no_new_rooms() -> None:
    state, _ = _state("a", "b")
    state.heartbeat("a", {}, {"participants": 0, "draining": True})
    state.heartbeat("b", {}, {"participants": 10})
    assert state.place("r", asking="a").node == "b"


def test_every_new_claim_takes_a_higher_fence_and_release_needs_the_own_claim() -> None:
    state, _ = _state("a", "b")
    first = state.claim("r", "a")
    assert (first.node, first.fence) == ("a", 1)
    assert state.claim("r", "b").node == "a"  # a live owner keeps it
    assert not state.release("r", "b", first.fence)
    assert not state.release("r", "a", first.fence + 1)
    assert state.release("r", "a", first.fence)
    second = state.claim("r", "b")
    assert (second.node, second.fence) == ("b", 2)


def test_a_dead_workers_rooms_are_free_at_once() -> None:
    state, _ = _state("a", "b")
    state.claim("r", "a")
    assert state.remove("a") == ["r"]
    assert state.owner("r") is None
    assert state.claim("r", "b").fence == 2


def test_a_silent_worker_is_stale_gets_no_rooms_but_keeps_its_own_until_gone() -> None:
    state, clock = _state("a", "b")
    state.claim("r", "a")
    state.heartbeat("b", {}, {"participants": 10})
    clock.now += 2
    state.heartbeat("b", {}, {"participants": 10})
    clock.now += 2  # a: 4 s without a heartbeat (ttl 3 s)
    assert state.stale() == ["a"]
    assert state.place("new", asking="a").node == "b"
    assert state.claim("r", "b").node == "a"  # no second owner while a may still serve it
    state.remove("a")  # the supervisor killed it
    assert state.claim("r", "b").node == "b"


def test_a_placement_nobody_confirms_is_forgotten() -> None:
    state, clock = _state("a", "b")
    state.heartbeat("a", {}, {"participants": 3})
    placed = state.place("r", asking="a")
    assert placed.node == "b" and not placed.confirmed
    clock.now += PLACEMENT_TTL_S + 1
    state.heartbeat("a", {}, {"participants": 3})
    state.heartbeat("b", {}, {"participants": 0})
    assert state.owner("r") is None
    # Confirmed by the owner's claim, it stays.
    assert state.place("r", asking="a").node == "b"
    assert state.claim("r", "b").confirmed
    clock.now += PLACEMENT_TTL_S + 1
    state.heartbeat("b", {}, {})
    assert state.owner("r") == "b"


def test_the_owner_placing_its_own_room_confirms_it() -> None:
    state, clock = _state("a", "b")
    state.heartbeat("a", {}, {"participants": 3})
    assert state.place("r", asking="a").node == "b"  # placed on b, not confirmed yet
    assert state.place("r", asking="b").confirmed  # b hosts a join of its own
    clock.now += PLACEMENT_TTL_S + 1
    assert state.owner("r") == "b"


def test_resume_tokens_expire() -> None:
    state, clock = _state("a")
    state.set_resume("t", "a", 30)
    assert state.resume_owner("t") == "a"
    clock.now += 31
    assert state.resume_owner("t") is None
    state.set_resume("u", "a", 30)
    state.drop_resume("u")
    assert state.resume_owner("u") is None


def test_workers_setting() -> None:
    assert worker_count(load_config(env={}, overrides={"workers": "3"})) == 3
    assert worker_count(load_config(env={}, overrides={"dev": True})) == 1
    assert worker_count(load_config(env={}, overrides={"dev": True, "workers": "auto"})) >= 1
    assert worker_count(load_config(env={"RELAYROOM_WORKERS": "2"})) == 2
    for bad in ("0", "-1", "many", "257"):
        with pytest.raises(ConfigError, match="workers"):
            load_config(env={}, overrides={"workers": bad})


async def _linked(hub: IpcHub, node: str) -> IpcBus:
    ours, theirs = socket.socketpair()
    hub.serve(ours)
    bus = IpcBus(theirs, node, heartbeat_s=0.05, op_timeout_s=1.0)
    await bus.start()
    assert await eventually(lambda: node in hub.connected(), 5)
    return bus


async def test_workers_claim_publish_and_lose_rooms_over_real_sockets() -> None:
    hub = IpcHub(HostState(ttl_s=1.0))
    a, b = await _linked(hub, "a"), await _linked(hub, "b")
    got: list[dict[str, Any]] = []

    async def on_op(op: dict[str, Any]) -> None:
        got.append(op)

    b.handler = on_op
    try:
        assert await a.claim_room("r")
        assert a.fence("r") == 1
        assert not await b.claim_room("r")
        assert await b.owner_of("r") == "a"
        assert await b.place_room("r") == "a"
        await a.set_resume("tok", 60)
        assert await b.resume_owner("tok") == "a"
        a.advertise("http://127.0.0.1:1/")
        assert await eventually(lambda: hub.state.nodes["a"].info.get("url") is not None, 5)
        assert set(await b.live_nodes()) == {"a", "b"}
        for n in range(50):
            a.publish("b", {"op": "x", "n": n})
        assert await eventually(lambda: len(got) == 50, 5)
        assert [op["n"] for op in got] == list(range(50))  # ordered per node
        await a.close()  # a worker that goes away frees its rooms
        assert await eventually(lambda: hub.state.owner("r") is None, 5)
        assert not await b.node_alive("a")
        assert await b.claim_room("r") and b.fence("r") == 2
    finally:
        await b.close()
        await hub.close()


async def test_requests_fail_fast_when_the_supervisor_is_gone() -> None:
    hub = IpcHub(HostState())
    bus = await _linked(hub, "a")
    lost = asyncio.Event()
    bus.on_supervisor_lost = lost.set
    await hub.close()
    await asyncio.wait_for(lost.wait(), 5)
    with pytest.raises(BusUnavailable):
        await bus.claim_room("r")
    await bus.close()
