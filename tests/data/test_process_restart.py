"""A real `relayroom serve` process restarted with SIGTERM: connected clients are asked to
reconnect, the process exits 0, and the persisted history is back in the new process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from yarl import URL

from bench.loopback import free_port, wait_port
from tests.conftest import TEST_SECRET
from tests.data.peer import join_data
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


class ServerProcess:
    """`relayroom serve` on a fixed loopback port and data dir; `make_url` as a TestServer."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def make_url(self, path: str) -> URL:
        return URL(f"http://127.0.0.1:{self.port}{path}")

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env.update(
            {
                "RELAYROOM_API_SECRET": TEST_SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_DATA_PERSISTENT_TOPICS": "whiteboard,notes",
                "RELAYROOM_DRAIN_TIMEOUT_S": "3",
            }
        )
        log = (self.data_dir / "serve.log").open("a")
        args = ["--workers", "1", "--port", str(self.port), "--ice-host", "127.0.0.1", "--no-turn"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relayroom", "serve", *args, "--data-dir", str(self.data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(20)


async def test_sigterm_restart_keeps_persisted_history(tmp_path, connect):
    server = ServerProcess(tmp_path, free_port())
    server.start()
    try:
        writer = await join_data(connect, server, "board", "writer")
        for n in range(5):
            writer.send("notes", {"op": "stroke", "n": n})
        reader = await join_data(connect, server, "board", "reader")
        assert await eventually(lambda: len(reader.messages("notes")) == 5, 10)

        exit_code = await asyncio.to_thread(server.stop)
        assert exit_code == 0, (tmp_path / "serve.log").read_text()[-2000:]
        for client in (writer, reader):  # told to reconnect, then closed with that reason
            await client.ws.wait_closed()
            assert client.ws.close_reason == "server_shutdown"
        await writer.close()
        await reader.close()

        server.start()  # same port, same data dir: a new process
        late = await join_data(connect, server, "board", "late")
        assert await eventually(lambda: len(late.messages("notes")) == 5, 10)
        assert [m["payload"]["n"] for m in late.messages("notes")] == list(range(5))
        await late.close()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)
