"""An SFU call driven entirely through the WebSocket protocol by real aiortc peers."""

from __future__ import annotations

from relayroom.media.aiortc_hooks import configure_ice
from tests.media.client import LOOPBACK, StampedVideoTrack, client_pc
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish


async def test_publisher_video_reaches_subscriber_through_signaling(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    pub_joined = await pub_ws.join("call", "pub")
    await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, video = await publish(pub_ws)
    try:
        published = await sub_ws.expect("track_published", 10)
        assert published["participant_id"] == pub_joined["participant"]["id"]
        assert published["track"]["kind"] in ("audio", "video")
        await subscriber.answer_next_offer()
        assert await eventually(
            lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 15
        ), subscriber.counters
        frames = max(subscriber.counters.values(), key=len)
        assert frames == sorted(frames)

        # Mute goes to the room as track_muted.
        await pub_ws.send({"type": "mute", "track_id": video.id, "muted": True})
        muted = await sub_ws.expect("track_muted", 5)
        assert muted["track"]["id"] == video.id and muted["track"]["muted"] is True

        # The publisher leaves: the subscriber sees track_unpublished and a renegotiation.
        await pub_ws.send({"type": "leave"})
        unpublished = await sub_ws.expect("track_unpublished", 10)
        assert unpublished["participant_id"] == pub_joined["participant"]["id"]
        await subscriber.answer_next_offer()
        assert await eventually(lambda: video.id in subscriber.ended, 10)
    finally:
        await subscriber.close()
        await pub_pc.close()


async def test_publish_without_grant_is_forbidden(start_server, connect):
    _, ts = await start_server(allow_loopback_candidates=True)
    viewer = await connect(ts)
    await viewer.join("call", "viewer", can_publish=False)
    pc = client_pc()
    pc.addTransceiver(StampedVideoTrack(), direction="sendonly")
    configure_ice(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    await viewer.send({"type": "publish_offer", "id": 1, "sdp": pc.localDescription.sdp})
    reply = await viewer.expect("error", 10)
    assert reply["code"] == "forbidden" and reply["ref"] == 1
    await pc.close()


async def test_bad_sdp_is_rejected_and_socket_stays_usable(start_server, connect):
    _, ts = await start_server()
    client = await connect(ts)
    await client.join("call", "a")
    await client.send({"type": "publish_offer", "id": "x", "sdp": "v=0\r\nnonsense"})
    reply = await client.expect("error", 10)
    assert reply["code"] == "sdp_rejected" and reply["ref"] == "x"
    await client.send({"type": "ping", "id": "after"})
    assert (await client.expect("pong"))["ref"] == "after"


async def test_members_get_peer_connections_only_when_media_needs_them(start_server, connect):
    server, ts = await start_server(allow_loopback_candidates=True)
    idle, pub_ws = await connect(ts), await connect(ts)
    await idle.join("lazy", "idle", can_publish=False)
    await pub_ws.join("lazy", "pub")
    assert "lazy" not in server.media.rooms  # joined, idle: no PeerConnections yet
    subscriber = WsSubscriber(idle)
    pub_pc, _ = await publish(pub_ws)
    try:
        media_room = server.media.rooms["lazy"]
        await subscriber.answer_next_offer()  # the idle member is subscribed once a track exists
        assert set(media_room.participants) == {
            idle.joined["participant"]["id"],
            pub_ws.joined["participant"]["id"],
        }
        assert await eventually(lambda: any(len(c) >= 5 for c in subscriber.counters.values()), 15)
    finally:
        await subscriber.close()
        await pub_pc.close()
