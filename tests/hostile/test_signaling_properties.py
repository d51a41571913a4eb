"""Property tests: hostile values in every field of every client message, against a real server.

After each input: the attacker's connection answers (ping, same connection, in order), the
other participants still relay `signal` to each other (p2p room) and still hear joins and leaves
(sfu room), every frame anyone received parses with a strict JSON parser, and every few inputs
the admin feed proves it still ticks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relayroom.media.stats import _CLIENT_NUMBERS
from tests.conftest import token_for
from tests.hostile.harness import (
    LiveServer,
    StrictClient,
    hostile_number,
    hostile_settings,
    hostile_text,
    hostile_value,
    open_feed,
    to_text,
)

# Every test here adds to the inputs that the last test counts: the module runs as a whole.
pytestmark = pytest.mark.slow

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
BASE: dict[str, dict[str, Any]] = {
    "join": {"room": "p2p", "token": "t"},
    "publish_offer": {"sdp": SDP},
    "subscribe_answer": {"sdp": SDP},
    "candidate": {
        "pc": "publisher",
        "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"},
    },
    "mute": {"track_id": "t", "muted": True},
    "stats": {"report": {"loss": 0.01, "tracks": [{"fps": 30}]}},
    "signal": {"to": "VICTIM", "payload": {"sdp": "x"}},
    "ping": {"ts": 1},
    "leave": {},
}
# Where a hostile value goes: a top-level field, or inside the nested objects clients send.
NESTED = {
    "candidate": [
        "candidate",
        "candidate.candidate",
        "candidate.sdpMid",
        "candidate.sdpMLineIndex",
    ],
    "stats": ["report", *(f"report.{k}" for k in _CLIENT_NUMBERS), "report.tracks"],
    "signal": ["payload", "payload.sdp", "payload.candidate"],
}


@st.composite
def hostile_message(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(sorted(BASE)))
    message: dict[str, Any] = {"type": kind, **json.loads(json.dumps(BASE[kind]))}
    places = ["id", "type", "extra", *BASE[kind], *NESTED.get(kind, [])]
    place = draw(st.sampled_from(places))
    value = draw(
        hostile_number
        if place.startswith("report.") and place != "report.tracks"
        else hostile_value
    )
    target = message
    *path, leaf = place.split(".")
    for key in path:
        target = target[key]
    target[leaf] = value
    if kind == "leave" and place != "type":
        message["type"] = "ping"  # a leave would end the attacker: keep its fields on a ping
    return kind, to_text(message)


class Room:
    """The attackers and their victims on one live server."""

    def __init__(self, tmp: Path) -> None:
        self.live = LiveServer(
            tmp,
            rate_limit_msgs_per_s=1e6,
            rate_limit_burst=10**6,
            rate_limit_close_after=10**6,
            stats_interval_s=0.1,
            allow_loopback_candidates=True,
            room_max_participants=1000,
            ip_handshakes_per_s=1e4,
            ip_handshake_burst=10**4,
        )
        self.sent = 0
        self.call(self._start())

    def call(self, coro: Any) -> Any:
        return self.live.call(coro)

    async def _start(self) -> None:
        live = self.live
        self.p2p_attacker = await live.client("p2p", "mallory-p2p", mode="p2p")
        self.a = await live.client("p2p", "alice", mode="p2p")
        self.b = await live.client("p2p", "bob", mode="p2p")
        self.sfu_attacker = await live.client("sfu", "mallory-sfu", mode="sfu")
        self.c = await live.client("sfu", "carol", mode="sfu")
        assert self.a.joined is not None and self.b.joined is not None
        self.b_id = self.b.joined["participant"]["id"]
        self.a_id = self.a.joined["participant"]["id"]
        self.feed = await open_feed(live)

    async def attack(self, kind: str, text: str) -> None:
        self.sent += 1
        n = self.sent
        text = text.replace('"VICTIM"', json.dumps(self.b_id))
        attacker = (
            self.sfu_attacker
            if kind in ("publish_offer", "subscribe_answer", "candidate", "mute")
            else self.p2p_attacker
        )
        await attacker.ws.send_str(text)
        await attacker.ws.send_str(json.dumps({"type": "ping", "id": f"probe{n}"}))
        await attacker.until(lambda m: m.get("ref") == f"probe{n}" and m["type"] == "pong", 10)
        # Canary: the others still relay signaling to each other, both ways.
        await self.canary(self.a, self.b, self.b_id, {"n": n})
        await self.canary(self.b, self.a, self.a_id, {"n": n})
        if n % 25 == 0:
            await self.check_broadcast_and_feed(n)
        for client in (self.a, self.b, self.c, self.p2p_attacker, self.sfu_attacker):
            assert not client.violations, client.violations[:3]

    @staticmethod
    async def canary(
        sender: StrictClient, receiver: StrictClient, receiver_id: str, payload: dict[str, Any]
    ) -> None:
        """A `signal` from one bystander still reaches the other."""
        await sender.send({"type": "signal", "to": receiver_id, "payload": payload})
        await receiver.until(lambda m: m["type"] == "signal" and m["payload"] == payload)

    async def check_broadcast_and_feed(self, n: int) -> None:
        guest = await self.live.client("sfu", f"guest{n}", mode="sfu")
        await self.c.until(lambda m: m["type"] == "participant_joined")
        await guest.send({"type": "leave"})
        await self.c.until(lambda m: m["type"] == "participant_left")
        await guest.close()
        assert await self.feed.ticked(), "the admin feed stopped"
        assert not self.feed.violations, self.feed.violations[:3]

    async def fresh_join(self, name: Any, room: Any, identity: str) -> None:
        """A hostile join on a new connection (its name reaches everyone in the room)."""
        client = await self.live.client()
        token = token_for("p2p", identity, mode="p2p")
        await client.ws.send_str(
            to_text({"type": "join", "id": "j", "room": room, "token": token, "name": name})
        )
        reply = await client.recv()
        assert reply["type"] in ("joined", "error"), reply
        await client.close()
        await self.canary(self.a, self.b, self.b_id, {"j": identity})
        assert not self.a.violations and not self.b.violations, self.a.violations[:3]

    def close(self) -> None:
        async def stop() -> None:
            for client in (self.a, self.b, self.c, self.p2p_attacker, self.sfu_attacker):
                await client.close()
            await self.feed.ws.close()

        self.call(stop())
        self.live.close()


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    r = Room(tmp_path_factory.mktemp("hostile-signaling"))
    yield r
    r.close()


@hostile_settings(max_examples=1200)
@given(message=hostile_message())
def test_hostile_field_values_never_hurt_other_participants(room: Room, message: tuple[str, str]):
    # Frames over ws_max_frame_bytes close the sender (1009): tested in tests/signaling.
    assume(len(message[1].encode("utf-8", "surrogatepass")) < room.live.config.ws_max_frame_bytes)
    room.call(room.attack(*message))


@hostile_settings(max_examples=150)
@given(name=hostile_value, room_name=st.one_of(st.just("p2p"), hostile_text))
def test_hostile_join_names_never_hurt_the_room(room: Room, name: Any, room_name: Any):
    size = len(to_text([name, room_name]).encode("utf-8", "surrogatepass"))
    assume(size < room.live.config.ws_max_frame_bytes - 1024)
    room.sent += 1
    room.call(room.fresh_join(name, room_name, f"joiner{room.sent}"))


def test_after_the_attack_everyone_is_still_served(room: Room, caplog: Any) -> None:
    assert room.sent >= 1300
    assert room.call(room.feed.ticked())
    assert room.live.server.counts.failures.get("ws_write", 0) == 0
    # Nothing raised inside the server's tasks (the containment counters stayed at zero).
    assert room.live.app is not None
    logging.getLogger(__name__).info("hostile signaling inputs: %d", room.sent)
