"""The OpenAPI 3.1 description of the admin API, served at `GET /api/openapi.json`.

Written by hand next to the handlers (signaling/admin.py); tests check that every route is
described and that real responses validate against these schemas.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from relayroom import __version__

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def _nullable(kind: str) -> Schema:
    return {"type": [kind, "null"]}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
HEALTH: Schema = {"type": "string", "enum": ["ok", "warn", "bad"]}

CANDIDATE: Schema = _obj(
    {
        "type": _nullable("string"),
        "protocol": _nullable("string"),
        "address": _nullable("string"),
        "port": _nullable("integer"),
    }
)

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": _obj({"code": STRING, "message": STRING})}),
    "Track": _obj(
        {"id": STRING, "kind": {"type": "string", "enum": ["audio", "video"]}, "muted": BOOLEAN},
        {"codec": STRING},
    ),
    "RoomSummary": _obj(
        {
            "name": STRING,
            "mode": {"type": "string", "enum": ["sfu", "p2p"]},
            "created_at": NUMBER,
            "participants": INTEGER,
            "tracks": INTEGER,
            "health": HEALTH,
            "bitrate_in_bps": NUMBER,
            "bitrate_out_bps": NUMBER,
        },
        {"recording": {**_nullable("string"), "description": "Id of the running recording."}},
    ),
    "RoomList": _obj({"rooms": _array(_ref("RoomSummary"))}),
    "RoomDetail": _obj(
        {
            "name": STRING,
            "mode": STRING,
            "created_at": NUMBER,
            "health": HEALTH,
            "bitrate_in_bps": NUMBER,
            "bitrate_out_bps": NUMBER,
            "participants": _array(_ref("Participant")),
            "tracks": _array(_obj({"participant_id": STRING, "track": _ref("Track")})),
        }
    ),
    "Participant": _obj(
        {
            "id": STRING,
            "identity": STRING,
            "name": STRING,
            "joined_at": NUMBER,
            "grants": _obj(
                {
                    "can_publish": BOOLEAN,
                    "can_subscribe": BOOLEAN,
                    "can_publish_data": BOOLEAN,
                    "admin": BOOLEAN,
                }
            ),
            "tracks": _array(_ref("Track")),
            "subscriptions": _array(_obj({"publisher_id": STRING, "track_id": STRING})),
            "health": HEALTH,
            "stats": {"oneOf": [_ref("Sample"), {"type": "null"}]},
        }
    ),
    "Connection": _obj(
        {
            "state": STRING,
            "ice_state": STRING,
            "dtls_state": _nullable("string"),
            "candidate_pair": {
                "oneOf": [
                    _obj({"type": _nullable("string"), "local": CANDIDATE, "remote": CANDIDATE}),
                    {"type": "null"},
                ]
            },
            "bytes_in": _nullable("integer"),
            "bytes_out": _nullable("integer"),
            "bitrate_in_bps": _nullable("number"),
            "bitrate_out_bps": _nullable("number"),
        }
    ),
    "InboundTrack": _obj(
        {
            "track_id": STRING,
            "kind": STRING,
            "codec": STRING,
            "muted": BOOLEAN,
            "packets": INTEGER,
            "bytes": INTEGER,
            "packets_per_s": NUMBER,
            "bitrate_bps": NUMBER,
            "keyframes": _nullable("integer"),
            "fps": _nullable("number"),
            "pli_sent": INTEGER,
            "keyframe_requests": INTEGER,
            "subscribers": INTEGER,
            "packets_lost": _nullable("integer"),
            "loss": _nullable("number"),
            "jitter_ms": _nullable("number"),
            "layers": {
                "oneOf": [
                    _array(
                        _obj(
                            {
                                "rid": STRING,
                                "width": INTEGER,
                                "height": INTEGER,
                                "bitrate_bps": INTEGER,
                                "fps": NUMBER,
                                "active": BOOLEAN,
                                "subscribers": INTEGER,
                            }
                        )
                    ),
                    {"type": "null"},
                ],
                "description": "Simulcast encodings, lowest first (null: one stream).",
            },
        }
    ),
    "OutboundTrack": _obj(
        {
            "publisher_id": STRING,
            "track_id": STRING,
            "kind": STRING,
            "state": STRING,
            "packets": INTEGER,
            "bytes": INTEGER,
            "packets_per_s": NUMBER,
            "bitrate_bps": NUMBER,
            "keyframes": _nullable("integer"),
            "dropped": INTEGER,
            "pli": INTEGER,
            "nacks": INTEGER,
            "packets_lost": _nullable("integer"),
            "loss": _nullable("number"),
            "jitter_ms": _nullable("number"),
            "rtt_ms": _nullable("number"),
            "layer": {
                **_nullable("string"),
                "description": "The simulcast encoding (rid) this subscriber receives.",
            },
        }
    ),
    "Sample": _obj(
        {
            "t": NUMBER,
            "room": STRING,
            "participant_id": STRING,
            "health": HEALTH,
            "alerts": _array(STRING),
            "summary": _obj(
                {
                    "bitrate_in_bps": NUMBER,
                    "bitrate_out_bps": NUMBER,
                    "packets_in_per_s": NUMBER,
                    "packets_out_per_s": NUMBER,
                    "loss": _nullable("number"),
                    "rtt_ms": _nullable("number"),
                    "jitter_ms": _nullable("number"),
                    "fps": _nullable("number"),
                }
            ),
            "connections": _obj(
                {
                    "publisher": {"oneOf": [_ref("Connection"), {"type": "null"}]},
                    "subscriber": {"oneOf": [_ref("Connection"), {"type": "null"}]},
                }
            ),
            "tracks": _obj(
                {"in": _array(_ref("InboundTrack")), "out": _array(_ref("OutboundTrack"))}
            ),
            "data": _obj(
                {
                    "messages_relayed": _nullable("integer"),
                    "messages_dropped": _nullable("integer"),
                }
            ),
            "client": {"type": ["object", "null"], "description": "The browser's own summary."},
        }
    ),
    "StatsHistory": _obj(
        {
            "room": STRING,
            "participant_id": STRING,
            "interval_s": NUMBER,
            "thresholds": _obj({"loss": NUMBER, "rtt_ms": NUMBER, "fps": NUMBER}),
            "samples": _array(_ref("Sample")),
        }
    ),
    "Event": {
        **_obj({"seq": INTEGER, "t": NUMBER, "type": STRING}),
        "description": "participant_joined, participant_left, participant_removed, room_closed, "
        "track_muted, errors, threshold_crossed, threshold_cleared, recording_started, "
        "recording_finished; more fields by type.",
    },
    "EventList": _obj({"events": _array(_ref("Event"))}),
    "StatsInfo": _obj({"settings": {"type": "object"}, "cost": {"type": "object"}}),
    "Ended": _obj({"room": STRING, "ended": INTEGER}),
    "Removed": _obj({"room": STRING, "participant_id": STRING}),
    "MuteRequest": _obj({"muted": BOOLEAN}),
    "MuteResult": _obj({"participant_id": STRING, "track": _ref("Track")}),
    "AdminToken": _obj({"token": STRING, "expires_in": INTEGER}),
    "RecordingRequest": {
        "type": "object",
        "properties": {"participants": _array(STRING), "tracks": _array(STRING)},
        "additionalProperties": False,
        "description": "Both optional: record only these participants' tracks / these track ids.",
    },
    "RecordingFile": _obj(
        {
            "participant_id": STRING,
            "identity": _nullable("string"),
            "track_id": STRING,
            "kind": STRING,
            "codec": STRING,
            "file": STRING,
            "container": {"type": "string", "enum": ["webm", "mkv"]},
            "clock_rate": INTEGER,
            "started_at": NUMBER,
            "start_rtp_timestamp": INTEGER,
            "start_ntp": _nullable("number"),
            "ended_at": _nullable("number"),
            "duration_s": NUMBER,
            "frames": INTEGER,
            "bytes": INTEGER,
            "packets_lost": INTEGER,
            "frames_dropped": INTEGER,
            "source_restarts": INTEGER,
        }
    ),
    "Recording": _obj(
        {
            "version": INTEGER,
            "recording_id": STRING,
            "room": STRING,
            "state": {"type": "string", "enum": ["active", "finished", "failed"]},
            "reason": _nullable("string"),
            "error": _nullable("string"),
            "started_at": NUMBER,
            "ended_at": _nullable("number"),
            "files": _array(_ref("RecordingFile")),
            "directory": STRING,
            "bytes": INTEGER,
            "tracks": _array(
                _obj({"participant_id": STRING, "track_id": STRING, "recording": BOOLEAN})
            ),
        }
    ),
    "RecordingList": _obj({"recordings": _array(_ref("Recording"))}),
    "Worker": _obj(
        {
            "index": INTEGER,
            "node": STRING,
            "pid": _nullable("integer"),
            "state": STRING,
            "restarts": INTEGER,
            "started": _nullable("number"),
            "url": _nullable("string"),
            "load": {"type": "object"},
            "rooms": INTEGER,
        }
    ),
    "WorkerList": _obj({"node": STRING, "workers": _array(_ref("Worker"))}),
}


def _json(schema: str, description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }


AUTH_ERRORS: dict[str, Schema] = {
    "401": _json("Error", "No token, or a token that does not verify."),
    "403": _json("Error", "A valid token without the admin grant for this room."),
}
NOT_FOUND = {"404": _json("Error", "No such room, participant or track.")}


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": STRING,
        "description": description,
    }


ROOM = _path_param("room", "Room name.")
PARTICIPANT = _path_param("participant_id", "Participant id (PA_...).")
TRACK = _path_param("track_id", "Track id of a published track.")
RECORDING = _path_param("recording_id", "Recording id, as POST .../recordings returned it.")
SINCE = {
    "name": "since",
    "in": "query",
    "required": False,
    "schema": NUMBER,
    "description": "Only what is newer than this unix time (seconds).",
}
BAD_REQUEST = {"400": _json("Error", "Invalid parameter or body.")}


def _op(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {
        "summary": summary,
        "security": [{"bearerAuth": []}],
        "responses": {**responses, **AUTH_ERRORS},
        **extra,
    }


def openapi_document(served: Collection[str] | None = None) -> Schema:
    """The document; with `served`, only the paths among them (the routes a server has:
    `/api/workers` exists only under a supervisor, `/api/dev/admin-token` only in dev mode)."""
    paths: dict[str, Schema] = {
        "/api/rooms": {
            "get": _op("List the rooms of this node.", {"200": _json("RoomList", "The rooms.")})
        },
        "/api/rooms/{room}": {
            "parameters": [ROOM],
            "get": _op(
                "One room: participants, their tracks and latest stats.",
                {"200": _json("RoomDetail", "The room."), **NOT_FOUND},
            ),
            "delete": _op(
                "Close a room: every session ends with reason room_closed.",
                {"202": _json("Ended", "Sessions asked to close."), **NOT_FOUND},
            ),
        },
        "/api/rooms/{room}/participants/{participant_id}": {
            "parameters": [ROOM, PARTICIPANT],
            "delete": _op(
                "Remove a participant: its session ends with reason removed.",
                {"202": _json("Removed", "Session asked to close."), **NOT_FOUND},
            ),
        },
        "/api/rooms/{room}/participants/{participant_id}/stats": {
            "parameters": [ROOM, PARTICIPANT],
            "get": _op(
                "A participant's connection stats: the history, one sample per interval.",
                {
                    "200": _json("StatsHistory", "Samples, oldest first."),
                    **NOT_FOUND,
                    **BAD_REQUEST,
                },
                parameters=[SINCE],
            ),
        },
        "/api/rooms/{room}/participants/{participant_id}/tracks/{track_id}/mute": {
            "parameters": [ROOM, PARTICIPANT, TRACK],
            "post": _op(
                "Mute or unmute a published track (forwarding pauses; the room is told).",
                {
                    "200": _json("MuteResult", "The track now."),
                    **NOT_FOUND,
                    **BAD_REQUEST,
                    "409": _json("Error", "The participant has no media session."),
                },
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("MuteRequest")}},
                },
            ),
        },
        "/api/rooms/{room}/recordings": {
            "parameters": [ROOM],
            "post": _op(
                "Start recording the room's published tracks (or the selected ones) without "
                "transcoding: one file per track and a manifest (docs/recording.md).",
                {
                    "201": _json("Recording", "The recording, active."),
                    **NOT_FOUND,
                    **BAD_REQUEST,
                    "409": _json(
                        "Error", "conflict: already recording; nothing_to_record: no track."
                    ),
                    "429": _json("Error", "limit: recording_max_active recordings run."),
                    "500": _json("Error", "storage_error: the directory cannot be made."),
                },
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RecordingRequest")}},
                },
            ),
            "get": _op(
                "The room's recordings on this node: active and recently finished.",
                {"200": _json("RecordingList", "Oldest first.")},
            ),
        },
        "/api/rooms/{room}/recordings/{recording_id}": {
            "parameters": [ROOM, RECORDING],
            "get": _op(
                "One recording: state, reason, files.",
                {"200": _json("Recording", "The recording."), **NOT_FOUND},
            ),
            "delete": _op(
                "Stop a recording (reason api); stopping a finished one changes nothing.",
                {"200": _json("Recording", "The recording, finished."), **NOT_FOUND},
            ),
        },
        "/api/events": {
            "get": _op(
                "Room events and threshold crossings (bounded log, oldest first).",
                {"200": _json("EventList", "The events."), **BAD_REQUEST},
                parameters=[SINCE],
            )
        },
        "/api/stats": {
            "get": _op(
                "Stats settings (interval, history, thresholds) and the collection cost.",
                {"200": _json("StatsInfo", "Settings and cost.")},
            )
        },
        "/api/feed": {
            "get": _op(
                "Live feed (WebSocket). First a `hello` message {settings, thresholds, rooms, "
                "events}, then one `tick` message per interval {t, rooms, participants, samples, "
                "events}. A client that does not keep up is closed with 1008.",
                {"101": {"description": "Switching to the WebSocket protocol."}, **BAD_REQUEST},
                parameters=[
                    {
                        "name": "Sec-WebSocket-Protocol",
                        "in": "header",
                        "required": False,
                        "schema": STRING,
                        "description": "For browsers (no Authorization header on a WebSocket): "
                        "`relayroom.feed, relayroom.token.<admin token>`; the server selects "
                        "`relayroom.feed`. A token in the URL is refused (400).",
                    }
                ],
            )
        },
        "/api/workers": {
            "get": _op(
                "The host's workers (`relayroom serve --workers N` only): pid, node id, state, "
                "restarts, private URL, load, rooms (docs/workers.md).",
                {
                    "200": _json("WorkerList", "Every worker slot, by index."),
                    "503": _json("Error", "unavailable: the supervisor did not answer."),
                },
            )
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
            }
        },
    }
    paths["/api/dev/admin-token"] = {
        "post": {
            "summary": "Dev mode only: an admin token for the bundled dashboard.",
            "security": [],
            "responses": {"200": _json("AdminToken", "A token for room `*`.")},
        }
    }
    if served is not None:
        paths = {path: item for path, item in paths.items() if path in served}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relayroom admin API",
            "version": __version__,
            "description": "Rooms, participants, connection stats and moderation. "
            "See docs/operations.md.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A token with the admin grant: for room `*` (every room) "
                    "or for the room in the path.",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }
