"""Recording without transcoding: what the relay forwards, written to one file per track.

A `Recording` (one room, one directory) hangs a `TrackRecorder` on each selected track's hub
(`TrackHub.recorder`, one attribute check in the forwarding hot path when nothing records). The
recorder puts the packets back into whole frames (`depacketize.FrameAssembler`: reorder buffer,
loss, keyframe gaps) and appends them to a Matroska file (`matroska.MatroskaWriter`: VP8 and Opus
as WebM, H264 as MKV) without decoding anything. It asks the publisher for a keyframe at the
start and after a loss, through the hub's own rate-limited keyframe requests.

A manifest (``manifest.json``, rewritten atomically on every change) names each file's
participant, track, codec and start time (wall clock, RTP timestamp, and the publisher's NTP
time once its sender report is known) so that audio and video can be aligned later
(`recording_mux`). A recording ends by API, when its room's relay closes, at
``max_duration_s`` or ``max_bytes``, or at the first write error (disk full...): every file is
then closed cleanly and the error reported; the call itself never notices.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .depacketize import FrameAssembler, h264_dimensions, h264_parameter_sets, vp8_dimensions
from .matroska import MatroskaWriter, avc_config, opus_head

if TYPE_CHECKING:  # annotations only: the server starts without aiortc (relayroom/lazy_stack.py)
    from aiortc.rtp import RtpPacket

    from .forwarding import TrackHub

logger = logging.getLogger(__name__)

RECORDABLE = ("vp8", "h264", "opus")
KEYFRAME_RETRY_S = 1.0  # while a video file waits for a keyframe, ask again this often
_NTP_EPOCH_OFFSET = 2208988800
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

EventSink = Callable[[str, dict[str, Any]], None]


class RecordingError(Exception):
    """A recording that cannot start or be found; ``code`` is stable for the API."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RecordingSettings:
    directory: Path
    """Where each recording gets its own directory."""
    max_duration_s: float = 4 * 3600.0
    """A recording stops (reason ``time_limit``) after this long."""
    max_bytes: int = 2 * 1024**3
    """A recording stops (reason ``size_limit``) once its files hold this many bytes."""
    max_active: int = 16
    """Recordings running at once on this node."""
    reorder_s: float = 0.3
    """How long a missing packet is waited for (a retransmission) before it counts as lost."""
    cluster_ms: int = 1000
    """Longest stretch of media held in memory before it is written (what a crash can lose)."""
    keep_finished: int = 100
    """Finished recordings still listed by the admin API (their manifests stay on disk)."""


@dataclass(frozen=True)
class Selection:
    """Which tracks a recording takes: every track, or those of these participants / track ids."""

    participants: frozenset[str] | None = None
    tracks: frozenset[str] | None = None

    def matches(self, participant_id: str, track_id: str, identity: str | None = None) -> bool:
        """Whether this track is taken; a participant is named by its id or its identity."""
        who = self.participants
        return (
            who is None or participant_id in who or (identity is not None and identity in who)
        ) and (self.tracks is None or track_id in self.tracks)


class RecordingState(enum.Enum):
    ACTIVE = "active"
    FINISHED = "finished"
    FAILED = "failed"  # ended by a write error; the files written so far are valid


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name)[:64] or "_"


class _WriteFailed(Exception):
    pass


