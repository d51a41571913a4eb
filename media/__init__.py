"""relayroom media plane: per-room RTP and DataChannel relay on aiortc.

Public API: :class:`Room`, :class:`Participant`, :class:`MediaSettings`, the events in
:mod:`media.events` and the errors in :mod:`media.errors`. See ``docs/media.md``.
"""

from typing import TYPE_CHECKING, Any

from .errors import Closed, Forbidden, MediaError, SdpRejected, UnknownTrack
from .events import (
    MediaEvent,
    ParticipantFailed,
    SubscribeOffer,
    TrackInfo,
    TrackMuted,
    TrackPublished,
    TrackUnpublished,
)
from .settings import MediaSettings

if TYPE_CHECKING:
    from .participant import Participant
    from .room import Room


def __getattr__(name: str) -> Any:
    # Participant and Room import aiortc: loaded when first asked for, so a server (and the
    # signaling modules that import media's light parts) start without the WebRTC stack.
    if name == "Participant":
        from .participant import Participant

        return Participant
    if name == "Room":
        from .room import Room

        return Room
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Closed",
    "Forbidden",
    "MediaError",
    "MediaEvent",
    "MediaSettings",
    "Participant",
    "ParticipantFailed",
    "Room",
    "SdpRejected",
    "SubscribeOffer",
    "TrackInfo",
    "TrackMuted",
    "TrackPublished",
    "TrackUnpublished",
    "UnknownTrack",
]
