"""`relayroom record start|stop|list` (against a running server) and `relayroom recording mux`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from relayroom.api import RoomService, RoomServiceError

from .config import Config

URL_ENV = "RELAYROOM_URL"


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config_flags: object
) -> None:
    """`record` and `recording` subcommands; `config_flags(parser)` adds the shared flags."""
    assert callable(config_flags)
    record = sub.add_parser(
        "record", help="start, stop or list a room's recordings on a running server"
    )
    actions = record.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="record a room's tracks; prints the recording")
    stop = actions.add_parser("stop", help="stop a recording; prints it with its files")
    listing = actions.add_parser("list", help="a room's recordings (JSON)")
    for parser in (start, stop, listing):
        config_flags(parser)
        parser.add_argument("room", help="room name")
        parser.add_argument(
            "--url",
            help=f"the server (default ${URL_ENV}, else http://127.0.0.1:<port>/ of the config)",
        )
    start.add_argument(
        "--participant",
        action="append",
        metavar="ID",
        help="record only this participant (id or identity); repeatable",
    )
    start.add_argument(
        "--track", action="append", metavar="ID", help="record only this track id; repeatable"
    )
    stop.add_argument("recording_id", help="as `record start` printed it")

    recording = sub.add_parser("recording", help="work on recorded files")
    tools = recording.add_subparsers(dest="action", required=True)
    mux = tools.add_parser(
        "mux", help="remux one participant's audio and video into one file (no transcoding)"
    )
    mux.add_argument("manifest", type=Path, help="the recording's manifest.json")
    mux.add_argument(
        "--participant", required=True, help="participant id or identity (as in the manifest)"
    )
    mux.add_argument(
        "--output", type=Path, help="output file (default <participant>.webm next to the manifest)"
    )


def server_url(config: Config, given: str | None) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return given or os.environ.get(URL_ENV) or f"http://{host}:{config.port}/"


def cmd_record(config: Config, secret: str, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_record(server_url(config, args.url), secret, args))
    except RoomServiceError as exc:
        print(f"relayroom: {exc.code}: {exc}", file=sys.stderr)
        return 1


async def _record(url: str, secret: str, args: argparse.Namespace) -> int:
    async with RoomService(url, api_secret=secret) as service:
        if args.action == "start":
            result = await service.start_recording(
                args.room, participants=args.participant, tracks=args.track
            )
            print(json.dumps(asdict(result), indent=2))
        elif args.action == "stop":
            result = await service.stop_recording(args.room, args.recording_id)
            print(json.dumps(asdict(result), indent=2))
        else:
            found = await service.list_recordings(args.room)
            print(json.dumps([asdict(r) for r in found], indent=2))
    return 0


def cmd_recording(args: argparse.Namespace) -> int:
    # PyAV loads only for this command: the server never needs it (see relayroom/lazy_av.py).
    from relayroom.media.recording_mux import MuxError, mux_participant

    try:
        result = mux_participant(args.manifest, args.participant, args.output)
    except MuxError as exc:
        print(f"relayroom: {exc}", file=sys.stderr)
        return 1
    print(result.output)
    return 0
