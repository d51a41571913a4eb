"""Property tests: hostile WHIP/WHEP requests against a real server.

Every request gets a status from the documented set with a text body (never a 500, never a
hang), a refused request leaves no participant behind, and a WHIP publisher already in the
room keeps its session throughout. The trickle-ice-sdpfrag parser is also fuzzed directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayroom.media.aiortc_hooks import configure_ice
from relayroom.signaling.sdpfrag import FragError, parse_sdpfrag
from tests.conftest import token_for
from tests.hostile.harness import LiveServer, hostile_settings, hostile_text
from tests.media.client import StampedVideoTrack, client_pc
from tests.support.whip import SDP, SDPFRAG, WhipPublisher

pytestmark = pytest.mark.slow

EXPECTED = {200, 201, 204, 400, 401, 403, 404, 405, 412, 413, 415, 422, 503}


async def _real_offer() -> str:
    pc = client_pc()
    pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
    configure_ice(pc, ("127.0.0.1",))
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


class Target:
    def __init__(self, tmp: Path) -> None:
        self.live = LiveServer(tmp, allow_loopback_candidates=True, whip_max_body_bytes=8192)
        self.offer: str = self.live.call(_real_offer())
        self.canary: WhipPublisher = self.live.call(self._canary())
        created = self.live.call(self.canary.publish("live", token_for("live", "canary")))
        assert created.status == 201
        self.requests = 0

    async def _canary(self) -> WhipPublisher:
        # Made on the server's loop: a PeerConnection binds to the loop it is created on.
        return WhipPublisher(self.live.session, self.live.url("/"))

    async def send(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, str | None]:
        self.requests += 1
        async with self.live.session.request(
            method, self.live.url(path), data=body, headers=headers
        ) as r:
            text = await asyncio.wait_for(r.text(errors="replace"), 10)
            location = r.headers.get("Location")
        if r.status == 201 and location:  # a mutated offer that still worked: end it
            async with self.live.session.delete(self.live.url(location)) as d:
                assert d.status == 200
        return r.status, text, location

    def check_room(self) -> None:
        async def members() -> int:
            state = self.live.server.registry.get("live")
            return len(state.members) if state is not None else 0

        async def connected() -> bool:
            # Under load the canary's connection can be caught between consent checks.
            for _ in range(50):
                if self.canary.pc.connectionState == "connected":
                    return True
                await asyncio.sleep(0.1)
            return False

        assert self.live.call(members()) == 1  # the canary only
        assert self.live.call(connected()), self.canary.pc.connectionState

    def close(self) -> None:
        self.live.call(self.canary.close())
        self.live.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = Target(tmp_path_factory.mktemp("hostile-whip"))
    yield t
    t.close()


@st.composite
def mutated_offer(draw: st.DrawFn, offer: str) -> str:
    lines = offer.split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "garble", "truncate", "insert"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = lines[i][:2] + draw(hostile_text)
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines.insert(i, draw(hostile_text))
        if not lines:
            break
    return "\r\n".join(lines)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


hostile_header = st.one_of(hostile_text, st.sampled_from([SDP, SDPFRAG, "", "*", '"x"']))


@hostile_settings(max_examples=150)
@given(data=st.data())
def test_hostile_posts_get_a_clear_status(target: Target, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["whip", "whep"]))
    body = data.draw(
        st.one_of(
            mutated_offer(target.offer),
            hostile_text,
            st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
            st.just("x" * 9000),
        )
    )
    token = data.draw(
        st.one_of(
            st.just(token_for("live", f"p{target.requests}")),
            st.just(token_for("live", "v", can_publish=False, can_subscribe=False)),
            hostile_text,
        )
    )
    content_type = data.draw(st.one_of(st.just(SDP), hostile_header))
    query = data.draw(st.sampled_from(["", "?participant=canary", "?track=%00", "?participant="]))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    headers = {k: v for k, v in headers.items() if v.isprintable() and "\n" not in v}
    status, text, _ = target.live.call(
        target.send("POST", f"/{kind}/live{query}", _encode(body), headers)
    )
    assert status in EXPECTED, (status, text)
    if status >= 400:
        assert text.strip(), status
    target.check_room()


@hostile_settings(max_examples=100)
@given(
    body=hostile_text,
    if_match=st.one_of(st.none(), hostile_header),
    content_type=st.one_of(st.just(SDPFRAG), hostile_header),
    method=st.sampled_from(["PATCH", "OPTIONS"]),
)
def test_hostile_patches_never_hurt_the_session(
    target: Target, body: str, if_match: Any, content_type: str, method: str
) -> None:
    assert target.canary.location is not None
    headers = {"Content-Type": content_type}
    if if_match is not None:
        headers["If-Match"] = if_match
    headers = {k: v for k, v in headers.items() if v.isprintable() and "\n" not in v}
    status, text, _ = target.live.call(
        target.send(method, target.canary.location, _encode(body), headers)
    )
    assert status in EXPECTED, (status, text)
    if status >= 400:
        assert text.strip(), status
    target.check_room()


@hostile_settings(max_examples=60)
@given(session=hostile_text, room=hostile_text, method=st.sampled_from(["PATCH", "DELETE"]))
def test_unknown_sessions_are_404(target: Target, session: str, room: str, method: str) -> None:
    room_part = quote(_encode(room or "r"), safe="")
    path = f"/whip/{room_part}/{quote(_encode(session or 's'), safe='')}"
    status, text, _ = target.live.call(target.send(method, path, b"", {"Content-Type": SDPFRAG}))
    # 400: a request line over aiohttp's limit (the 60001-character values).
    assert status in {404, 400}, (status, text)
    target.check_room()


@hostile_settings(max_examples=500)
@given(text=st.one_of(hostile_text, st.lists(hostile_text, max_size=8).map("\r\n".join)))
def test_sdpfrag_parser_raises_only_frag_error(text: str) -> None:
    try:
        frag = parse_sdpfrag(text)
    except FragError:
        return
    for candidate in frag.candidates:
        assert candidate.line.startswith("candidate:")
