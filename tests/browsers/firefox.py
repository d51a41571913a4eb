"""Firefox ESR for the tests: a Node process (firefox.mjs, puppeteer-core over WebDriver BiDi)
that this module talks to with one JSON command per line."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "firefox.mjs"
FIREFOX = os.environ.get("RELAYROOM_FIREFOX", "/usr/bin/firefox-esr")


class FirefoxError(RuntimeError):
    """A command failed inside Firefox (the message carries the JavaScript error)."""


def missing() -> str | None:
    """Why the Firefox harness cannot start here, or None (scripts/test installs all of it)."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/system-deps installs it)"
    if not Path(FIREFOX).exists():
        return f"{FIREFOX} is missing (scripts/system-deps installs firefox-esr)"
    if not (HERE / "node_modules" / "puppeteer-core").is_dir():
        return "tests/browsers/node_modules is missing (scripts/test runs npm ci there)"
    return None


class Firefox:
    """One headless Firefox; pages are made with :meth:`new_page`."""

    def __init__(self, proc: asyncio.subprocess.Process, version: str) -> None:
        self._proc = proc
        self.version = version
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def launch(cls) -> Firefox:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the Firefox driver exited ({await proc.wait()})")
        hello = json.loads(line)
        return cls(proc, hello["version"])

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            message = json.loads(line)
            future = self._waiting.pop(message["id"], None)
            if future is None or future.done():
                continue
            if "error" in message:
                future.set_exception(FirefoxError(message["error"]))
            else:
                future.set_result(message["result"])
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(FirefoxError("the Firefox driver exited"))

    async def command(self, op: str, timeout: float = 60.0, **fields: Any) -> Any:
        assert self._proc.stdin is not None
        cid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = future
        self._proc.stdin.write((json.dumps({"id": cid, "op": op, **fields}) + "\n").encode())
        await self._proc.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def new_page(self, init_script: str | None = None) -> FirefoxPage:
        index = await self.command("newPage", initScript=init_script)
        return FirefoxPage(self, index)

    async def close(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(Exception):  # the driver may be gone already
                await self.command("close", timeout=15)
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._reader.cancel()


class FirefoxPage:
    """A tab, with the few calls the tests need (shaped like Playwright's)."""

    def __init__(self, firefox: Firefox, index: int) -> None:
        self._ff = firefox
        self._index = index

    async def goto(self, url: str) -> None:
        await self._ff.command("goto", page=self._index, url=url)

    async def evaluate(self, fn: str, *args: Any) -> Any:
        """Run a JavaScript function (source text) with JSON arguments; awaits promises."""
        return await self._ff.command("evaluate", page=self._index, fn=fn, args=list(args))

    async def wait_for_function(self, fn: str, *args: Any, timeout: float = 20.0) -> None:
        await self._ff.command(
            "waitForFunction",
            timeout=timeout + 5,
            page=self._index,
            fn=fn,
            args=list(args),
            timeoutMs=int(timeout * 1000),
        )

    async def mouse(self, steps: list[tuple[str, float, float]]) -> None:
        await self._ff.command("mouse", page=self._index, steps=steps)

    async def screenshot(self, path: str) -> None:
        # Relative paths are from the test's working directory, which the driver shares.
        await self._ff.command("screenshot", page=self._index, path=path)
