"""The one frozen configuration object, built once: TOML file, then environment, then flags.

Every setting is a dataclass field whose metadata carries its documentation and bounds, so
validation, the environment mapping and docs/configuration.md all come from one place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

ENV_PREFIX = "RELAYROOM_"
MAX_WORKERS = 256


class ConfigError(ValueError):
    """An invalid setting; `field` names it the way the user wrote it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"invalid setting {field_name!r}: {message}")
        self.field_name = field_name


def _setting(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
) -> Any:
    meta = {"doc": doc, "min": minimum, "max": maximum, "choices": choices, "secret": secret}
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "relayroom"


@dataclass(frozen=True)
class Config:
    """All of relayroom's settings. Field names are the TOML keys; env is RELAYROOM_<NAME>."""

    # --- server -----------------------------------------------------------------------------
    host: str = _setting("127.0.0.1", "Address the HTTP/WebSocket server listens on.")
    port: int = _setting(
        8080, "HTTP/WebSocket port (0 picks a free port).", minimum=0, maximum=65535
    )
    dev: bool = _setting(
        False,
        "Development mode: generates and stores an API secret if none is given and serves "
        "POST /api/dev/token so the bundled pages can join without a token service.",
    )
    api_secret: str | None = _setting(
        None,
        "HS256 secret for access tokens (and TURN credentials). Required unless dev is on.",
        secret=True,
    )
    data_dir: Path = _setting(
        default_data_dir(),
        "Directory for persistent state (dev secret, room data); `serve`, `token` and "
        "`turn-credentials` share it.",
    )
    redis_url: str | None = _setting(
        None, "Redis URL for multi-node mode (redis://host:port/db). Empty: single process."
    )
    node_url: str | None = _setting(
        None,
        "Multi-node: base URL other nodes use to reach this node's HTTP API (admin requests "
        "are proxied to a room's node). Default: derived from host and port.",
    )
    tls_cert: Path | None = _setting(None, "PEM certificate: serve HTTPS and WSS directly.")
    tls_key: Path | None = _setting(None, "PEM private key for tls_cert.")
    log_level: str = _setting("info", "Log level.", choices=("debug", "info", "warning", "error"))
    log_format: str = _setting(
        "text",
        "Log lines: text (for people) or json (one object per line with time, level, logger, "
        "message, and the room, participant and node ids of lines about them).",
        choices=("text", "json"),
    )
    event_loop: str = _setting(
        "auto",
        "Event loop: uvloop (cheaper per packet; an error if it is not installed), asyncio, or "
        "auto (uvloop when installed, else asyncio).",
        choices=("auto", "uvloop", "asyncio"),
    )
    public_url: str | None = _setting(
        None,
        "URL printed at start-up and used in links (default: derived from host and port; "
        "with host 0.0.0.0, the first ice_hosts entry or the only non-loopback address).",
    )
    drain_timeout_s: float = _setting(
        10.0,
        "On SIGTERM, how long to wait for clients to leave before closing everything.",
        minimum=0,
        maximum=3600,
    )

    # --- workers (one host's cores) ---------------------------------------------------------
    workers: str | None = _setting(
        None,
        "Worker processes under one supervisor (docs/workers.md): a number, or auto (the "
        "usable cores). 1 runs one process without a supervisor. Default (none): auto, "
        "except 1 in dev mode.",
    )
    worker_heartbeat_s: float = _setting(
        1.0,
        "Workers: seconds between a worker's load reports to the supervisor; a worker silent "
        "for 5 of them is killed and replaced.",
        minimum=0.05,
        maximum=60,
    )
    worker_restart_limit: int = _setting(
        5,
        "Workers: restarts within worker_restart_window_s after which the supervisor stops "
        "every worker and exits 1 (they keep dying).",
        minimum=1,
    )
    worker_restart_window_s: float = _setting(
        60.0, "Workers: the window worker_restart_limit counts restarts in.", minimum=1
    )
    worker_restart_backoff_max_s: float = _setting(
        10.0,
        "Workers: a dead worker is restarted after 0.5 s, doubling with each restart of that "
        "slot within the window, up to this.",
        minimum=0.1,
    )
    worker_private_port_base: int = _setting(
        0,
        "Workers: worker i also listens on 127.0.0.1 port base+i (its node_url: admin "
        "forwarding, its own /metrics); 0 picks free ports.",
        minimum=0,
        maximum=65000,
    )

    # --- rooms spanning workers and nodes (track pipes, docs/workers.md) --------------------
    room_shard_max_participants: int = _setting(
        50,
        "Workers/nodes: media participants of a room on its home worker or node; later ones "
        "get their media on the least-loaded other one (a shard), published tracks are piped "
        "between them.",
        minimum=1,
    )
    pipe_host: str = _setting(
        "127.0.0.1",
        "Workers/nodes: address the track pipe socket binds to (one UDP socket per worker).",
    )
    pipe_advertised_host: str | None = _setting(
        None,
        "Workers/nodes: address other nodes send piped media to (default: pipe_host). Set it "
        "to the node's private address when pipe_host is 0.0.0.0.",
    )
    pipe_port_min: int = _setting(
        0,
        "Workers/nodes: lowest UDP port of the pipe sockets (0 with pipe_port_max 0: any).",
        minimum=0,
        maximum=65535,
    )
    pipe_port_max: int = _setting(
        0, "Workers/nodes: highest UDP port of the pipe sockets.", minimum=0, maximum=65535
    )
    pipe_keepalive_s: float = _setting(
        0.5, "Workers/nodes: each end of a track pipe sends a keepalive this often.", minimum=0.05
    )
    pipe_timeout_s: float = _setting(
        2.5,
        "Workers/nodes: a pipe end that hears nothing from the other end this long closes it "
        "(its subscribers see the track end).",
        minimum=0.1,
    )

    # --- WebSocket hardening ---------------------------------------------------------------
    ws_max_frame_bytes: int = _setting(
        65536, "Largest WebSocket message accepted; larger closes with 1009.", minimum=1024
    )
    heartbeat_interval_s: float = _setting(
        20.0, "Seconds between WebSocket pings from the server.", minimum=0.05
    )
    heartbeat_timeout_s: float = _setting(
        10.0, "Close the connection when a ping gets no pong within this time.", minimum=0.05
    )
    join_timeout_s: float = _setting(
        5.0, "A connection must send `join` within this time or is closed.", minimum=0.05
    )
    rate_limit_msgs_per_s: float = _setting(
        50.0, "Per-connection sustained message rate (token bucket refill).", minimum=0.1
    )
    rate_limit_burst: int = _setting(100, "Per-connection token bucket size.", minimum=1)
    rate_limit_close_after: int = _setting(
        200,
        "Rejected (rate-limited) messages within 10 s after which the connection is closed "
        "with 1008.",
        minimum=1,
    )
    ip_max_connections: int = _setting(
        64, "Concurrent WebSocket connections per client IP (HTTP 429 above).", minimum=1
    )
    ip_handshakes_per_s: float = _setting(
        20.0, "Sustained WebSocket handshake rate per client IP (HTTP 429 above).", minimum=0.1
    )
    ip_handshake_burst: int = _setting(40, "Handshake burst allowance per client IP.", minimum=1)
    send_queue_max: int = _setting(
        256, "Messages queued for a client before it counts as not reading.", minimum=8
    )
    close_timeout_s: float = _setting(
        5.0,
        "Longest wait for a final flush and close handshake before the TCP connection is "
        "dropped (a client whose send queue overflowed is cut off at once).",
        minimum=0.05,
    )
    allowed_origins: tuple[str, ...] = _setting(
        (), "If set, only these Origin header values may open a WebSocket (exact match)."
    )

    # --- rooms ------------------------------------------------------------------------------
    room_max_participants: int = _setting(
        50, "Participants per room; one more gets `room_full`.", minimum=1
    )
    default_room_mode: str = _setting(
        "sfu",
        "Mode of a room created without a `mode` claim in the token: `sfu` (media through "
        "the server) or `p2p` (signal relay for a mesh call).",
        choices=("sfu", "p2p"),
    )
    token_default_ttl_s: int = _setting(
        6 * 3600, "Lifetime of tokens minted by `relayroom token` and the dev endpoint.", minimum=1
    )
    resume_ttl_s: float = _setting(
        30.0, "How long a resume token stays valid after a WebSocket drops.", minimum=0
    )

    # --- media (ICE) ------------------------------------------------------------------------
    ice_hosts: tuple[str, ...] = _setting(
        (),
        "Host addresses offered as ICE candidates (like mediasoup's announced IPs). Empty: "
        "the machine's IPv4 interface addresses, plus 127.0.0.1 when host is a loopback "
        "address.",
    )

    udp_port_min: int = _setting(
        0,
        "Lowest UDP port for media (0 with udp_port_max 0: any port).",
        minimum=0,
        maximum=65535,
    )
    udp_port_max: int = _setting(0, "Highest UDP port for media.", minimum=0, maximum=65535)
    allow_loopback_candidates: bool = _setting(
        False, "Accept remote ICE candidates in 127.0.0.0/8 and ::1 (on in dev mode)."
    )
    allow_private_candidates: bool = _setting(
        False,
        "Accept remote ICE candidates in private and link-local ranges (on in dev mode).",
    )
    max_sdp_bytes: int = _setting(32768, "Largest SDP accepted from a client.", minimum=512)
    max_mlines: int = _setting(16, "Most m-lines in a client's SDP.", minimum=1)
    max_tracks_per_participant: int = _setting(
        8, "Most tracks one participant may publish.", minimum=0
    )
    codecs: tuple[str, ...] = _setting(
        ("opus", "VP8", "H264"), "Codec allowlist (mimeType subtypes), in preference order."
    )
    keyframe_request_interval_s: float = _setting(
        1.0, "Keyframe requests go upstream at most this often per published track.", minimum=0
    )
    simulcast_max_layers: int = _setting(
        3,
        "At most this many simulcast encodings per published video track (an offer with more "
        "is refused).",
        minimum=1,
        maximum=8,
    )
    simulcast_tick_s: float = _setting(
        0.5,
        "How often a simulcast track measures its layers and re-chooses each subscriber's.",
        minimum=0.05,
    )
    simulcast_layer_timeout_s: float = _setting(
        1.0,
        "A simulcast layer without a packet this long counts as not sent (paused or dropped).",
        minimum=0.1,
    )
    simulcast_upgrade_headroom: float = _setting(
        1.25,
        "A subscriber steps up one simulcast layer when its bandwidth estimate (REMB) is this "
        "many times the bitrate of the layer it receives.",
        minimum=1.0,
    )
    simulcast_switch_keyframe_interval_s: float = _setting(
        0.25,
        "A simulcast layer a subscriber switches to is asked for a keyframe at most this often "
        "(other keyframe requests: keyframe_request_interval_s).",
        minimum=0,
    )
    simulcast_switch_max_deferrals: int = _setting(
        1,
        "A subscriber switching simulcast layers lets go of at most this many keyframes of the "
        "new layer that arrive while its old layer's frame is unfinished (it waits to send "
        "whole frames); at the next one it switches anyway, cutting that frame short.",
        minimum=0,
    )
    simulcast_upgrade_hold_s: float = _setting(
        2.0,
        "No step up for this long after a step down (doubled, up to 30 s, when a step up "
        "failed soon).",
        minimum=0,
    )
    dynacast: bool = _setting(
        True, "Tell publishers to stop sending the simulcast layers no subscriber receives."
    )
    dynacast_pause_delay_s: float = _setting(
        1.0,
        "A simulcast layer no subscriber wants is paused after this long (a wanted one resumes "
        "at once).",
        minimum=0,
    )
    active_speaker_interval_s: float = _setting(
        0.5,
        "Audio levels are averaged over windows this long; a changed speaker ranking is sent "
        "(active_speakers) after a window at most.",
        minimum=0.05,
    )
    active_speaker_threshold_dbov: float = _setting(
        -50.0, "A publisher whose mean audio level is below this (dBov) is not speaking."
    )
    active_speaker_max: int = _setting(
        3, "At most this many speakers in an active_speakers message.", minimum=0
    )
    subscriber_answer_timeout_s: float = _setting(
        10.0,
        "A subscriber offer unanswered this long is sent again (the client may have lost it).",
        minimum=0.1,
    )
    subscriber_offer_retries: int = _setting(
        2,
        "How many times an unanswered subscriber offer is sent again before the participant "
        "fails (its client gets an error and the close code for failed media).",
        minimum=0,
    )
    media_max_delay_video_ms: int = _setting(
        200,
        "A video packet that waited longer than this (its RTP timestamp against the freshest "
        "packet of its stream) is dropped, not forwarded; the subscribers then wait for a "
        "keyframe, which is asked for. Sheds load when the relay falls behind.",
        minimum=20,
    )
    media_max_delay_audio_ms: int = _setting(
        300,
        "The same for audio packets; higher than for video so that video is shed first.",
        minimum=20,
    )
    media_receive_queue_max: int = _setting(
        256,
        "Most packets waiting per media connection between its socket and the relay; the "
        "oldest is dropped beyond.",
        minimum=16,
    )
    media_send_buffer_max_bytes: int = _setting(
        262144,
        "Most bytes waiting per media socket for the kernel to take them; forwarded packets "
        "are dropped beyond, so a stalled path never queues stale media.",
        minimum=4096,
    )
    media_fast_path: bool = _setting(
        True,
        "Forward through the compiled steps when they were built at install (sending: build, "
        "SRTP-protect and send each packet in one C call; receiving: unprotect and parse in "
        "C); `false` does both in Python (the same packets, more CPU per packet). Without a "
        "C compiler at install, Python is used either way.",
    )

    # --- data channels ----------------------------------------------------------------------
    data_max_message_bytes: int = _setting(
        16384,
        "Largest DataChannel message relayed (bytes); larger ones are dropped and the sender "
        "gets `too_large`.",
        minimum=256,
        maximum=65536,
    )
    data_msgs_per_s: float = _setting(
        100.0, "Per-participant DataChannel message rate (token bucket refill).", minimum=0.1
    )
    data_msgs_burst: int = _setting(200, "Per-participant DataChannel message burst.", minimum=1)
    data_bytes_per_s: float = _setting(
        262144.0, "Per-participant DataChannel byte rate (token bucket refill).", minimum=256
    )
    data_bytes_burst: int = _setting(
        524288,
        "Per-participant DataChannel byte burst (at least data_max_message_bytes).",
        minimum=256,
    )
    data_lossy_buffer_bytes: int = _setting(
        65536,
        "Backlog per receiver on the `lossy` channel; beyond it the oldest messages are dropped.",
        minimum=1024,
    )
    data_reliable_buffer_bytes: int = _setting(
        1048576,
        "Backlog per receiver on the `reliable` channel; beyond it the receiver is resynced "
        "(backlog dropped, then `sync` and the persistent state once it drains).",
        minimum=1024,
    )
    data_persistent_topics: tuple[str, ...] = _setting(
        ("whiteboard",),
        "DataChannel topics kept per room and replayed to late joiners (reliable, untargeted "
        "messages only).",
    )
    data_room_max_bytes: int = _setting(
        2097152, "Persisted history per room, in bytes; beyond it messages are refused.", minimum=0
    )
    data_room_max_messages: int = _setting(
        20000, "Persisted history per room, in messages.", minimum=0
    )
    data_room_ttl_s: float = _setting(
        7 * 86400.0,
        "A room's persisted history is deleted after the room has been empty this long.",
        minimum=0.05,
    )

    # --- recording --------------------------------------------------------------------------
    recording_dir: Path | None = _setting(
        None,
        "Where recordings are written, one directory each. Empty: `recordings` under data_dir.",
    )
    recording_max_duration_s: float = _setting(
        4 * 3600.0, "A recording stops (reason `time_limit`) after this long.", minimum=1
    )
    recording_max_bytes: int = _setting(
        2 * 1024**3,
        "A recording stops (reason `size_limit`) once its files hold this many bytes.",
        minimum=65536,
    )
    recording_max_active: int = _setting(16, "Recordings running at once on this node.", minimum=1)
    recording_reorder_s: float = _setting(
        0.3,
        "How long a recording waits for a missing packet (its retransmission) before the frame "
        "is dropped and a keyframe requested.",
        minimum=0,
        maximum=5,
    )
    recording_cluster_ms: int = _setting(
        1000,
        "Media a recording holds in memory before writing it: what a crash can lose.",
        minimum=100,
        maximum=30000,
    )

    # --- TURN -------------------------------------------------------------------------------
    turn_enabled: bool = _setting(True, "Run the embedded TURN server (`--no-turn` turns it off).")
    turn_host: str | None = _setting(
        None,
        "Address the embedded TURN server listens on (default: host). Its relay sockets bind "
        "here too; when it is 0.0.0.0, to the first ice_hosts entry that is local, else the "
        "machine's only non-loopback address.",
    )
    turn_port: int = _setting(
        3478,
        "TURN/STUN port, UDP and TCP (0: ephemeral, for tests). A dev server whose port is "
        "busy takes a free one and prints it.",
        minimum=0,
        maximum=65535,
    )
    turn_tls_port: int = _setting(
        5349,
        "TURN over TLS port, used when tls_cert and tls_key are set.",
        minimum=0,
        maximum=65535,
    )
    turn_public_host: str | None = _setting(
        None,
        "Address clients use to reach TURN and that relayed addresses advertise (default: the "
        "first ice_hosts entry, else turn_host).",
    )
    turn_relay_port_min: int = _setting(
        49152, "Lowest port of TURN relay sockets (0 with max 0: any).", minimum=0, maximum=65535
    )
    turn_relay_port_max: int = _setting(
        65535, "Highest port of TURN relay sockets.", minimum=0, maximum=65535
    )
    turn_secret: str | None = _setting(
        None,
        "Shared secret of TURN REST credentials (coturn static-auth-secret). Default: derived "
        "from api_secret; set it when clients use an external coturn.",
        secret=True,
    )
    turn_credential_ttl_s: int = _setting(
        300, "Lifetime of minted TURN credentials (for new allocations).", minimum=1
    )
    turn_urls: tuple[str, ...] = _setting(
        (),
        "External TURN/STUN URLs handed to clients instead of the embedded server's "
        "(turn:host:port?transport=udp, ...), with credentials from turn_secret.",
    )
    turn_allowed_peers: tuple[str, ...] = _setting(
        (),
        "CIDRs TURN may relay to although they are special-purpose (private, loopback...).",
    )
    turn_max_allocations_per_user: int = _setting(
        12, "TURN allocations one user may hold (486 above).", minimum=1
    )
    turn_max_allocations_total: int = _setting(
        1000, "TURN allocations the server holds in total (486 above).", minimum=1
    )
    turn_bandwidth_bytes_per_s: int = _setting(
        2_000_000, "Relay budget per TURN allocation in bytes/s (0: no cap).", minimum=0
    )

    # --- stats ------------------------------------------------------------------------------
    stats_interval_s: float = _setting(
        1.0, "How often every connection's stats are sampled.", minimum=0.05, maximum=60
    )
    stats_history_s: float = _setting(
        300.0, "History kept per connection (ring buffer), in seconds.", minimum=1
    )
    stats_loss_threshold: float = _setting(
        0.05, "Packet loss fraction above which a connection is unhealthy.", minimum=0, maximum=1
    )
    stats_rtt_threshold_ms: float = _setting(
        300.0, "Round-trip time above which a connection is unhealthy.", minimum=0
    )
    stats_fps_threshold: float = _setting(
        15.0, "Video frame rate below which a connection is unhealthy.", minimum=0
    )

    # --- webhooks (docs/webhooks.md) -------------------------------------------------------
    webhook_urls: tuple[str, ...] = _setting(
        (),
        "URLs (http or https) that get a signed POST for every room event (room_started, "
        "participant_joined, track_published, recording_finished...). Empty: no webhooks.",
    )
    webhook_key: str | None = _setting(
        None,
        "Key of the webhooks' HMAC-SHA256 signature (at least 32 characters). Default: derived "
        "from api_secret (HMAC-SHA256 of the label `relayroom webhook key v1`; receivers get "
        "it with `relayroom.api.WebhookReceiver.from_api_secret`).",
        secret=True,
    )
    webhook_timeout_s: float = _setting(
        5.0,
        "One delivery attempt waits this long for the receiver's response, then counts as "
        "failed and is retried.",
        minimum=0.05,
        maximum=300,
    )
    webhook_retry_budget_s: float = _setting(
        300.0,
        "An event not delivered this long after it happened is dropped (and counted); until "
        "then failed attempts are retried with exponential backoff and jitter.",
        minimum=1,
        maximum=7 * 86400,
    )
    webhook_backoff_max_s: float = _setting(
        10.0,
        "Longest wait between two attempts at one event (the first retry waits about 0.5 s, "
        "then the wait doubles up to this).",
        minimum=0.05,
        maximum=3600,
    )
    webhook_queue_max: int = _setting(
        1000,
        "Events waiting per webhook URL; beyond it the oldest waiting event is dropped (and "
        "counted), so a dead receiver costs bounded memory.",
        minimum=1,
    )

    # --- hostile input (docs/protocol.md, "Input rules") ----------------------------------
    input_max_depth: int = _setting(
        32,
        "Deepest nesting of objects/arrays in a signaling or DataChannel message; deeper is "
        "`invalid_message`.",
        minimum=2,
        maximum=256,
    )
    http_header_timeout_s: float = _setting(
        10.0,
        "A connection must finish its request headers within this time (after connecting, "
        "or after its previous response) or it is closed (slowloris).",
        minimum=0.05,
        maximum=30,
    )
    ip_max_pending_connections: int = _setting(
        32,
        "Concurrent connections per client IP that are not (yet) WebSockets; more are closed "
        "at once. Behind a reverse proxy every client shares its address: raise this.",
        minimum=1,
    )
    data_whiteboard_max_points: int = _setting(
        1000, "Most points in one `whiteboard` stroke message.", minimum=1
    )
    data_whiteboard_max_width: float = _setting(
        100.0, "Widest `whiteboard` stroke (canvas pixels); wider strokes are refused.", minimum=1
    )

    # --- WHIP / WHEP (docs/whip-whep.md) ---------------------------------------------------
    whip_max_body_bytes: int = _setting(
        65536,
        "Largest WHIP/WHEP request body (an SDP offer or a trickle-ice-sdpfrag); HTTP 413 above.",
        minimum=512,
    )
    whip_max_sessions: int = _setting(
        1000, "Most WHIP and WHEP sessions open on this node at once; HTTP 503 above.", minimum=1
    )

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_bounds(f, getattr(self, f.name), hints[f.name])
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(
                "tls_key" if self.tls_key is None else "tls_cert",
                "tls_cert and tls_key must be given together",
            )
        if (self.pipe_port_min == 0) != (self.pipe_port_max == 0) or (
            self.pipe_port_min > self.pipe_port_max
        ):
            raise ConfigError(
                "pipe_port_max", "give both pipe_port_min and pipe_port_max, min <= max"
            )
        if self.pipe_timeout_s <= self.pipe_keepalive_s:
            raise ConfigError("pipe_timeout_s", "must be longer than pipe_keepalive_s")
        if (self.udp_port_min == 0) != (self.udp_port_max == 0) or (
            self.udp_port_min > self.udp_port_max
        ):
            raise ConfigError("udp_port_max", "give both udp_port_min and udp_port_max, min <= max")
        if not self.codecs:
            raise ConfigError("codecs", "the codec allowlist is empty")
        if self.data_bytes_burst < self.data_max_message_bytes:
            raise ConfigError("data_bytes_burst", "must be at least data_max_message_bytes")
        for host in self.ice_hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ConfigError("ice_hosts", f"{host!r} is not an IP address") from None
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        if self.workers not in (None, "auto") and not _is_worker_count(self.workers):
            raise ConfigError(
                "workers", f"{self.workers!r}: expected auto or a number from 1 to {MAX_WORKERS}"
            )
        for url in self.webhook_urls:
            _check_webhook_url(url)
        if self.webhook_key is not None and len(self.webhook_key) < 32:
            raise ConfigError("webhook_key", "must be at least 32 characters")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, safe to log."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata.get("secret") and value else value
        return out


