"""A real `relayroom serve` process on loopback, for the SDK, log and dashboard tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """`python -m relayroom serve --port 0 ...` with TEST_SECRET; stderr (the log) to a file."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        self.env.update(
            {
                "RELAYROOM_API_SECRET": TEST_SECRET,
                "RELAYROOM_ALLOW_LOOPBACK_CANDIDATES": "true",
                "RELAYROOM_DRAIN_TIMEOUT_S": "3",
                "RELAYROOM_STATS_INTERVAL_S": "0.5",
            }
        )
        self.env.update(env or {})
        self.log_path = workdir / "serve.log"
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relayroom",
                    "serve",
                    "--workers",
                    "1",
                    "--port",
                    "0",
                    "--no-turn",
                    "--ice-host",
                    "127.0.0.1",
                    "--data-dir",
                    str(self.workdir / "data"),
                    *self.args,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=self.env,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 30)
        match = re.search(r"serving on (https?://\S+)", line)
        if match is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no URL printed: {line!r}\n{self.log_text()}")
        self.url = match.group(1)
        return self

    async def stop(self) -> int:
        """SIGTERM, then wait for the drain; the exit status."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
