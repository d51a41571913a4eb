"""`--log-format json` in cluster mode: two real server processes over a real Redis, and the
lines about a room or participant carry the room, participant and node ids, on the room's node
and on the node a participant's WebSocket came in through."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import WsClient
from tests.sdk.serve import ServeProcess

PARTICIPANT_ID = re.compile(r"PA_[A-Za-z0-9_-]+")


def json_lines(server: ServeProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_text().splitlines()]


async def test_json_lines_of_two_nodes_carry_room_participant_and_node(
    tmp_path: Path, redis_server: Any
) -> None:
    flags = ("--redis", redis_server.url, "--log-format", "json")
    owner, edge = ServeProcess(tmp_path / "a", *flags), ServeProcess(tmp_path / "b", *flags)
    async with owner, edge, aiohttp.ClientSession() as http:
        alice = WsClient(await http.ws_connect(owner.url + "ws"))
        ids = {"alice": (await alice.join("demo", "alice"))["participant"]["id"]}
        # The room lives on the first node: the second forwards bob's messages there.
        bob = WsClient(await http.ws_connect(edge.url + "ws"))
        ids["bob"] = (await bob.join("demo", "bob"))["participant"]["id"]
        await alice.expect("participant_joined")
        await bob.send({"type": "leave"})
        await bob.wait_closed()
        await alice.expect("participant_left")
        await alice.send({"type": "leave"})
        await alice.wait_closed()
        await alice.close()
        await bob.close()
    assert await owner.stop() == 0 and await edge.stop() == 0

    by_id = {pid: who for who, pid in ids.items()}
    about: dict[str, dict[str, list[dict[str, Any]]]] = {}
    nodes = {}
    for name, server in (("owner", owner), ("edge", edge)):
        lines = json_lines(server)
        nodes[name] = {line["node"] for line in lines}
        about[name] = {"alice": [], "bob": []}
        for line in lines:
            named = set(PARTICIPANT_ID.findall(line["message"]))
            if len(named) == 1:  # a line about one participant names it in its fields
                (pid,) = named
                assert line.get("participant") == pid and line.get("room") == "demo", line
                about[name][by_id[pid]].append(line)
            if re.search(r"room[ =]demo\b", line["message"]):
                assert line.get("room") == "demo", line
            if "participant" in line:
                assert line["participant"] in by_id and line["room"] == "demo", line
    # One node id per process, the cluster's (not single-node "local"), different per node.
    assert len(nodes["owner"]) == 1 and len(nodes["edge"]) == 1, nodes
    assert nodes["owner"] != nodes["edge"] and "local" not in nodes["owner"] | nodes["edge"]

    def said(node: str, who: str, logger: str, text: str) -> bool:
        return any(x["logger"] == logger and text in x["message"] for x in about[node][who])

    assert said("owner", "alice", "relayroom.signaling.rooms", "joined")
    assert said("owner", "bob", "relayroom.signaling.rooms", "joined")
    assert said("owner", "bob", "relayroom.signaling.rooms", "left: left")
    assert said("edge", "bob", "relayroom.signaling.cluster", "joined here")
    assert said("edge", "bob", "relayroom.signaling.cluster", "ended: left")
    assert not about["edge"]["alice"]  # alice never touched the edge node
