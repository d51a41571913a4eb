"""The signaling side's narrow door into the media plane (`media/`).

Signaling never touches aiortc objects: it hands typed messages for a room member to this
gateway and gets back protocol replies through a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .protocol import Candidate, ErrorCode, Mute, ProtocolError, PublishOffer, SubscribeAnswer
from .rooms import Member, RoomState

Reply = Callable[[dict[str, Any], str | int | None], None]
MediaMessage = PublishOffer | SubscribeAnswer | Candidate | Mute


class MediaGateway:
    """Routes media messages of `sfu` rooms; `p2p` rooms carry media peer to peer."""

    async def handle(
        self, room: RoomState, member: Member, message: MediaMessage, reply: Reply
    ) -> None:
        if room.mode == "p2p":
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"'{message.type}' needs a room of mode sfu; p2p rooms use 'signal'",
                message.id,
            )
        raise ProtocolError(ErrorCode.UNAVAILABLE, "the media relay is not running", message.id)

    def tracks(self, room: RoomState) -> list[dict[str, Any]]:
        return []

    async def on_joined(self, room: RoomState, member: Member) -> None:
        return None

    async def on_left(self, room: RoomState, member: Member) -> None:
        return None

    async def close(self) -> None:
        return None
