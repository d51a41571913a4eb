"""Authorization matrix of the admin API: every route against every kind of token."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from relayroom.signaling.tokens import Grants, mint_token
from tests.conftest import TEST_SECRET, token_for
from tests.stats.conftest import admin_token, api, bearer

ALLOWED, UNAUTHORIZED, FORBIDDEN = "allowed", 401, 403

# (method, path, status when allowed). Run in this order: the participant is removed before
# the room is closed, and the room still has bob then.
ROOM_ROUTES = [
    ("GET", "/api/rooms/r", 200),
    ("GET", "/api/rooms/r/participants/{pid}/stats", 200),
    # alice joined without media, so there is no track to mute
    ("POST", "/api/rooms/r/participants/{pid}/tracks/no-such-track/mute", 409),
    # nothing published, so nothing to record
    ("POST", "/api/rooms/r/recordings", 409),
    ("GET", "/api/rooms/r/recordings", 200),
    ("GET", "/api/rooms/r/recordings/no-such-recording", 404),
    ("DELETE", "/api/rooms/r/recordings/no-such-recording", 404),
    ("DELETE", "/api/rooms/r/participants/{pid}", 202),
    ("DELETE", "/api/rooms/r", 202),
]
GLOBAL_ROUTES = [
    ("GET", "/api/rooms", 200),
    ("GET", "/api/events", 200),
    ("GET", "/api/stats", 200),
]


def expired_admin() -> str:
    return mint_token(
        TEST_SECRET,
        room="*",
        identity="ops",
        ttl_s=10,
        grants=Grants(admin=True),
        now=time.time() - 3600,
    )


# (label, Authorization header or None, expected on room routes, expected on global routes)
MATRIX = [
    ("no token", None, UNAUTHORIZED, UNAUTHORIZED),
    ("not a JWT", "Bearer not-a-jwt", UNAUTHORIZED, UNAUTHORIZED),
    ("wrong scheme", "Basic " + admin_token(), UNAUTHORIZED, UNAUTHORIZED),
    (
        "other secret",
        "Bearer " + token_for("*", "ops", secret="x" * 40, admin=True),
        UNAUTHORIZED,
        UNAUTHORIZED,
    ),
    ("expired", "Bearer " + expired_admin(), UNAUTHORIZED, UNAUTHORIZED),
    ("participant token", "Bearer " + token_for("r", "alice"), FORBIDDEN, FORBIDDEN),
    ("admin of another room", "Bearer " + admin_token("other"), FORBIDDEN, FORBIDDEN),
    ("admin of the room", "Bearer " + admin_token("r"), ALLOWED, FORBIDDEN),
    ("admin of every room", "Bearer " + admin_token("*"), ALLOWED, ALLOWED),
]


@pytest.mark.parametrize(("label", "header", "on_room", "on_global"), MATRIX)
async def test_admin_routes_authorization(admin_server, connect, label, header, on_room, on_global):
    _, ts, _ = await admin_server()
    alice, bob = await connect(ts), await connect(ts)
    joined = await alice.join("r", "alice")
    await bob.join("r", "bob")
    pid = joined["participant"]["id"]
    headers = {"Authorization": header} if header else {}
    async with aiohttp.ClientSession() as http:
        for routes, expected in ((GLOBAL_ROUTES, on_global), (ROOM_ROUTES, on_room)):
            for method, path, allowed_status in routes:
                url = ts.make_url(path.format(pid=pid))
                body_json = {"muted": True} if path.endswith("/mute") else {}
                kwargs: dict[str, Any] = {"json": body_json} if method == "POST" else {}
                async with http.request(method, url, headers=headers, **kwargs) as response:
                    body = await response.json()
                    if expected == ALLOWED:
                        assert response.status == allowed_status, (label, method, path, body)
                    else:
                        assert response.status == expected, (label, method, path, body)
                        assert body["error"]["code"] in ("unauthorized", "forbidden")
                        if expected == UNAUTHORIZED:
                            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_close_room_ends_every_session_with_room_closed(admin_server, connect):
    _, ts, _ = await admin_server()
    a, b = await connect(ts), await connect(ts)
    await a.join("r", "alice")
    await b.join("r", "bob")
    status, body = await api(ts, "DELETE", "/api/rooms/r", bearer(admin_token()))
    assert (status, body) == (202, {"room": "r", "ended": 2})
    for client in (a, b):
        await client.wait_closed()
        assert client.close_reason == "room_closed"


async def test_remove_participant_ends_its_session_with_removed(admin_server, connect):
    _, ts, _ = await admin_server()
    a, b = await connect(ts), await connect(ts)
    joined = await a.join("r", "alice")
    await b.join("r", "bob")
    pid = joined["participant"]["id"]
    path = f"/api/rooms/r/participants/{pid}"
    status, _ = await api(ts, "DELETE", path, bearer(admin_token("r")))
    assert status == 202
    await a.wait_closed()
    assert a.close_reason == "removed"
    left = await b.expect("participant_left")
    assert left["participant_id"] == pid and left["reason"] == "removed"
    _, room = await api(ts, "GET", "/api/rooms/r", bearer(admin_token()))
    assert [p["identity"] for p in room["participants"]] == ["bob"]


async def test_unknown_room_and_participant_are_404(admin_server):
    _, ts, _ = await admin_server()
    async with aiohttp.ClientSession() as http:
        for path in ("/api/rooms/nope", "/api/rooms/nope/participants/PA_x/stats"):
            async with http.get(ts.make_url(path), headers=bearer(admin_token())) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"


async def _feed_refusal(http: aiohttp.ClientSession, url: Any, **kwargs: Any) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, **kwargs)
    return refused.value.status


async def _hello_and_tick(ws: aiohttp.ClientWebSocketResponse) -> None:
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    assert hello["thresholds"] == {"loss": 0.05, "rtt_ms": 300.0, "fps": 15.0}
    tick = await ws.receive_json(timeout=5)
    assert tick["type"] == "tick" and tick["rooms"] == []
    await ws.close()


async def test_feed_takes_the_token_in_the_bearer_header(admin_server):
    _, ts, _ = await admin_server()
    url = ts.make_url("/api/feed")
    async with aiohttp.ClientSession() as http:
        assert await _feed_refusal(http, url) == 401
        assert await _feed_refusal(http, url, headers=bearer(token_for("r", "x"))) == 403
        await _hello_and_tick(await http.ws_connect(url, headers=bearer(admin_token())))


async def test_feed_takes_a_browsers_token_in_the_subprotocol_list(admin_server, caplog):
    _, ts, _ = await admin_server()
    url = ts.make_url("/api/feed")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            url, protocols=("relayroom.feed", f"relayroom.token.{admin_token()}")
        )
        assert ws.protocol == "relayroom.feed"  # the token is never echoed back
        await _hello_and_tick(ws)
        wrong = ("relayroom.feed", f"relayroom.token.{token_for('r', 'x')}")
        assert await _feed_refusal(http, url, protocols=wrong) == 403
        assert await _feed_refusal(http, url, protocols=("relayroom.feed",)) == 401
        # Without relayroom.feed no protocol could be selected: refused before the handshake.
        alone = (f"relayroom.token.{admin_token()}",)
        assert await _feed_refusal(http, url, protocols=alone) == 400
    assert "relayroom.token." not in caplog.text  # no log line carries a token


async def test_feed_refuses_a_token_in_the_url(admin_server):
    _, ts, _ = await admin_server()
    async with aiohttp.ClientSession() as http:
        # Even a valid one: it has already leaked into logs; the client must stop doing it.
        url = ts.make_url("/api/feed").with_query(token=admin_token())
        assert await _feed_refusal(http, url) == 400
        assert await _feed_refusal(http, url, headers=bearer(admin_token())) == 400
        async with http.get(url, headers={"Connection": "Upgrade", "Upgrade": "websocket"}) as r:
            body = await r.json()
    assert body["error"]["code"] == "invalid_request"
    assert "Authorization: Bearer" in body["error"]["message"]
    assert "Sec-WebSocket-Protocol" in body["error"]["message"]


async def test_dev_admin_token_exists_only_in_dev_mode(admin_server):
    _, prod, _ = await admin_server()
    _, dev, _ = await admin_server(dev=True)
    async with aiohttp.ClientSession() as http:
        async with http.post(prod.make_url("/api/dev/admin-token")) as r:
            assert r.status in (404, 405)
        async with http.post(dev.make_url("/api/dev/admin-token")) as r:
            token = (await r.json())["token"]
        async with http.get(dev.make_url("/api/rooms"), headers=bearer(token)) as r:
            assert r.status == 200
