"""On a live aiortc call through the WebSocket, the collector's numbers match the clients' own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from relayroom.media.stats import StatsCollector
from relayroom.signaling.admin import STATS_KEY
from tests.signaling.test_sfu_call import WsSubscriber, publish, wait_until
from tests.stats.conftest import admin_token, api, bearer

TOLERANCE = 0.10
TICK_S = 2.0


async def sender_counters(pc: Any) -> dict[str, tuple[int, int]]:
    """(packets, bytes) sent per kind, read without yielding to the event loop."""
    out: dict[str, tuple[int, int]] = {}
    for sender in pc.getSenders():
        for entry in (await sender.getStats()).values():
            if entry.type == "outbound-rtp":
                out[entry.kind] = (entry.packetsSent, entry.bytesSent)
    return out


async def receiver_packets(pc: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for receiver in pc.getReceivers():
        for entry in (await receiver.getStats()).values():
            if entry.type == "inbound-rtp":
                out[entry.kind] = out.get(entry.kind, 0) + entry.packetsReceived
    return out


def within(measured: float, truth: float) -> bool:
    return truth > 0 and abs(measured - truth) <= TOLERANCE * truth


async def start_call(admin_server, connect):
    server, ts, app = await admin_server(allow_loopback_candidates=True)
    pub_ws, sub_ws = await connect(ts), await connect(ts)
    pub_joined = await pub_ws.join("call", "pub")
    sub_joined = await sub_ws.join("call", "sub", can_publish=False)
    subscriber = WsSubscriber(sub_ws)
    pub_pc, video = await publish(pub_ws)
    await sub_ws.expect("track_published", 10)
    await subscriber.answer_next_offer()
    assert await wait_until(lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 20)
    ids = (pub_joined["participant"]["id"], sub_joined["participant"]["id"])
    return server, ts, app, pub_pc, video, subscriber, ids


async def test_collector_bitrates_and_packets_match_the_clients(admin_server, connect):
    _, ts, app, pub_pc, video, subscriber, (pub_id, sub_id) = await start_call(
        admin_server, connect
    )
    stats: StatsCollector = app[STATS_KEY]
    try:
        await stats.close()  # drive the ticks from here, aligned with the clients' counters
        await asyncio.sleep(2)  # let the encoder's bitrate settle a little
        sent = [await sender_counters(pub_pc)]
        received = [await receiver_packets(subscriber.pc)]
        ticks = [await stats.collect()]
        for _ in range(3):
            await asyncio.sleep(TICK_S)
            sent.append(await sender_counters(pub_pc))
            received.append(await receiver_packets(subscriber.pc))
            ticks.append(await stats.collect())
        report = []
        for i in range(1, len(ticks)):
            samples = {s["participant_id"]: s for s in ticks[i].samples}
            dt = ticks[i].t - ticks[i - 1].t
            for track in samples[pub_id]["tracks"]["in"]:
                kind = track["kind"]
                packets = sent[i][kind][0] - sent[i - 1][kind][0]
                bits = 8 * (sent[i][kind][1] - sent[i - 1][kind][1])
                report.append((kind, "in", track["packets_per_s"] * dt, packets))
                report.append((kind, "in bps", track["bitrate_bps"], bits / dt))
            for track in samples[sub_id]["tracks"]["out"]:
                kind = track["kind"]
                packets = received[i][kind] - received[i - 1][kind]
                report.append((kind, "out", track["packets_per_s"] * dt, packets))
        assert len(report) == 3 * 6, report
        for kind, what, measured, truth in report:
            assert within(measured, truth), (kind, what, measured, truth, report)

        # Cumulative counters agree as well.
        last = {s["participant_id"]: s for s in ticks[-1].samples}
        video_in = next(t for t in last[pub_id]["tracks"]["in"] if t["kind"] == "video")
        assert within(video_in["packets"], sent[-1]["video"][0])
        assert within(video_in["bytes"], sent[-1]["video"][1])
        assert video_in["track_id"] == video.id
        assert video_in["keyframes"] >= 1 and video_in["subscribers"] == 1
        assert 20 <= video_in["fps"] <= 40, video_in
        assert video_in["loss"] == 0.0 and video_in["jitter_ms"] is not None
        video_out = next(t for t in last[sub_id]["tracks"]["out"] if t["kind"] == "video")
        assert video_out["state"] == "forwarding" and video_out["keyframes"] >= 1
        assert video_out["publisher_id"] == pub_id

        # Connection state and the selected candidate pair, on both PeerConnections.
        for pid, name in ((pub_id, "publisher"), (sub_id, "subscriber")):
            conn = last[pid]["connections"][name]
            assert conn["state"] == "connected" and conn["dtls_state"] == "connected", conn
            pair = conn["candidate_pair"]
            assert pair["type"] == "host", pair
            assert pair["local"]["address"] == "127.0.0.1" and pair["local"]["protocol"] == "udp"
            assert conn["bitrate_in_bps"] > 0 if name == "publisher" else conn["bitrate_out_bps"]
        idle = last[sub_id]["connections"]["publisher"]  # nothing published: never connected
        assert idle is None or idle["state"] == "new"
        assert last[pub_id]["health"] == "ok" and last[sub_id]["health"] == "ok"

        # History through the API: only samples newer than `since`.
        since = ticks[1].t
        url = ts.make_url(f"/api/rooms/call/participants/{pub_id}/stats").with_query(
            since=str(since)
        )
        status, history = await api(ts, "GET", url, bearer(admin_token()))
        assert status == 200
        times = [s["t"] for s in history["samples"]]
        assert times == sorted(times) and all(t > since for t in times)
        assert len(times) == 2
    finally:
        await subscriber.close()
        await pub_pc.close()


async def test_rtt_is_measured_on_the_subscriber_leg(admin_server, connect):
    _, _, app, pub_pc, _, subscriber, (_, sub_id) = await start_call(admin_server, connect)
    stats: StatsCollector = app[STATS_KEY]
    try:

        def rtt() -> float | None:
            latest = stats.latest("call", sub_id)
            return latest["summary"]["rtt_ms"] if latest else None

        deadline = time.monotonic() + 15
        while rtt() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        value = rtt()
        assert value is not None and 0 <= value < 300, value
    finally:
        await subscriber.close()
        await pub_pc.close()
