"""Errors raised to signaling. Each carries a stable ``code`` for the protocol."""

from __future__ import annotations


class MediaError(Exception):
    """Base class of the errors of the media plane."""

    code = "internal"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SdpRejected(MediaError):
    """An SDP offer or answer broke a limit or a rule; the participant stays usable."""

    code = "sdp_rejected"


class Forbidden(MediaError):
    """The participant's grants do not allow this."""

    code = "forbidden"


class UnknownTrack(MediaError):
    """No such track is published by this participant."""

    code = "invalid_message"


class Closed(MediaError):
    """The participant or room is closed."""

    code = "not_joined"
