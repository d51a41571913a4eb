"""Run under `unshare -rn` by test_fastpath.py: the compiled sender against a socket whose send
buffer fills (a veth whose queue drains at 800 kbit/s), with asyncio taking the overflow.

Prints one JSON object with what happened. Traffic goes to 10.9.0.3 on a veth pair inside
this private namespace: it never leaves it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from typing import Any

from pylibsrtp import Policy, Session

from relayroom.media.aiortc_hooks import AsyncioOverflow, fast_sender

LOCAL, PEER = "10.9.0.1", ("10.9.0.3", 9)


def setup() -> None:
    for command in (
        "link set lo up",
        "link add rrq0 type veth peer name rrq1",
        f"addr add {LOCAL}/24 dev rrq0",
        "link set rrq0 up",
        "link set rrq1 up",
        f"neigh add {PEER[0]} lladdr 02:00:00:00:00:01 dev rrq0",
    ):
        subprocess.run(["ip", *command.split()], check=True)
    subprocess.run(
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            "rrq0",
            "root",
            "tbf",
            "rate",
            "800kbit",
            "burst",
            "1600",
            "limit",
            "30000",
        ],
        check=True,
    )


class _Connected:
    _state = "connected"


async def main() -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.bind((LOCAL, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    transport: Any  # asyncio's datagram transport has get_write_buffer_size (untyped)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
    overflow = AsyncioOverflow(transport, PEER, 20000)
    session = Session(Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    fast = fast_sender(session, sock.fileno(), PEER, _Connected(), overflow, "connected")
    burst = 100
    for seq in range(burst):  # at once: far more than the socket and the queue hold
        fast.send(b"\x80\x60" + seq.to_bytes(2, "big") + bytes(8) + bytes(1100))
    after_burst = {
        "direct": fast.packets,
        "queued": overflow.packets,
        "dropped": overflow.dropped + fast.dropped,
        "queueing": bool(fast.queueing),
        "asyncio_buffer": transport.get_write_buffer_size(),
    }
    for _ in range(100):  # the queue drains at 100 KB/s: asyncio's buffer empties
        await asyncio.sleep(0.1)
        if not transport.get_write_buffer_size():
            break
    fast.send(b"\x80\x60\x01\x00" + bytes(8) + bytes(100))  # queued: goes through asyncio
    was_queueing = bool(fast.queueing)
    direct_before = fast.packets
    fast.send(b"\x80\x60\x01\x01" + bytes(8) + bytes(100))  # straight to the socket again
    transport.close()
    return {
        "burst": burst,
        "after_burst": after_burst,
        "queueing_after_drain": was_queueing,
        "direct_after_drain": fast.packets - direct_before,
    }


if __name__ == "__main__":
    setup()
    print(json.dumps(asyncio.run(main())))
