"""`relayroom serve --workers N`: one supervisor process, N worker processes (docs/workers.md).

The supervisor binds the host's HTTP/WebSocket port and hands the listening socket to every
worker, which all accept on it (prefork). It runs the embedded TURN server (one TURN port per
host; the workers hand out credentials for it), holds the cluster state of its workers
(`ipc_hub.IpcHub`; with `--redis` the workers use Redis for it and the hub only carries their
heartbeats), restarts a worker that dies (exponential
backoff; it gives up and exits 1 after `worker_restart_limit` restarts within
`worker_restart_window_s`), kills a worker that stops reporting, and on SIGTERM/SIGINT forwards
the signal so that every worker drains, then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from relayroom import __version__

from .config import Config, config_to_wire
from .ipc_hub import HostState, IpcHub
from .turn_service import TurnService
from .worker import WorkerSetup

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
READY_TIMEOUT_S = 60.0
STALE_HEARTBEATS = 5


@dataclass
class WorkerSlot:
    """Worker i: its current process and its history."""

    index: int
    process: asyncio.subprocess.Process | None = None
    node_id: str = ""
    private_port: int = 0
    started_at: float = 0.0
    restarts: int = 0
    recent: deque[float] = field(default_factory=deque)  # restart times within the window
    state: str = "starting"  # starting -> running -> restarting -> running ... -> stopped

    def set_state(self, new: str) -> None:
        if new != self.state:
            log.debug("worker %d: %s -> %s", self.index, self.state, new)
            self.state = new


class Supervisor:
    """Spawns, watches and stops the workers of one host."""

    def __init__(self, config: Config, secret: str, listener: socket.socket, count: int) -> None:
        self._config = config
        self._secret = secret
        self._listener = listener
        self._slots = [WorkerSlot(i) for i in range(count)]
        self._hub = IpcHub(HostState(ttl_s=STALE_HEARTBEATS * config.worker_heartbeat_s))
        self._hub.workers_view = self.workers_view
        self._turn = TurnService(config, secret)
        self._stopping = asyncio.Event()
        self._failed = False
        self._restart_times: deque[float] = deque()
        self._watchers: set[asyncio.Task[None]] = set()
        self._worker_config: dict[str, Any] = {}

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    # --- the whole life -----------------------------------------------------------------------

    async def run(self, url: str) -> int:
        """Start TURN and the workers, print where, wait for a signal or a failure."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        await self._turn.start()
        self._worker_config = config_to_wire(self._worker_settings())
        for slot in self._slots:
            await self._spawn(slot)
        await self._wait_ready()
        print(f"relayroom {__version__} serving on {url}", flush=True)
        print(f"workers: {len(self._slots)} (supervisor pid {os.getpid()})", flush=True)
        turn = self._turn.server
        if turn is not None and turn.udp_address is not None:
            relay = turn.config.relay_public_host or turn.config.relay_host
            print(f"TURN/STUN on {relay} port {turn.udp_address[1]} (udp, tcp)", flush=True)
        stale = asyncio.create_task(self._kill_stale())
        await self._stopping.wait()
        stale.cancel()
        await self._stop_all()
        return 1 if self._failed else 0

    def _worker_settings(self) -> Config:
        """A worker's Config: one process (no supervisor of its own), its own node URL (its
        private port), and the supervisor's TURN server in its ICE servers instead of a TURN
        server of its own."""
        urls = tuple(self._turn.urls())
        return replace(
            self._config,
            workers="1",
            port=self.port,
            node_url=None,
            turn_enabled=False,
            turn_urls=urls,
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stopping.is_set():
            if all(self._ready(slot) for slot in self._slots):
                return
            await asyncio.sleep(0.05)

    def _ready(self, slot: WorkerSlot) -> bool:
        """Connected and serving: a worker advertises its private URL once its sites are up,
        and the other workers need that URL to proxy to the rooms it hosts."""
        entry = self._hub.state.nodes.get(slot.node_id)
        return (
            slot.node_id in self._hub.connected()
            and entry is not None
            and bool(entry.info.get("url"))
        )

    # --- one worker ---------------------------------------------------------------------------

    async def _spawn(self, slot: WorkerSlot) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        base = self._config.worker_private_port_base
        slot.node_id = f"W{slot.index}_{secrets.token_hex(4)}"
        slot.private_port = base + slot.index if base else 0
        setup = WorkerSetup(
            config=self._config,  # sent as self._worker_config
            secret=self._secret,
            index=slot.index,
            node_id=slot.node_id,
            listen_fd=self._listener.fileno(),
            private_port=slot.private_port,
            supervisor_pid=os.getpid(),
        )
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relayroom",
                "serve",
                "--worker-ipc-fd",
                str(child_end.fileno()),
                pass_fds=(child_end.fileno(), self._listener.fileno()),
                # Its own session: a terminal's Ctrl-C reaches the supervisor only, which then
                # drains the workers once (a worker given two signals would exit undrained).
                start_new_session=True,
            )
        finally:
            child_end.close()
        parent_end.sendall(setup.to_wire(self._worker_config))
        slot.process = process
        slot.started_at = time.time()
        slot.set_state("running")
        log.info("worker %d started: pid %d, node %s", slot.index, process.pid, slot.node_id)
        self._hub.serve(parent_end)
        task = asyncio.create_task(self._watch(slot, process))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, slot: WorkerSlot, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping.is_set():
            return
        now = time.monotonic()
        window = self._config.worker_restart_window_s
        for times in (self._restart_times, slot.recent):
            while times and now - times[0] > window:
                times.popleft()
        if len(self._restart_times) >= self._config.worker_restart_limit:
            log.error(
                "worker %d (pid %d) exited with %s; %d restarts within %.0f s: giving up",
                slot.index,
                process.pid,
                code,
                len(self._restart_times),
                window,
            )
            self._failed = True
            self._stopping.set()
            return
        delay = min(
            FIRST_BACKOFF_S * 2 ** len(slot.recent), self._config.worker_restart_backoff_max_s
        )
        log.warning(
            "worker %d (pid %d, node %s) exited with %s: restarting it in %.1f s",
            slot.index,
            process.pid,
            slot.node_id,
            code,
            delay,
        )
        slot.set_state("restarting")
        self._restart_times.append(now)
        slot.recent.append(now)
        await asyncio.sleep(delay)
        if not self._stopping.is_set():
            slot.restarts += 1
            await self._spawn(slot)

    async def _kill_stale(self) -> None:
        """A worker connected but silent for 5 heartbeats is hung: kill it (it is replaced)."""
        while True:
            await asyncio.sleep(self._config.worker_heartbeat_s)
            for node in self._hub.state.stale():
                for slot in self._slots:
                    if slot.node_id == node and slot.process and slot.process.returncode is None:
                        log.warning(
                            "worker %d (node %s) stopped reporting: killing it", slot.index, node
                        )
                        with contextlib.suppress(ProcessLookupError):
                            slot.process.kill()

    # --- stopping -----------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            log.warning("second %s: killing the workers", name)
            self._signal_all(signal.SIGKILL)
            os._exit(1)
        log.info("%s: draining every worker (send it again to force)", name)
        self._stopping.set()

    def _signal_all(self, signum: int) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    async def _stop_all(self) -> None:
        self._signal_all(signal.SIGTERM)
        processes = [s.process for s in self._slots if s.process is not None]
        grace = self._config.drain_timeout_s + 10
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), grace)
        except TimeoutError:
            log.warning("workers still running %.0f s after SIGTERM: killing them", grace)
            self._signal_all(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in processes))
        for slot in self._slots:
            slot.set_state("stopped")
        for task in list(self._watchers):
            task.cancel()
        await self._hub.close()
        await self._turn.close()
        self._listener.close()
        log.info("stopped")

    # --- GET /api/workers ---------------------------------------------------------------------

    def workers_view(self) -> list[dict[str, Any]]:
        state = self._hub.state
        view = []
        for slot in self._slots:
            entry = state.nodes.get(slot.node_id)
            info = entry.info if entry is not None else {}
            view.append(
                {
                    "index": slot.index,
                    "node": slot.node_id,
                    "pid": slot.process.pid if slot.process is not None else None,
                    "state": slot.state,
                    "restarts": slot.restarts,
                    "started": slot.started_at,
                    "url": info.get("url"),
                    "load": entry.load if entry is not None else {},
                    "rooms": len(state.rooms_of(slot.node_id)),
                }
            )
        return view
