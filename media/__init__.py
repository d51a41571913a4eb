"""relayroom media plane: per-room RTP and DataChannel relay on aiortc.

Public API: :class:`Room`, :class:`Participant`, :class:`MediaSettings`, the events in
:mod:`media.events` and the errors in :mod:`media.errors`. See ``docs/media.md``.
"""

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
from .participant import Participant
from .room import Room
from .settings import MediaSettings

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
