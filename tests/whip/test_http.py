"""The WHIP/WHEP HTTP surface: statuses with a body for every bad request, OPTIONS, CORS, Link."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import token_for
from tests.support.whip import SDP, SDPFRAG, WhipPublisher, bearer

OFFER_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


async def post(http, url, body, headers) -> tuple[int, str, dict[str, str]]:
    async with http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text(), dict(r.headers)


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_bad_requests_get_clear_statuses(start_server, kind):
    server, ts = await start_server(allow_loopback_candidates=True, whip_max_body_bytes=2048)
    url = str(ts.make_url(f"/{kind}/live"))
    good = {"Content-Type": SDP, **bearer(token_for("live", "x"))}
    async with aiohttp.ClientSession() as http:
        status, text, headers = await post(http, url, OFFER_HEAD, {"Content-Type": SDP})
        assert status == 401 and "Bearer" in text and headers["WWW-Authenticate"] == "Bearer"
        bad_token = {"Content-Type": SDP, "Authorization": "Bearer nope"}
        status, text, _ = await post(http, url, OFFER_HEAD, bad_token)
        assert status == 401 and "JWT" in text
        other_room = {"Content-Type": SDP, **bearer(token_for("elsewhere", "x"))}
        assert (await post(http, url, OFFER_HEAD, other_room))[0] in (401, 403)
        grant = "can_publish" if kind == "whip" else "can_subscribe"
        weak = (
            token_for("live", "x", can_publish=False)
            if kind == "whip"
            else token_for("live", "x", can_subscribe=False)
        )
        no_grant = {"Content-Type": SDP, **bearer(weak)}
        status, text, _ = await post(http, url, OFFER_HEAD, no_grant)
        assert status == 403 and grant in text
        wrong_type = {**good, "Content-Type": "text/plain"}
        status, text, _ = await post(http, url, OFFER_HEAD, wrong_type)
        assert status == 415 and SDP in text
        status, text, _ = await post(http, url, OFFER_HEAD + "a=x\r\n" * 1000, good)
        assert status == 413 and "2048" in text
        status, text, _ = await post(http, url, "hello", good)
        assert status == 400 and text.strip()
        garbage = OFFER_HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
        status, text, _ = await post(http, url, garbage, good)
        assert status == 400 and text.strip(), text
        for method in ("PATCH", "DELETE"):
            async with http.request(
                method, f"{url}/nosuchsession", data="", headers={"Content-Type": SDPFRAG}
            ) as r:
                assert r.status == 404 and "session" in await r.text()
    # A refused offer leaves no one behind in the room.
    assert server.registry.get("live") is None


async def test_patch_checks_etag_content_type_and_refuses_ice_restart(start_server):
    _, ts = await start_server(allow_loopback_candidates=True)
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            assert (await publisher.publish("live", token_for("live", "enc"))).status == 201
            assert publisher.location is not None
            url = str(ts.make_url(publisher.location))
            frag = "a=end-of-candidates\r\n"
            async with http.patch(url, data=frag, headers={"Content-Type": SDP}) as r:
                assert r.status == 415
            headers = {"Content-Type": SDPFRAG, "If-Match": '"stale"'}
            async with http.patch(url, data=frag, headers=headers) as r:
                assert r.status == 412
            headers = {"Content-Type": SDPFRAG, "If-Match": publisher.etag or ""}
            async with http.patch(url, data="not sdp", headers=headers) as r:
                assert r.status == 400 and "SDP line" in await r.text()
            restart = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
            async with http.patch(url, data=restart, headers={**headers, "If-Match": "*"}) as r:
                assert r.status == 422 and "restart" in await r.text()
            async with http.patch(url, data=frag, headers=headers) as r:
                assert r.status == 204
        finally:
            await publisher.close()


async def test_options_and_cors(start_server):
    _, ts = await start_server(allow_loopback_candidates=True, turn_enabled=True, turn_port=0)
    url = str(ts.make_url("/whip/live"))
    async with aiohttp.ClientSession() as http:
        preflight = {
            "Origin": "https://encoder.example",
            "Access-Control-Request-Method": "POST",
            "Authorization": "Bearer " + token_for("live", "x"),
        }
        async with http.options(url, headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            # PATCH is listed at the endpoint, and readable by a cross-origin page: WHIP
            # clients decide from it whether to trickle (eyevinn's waits 2 s for ICE otherwise).
            assert {"POST", "PATCH", "DELETE"} <= {
                m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")
            }
            assert "Access-Control-Allow-Methods" in r.headers["Access-Control-Expose-Headers"]
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            assert "Location" in r.headers["Access-Control-Expose-Headers"]
            assert r.headers["Accept-Post"] == SDP
            assert "Link" not in r.headers  # never TURN credentials to a preflight
        async with http.options(url, headers=bearer(token_for("live", "x"))) as r:
            links = r.headers.getall("Link")
            assert any('rel="ice-server"' in v and "turn:" in v and "username=" in v for v in links)
        publisher = WhipPublisher(http, str(ts.make_url("/")))
        try:
            created = await publisher.publish("live", token_for("live", "enc"))
            assert created.status == 201
            assert any("turn:" in v and 'credential-type="password"' in v for v in publisher.link)
        finally:
            await publisher.close()


async def test_allowed_origins_limit_cors(start_server):
    _, ts = await start_server(allowed_origins=("https://ok.example",))
    url = str(ts.make_url("/whep/live"))
    async with aiohttp.ClientSession() as http:
        async with http.options(url, headers={"Origin": "https://ok.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://ok.example"
        async with http.options(url, headers={"Origin": "https://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_session_limit_is_a_setting(start_server):
    _, ts = await start_server(allow_loopback_candidates=True, whip_max_sessions=1)
    async with aiohttp.ClientSession() as http:
        first = WhipPublisher(http, str(ts.make_url("/")))
        second = WhipPublisher(http, str(ts.make_url("/")))
        try:
            assert (await first.publish("live", token_for("live", "a"))).status == 201
            refused = await second.publish("live", token_for("live", "b"))
            assert refused.status == 503 and "too many" in refused.body
        finally:
            await first.close()
            await second.close()