class TrackRecorder:
    """One published track into one file. ``on_packet`` is the hub's tap; it never raises."""

    def __init__(
        self,
        path: Path,
        participant_id: str,
        identity: str | None,
        hub: TrackHub,
        settings: RecordingSettings,
        *,
        on_bytes: Callable[[int], None],
        on_error: Callable[[TrackRecorder, BaseException], None],
        on_opened: Callable[[], None],
    ) -> None:
        self.path = path
        self.participant_id = participant_id
        self.identity = identity
        self.hub: TrackHub | None = hub  # dropped at close: a finished recording is kept
        self.track_id = hub.info.id
        self.kind = hub.info.kind
        self.codec = hub.info.codec.lower()
        self.clock_rate = hub.clock_rate
        self._settings = settings
        self._on_bytes = on_bytes
        self._on_error = on_error
        self._on_opened = on_opened
        self._assembler = FrameAssembler(self.codec, reorder_s=settings.reorder_s)
        self._ssrc: int | None = None
        self._file: BinaryIO | None = None
        self._writer: MatroskaWriter | None = None
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._ts_base: int | None = None  # extended RTP timestamp of ms_base
        self._ms_base = 0
        self._last_ms = 0
        self._last_wall = 0.0
        self._asked_at = 0.0
        self.closed = False
        self.started_at: float | None = None  # unix time of the first frame written
        self.start_rtp: int | None = None  # its RTP timestamp (as the publisher sent it)
        self.start_ntp: float | None = None  # its publisher NTP time (unix), from an SR
        self.ended_at: float | None = None
        self.segments = 0  # times the publisher's stream restarted (new SSRC)

    # ---- the tap (hot path while recording)

    def on_packet(self, pkt: RtpPacket) -> None:
        if self.closed:
            return
        try:
            if pkt.ssrc != self._ssrc:
                self._new_source(pkt.ssrc)
            assembler = self._assembler
            now = time.monotonic()
            frames = assembler.push(
                pkt.sequence_number, pkt.timestamp, bool(pkt.marker), pkt.payload, now
            )
            # Ask at a loss, and again every second while waiting (a request or the keyframe
            # answering it can be lost too); the hub's limiter merges these with subscribers'.
            if assembler.need_keyframe or (
                assembler.waiting_keyframe and now - self._asked_at >= KEYFRAME_RETRY_S
            ):
                assembler.need_keyframe = False
                self._asked_at = now
                self._request_keyframe()
            for frame in frames:
                self._write(frame.data, frame.timestamp, frame.keyframe)
        except Exception as exc:  # a write error (disk full...) or a bug: never the call's
            self.closed = True
            self._on_error(self, exc)

    def _new_source(self, ssrc: int) -> None:
        """The publisher (re)started its stream: new sequence numbers and timestamps."""
        if self._ssrc is not None:
            self._flush_assembler()
            self._assembler = FrameAssembler(self.codec, reorder_s=self._settings.reorder_s)
            self._request_keyframe()
            self.segments += 1
            if self._ts_base is not None:
                # Continue this file's time where it stopped, plus the wall-clock gap.
                gap_ms = int((time.monotonic() - self._last_wall) * 1000)
                self._ms_base = self._last_ms + max(1, gap_ms)
                self._ts_base = None
        self._ssrc = ssrc

    def _flush_assembler(self) -> None:
        for frame in self._assembler.flush():
            self._write(frame.data, frame.timestamp, frame.keyframe)

    def _write(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        writer = self._writer
        if writer is None:
            writer = self._open(data, keyframe, timestamp)
            if writer is None:
                return
        if self._ts_base is None:
            self._ts_base = timestamp
        ms = self._ms_base + (timestamp - self._ts_base) * 1000 // self.clock_rate
        before = writer.bytes_written
        writer.add(data, ms, keyframe)
        self._last_ms = ms
        self._last_wall = time.monotonic()
        if writer.bytes_written != before:
            self._on_bytes(writer.bytes_written - before)

    def _open(self, frame: bytes, keyframe: bool, timestamp: int) -> MatroskaWriter | None:
        """Open the file at the first frame that can start it (video: a keyframe with its size)."""
        width = height = 0
        private = b""
        if self.codec == "opus":
            private = opus_head()
        elif not keyframe:
            return None
        elif self.codec == "vp8":
            size = vp8_dimensions(frame)
            if size is None:
                return None
            width, height = size
        else:
            sps, pps = h264_parameter_sets(frame)
            self._sps, self._pps = sps or self._sps, pps or self._pps
            if self._sps is None or self._pps is None:
                self._request_keyframe()
                return None
            width, height = h264_dimensions(self._sps)
            private = avc_config(self._sps, self._pps)
        try:
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (closed in close())
            self._writer = MatroskaWriter(
                self._file,
                codec=self.codec,
                webm=self.codec != "h264",
                width=width,
                height=height,
                codec_private=private,
                cluster_ms=self._settings.cluster_ms,
                title=f"{self.participant_id}/{self.track_id}",
            )
        except OSError:
            if self._file is not None:
                self._file.close()
                self._file = None
            raise
        self._on_bytes(self._writer.bytes_written)
        self.started_at = time.time()
        self.start_rtp = timestamp & 0xFFFFFFFF
        self._on_opened()
        return self._writer

    def _request_keyframe(self) -> None:
        if self.hub is not None:
            self.hub.request_keyframe()

    # ---- end

    def close(self) -> None:
        """Write what is complete and close the file (idempotent); write errors propagate."""
        if self.closed and self._file is None:
            self.hub = None
            return
        was_closed, self.closed = self.closed, True
        try:
            if not was_closed and self._writer is not None:
                self._flush_assembler()
            if self._writer is not None:
                self._writer.close()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
            self.ended_at = time.time()
            hub, self.hub = self.hub, None
            if hub is not None:
                if hub.recorder == self.on_packet:
                    hub.recorder = None
                if self.start_rtp is not None and self.start_ntp is None:
                    ntp = hub.ntp_for(self.start_rtp)
                    if ntp is not None:
                        self.start_ntp = ntp / 4294967296.0 - _NTP_EPOCH_OFFSET

    @property
    def bytes(self) -> int:
        return self._writer.bytes_written if self._writer is not None else 0

    @property
    def frames(self) -> int:
        return self._writer.frames if self._writer is not None else 0

    def to_json(self) -> dict[str, Any]:
        stats = self._assembler.stats
        return {
            "participant_id": self.participant_id,
            "identity": self.identity,
            "track_id": self.track_id,
            "kind": self.kind,
            "codec": self.codec,
            "file": self.path.name,
            "container": "mkv" if self.codec == "h264" else "webm",
            "clock_rate": self.clock_rate,
            "started_at": self.started_at,
            "start_rtp_timestamp": self.start_rtp,
            "start_ntp": self.start_ntp,
            "ended_at": self.ended_at,
            "duration_s": round(self._writer.duration_ms / 1000, 3) if self._writer else 0.0,
            "frames": self.frames,
            "bytes": self.bytes,
            "packets_lost": stats.lost,
            "frames_dropped": stats.broken_frames + stats.skipped_frames,
            "source_restarts": self.segments,
        }


class Recording:
    """One room's recording: a directory, its track files and its manifest."""

    def __init__(
        self,
        recording_id: str,
        room: str,
        directory: Path,
        settings: RecordingSettings,
        selection: Selection,
        on_end: Callable[[Recording], None],
    ) -> None:
        self.id = recording_id
        self.room = room
        self.directory = directory
        self.selection = selection
        self._settings = settings
        self._on_end = on_end
        self._files: list[TrackRecorder] = []
        self._live: dict[tuple[str, str], TrackRecorder] = {}
        self.state = RecordingState.ACTIVE
        self.reason: str | None = None
        self.error: str | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.bytes = 0
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(settings.max_duration_s, self.stop, "time_limit")

    def _set_state(self, state: RecordingState) -> None:
        if state is not self.state:
            logger.info(
                "room %s: recording %s: %s -> %s (%s)",
                self.room,
                self.id,
                self.state.value,
                state.value,
                self.reason,
                extra={"room": self.room},
            )
            self.state = state

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    @property
    def files(self) -> list[TrackRecorder]:
        return list(self._files)

    def add_track(self, participant_id: str, hub: TrackHub, identity: str | None = None) -> bool:
        """Record ``hub``'s track if it is selected and recordable; True when it now records."""
        if self.state is not RecordingState.ACTIVE or self._stopping:
            return False
        key = (participant_id, hub.info.id)
        if key in self._live or not self.selection.matches(*key, identity):
            return False
        codec = hub.info.codec.lower()
        if codec not in RECORDABLE or hub.recorder is not None:
            return False
        ext = "mkv" if codec == "h264" else "webm"
        stem = f"{_safe(participant_id)}-{_safe(hub.info.id)}"
        path = self.directory / f"{stem}.{ext}"
        n = 1
        while any(f.path == path for f in self._files):
            n += 1
            path = self.directory / f"{stem}-{n}.{ext}"
        recorder = TrackRecorder(
            path,
            participant_id,
            identity,
            hub,
            self._settings,
            on_bytes=self._count,
            on_error=self._track_failed,
            on_opened=self.write_manifest,
        )
        self._files.append(recorder)
        self._live[key] = recorder
        hub.recorder = recorder.on_packet
        hub.request_keyframe()  # start the video file without waiting for the next keyframe
        return True

    def remove_track(self, participant_id: str, track_id: str) -> None:
        """The track is no longer published: close its file (a new publish gets a new file)."""
        recorder = self._live.pop((participant_id, track_id), None)
        if recorder is None:
            return
        self._detach(recorder)
        try:
            recorder.close()
        except Exception as exc:
            self._track_failed(recorder, exc)
            return
        self.write_manifest()

    @staticmethod
    def _detach(recorder: TrackRecorder) -> None:
        hub = recorder.hub
        if hub is not None and hub.recorder == recorder.on_packet:
            hub.recorder = None

    def _count(self, n: int) -> None:
        self.bytes += n
        if self.bytes >= self._settings.max_bytes and not self._stopping:
            self._stopping = True
            asyncio.get_running_loop().call_soon(self.stop, "size_limit")

    def _track_failed(self, recorder: TrackRecorder, exc: BaseException) -> None:
        self._detach(recorder)
        if self.error is None:
            self.error = f"{recorder.path.name}: {exc}"
        logger.warning(
            "room %s: recording %s: %s failed: %s",
            self.room,
            self.id,
            recorder.path.name,
            exc,
            extra={"room": self.room},
        )
        if not self._stopping:
            self._stopping = True
            asyncio.get_running_loop().call_soon(self.stop, "write_error")

    def stop(self, reason: str) -> None:
        """End the recording (idempotent): close every file, write the manifest, report."""
        if self.state is not RecordingState.ACTIVE:
            return
        self._stopping = True
        self._timer.cancel()
        self.reason = reason
        for recorder in self._files:
            self._detach(recorder)
            try:
                recorder.close()
            except Exception as exc:  # the file keeps what was written before
                if self.error is None:
                    self.error = f"{recorder.path.name}: {exc}"
                if reason != "write_error":
                    self.reason = "write_error"
        self._live.clear()
        self.ended_at = time.time()
        self._set_state(
            RecordingState.FAILED if self.reason == "write_error" else RecordingState.FINISHED
        )
        self.write_manifest()
        self._on_end(self)

    def write_manifest(self) -> None:
        """Rewrite manifest.json atomically; a failure is reported, never raised."""
        tmp = self.manifest_path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(self.manifest(), indent=2) + "\n")
            os.replace(tmp, self.manifest_path)
        except OSError as exc:
            if self.error is None:
                self.error = f"manifest.json: {exc}"
            logger.warning(
                "room %s: recording %s: manifest not written: %s",
                self.room,
                self.id,
                exc,
                extra={"room": self.room},
            )

    def manifest(self) -> dict[str, Any]:
        return {
            "version": 1,
            "recording_id": self.id,
            "room": self.room,
            "state": self.state.value,
            "reason": self.reason,
            "error": self.error,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "files": [f.to_json() for f in self._files if f.started_at is not None],
        }

    def to_json(self) -> dict[str, Any]:
        body = self.manifest()
        body["directory"] = str(self.directory)
        body["bytes"] = self.bytes
        body["tracks"] = [
            {"participant_id": f.participant_id, "track_id": f.track_id, "recording": not f.closed}
            for f in self._files
        ]
        return body


