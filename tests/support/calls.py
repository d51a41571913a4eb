"""A running call on an admin-enabled server: one publisher, one subscriber."""

from __future__ import annotations

from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish


async def start_call(admin_server, connect):
    server, ts, app = await admin_server(allow_loopback_candidates=True)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    pub_joined = await pub_ws.join("call", "pub")
    sub_joined = await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, video = await publish(pub_ws)
    await sub_ws.expect("track_published", 10)
    await subscriber.answer_next_offer()
    assert await eventually(lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 20)
    ids = (pub_joined["participant"]["id"], sub_joined["participant"]["id"])
    return server, ts, app, pub_pc, video, subscriber, ids
