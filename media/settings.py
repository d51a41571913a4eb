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