def _is_worker_count(value: str | None) -> bool:
    return value is not None and value.isdigit() and 1 <= int(value) <= MAX_WORKERS


def worker_count(config: Config) -> int:
    """How many worker processes `serve` runs: the `workers` setting resolved (1: no
    supervisor). auto is the cores this process may run on (its CPU affinity)."""
    if config.workers is None:
        if config.dev:
            return 1
        return _usable_cores()
    if config.workers == "auto":
        return _usable_cores()
    return int(config.workers)


def _usable_cores() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    except AttributeError:  # not Linux
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def _check_redis_url(url: str) -> None:
    """Catch a malformed Redis URL at start-up rather than at the first cluster operation."""
    example = "redis://host:6379/0"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("redis_url", f"{url!r} is not a Redis URL (like {example})")
    try:
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError("redis_url", f"{url!r} has an invalid port") from None
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError("redis_url", f"{url!r} names no socket path (unix:///path/redis.sock)")
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ConfigError("redis_url", f"{url!r} names no host (like {example})")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError("redis_url", f"{url!r}: the path must be a database number")


def _check_webhook_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "webhook_urls", f"{url!r} is not an http(s) URL (like https://app.example/hooks)"
        )
    try:
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError("webhook_urls", f"{url!r} has an invalid port") from None