class Recordings:
    """The recordings of this node: at most one active per room, plus recently finished ones."""

    def __init__(self, settings: RecordingSettings) -> None:
        self.settings = settings
        self._active: dict[str, Recording] = {}  # room -> recording
        self._finished: deque[Recording] = deque(maxlen=settings.keep_finished)
        self._listeners: list[EventSink] = []

    def add_listener(self, sink: EventSink) -> None:
        """``sink(kind, fields)`` gets ``recording_started`` and ``recording_finished``."""
        self._listeners.append(sink)

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        for sink in self._listeners:
            try:
                sink(kind, fields)
            except Exception:
                logger.exception("recording event listener failed on %s", kind)

    def start(
        self,
        room: str,
        tracks: list[tuple[str, TrackHub]],
        selection: Selection,
        identities: dict[str, str] | None = None,
    ) -> Recording:
        """Start recording ``room``'s ``tracks`` (publisher id, hub) that ``selection`` takes.

        ``identities`` (participant id -> token identity) goes into the manifest; a selection
        may name either.

        Raises `RecordingError`: ``conflict`` (the room records already), ``limit``
        (``max_active``), ``nothing_to_record`` (no selected track is published),
        ``storage_error`` (the directory cannot be made).
        """
        if room in self._active:
            raise RecordingError("conflict", f"room {room!r} is already being recorded")
        if len(self._active) >= self.settings.max_active:
            raise RecordingError(
                "limit", f"{self.settings.max_active} recordings already run on this node"
            )
        names = identities or {}
        chosen = [
            (pid, hub) for pid, hub in tracks if selection.matches(pid, hub.info.id, names.get(pid))
        ]
        if not any(hub.info.codec.lower() in RECORDABLE for _, hub in chosen):
            raise RecordingError("nothing_to_record", "no selected track is published")
        recording_id = secrets.token_hex(6)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        directory = self.settings.directory / f"{_safe(room)}-{stamp}-{recording_id}"
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise RecordingError("storage_error", f"cannot create {directory}: {exc}") from None
        recording = Recording(recording_id, room, directory, self.settings, selection, self._ended)
        self._active[room] = recording
        for pid, hub in chosen:
            recording.add_track(pid, hub, names.get(pid))
        recording.write_manifest()
        logger.info(
            "room %s: recording %s started in %s",
            room,
            recording_id,
            directory,
            extra={"room": room},
        )
        self._emit(
            "recording_started",
            {
                "room": room,
                "recording_id": recording_id,
                "tracks": [
                    {"participant_id": f.participant_id, "track_id": f.track_id}
                    for f in recording.files
                ],
            },
        )
        return recording

    def _ended(self, recording: Recording) -> None:
        if self._active.get(recording.room) is recording:
            del self._active[recording.room]
        self._finished.append(recording)
        fields: dict[str, Any] = {
            "room": recording.room,
            "recording_id": recording.id,
            "files": [
                {
                    "path": str(f.path),
                    "participant_id": f.participant_id,
                    "track_id": f.track_id,
                    "kind": f.kind,
                    "codec": f.codec,
                    "bytes": f.bytes,
                    "duration_s": f.to_json()["duration_s"],
                }
                for f in recording.files
                if f.started_at is not None
            ],
            "reason": recording.reason,
        }
        if recording.error is not None:
            fields["error"] = recording.error
        self._emit("recording_finished", fields)

    # ---- queries

    def get(self, recording_id: str) -> Recording | None:
        for recording in (*self._active.values(), *self._finished):
            if recording.id == recording_id:
                return recording
        return None

    def list(self, room: str | None = None) -> list[Recording]:
        every = [*self._finished, *self._active.values()]
        return [r for r in every if room is None or r.room == room]

    def active(self, room: str) -> Recording | None:
        return self._active.get(room)

    # ---- what the rooms tell us

    def track_published(
        self, room: str, participant_id: str, hub: TrackHub, identity: str | None = None
    ) -> None:
        recording = self._active.get(room)
        if recording is not None and recording.add_track(participant_id, hub, identity):
            recording.write_manifest()

    def track_unpublished(self, room: str, participant_id: str, track_id: str) -> None:
        recording = self._active.get(room)
        if recording is not None:
            recording.remove_track(participant_id, track_id)

    def room_ended(self, room: str) -> None:
        recording = self._active.get(room)
        if recording is not None:
            recording.stop("room_ended")

    def close(self) -> None:
        """Server shutdown: stop every active recording."""
        for recording in list(self._active.values()):
            recording.stop("server_shutdown")
