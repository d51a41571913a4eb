"""An aiortc DataChannel client speaking the signaling protocol over a WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCSessionDescription

from relayroom.media.aiortc_hooks import configure_ice
from tests.conftest import WsClient
from tests.media.client import LOOPBACK, client_pc
from tests.support.polling import eventually


@dataclass
class Received:
    label: str
    message: dict[str, Any]
    at: float


class DataClient:
    """Opens `reliable` and `lossy` on its publisher PC; answers subscriber offers; records."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.id: str = ws.joined["participant"]["id"] if ws.joined else ""
        self.pub = client_pc()
        self.sub = client_pc()
        self.reliable = self.pub.createDataChannel("reliable")
        self.lossy = self.pub.createDataChannel("lossy", ordered=False, maxRetransmits=0)
        self.received: list[Received] = []
        self.errors: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.inbound: dict[str, RTCDataChannel] = {}
        self.raw_batches = 0
        self._task = asyncio.create_task(self._signaling())

        @self.sub.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            self.inbound[channel.label] = channel
            channel.on("message", lambda m: self._on_message(channel.label, m))

    def _on_message(self, label: str, text: str | bytes) -> None:
        now = time.monotonic()
        value = json.loads(text)
        if isinstance(value, list):
            self.raw_batches += 1
            for item in value:
                self.received.append(Received(label, item, now))
        else:
            self.received.append(Received(label, value, now))

    async def _signaling(self) -> None:
        while True:
            message = await self.ws.inbox.get()
            if message["type"] == "subscribe_offer":
                await self.sub.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                configure_ice(self.sub, LOOPBACK)
                await self.sub.setLocalDescription(await self.sub.createAnswer())
                await self.ws.send(
                    {"type": "subscribe_answer", "sdp": self.sub.localDescription.sdp}
                )
            elif message["type"] == "error":
                self.errors.append(message)
            else:
                self.events.append(message)

    async def start(self, timeout: float = 15) -> None:
        """Publish the data channels; wait until both directions are open."""
        configure_ice(self.pub, LOOPBACK)
        await self.pub.setLocalDescription(await self.pub.createOffer())
        await self.ws.send(
            {"type": "publish_offer", "id": "data", "sdp": self.pub.localDescription.sdp}
        )
        while True:
            if not await eventually(
                lambda: any(e.get("ref") == "data" for e in self.events), timeout
            ):
                raise AssertionError(f"no publish_answer: {self.errors}")
            answer = next(e for e in self.events if e.get("ref") == "data")
            self.events.remove(answer)
            break
        await self.pub.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        ok = await eventually(
            lambda: (
                self.reliable.readyState == "open"
                and all(
                    label in self.inbound and self.inbound[label].readyState == "open"
                    for label in ("reliable", "lossy")
                )
            ),
            timeout,
        )
        assert ok, "data channels did not open"

    def send(
        self, topic: str, payload: Any, *, to: list[str] | None = None, lossy: bool = False
    ) -> None:
        message: dict[str, Any] = {"topic": topic, "payload": payload}
        if to is not None:
            message["to"] = to
        self.send_raw(json.dumps(message), lossy=lossy)

    def send_raw(self, text: str, *, lossy: bool = False) -> None:
        (self.lossy if lossy else self.reliable).send(text)

    def messages(self, topic: str | None = None, label: str | None = None) -> list[dict[str, Any]]:
        return [
            r.message
            for r in self.received
            if (topic is None or r.message.get("topic") == topic)
            and (label is None or r.label == label)
        ]

    def pause(self) -> None:
        """Stop handling SCTP packets: no delivery, no SACKs (a frozen receiver)."""

        async def ignore(data: bytes) -> None:
            return None

        self.sub.sctp._handle_data = ignore  # type: ignore[union-attr,method-assign]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.pub.close()
        await self.sub.close()


async def join_data(connect: Any, ts: Any, room: str, identity: str, **grants: Any) -> DataClient:
    ws = await connect(ts)
    await ws.join(room, identity, **grants)
    client = DataClient(ws)
    await client.start()
    return client