def _check_bounds(f: dataclasses.Field[Any], value: Any, hint: Any) -> None:
    meta = f.metadata
    if value is None:
        if not _is_optional(hint):
            raise ConfigError(f.name, "a value is required")
        return
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f.name, f"{value!r} is not one of {', '.join(meta['choices'])}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if meta.get("min") is not None and value < meta["min"]:
            raise ConfigError(f.name, f"{value} is below the minimum {meta['min']}")
        if meta.get("max") is not None and value > meta["max"]:
            raise ConfigError(f.name, f"{value} is above the maximum {meta['max']}")


def _is_optional(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def _base_type(hint: Any) -> Any:
    if _is_optional(hint):
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


def coerce(name: str, raw: Any, hint: Any) -> Any:
    """Turn a TOML value or an environment/flag string into the field's type."""
    if raw is None or (raw == "" and _is_optional(hint)):
        return None
    base = _base_type(hint)
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{raw!r} is not a boolean (true/false)")
        if base is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(f"{raw!r} is not an integer")
            return int(raw)
        if base is float:
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a number")
            return float(raw)
        if base is Path:
            return Path(str(raw)).expanduser()
        if base is str:
            if not isinstance(raw, str):
                raise ValueError(f"{raw!r} is not a string")
            return raw
        if get_origin(base) is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(i).strip() for i in items if str(i).strip())
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    raise ConfigError(name, f"unsupported type {base!r}")


