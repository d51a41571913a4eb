"""What the comparison needs of a server: start it pinned, sign in a publisher and subscribers.

Each implementation runs the real server process and speaks its own signaling over WebSocket on
loopback; media goes over the veth pair (`netns.SERVER_ADDR`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

AnswerOffer = Callable[[str], Awaitable[str]]
"""Hands a server's offer to a subscriber process; returns that subscriber's answer."""


class Server(Protocol):
    name: str

    @property
    def pid(self) -> int: ...

    async def start(self) -> None: ...

    async def publish(self, offer_sdp: str) -> str:
        """Sign in the publisher; returns the server's answer to its offer."""
        ...

    async def subscribe(self, index: int, answer_offer: AnswerOffer) -> None:
        """Sign in subscriber ``index``; returns once it has answered its first offer."""
        ...

    async def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until something accepts on 127.0.0.1:port; a server that exits first is an error."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if proc.poll() is not None:
            tail = (await asyncio.to_thread(log.read_text))[-2000:]
            raise RuntimeError(f"server exited with {proc.returncode}: {tail}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


async def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait, 5)


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    """``argv`` run on one CPU (every thread it starts inherits the affinity).

    Servers are also started in a session of their own (``start_new_session``): with the
    kernel's autogroup scheduling, a server in the benchmark's session would share one
    scheduling group with the busy client processes, and the group's weight follows where its
    load is (the clients' core), starving the server on its own core.
    """
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]
