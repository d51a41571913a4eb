"""A worker process's side of `relayroom serve --workers N` (the wiring is in cli.py).

The supervisor starts each worker as `relayroom serve --worker-ipc-fd FD` with two inherited
file descriptors: FD, its end of a Unix socket pair to the supervisor, and the listening socket
of the host's HTTP/WebSocket port. The first line on FD is the `WorkerSetup` (settings, secret,
identity), so the secret is never on a command line or in the environment.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from relayroom.media.stats import Tick

from .config import Config, ConfigError, config_from_wire

log = logging.getLogger(__name__)

SETUP_MAX_BYTES = 1024 * 1024
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSetup:
    """What the supervisor tells a worker before anything else."""

    config: Config
    secret: str
    index: int
    node_id: str
    listen_fd: int
    private_port: int
    supervisor_pid: int

    def to_wire(self, config_wire: dict[str, Any]) -> bytes:
        return (
            json.dumps(
                {
                    "t": "setup",
                    "config": config_wire,
                    "secret": self.secret,
                    "index": self.index,
                    "node": self.node_id,
                    "listen_fd": self.listen_fd,
                    "private_port": self.private_port,
                    "supervisor_pid": self.supervisor_pid,
                },
                separators=(",", ":"),
            ).encode()
            + b"\n"
        )


def read_setup(sock: socket.socket) -> WorkerSetup:
    """Block until the supervisor's setup line has arrived on `sock` (nothing follows it
    before the worker says hello, so reading up to the newline takes no other frame)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConfigError("worker_ipc_fd", "the supervisor closed the link before the setup")
        data += chunk
        if len(data) > SETUP_MAX_BYTES:
            raise ConfigError("worker_ipc_fd", "the supervisor's setup is too large")
    try:
        raw = json.loads(data)
        return WorkerSetup(
            config=config_from_wire(raw["config"]),
            secret=str(raw["secret"]),
            index=int(raw["index"]),
            node_id=str(raw["node"]),
            listen_fd=int(raw["listen_fd"]),
            private_port=int(raw["private_port"]),
            supervisor_pid=int(raw["supervisor_pid"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("worker_ipc_fd", f"malformed setup from the supervisor: {exc}") from None


def die_with_parent(supervisor_pid: int) -> None:
    """Get SIGTERM (a drain) when the supervisor dies, even by SIGKILL (Linux); the closed
    socket to the supervisor tells the worker too, on any system."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable: relying on the supervisor's socket")
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class LoadMeter:
    """This worker's load as the supervisor's placement reads it: participants, and packets
    forwarded per second (from the stats collector's ticks)."""

    def __init__(self) -> None:
        self._forwarded = 0
        self._last = (time.monotonic(), 0)
        self.draining = False

    def on_tick(self, tick: Tick) -> None:
        forwarded: Counter[str] = tick.totals.forwarded_packets
        self._forwarded += sum(forwarded.values())

    def report(self, participants: int, connections: int) -> dict[str, Any]:
        now = time.monotonic()
        then, before = self._last
        self._last = (now, self._forwarded)
        pps = (self._forwarded - before) / (now - then) if now > then else 0.0
        return {
            "participants": participants,
            "connections": connections,
            "forwarded_pps": round(pps, 1),
            "draining": self.draining,
            "pid": os.getpid(),
        }