def field_types() -> dict[str, Any]:
    return dict(get_type_hints(Config))


def load_config(
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the Config: defaults < TOML file < RELAYROOM_* environment < explicit overrides."""
    hints = field_types()
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("config", f"cannot read {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{file} is not valid TOML: {exc}") from None
        for key, raw in data.items():
            name = key.replace("-", "_")
            if name not in hints:
                raise ConfigError(key, "unknown setting")
            if name == "workers" and isinstance(raw, int) and not isinstance(raw, bool):
                raw = str(raw)  # `workers = 4` as well as `workers = "auto"`
            values[name] = coerce(name, raw, hints[name])
    environ = os.environ if env is None else env
    for name, hint in hints.items():
        key = ENV_PREFIX + name.upper()
        if key in environ:
            values[name] = coerce(key, environ[key], hint)
    for name, raw in (overrides or {}).items():
        if name not in hints:
            raise ConfigError(name, "unknown setting")
        values[name] = coerce(name, raw, hints[name]) if isinstance(raw, str) else raw
    return Config(**values)


def setting_docs() -> list[tuple[str, str, str, str]]:
    """(name, env var, default, description) for every setting; docs are checked against it."""
    rows = []
    for f in dataclasses.fields(Config):
        default = f.default
        if f.name == "data_dir":
            shown = "$XDG_DATA_HOME/relayroom (~/.local/share/relayroom)"
        elif default is None or default == ():
            shown = "(none)"
        else:
            shown = str(default).lower() if isinstance(default, bool) else str(default)
        rows.append((f.name, ENV_PREFIX + f.name.upper(), shown, f.metadata["doc"]))
    return rows


def config_to_wire(config: Config) -> dict[str, Any]:
    """The settings as JSON-able values (the supervisor hands them to its workers)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def config_from_wire(values: Mapping[str, Any]) -> Config:
    """The inverse of config_to_wire (JSON lists back to tuples, strings back to paths)."""
    hints = field_types()
    settings: dict[str, Any] = {
        name: coerce(name, raw, hints[name]) for name, raw in values.items() if name in hints
    }
    return Config(**settings)
