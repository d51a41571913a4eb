"""Settings of the media plane: one frozen object, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaSettings:
    """Everything the media plane can be told. Defaults suit a public server.

    See ``docs/media.md`` for what each field does.
    """

    # ICE
    ice_hosts: tuple[str, ...] = ()
    """Host addresses offered as ICE candidates (empty: every non-loopback address)."""
    udp_port_min: int = 0
    """Lowest UDP port for media sockets (0 and 0: any port the kernel picks)."""
    udp_port_max: int = 0
    """Highest UDP port for media sockets."""
    allow_loopback_candidates: bool = False
    """Accept remote candidates in 127.0.0.0/8 and ::1."""
    allow_private_candidates: bool = False
    """Accept remote candidates in private and link-local ranges."""
    allow_mdns_candidates: bool = False
    """Accept remote ``*.local`` (mDNS) candidates; aioice resolves them by multicast."""
    connect_timeout_s: float = 20.0
    """A PeerConnection not connected this long after its negotiation started has failed."""
    subscriber_answer_timeout_s: float = 10.0
    """A subscriber offer unanswered this long is sent again (the client may have lost it)."""
    subscriber_offer_retries: int = 2
    """How many times an unanswered subscriber offer is sent again before the participant fails."""

    # limits
    max_sdp_bytes: int = 32768
    max_mlines: int = 16
    max_tracks_per_participant: int = 8
    codecs: tuple[str, ...] = ("opus", "VP8", "H264")
    """Allowed codecs (mimeType subtype, case-insensitive), in the server's preference order."""

    # keyframes
    keyframe_request_interval_s: float = 1.0
    """Upstream PLI at most this often per published track, whatever the number of subscribers."""
    gop_cache_max_packets: int = 300
    """Packets kept since the last keyframe, replayed to a subscriber that starts late."""
    gop_cache_max_age_s: float = 1.0
    """A cached keyframe older than this is not replayed; the subscriber waits for a fresh one."""

    # bandwidth
    remb_interval_s: float = 0.5
    """Upstream REMB at most this often per track (sooner when the estimate drops by 10%)."""
    remb_min_bps: int = 100_000
    """The upstream REMB never goes below this, so one starved subscriber cannot freeze all."""
    remb_subscriber_ttl_s: float = 5.0
    """A subscriber's REMB counts for this long after it arrived."""

    # simulcast
    simulcast_max_layers: int = 3
    """At most this many simulcast encodings per published track (an offer with more fails)."""
    simulcast_tick_s: float = 0.5
    """How often each simulcast track measures its layers and re-chooses each subscriber's."""
    simulcast_layer_timeout_s: float = 1.0
    """A layer without a packet this long is not being sent (paused, or dropped by the sender)."""
    simulcast_upgrade_headroom: float = 1.25
    """A subscriber steps up a layer when its estimate is this many times the current bitrate."""
    simulcast_switch_keyframe_interval_s: float = 0.25
    """A layer a subscriber switches to is asked for a keyframe at most this often."""
    simulcast_switch_max_deferrals: int = 1
    """Keyframes of the new layer a switching leg lets go while its old frame is unfinished;
    at the next, it switches anyway (that frame is cut short)."""
    simulcast_upgrade_hold_s: float = 2.0
    """No step up for this long after a step down (doubled when a step up failed soon)."""
    dynacast: bool = True
    """Tell publishers to stop sending simulcast layers nobody receives."""
    dynacast_pause_delay_s: float = 1.0
    """A layer nobody wants is paused after this long (a wanted one is resumed at once)."""

    # overload: shed instead of queueing
    max_delay_video_ms: int = 200
    """A video packet that waited longer than this is dropped; its legs resync on a keyframe."""
    max_delay_audio_ms: int = 300
    """The same for audio (higher, so that video is shed first)."""
    receive_queue_max: int = 256
    """Packets waiting per media connection between socket and relay (oldest dropped beyond)."""
    send_buffer_max_bytes: int = 262144
    """Bytes waiting per media socket; forwarded packets are dropped beyond."""
    fast_path: bool = True
    """Send and receive through the compiled steps (media/_fastpath.c) when they are built."""

    # active speakers
    active_speaker_interval_s: float = 0.5
    """Audio levels are averaged over windows this long; a changed ranking is sent after each."""
    active_speaker_threshold_dbov: float = -50.0
    """A publisher quieter than this (mean over a window) is not speaking."""
    active_speaker_max: int = 3
    """At most this many speakers in an ``active_speakers`` message, loudest first."""

    def __post_init__(self) -> None:
        if (self.udp_port_min, self.udp_port_max) != (0, 0) and not (
            1 <= self.udp_port_min <= self.udp_port_max <= 65535
        ):
            raise ValueError(f"invalid UDP port range {self.udp_port_min}-{self.udp_port_max}")
        if self.keyframe_request_interval_s < 0:
            raise ValueError("keyframe_request_interval_s must be >= 0")
        if self.subscriber_answer_timeout_s <= 0 or self.subscriber_offer_retries < 0:
            raise ValueError("invalid subscriber answer timeout or retry count")
        if self.max_tracks_per_participant < 0 or self.max_mlines < 1:
            raise ValueError("invalid track or m-line limit")
        if not self.codecs:
            raise ValueError("the codec allowlist is empty")
        if min(self.max_delay_video_ms, self.max_delay_audio_ms) <= 0:
            raise ValueError("max_delay_video_ms and max_delay_audio_ms must be > 0")
        if self.receive_queue_max < 1 or self.send_buffer_max_bytes < 1:
            raise ValueError("receive_queue_max and send_buffer_max_bytes must be >= 1")
        if not 1 <= self.simulcast_max_layers <= 8:
            raise ValueError("simulcast_max_layers must be 1 to 8")
        if min(self.simulcast_tick_s, self.simulcast_layer_timeout_s) <= 0:
            raise ValueError("simulcast_tick_s and simulcast_layer_timeout_s must be > 0")
        if self.simulcast_switch_keyframe_interval_s < 0:
            raise ValueError("simulcast_switch_keyframe_interval_s must be >= 0")
        if self.simulcast_switch_max_deferrals < 0:
            raise ValueError("simulcast_switch_max_deferrals must be >= 0")
        if self.simulcast_upgrade_headroom < 1 or self.simulcast_upgrade_hold_s < 0:
            raise ValueError("invalid simulcast upgrade headroom or hold")
        if self.dynacast_pause_delay_s < 0:
            raise ValueError("dynacast_pause_delay_s must be >= 0")
        if self.active_speaker_interval_s <= 0 or self.active_speaker_max < 0:
            raise ValueError("invalid active speaker interval or count")

    @property
    def port_range(self) -> tuple[int, int] | None:
        """The UDP port range, or None for any port."""
        if self.udp_port_min == 0 and self.udp_port_max == 0:
            return None
        return (self.udp_port_min, self.udp_port_max)

    def codec_allowed(self, name: str) -> bool:
        """Whether a codec (``opus``, ``VP8``, ``video/H264``...) is in the allowlist."""
        subtype = name.rsplit("/", 1)[-1].lower()
        return any(subtype == c.lower() for c in self.codecs)
