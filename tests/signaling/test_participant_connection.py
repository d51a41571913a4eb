"""Peers hear when a participant's WebSocket drops (it may resume) and when it comes back."""

from __future__ import annotations

from tests.conftest import token_for
from tests.support.ws import drop


async def test_peers_get_reconnecting_then_connected_around_a_resume(start_server, connect):
    _, ts = await start_server(resume_ttl_s=5)
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r", "alice")
    b = await bob.join("r", "bob")
    bob_id = b["participant"]["id"]
    await alice.expect("participant_joined")
    await drop(bob)
    dropped = await alice.expect("participant_connection")
    assert dropped == {"type": "participant_connection", "participant_id": bob_id,
                       "state": "reconnecting"}  # fmt: skip

    again = await connect(ts)
    await again.send(
        {"type": "join", "room": "r", "token": token_for("r", "bob"), "resume": b["resume_token"]}
    )
    assert (await again.expect("joined"))["resumed"] is True
    back = await alice.expect("participant_connection")
    assert back["participant_id"] == bob_id and back["state"] == "connected"


async def test_a_leave_sends_no_reconnecting(start_server, connect):
    _, ts = await start_server(resume_ttl_s=5)
    alice, bob = await connect(ts), await connect(ts)
    await alice.join("r", "alice")
    await bob.join("r", "bob")
    await alice.expect("participant_joined")
    await bob.send({"type": "leave"})
    left = await alice.expect("participant_left")
    assert left["reason"] == "left"
    assert not [m for m in alice.skipped if m["type"] == "participant_connection"]
