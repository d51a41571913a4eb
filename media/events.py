"""Events the media plane emits upward, through the ``on_event`` callback of a Room.

Plain frozen dataclasses: no JSON, no WebSocket. Signaling turns them into messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .speakers import SpeakerLevel

TrackKind = Literal["audio", "video"]


@dataclass(frozen=True)
class TrackInfo:
    """A published track as the room sees it."""

    id: str
    """The publisher's track id (from the msid of its publish offer)."""
    kind: TrackKind
    muted: bool
    codec: str
    """mimeType subtype: ``opus``, ``VP8``, ``H264``."""


@dataclass(frozen=True)
class SubscribeOffer:
    """Send this offer (of its subscriber PeerConnection) to that participant."""

    participant_id: str
    sdp: str


@dataclass(frozen=True)
class TrackPublished:
    participant_id: str
    track: TrackInfo


@dataclass(frozen=True)
class TrackUnpublished:
    participant_id: str
    track: TrackInfo


@dataclass(frozen=True)
class TrackMuted:
    participant_id: str
    track: TrackInfo


@dataclass(frozen=True)
class ParticipantFailed:
    """ICE or DTLS failure, consent loss, or a connection that never came up.

    The room has already started removing the participant when this is emitted.
    """

    participant_id: str
    reason: str


@dataclass(frozen=True)
class DataNotice:
    """Tell a participant that the DataChannel relay refused some of its messages.

    ``code`` is a protocol error code: ``forbidden``, ``too_large``, ``rate_limited`` or
    ``invalid_message``. At most one per code per second (``forbidden`` once).
    """

    participant_id: str
    code: str
    message: str


@dataclass(frozen=True)
class ActiveSpeakers:
    """The room's loudest publishers now, loudest first (empty: nobody speaks)."""

    speakers: tuple[SpeakerLevel, ...]


@dataclass(frozen=True)
class LayersActive:
    """Dynacast: the simulcast encodings (rids) a publisher should keep sending for a track."""

    participant_id: str
    track_id: str
    active: tuple[str, ...]


MediaEvent = (
    SubscribeOffer
    | TrackPublished
    | TrackUnpublished
    | TrackMuted
    | ParticipantFailed
    | DataNotice
    | ActiveSpeakers
    | LayersActive
)
