"""The OpenAPI document: valid structure, every route described, real responses match it."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.stats.conftest import admin_token, api, bearer
from tests.support.calls import start_call
from tests.support.openapi_check import check_response, resolve
from tests.support.polling import eventually

METHODS = {"get", "post", "put", "delete", "patch"}


def walk_refs(node, found):
    if isinstance(node, dict):
        if "$ref" in node:
            found.append(node["$ref"])
        for value in node.values():
            walk_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            walk_refs(value, found)
    return found


async def fetch_doc(ts) -> dict:
    status, doc = await api(ts, "GET", "/api/openapi.json")
    assert status == 200
    return doc


async def test_openapi_document_is_well_formed_and_describes_every_route(admin_server):
    _, ts, app = await admin_server(dev=True)
    doc = await fetch_doc(ts)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for ref in walk_refs(doc, []):
        assert ref.startswith("#/components/schemas/")
        resolve(doc, {"$ref": ref})  # raises KeyError when dangling
    for path, item in doc["paths"].items():
        assert path.startswith(("/api/", "/metrics"))
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert method in METHODS
            assert operation["summary"] and operation["responses"]
            for param in [*item.get("parameters", []), *operation.get("parameters", [])]:
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
            if operation.get("security", doc["security"]):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method != "HEAD" and path.startswith(("/api/", "/metrics")):
            if path == "/api/dev/token":  # the signaling server's own dev route
                continue
            routes.add((route.method.lower(), path))
    documented = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routes == documented


async def test_document_lists_only_what_this_server_serves(admin_server):
    _, ts, _ = await admin_server()
    paths = (await fetch_doc(ts))["paths"]
    assert "/api/rooms" in paths
    # Dev mode's token route and a supervisor's worker list are not served here.
    assert "/api/dev/admin-token" not in paths and "/api/workers" not in paths


async def test_real_responses_match_the_openapi_schemas(admin_server, connect):
    _, ts, _, pub_pc, video, subscriber, (pub_id, sub_id) = await start_call(admin_server, connect)
    doc = await fetch_doc(ts)
    headers = bearer(admin_token())
    base = "/api/rooms/{room}/participants/{participant_id}"
    mute = base + "/tracks/{track_id}/mute"

    async def call(method, template, status, json=None, **params):
        url = ts.make_url(template.format(**params))
        async with http.request(method, url, headers=headers, json=json) as response:
            body = await response.json()
            assert response.status == status, (method, template, body)
            check_response(doc, template, method, status, body)
            return body

    try:
        async with aiohttp.ClientSession() as http:
            await call("GET", "/api/rooms", 200)
            room = await call("GET", "/api/rooms/{room}", 200, room="call")
            assert {p["id"] for p in room["participants"]} == {pub_id, sub_id}
            assert all(p["stats"] is not None for p in room["participants"])
            await call("GET", "/api/rooms/{room}", 404, room="nope")
            history = await call("GET", base + "/stats", 200, room="call", participant_id=pub_id)
            assert history["samples"]
            await call("GET", "/api/events", 200)
            await call("GET", "/api/stats", 200)
            recordings = "/api/rooms/{room}/recordings"
            recording = recordings + "/{recording_id}"
            started = await call("POST", recordings, 201, json={}, room="call")
            await call("POST", recordings, 409, json={}, room="call")
            await call("GET", recordings, 200, room="call")
            await asyncio.sleep(1)
            rid = started["recording_id"]
            await call("GET", recording, 200, room="call", recording_id=rid)
            stopped = await call("DELETE", recording, 200, room="call", recording_id=rid)
            assert stopped["state"] == "finished" and stopped["files"]
            await call("GET", recording, 404, room="call", recording_id="no-such-recording")
            body = await call(
                "POST",
                mute,
                200,
                json={"muted": True},
                room="call",
                participant_id=pub_id,
                track_id=video.id,
            )
            assert body["track"]["muted"] is True
            muted = await subscriber.ws.expect("track_muted", 5)
            assert muted["track"]["id"] == video.id and muted["track"]["muted"] is True
            await call(
                "POST",
                mute,
                400,
                json={"muted": "yes"},
                room="call",
                participant_id=pub_id,
                track_id=video.id,
            )
            await call(
                "POST",
                mute,
                404,
                json={"muted": True},
                room="call",
                participant_id=pub_id,
                track_id="no-such-track",
            )
            events = await call("GET", "/api/events", 200)
            kinds = [e["type"] for e in events["events"]]
            assert kinds.count("participant_joined") == 2 and "track_muted" in kinds
            await call("DELETE", base, 202, room="call", participant_id=sub_id)
            assert await eventually(lambda: subscriber.ws.closed.is_set(), 5)
            await call("DELETE", "/api/rooms/{room}", 202, room="call")
    finally:
        await subscriber.close()
        await pub_pc.close()
