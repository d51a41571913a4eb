"""Run a load test: plan the participants, join them at a steady rate, report, leave."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import aiohttp
from yarl import URL

from relayroom.api import AccessToken, Grants
from relayroom.loadtest.peer import LoadPeer, MediaSpec, PeerReport
from relayroom.loadtest.probe import StreamProbe, percentile

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, kw_only=True)
class LoadTestSpec:
    """What to start and against which server. Either `api_secret` or `token_url` is needed."""

    url: str
    api_secret: str | None = None
    token_url: str | None = None
    rooms: int = 1
    publishers: int = 1
    subscribers: int = 1
    duration_s: float = 30.0
    join_rate: float = 10.0
    """Participants started per second (a ramp, as real users arrive)."""
    join_timeout_s: float = 15.0
    room_prefix: str = "load"
    report_interval_s: float = 5.0
    media: MediaSpec = field(default_factory=MediaSpec)

    def __post_init__(self) -> None:
        if (self.api_secret is None) == (self.token_url is None):
            raise ValueError("give exactly one of api_secret and token_url")
        for name in ("rooms", "publishers", "subscribers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.rooms < 1 or self.publishers + self.subscribers < 1:
            raise ValueError("nothing to start: need a room and a participant")
        if self.duration_s <= 0 or self.join_rate <= 0 or self.join_timeout_s <= 0:
            raise ValueError("duration_s, join_rate and join_timeout_s must be > 0")

    @property
    def ws_url(self) -> str:
        url = URL(self.url)
        scheme = {"https": "wss", "http": "ws"}.get(url.scheme, url.scheme)
        return str(url.with_scheme(scheme).with_path("/ws"))

    @property
    def loopback(self) -> bool:
        return URL(self.url).host in LOOPBACK_NAMES


@dataclass
class _Planned:
    room: str
    role: str  # "publisher" | "subscriber"
    index: int


async def _token(http: aiohttp.ClientSession, spec: LoadTestSpec, planned: _Planned) -> str:
    identity = f"{planned.role[:3]}-{planned.index}-{secrets.token_hex(3)}"
    publisher = planned.role == "publisher"
    if spec.api_secret is not None:
        grants = Grants(
            can_publish=publisher, can_subscribe=not publisher, can_publish_data=publisher
        )
        return AccessToken(
            api_secret=spec.api_secret, identity=identity, room=planned.room, grants=grants
        ).to_jwt()
    assert spec.token_url is not None
    async with http.post(spec.token_url, json={"room": planned.room, "name": identity}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"token endpoint answered {resp.status}")
        body = await resp.json()
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise RuntimeError("token endpoint gave no 'token'")
    return token


def plan(spec: LoadTestSpec) -> list[_Planned]:
    """Publishers of every room first (subscribers then see them at once), then subscribers."""
    rooms = [f"{spec.room_prefix}-{r}" for r in range(spec.rooms)]
    out = [_Planned(room, "publisher", i) for room in rooms for i in range(spec.publishers)]
    out += [_Planned(room, "subscriber", i) for room in rooms for i in range(spec.subscribers)]
    return out


def expected_streams(spec: LoadTestSpec) -> int:
    per_publisher = int(spec.media.video) + int(spec.media.audio)
    return spec.rooms * spec.subscribers * spec.publishers * per_publisher


# ---------------------------------------------------------------------- summaries


def _dist(values: list[float], digits: int = 1) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "p50": r(percentile(values, 50)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
    }


def _kind_summary(streams: list[StreamProbe], duration_s: float) -> dict[str, Any]:
    expected = sum(s.expected for s in streams)
    lost = sum(s.lost for s in streams)
    latencies = [v for s in streams for v in s.latencies_ms]
    fps = [s.fps() for s in streams]
    return {
        "streams": len(streams),
        "fps": {
            "p50": round(statistics.median(fps), 1) if fps else None,
            "min": round(min(fps), 1) if fps else None,
        },
        "loss_pct": round(100 * lost / expected, 2) if expected else None,
        "latency_ms": _dist(latencies),
        "bitrate_kbps_p50": round(statistics.median([s.bitrate_bps() for s in streams]) / 1000, 1)
        if streams
        else None,
        "incomplete_frames": sum(s.incomplete_frames for s in streams),
        "implausible_latencies": sum(s.implausible_latencies for s in streams),
        "packets": sum(s.packets for s in streams),
    }


def summarize(
    spec: LoadTestSpec, reports: list[PeerReport], failures: list[str], elapsed_s: float
) -> dict[str, Any]:
    joined = [r for r in reports if r.join_s is not None]
    streams = [s for r in reports for s in r.streams]
    video = [s for s in streams if s.kind == "video"]
    audio = [s for s in streams if s.kind == "audio"]
    data_latencies = [v for r in reports for v in r.data.latencies_ms]
    errors = failures + [e for r in reports for e in r.errors]
    sent = sum(r.data_sent for r in reports)
    data_received = sum(r.data.received for r in reports)
    data_expected = sum(r.data.expected for r in reports)
    return {
        "spec": {
            "url": spec.url,
            "rooms": spec.rooms,
            "publishers": spec.publishers,
            "subscribers": spec.subscribers,
            "duration_s": spec.duration_s,
            "media": asdict(spec.media),
        },
        "elapsed_s": round(elapsed_s, 1),
        "participants": {
            "planned": len(plan(spec)),
            "joined": len(joined),
            "failed": len(failures),
        },
        "join_s": _dist([r.join_s for r in joined if r.join_s is not None], 3),
        "first_media_s": _dist(
            [
                r.first_media_s
                for r in joined
                if r.first_media_s is not None and r.role == "subscriber"
            ],
            3,
        ),
        "streams": {
            "expected": expected_streams(spec),
            "received": len([s for s in streams if s.packets]),
        },
        "video": _kind_summary(video, spec.duration_s),
        "audio": _kind_summary(audio, spec.duration_s),
        "data": {
            "sent": sent,
            "received": data_received,
            "expected": data_expected,
            "loss_pct": round(100 * (1 - data_received / data_expected), 2)
            if data_expected
            else None,
            "latency_ms": _dist(data_latencies),
        },
        "subscribers": {
            # SRTP/SRTCP the subscribers handled on the cheap receive path (socket callback,
            # no jitter buffer): about as many as the media packets, or the generator is slow.
            "direct_packets": sum(r.direct_packets for r in reports),
            "media_packets": sum(s.packets for s in streams),
            "plis": sum(r.plis for r in reports),
        },
        "errors": {"count": len(errors), "first": errors[:20]},
    }


def passed(summary: dict[str, Any]) -> bool:
    """Every participant joined, every stream and data sender arrived, and nothing failed."""
    data = summary["data"]
    return bool(
        summary["participants"]["failed"] == 0
        and (data["sent"] == 0 or summary["spec"]["subscribers"] == 0 or data["received"] > 0)
        and summary["streams"]["received"] >= summary["streams"]["expected"]
        and summary["errors"]["count"] == 0
    )


class _LiveTable:
    """One line per interval: how the test is going now (latency over the last interval)."""

    HEADER = "  t(s)    joined   streams  v.fps  loss%  lat p50  lat p99 errors"

    def __init__(self, out: TextIO, total: int, expected: int) -> None:
        self._out = out
        self._total = total
        self._expected = expected
        self._seen: dict[int, int] = {}
        print(self.HEADER, file=out, flush=True)

    def line(self, t: float, reports: list[PeerReport], failures: int) -> None:
        streams = [s for r in reports for s in r.streams]
        video = [s.fps() for s in streams if s.kind == "video" and s.packets]
        expected = sum(s.expected for s in streams)
        lost = sum(s.lost for s in streams)
        window: list[float] = []
        for s in streams:
            start = self._seen.get(id(s), 0)
            window.extend(s.latencies_ms[start:])
            self._seen[id(s)] = len(s.latencies_ms)
        p50, p99 = percentile(window, 50), percentile(window, 99)
        errors = failures + sum(len(r.errors) for r in reports)
        joined = sum(1 for r in reports if r.join_s is not None)
        receiving = len([s for s in streams if s.packets])
        fps = statistics.median(video) if video else 0.0
        loss = 100 * lost / expected if expected else 0.0
        print(
            f"{t:6.0f} {joined:>4}/{self._total:<4} {receiving:>4}/{self._expected:<4}"
            f" {fps:6.1f} {loss:6.2f} {p50 or 0:8.1f} {p99 or 0:8.1f} {errors:6d}",
            file=self._out,
            flush=True,
        )


async def run_load_test(spec: LoadTestSpec, *, out: TextIO = sys.stderr) -> dict[str, Any]:
    """Start everything, hold it for `spec.duration_s`, and return the summary."""
    planned = plan(spec)
    reports: list[PeerReport] = []
    peers: list[LoadPeer] = []
    failures: list[str] = []
    table = _LiveTable(out, len(planned), expected_streams(spec))
    started = time.monotonic()
    publish = spec.media

    async def start_one(http: aiohttp.ClientSession, p: _Planned) -> None:
        report = PeerReport(p.role, p.room, receive_data=spec.media.data_per_s > 0)
        reports.append(report)
        try:
            token = await _token(http, spec, p)
            peer = LoadPeer(
                http,
                spec.ws_url,
                token,
                report,
                publish=publish if p.role == "publisher" else None,
                loopback=spec.loopback,
            )
            peers.append(peer)
            await peer.start(spec.join_timeout_s)
        except Exception as exc:  # one failed participant is a result, not a crash
            report.join_s = None
            failures.append(f"{p.role} in {p.room}: {type(exc).__name__}: {exc}")

    async def report_loop() -> None:
        while True:
            await asyncio.sleep(spec.report_interval_s)
            table.line(time.monotonic() - started, reports, len(failures))

    async with aiohttp.ClientSession() as http:
        reporter = asyncio.get_running_loop().create_task(report_loop())
        try:
            joins = []
            for p in planned:
                joins.append(asyncio.get_running_loop().create_task(start_one(http, p)))
                await asyncio.sleep(1.0 / spec.join_rate)
            await asyncio.gather(*joins)
            await asyncio.sleep(spec.duration_s)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            table.line(time.monotonic() - started, reports, len(failures))
            await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
    return summarize(spec, reports, failures, time.monotonic() - started)
