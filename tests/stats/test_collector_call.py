"""On a live aiortc call through the WebSocket, the collector's numbers match the clients' own."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any

import pytest

from relayroom.media.stats import StatsCollector
from relayroom.signaling.admin import STATS_KEY
from tests.stats.conftest import admin_token, api, bearer
from tests.support.calls import start_call

pytestmark = pytest.mark.slow  # a real call or a benchmark run: seconds each

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
        report: list[tuple[Any, str, Any, float]] = []
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
        since = round(ticks[1].t, 3)  # as clients see it: the samples carry t to the ms
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


def impair_incoming_audio(pc: Any, drop_every: int, delay_s: float) -> dict[str, int]:
    """On the client's ICE connection, drop every `drop_every`-th audio RTP packet and delay every
    other one by `delay_s`: a known 1/drop_every loss and an interarrival jitter of `delay_s`
    (RFC 3550: |D| is `delay_s` for every pair of packets, so J converges to it)."""
    opus = re.search(r"a=rtpmap:(\d+) opus/48000", pc.remoteDescription.sdp)
    assert opus is not None
    audio_pt = int(opus.group(1))
    loop = asyncio.get_running_loop()
    counts = {"audio": 0, "dropped": 0}
    conn: Any = pc.getTransceivers()[0].receiver.transport.transport._connection
    original = conn.data_received

    def impaired(data: bytes, component: int) -> None:
        is_rtp = len(data) > 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223
        if not is_rtp or data[1] & 0x7F != audio_pt:
            original(data, component)
            return
        counts["audio"] += 1
        if counts["audio"] % drop_every == 0:
            counts["dropped"] += 1
        elif counts["audio"] % 2:
            loop.call_later(delay_s, original, data, component)
        else:
            original(data, component)

    conn.data_received = impaired
    return counts


async def test_injected_loss_and_jitter_are_measured(admin_server, connect):
    """5% loss and 10 ms of jitter injected on the subscriber's audio are what the collector reports
    for that leg (the subscriber's receiver reports), within 2 points and 4 ms."""
    _, _, app, pub_pc, _, subscriber, (_, sub_id) = await start_call(admin_server, connect)
    stats: StatsCollector = app[STATS_KEY]
    try:
        await stats.close()  # drive the ticks from here
        counts = impair_incoming_audio(subscriber.pc, drop_every=20, delay_s=0.010)
        await asyncio.sleep(3)  # receiver reports cover the impaired period; jitter converges
        losses, jitters = [], []
        await stats.collect()
        for _ in range(4):
            await asyncio.sleep(TICK_S)
            tick = await stats.collect()
            sample = next(s for s in tick.samples if s["participant_id"] == sub_id)
            audio = next(t for t in sample["tracks"]["out"] if t["kind"] == "audio")
            if audio["loss"] is not None:
                losses.append(audio["loss"])
                jitters.append(audio["jitter_ms"])
        assert counts["dropped"] >= 20, counts
        assert len(losses) >= 3, (losses, jitters)
        assert abs(statistics.median(losses) - 0.05) <= 0.02, losses
        assert abs(statistics.median(jitters) - 10.0) <= 4.0, jitters
    finally:
        await subscriber.close()
        await pub_pc.close()
