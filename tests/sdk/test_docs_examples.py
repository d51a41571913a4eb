"""Every Python example of docs/sdk.md runs, as a program, against a real `relayroom serve`.

Room `demo` holds `alice` (an aiortc peer publishing audio and video) and `bob` (receiving);
each example runs in its own interpreter with RELAYROOM_URL and RELAYROOM_API_SECRET set, and
what it prints and what it does to the room are checked.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from relayroom.api import RoomService
from tests.conftest import TEST_SECRET, WsClient
from tests.sdk.serve import ServeProcess
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish
from tests.support.webhooks import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    "token.py",
    "list_rooms.py",
    "stats.py",
    "feed.py",
    "errors.py",
    "moderate.py",
    "webhook_receiver.py",
]


def doc_examples() -> dict[str, str]:
    """The ```python blocks of docs/sdk.md by the name on their first line (`# name.py: ...`)."""
    text = (ROOT / "docs" / "sdk.md").read_text(encoding="utf-8")
    examples: dict[str, str] = {}
    for block in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M):
        match = re.match(r"# (\w+\.py): ", block)
        assert match, f"an example without a '# name.py: ' first line:\n{block}"
        examples[match.group(1)] = block
    return examples


def example_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    env.update({"RELAYROOM_URL": url, "RELAYROOM_API_SECRET": TEST_SECRET})
    return env


async def run_example(code: str, url: str) -> str:
    env = example_env(url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_every_example_of_the_page_is_run_here():
    assert list(doc_examples()) == EXAMPLES


@pytest.mark.slow
async def test_docs_examples_work_against_a_real_server(tmp_path):
    examples = doc_examples()
    async with ServeProcess(tmp_path) as server, aiohttp.ClientSession() as http:
        alice = WsClient(await http.ws_connect(server.url + "ws"))
        bob = WsClient(await http.ws_connect(server.url + "ws"))
        alice_id = (await alice.join("demo", "alice", name="Alice"))["participant"]["id"]
        await bob.join("demo", "bob", can_publish=False)
        subscriber = WsSubscriber(bob)
        pc, video = await publish(alice)
        try:
            await bob.expect("track_published", 10)
            await subscriber.answer_next_offer()
            assert await eventually(
                lambda: any(len(c) >= 10 for c in subscriber.counters.values()), 20
            )
            await asyncio.sleep(1.5)  # a few stats samples

            # token.py: the printed token joins, with the grants and name it was given.
            jwt = (await run_example(examples["token.py"], server.url)).strip()
            carol = WsClient(await http.ws_connect(server.url + "ws"))
            await carol.send({"type": "join", "room": "demo", "token": jwt})
            joined = await carol.expect("joined")
            assert joined["participant"]["name"] == "Carol"
            async with RoomService(server.url, api_secret=TEST_SECRET) as service:
                info = await service.get_participant("demo", joined["participant"]["id"])
            assert info.identity == "carol" and not info.grants.can_publish
            assert info.grants.can_subscribe and not info.grants.admin
            await carol.send({"type": "leave"})
            await carol.wait_closed()

            out = await run_example(examples["list_rooms.py"], server.url)
            assert "demo: 2 participants, 2 tracks" in out, out
            assert f"alice ({alice_id}) publishes audio, video" in out, out
            # Participant ids are urlsafe base64: letters, digits, "_" and "-".
            assert re.search(r"bob \(PA_[\w-]+\) publishes nothing", out), out

            out = await run_example(examples["stats.py"], server.url)
            match = re.search(r"alice sends (\d+) kbit/s", out)
            assert match and int(match.group(1)) > 20, out
            assert f"participant_joined {alice_id}" in out, out
            assert "participant_left PA_" in out, out  # carol
            async with RoomService(server.url, api_secret=TEST_SECRET) as service:
                history = await service.participant_stats("demo", alice_id)
                cut = history.samples[-2]["t"]
                later = await service.participant_stats("demo", alice_id, since=cut)
            assert len(history.samples) >= 3 and later.samples
            assert [s["t"] for s in later.samples] == [
                s["t"] for s in history.samples if s["t"] > cut
            ][: len(later.samples)]

            out = await run_example(examples["feed.py"], server.url)
            assert out.splitlines() == ["rooms: demo"] + ["tick: 2 participants"] * 3, out

            out = await run_example(examples["errors.py"], server.url)
            assert out.splitlines() == ["404 not_found", "demo 2", "403 forbidden"], out

            out = await run_example(examples["moderate.py"], server.url)
            assert sorted(out.splitlines()) == [
                "muted audio True",
                "muted video True",
                "removed bob",
            ], out
            assert await bob.wait_closed() is not None
            assert bob.close_reason == "removed"
            muted = await alice.expect("track_muted")
            assert muted["track"]["muted"] is True
            async with RoomService(server.url, api_secret=TEST_SECRET) as service:
                room = await service.get_room("demo")
            assert [p.identity for p in room.participants] == ["alice"]
            assert {t.track.kind: t.track.muted for t in room.tracks} == {
                "audio": True,
                "video": True,
            }
            assert video.id in {t.track.id for t in room.tracks}
        finally:
            await subscriber.close()
            await pc.close()  # type: ignore[attr-defined]
            await alice.close()
            await bob.close()


@pytest.mark.slow
async def test_the_webhook_receiver_example_verifies_a_real_servers_webhooks(tmp_path):
    port = free_port()
    env = example_env("")
    env["PORT"] = str(port)
    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        doc_examples()["webhook_receiver.py"],
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert receiver.stdout is not None
    hook = f"http://127.0.0.1:{port}/relayroom-webhook"
    try:
        async with aiohttp.ClientSession() as http:

            async def listening() -> bool:
                try:
                    async with http.post(hook, data=b"{}") as response:
                        return response.status == 401  # unsigned: refused
                except aiohttp.ClientError:
                    return False

            for _ in range(100):
                if await listening():
                    break
                await asyncio.sleep(0.1)
            forged = {
                "Relayroom-Webhook-Timestamp": str(int(time.time())),
                "Relayroom-Webhook-Signature": "v1=" + "0" * 64,
            }
            async with http.post(hook, data=b'{"id": "EV_x"}', headers=forged) as response:
                assert (response.status, await response.text()) == (401, "bad_signature")

            async with ServeProcess(tmp_path, "--webhook-url", hook) as server:
                alice = WsClient(await http.ws_connect(server.url + "ws"))
                await alice.join("demo", "alice")
                await alice.send({"type": "leave"})
                await alice.wait_closed()
                await alice.close()
                lines = [
                    (await asyncio.wait_for(receiver.stdout.readline(), 15)).decode().strip()
                    for _ in range(4)
                ]
        assert lines == [
            "room_started in demo",
            "participant_joined in demo: alice",
            "participant_left in demo: alice",
            "room_finished in demo",
        ], lines
    finally:
        receiver.send_signal(signal.SIGINT)  # web.run_app stops cleanly
        _, err = await asyncio.wait_for(receiver.communicate(), 15)
    assert receiver.returncode == 0, err.decode()
