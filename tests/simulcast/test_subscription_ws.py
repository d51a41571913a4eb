"""The ``subscription`` message over a real WebSocket, on a track without simulcast: a hidden
tile (``paused``) stops the track, showing it again resumes it at a keyframe; a track the
client does not receive is refused with a reason."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish


def frames(subscriber: WsSubscriber) -> int:
    return sum(len(c) for c in subscriber.counters.values())


async def test_paused_stops_the_track_and_unpausing_resumes_it(
    start_server: Any, connect: Any
) -> None:
    _, ts = await start_server(allow_loopback_candidates=True)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    await pub_ws.join("subs", "pub")
    await sub_ws.join("subs", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, _video = await publish(pub_ws)
    published = await sub_ws.expect("track_published", 10)
    while published["track"]["kind"] != "video":
        published = await sub_ws.expect("track_published", 10)
    track_id = published["track"]["id"]
    await subscriber.answer_next_offer()
    assert await eventually(lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 20)

    await sub_ws.send({"type": "subscription", "track_id": track_id, "paused": True})
    await asyncio.sleep(1.0)  # what was in flight arrives
    before = frames(subscriber)
    await asyncio.sleep(1.5)
    assert frames(subscriber) == before  # nothing while hidden

    await sub_ws.send({"type": "subscription", "track_id": track_id, "max_width": 320})
    assert await eventually(
        lambda: sum(len(c) for c in subscriber.counters.values()) > before + 20, 10
    )

    await sub_ws.send({"type": "subscription", "id": "x", "track_id": "nope", "paused": True})
    error = await sub_ws.expect("error", 5)
    assert error["code"] == "invalid_message" and error["ref"] == "x"
    assert "not subscribed to track 'nope'" in error["message"]
    await subscriber.close()
    await pub_pc.close()
