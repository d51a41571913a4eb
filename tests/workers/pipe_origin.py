"""A process that publishes a track into its own room and pipes it where it is told.

``python -m tests.workers.pipe_origin SECRET``: a real aiortc publisher (stamped VP8 video and
Opus) in a media room with a pipe endpoint on 127.0.0.1. It prints one JSON line
``{"address": [host, port], "tracks": [PipedTrack...]}`` once the tracks are published, then
answers JSON lines on stdin, one JSON line each:

- ``{"pipe": {"publisher", "track", "pipe_id", "far": [host, port]}}`` -> ``{"piped": id}``
- ``{"stats": true}`` -> the pipes' and the hubs' counters.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from relayroom.media import MediaEvent, Room
from relayroom.media.pipe import PipedTrack, PipeEndpoint, PipeSettings
from relayroom.media.pipe_wire import pipe_key
from tests.media.client import Publisher
from tests.media.conftest import loopback_settings


def _print(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _stats(room: Room, endpoint: PipeEndpoint) -> dict[str, Any]:
    return {
        "pipes": [
            {
                "pipe_id": s.pipe_id,
                "track": s.hub.info.id,
                "state": s.state.value,
                "leg": s.leg.state.value,
                "packets": s.leg.stats.packets,
                "keyframe_requests": s.keyframe_requests,
                "estimates": s.estimates,
            }
            for s in room.piped_out()
        ],
        "hubs": {h.info.id: h.stats() for h in room.hubs()},
        "counters": {"datagrams": endpoint.counters.datagrams, **endpoint.counters.dropped},
    }


async def main(secret: str) -> None:
    endpoint = PipeEndpoint(pipe_key(secret), PipeSettings(keepalive_s=0.2, timeout_s=1.0))
    address = await endpoint.start()
    events: list[MediaEvent] = []
    room = Room("piped", loopback_settings(), events.append, pipes=endpoint)
    participant = await room.add_participant("alice", can_publish=True, can_subscribe=False)
    publisher = Publisher(participant)
    await publisher.offer()
    while len(participant.published_hubs()) < 2:
        await asyncio.sleep(0.05)
    tracks = [PipedTrack.of(h).to_wire() for h in participant.published_hubs()]
    _print({"address": list(address), "tracks": tracks})
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        if "pipe" in request:
            p = request["pipe"]
            far = (str(p["far"][0]), int(p["far"][1]))
            await room.pipe_track(p["publisher"], p["track"], int(p["pipe_id"]), far)
            _print({"piped": p["pipe_id"]})
        elif "stats" in request:
            _print(_stats(room, endpoint))
    await publisher.close()
    await room.close()
    await endpoint.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
