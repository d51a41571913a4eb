"""`relayroom load-test`: its flags and the command (wired into relayroom.signaling.cli)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

from relayroom.loadtest.peer import MediaSpec
from relayroom.loadtest.runner import LoadTestSpec, passed, run_load_test


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:8080/", help="the server (default %(default)s)"
    )
    parser.add_argument(
        "--token-url",
        metavar="URL",
        help="POST {room, name} here for a token instead of minting with the API secret "
        "(a dev server's /api/dev/token, or your application's endpoint)",
    )
    parser.add_argument("--rooms", type=int, default=1, help="rooms (default %(default)s)")
    parser.add_argument(
        "--publishers", type=int, default=1, help="publishers per room (default %(default)s)"
    )
    parser.add_argument(
        "--subscribers", type=int, default=2, help="subscribers per room (default %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds once all joined (default 30)"
    )
    parser.add_argument(
        "--join-rate", type=float, default=10.0, help="participants started per second"
    )
    parser.add_argument("--room-prefix", default="load", help="room names: PREFIX-0, PREFIX-1...")
    parser.add_argument("--no-video", dest="video", action="store_false", help="publish no video")
    parser.add_argument("--no-audio", dest="audio", action="store_false", help="publish no audio")
    parser.add_argument(
        "--resolution", default="640x360", help="video WxH (pre-encoded VP8; default 640x360)"
    )
    parser.add_argument("--fps", type=int, default=30, help="video frames per second")
    parser.add_argument("--video-bitrate", type=int, default=800_000, help="VP8 target, bit/s")
    parser.add_argument(
        "--data-rate",
        type=float,
        default=2.0,
        help="DataChannel messages/s per publisher (0: none)",
    )
    parser.add_argument(
        "--report-interval", type=float, default=5.0, help="seconds between live table lines"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the summary to FILE")


def run(args: argparse.Namespace, secret: Callable[[], str]) -> int:
    """Run the test; print the summary (JSON) on stdout. Exit 0 only if everything arrived."""
    try:
        width, height = (int(v) for v in args.resolution.lower().split("x"))
    except ValueError:
        print(f"relayroom: --resolution {args.resolution!r}: expected WxH", file=sys.stderr)
        return 2
    try:
        spec = LoadTestSpec(
            url=args.url,
            api_secret=None if args.token_url else secret(),
            token_url=args.token_url,
            rooms=args.rooms,
            publishers=args.publishers,
            subscribers=args.subscribers,
            duration_s=args.duration,
            join_rate=args.join_rate,
            room_prefix=args.room_prefix,
            report_interval_s=args.report_interval,
            media=MediaSpec(
                video=args.video,
                audio=args.audio,
                width=width,
                height=height,
                fps=args.fps,
                video_bitrate=args.video_bitrate,
                data_per_s=args.data_rate,
            ),
        )
    except ValueError as exc:
        print(f"relayroom: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(run_load_test(spec))
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if passed(summary) else 1
