"""Resume: a dropped WebSocket comes back within resume_ttl_s without rejoining or renegotiating."""

from __future__ import annotations

import pytest

from tests.conftest import token_for
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish
from tests.support.ws import drop


async def test_resume_keeps_participant_and_delivers_missed_events(start_server, connect):
    _, ts = await start_server(resume_ttl_s=5)
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r", "alice")
    b = await bob.join("r", "bob")
    await alice.expect("participant_joined")
    await drop(bob)
    carol = await connect(ts)
    await carol.join("r", "carol")  # bob misses this event while disconnected
    # alice sees bob's connection drop, then carol arrive, and nothing says bob left
    joined_carol = await alice.expect("participant_joined")
    assert joined_carol["participant"]["identity"] == "carol"
    assert alice.skipped == [
        {
            "type": "participant_connection",
            "participant_id": b["participant"]["id"],
            "state": "reconnecting",
        }
    ]
    alice.skipped.clear()

    again = await connect(ts)
    await again.send(
        {
            "type": "join",
            "id": "re",
            "room": "r",
            "token": token_for("r", "bob"),
            "resume": b["resume_token"],
        }
    )
    joined = await again.expect("joined")
    assert joined["resumed"] is True and joined["ref"] == "re"
    assert joined["participant"]["id"] == b["participant"]["id"]
    assert joined["resume_token"] != b["resume_token"]
    missed = await again.expect("participant_joined")
    assert missed["participant"]["identity"] == "carol"
    with pytest.raises(TimeoutError):
        await alice.expect("participant_left", timeout=0.5)


async def test_resume_window_expiry_makes_participant_leave(start_server, connect):
    _, ts = await start_server(resume_ttl_s=0.3)
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r", "alice")
    b = await bob.join("r", "bob")
    await drop(bob)
    left = await alice.expect("participant_left", timeout=3)
    assert left["participant_id"] == b["participant"]["id"] and left["reason"] == "disconnected"
    late = await connect(ts)
    await late.send(
        {"type": "join", "room": "r", "token": token_for("r", "bob"), "resume": b["resume_token"]}
    )
    joined = await late.expect("joined")
    assert joined["resumed"] is False and joined["participant"]["id"] != b["participant"]["id"]


async def test_resume_token_is_single_use_and_bound_to_identity(start_server, connect):
    _, ts = await start_server(resume_ttl_s=5)
    bob = await connect(ts)
    b = await bob.join("r", "bob")
    await drop(bob)
    thief = await connect(ts)
    await thief.send(
        {
            "type": "join",
            "room": "r",
            "token": token_for("r", "mallory"),
            "resume": b["resume_token"],
        }
    )
    stolen = await thief.expect("joined")
    assert stolen["resumed"] is False and stolen["participant"]["id"] != b["participant"]["id"]


async def test_left_participant_cannot_resume(start_server, connect):
    _, ts = await start_server(resume_ttl_s=5)
    bob = await connect(ts)
    b = await bob.join("r", "bob")
    await bob.send({"type": "leave"})
    await bob.wait_closed()
    again = await connect(ts)
    await again.send(
        {"type": "join", "room": "r", "token": token_for("r", "bob"), "resume": b["resume_token"]}
    )
    assert (await again.expect("joined"))["resumed"] is False


@pytest.mark.slow
async def test_media_keeps_flowing_through_resume_without_renegotiation(start_server, connect):
    _, ts = await start_server(resume_ttl_s=10, allow_loopback_candidates=True)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    await pub_ws.join("call", "pub")
    sub_joined = await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, _ = await publish(pub_ws)
    try:
        await subscriber.answer_next_offer()
        assert await eventually(lambda: any(len(c) > 10 for c in subscriber.counters.values()), 15)
        await drop(sub_ws)
        before = max(len(c) for c in subscriber.counters.values())
        resumed_ws = await connect(ts)
        await resumed_ws.send(
            {
                "type": "join",
                "room": "call",
                "can_publish": False,
                "token": token_for("call", "sub", can_publish=False),
                "resume": sub_joined["resume_token"],
            }
        )
        assert (await resumed_ws.expect("joined"))["resumed"] is True
        assert await eventually(
            lambda: max(len(c) for c in subscriber.counters.values()) > before + 30, 10
        )
        assert subscriber.answers == 1
        with pytest.raises(TimeoutError):
            await resumed_ws.expect("subscribe_offer", timeout=0.5)
    finally:
        await subscriber.close()
        await pub_pc.close()
