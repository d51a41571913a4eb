"""Remux one participant's audio and video files of a recording into one file (no transcoding).

The manifest (media/recording.py) gives each file's start: the publisher's NTP time from its
sender reports when both files have one (what lip sync uses), else the wall clock of the first
frame. The later file's timestamps are shifted by the difference; packets are copied as they
are (PyAV demux and mux, no decoder, no encoder).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container


class MuxError(Exception):
    """A manifest or a participant that cannot be remuxed; the message says why."""


@dataclass(frozen=True)
class MuxResult:
    output: Path
    files: tuple[str, ...]
    offsets_s: tuple[float, ...]  # how far each input was shifted


def _load(manifest_path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MuxError(f"cannot read {manifest_path}: {exc.strerror}") from None
    except ValueError as exc:
        raise MuxError(f"{manifest_path} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise MuxError(f"{manifest_path} is not a recording manifest (no 'files' list)")
    return manifest


def pick_files(manifest: dict[str, Any], participant: str) -> list[dict[str, Any]]:
    """The participant's first video and first audio file (by id or identity)."""
    mine = [
        f
        for f in manifest["files"]
        if isinstance(f, dict) and participant in (f.get("participant_id"), f.get("identity"))
    ]
    if not mine:
        known = sorted(
            {str(f.get("identity") or f.get("participant_id")) for f in manifest["files"]}
        )
        raise MuxError(f"no files of participant {participant!r} (the manifest has: {known})")
    chosen = []
    for kind in ("video", "audio"):
        of_kind = sorted(
            (f for f in mine if f.get("kind") == kind), key=lambda f: f.get("started_at") or 0
        )
        if of_kind:
            chosen.append(of_kind[0])
    return chosen


def _start(entry: dict[str, Any], use_ntp: bool) -> float:
    value = entry.get("start_ntp") if use_ntp else entry.get("started_at")
    if not isinstance(value, int | float):
        raise MuxError(f"{entry.get('file')}: no start time in the manifest")
    return float(value)


def mux_participant(manifest_path: Path, participant: str, output: Path | None = None) -> MuxResult:
    """Write ``participant``'s audio and video into ``output`` (default: next to the manifest,
    ``<participant>.webm``, or ``.mkv`` for H264)."""
    manifest = _load(manifest_path)
    entries = pick_files(manifest, participant)
    use_ntp = all(isinstance(e.get("start_ntp"), int | float) for e in entries)
    starts = [_start(e, use_ntp) for e in entries]
    origin = min(starts)
    offsets = [s - origin for s in starts]
    h264 = any(e.get("codec") == "h264" for e in entries)
    if output is None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in participant)
        output = manifest_path.parent / f"{safe}.{'mkv' if h264 else 'webm'}"
    fmt = "matroska" if h264 or output.suffix == ".mkv" else "webm"
    inputs: list[av.container.InputContainer] = []
    try:
        for entry in entries:
            path = manifest_path.parent / str(entry.get("file"))
            try:
                inputs.append(av.open(str(path), "r"))
            except (OSError, av.FFmpegError) as exc:
                raise MuxError(f"cannot open {path}: {exc}") from None
        with av.open(str(output), "w", format=fmt) as out:
            streams = []
            for container in inputs:
                if len(container.streams) != 1:
                    raise MuxError(f"{container.name}: expected one stream")
                streams.append(out.add_stream_from_template(container.streams[0]))
            merged = heapq.merge(
                *(
                    _packets(container, i, offset)
                    for i, (container, offset) in enumerate(zip(inputs, offsets, strict=True))
                ),
                key=lambda item: item[0],
            )
            for _, index, packet in merged:
                packet.stream = streams[index]
                out.mux(packet)
    finally:
        for container in inputs:
            container.close()
    return MuxResult(output, tuple(str(e.get("file")) for e in entries), tuple(offsets))


def _packets(
    container: av.container.InputContainer, index: int, offset_s: float
) -> Iterator[tuple[float, int, av.Packet[Any]]]:
    """(time in seconds, input index, packet shifted by ``offset_s``) of one input, in order."""
    stream = container.streams[0]
    time_base = stream.time_base or Fraction(1, 1000)
    shift = round(offset_s / time_base)
    for packet in container.demux(stream):
        if packet.pts is None or packet.size == 0:
            continue
        packet.pts += shift
        if packet.dts is not None:
            packet.dts += shift
        yield float(packet.pts * time_base), index, packet
