"""Run one document's shell blocks in a private network namespace and check what they do.

`python -m tests.docs.runner DOC` re-executes itself under `unshare -rn`, so every document
gets a fresh namespace with loopback plus LAN_ADDRESS (and nothing from the host can leak in
or out). In there, blocks run in document order with `sh -e`, in a scratch directory:

- a block that starts a server runs in the background until the next server block or the end
  of the document; it must print its URL (`serving on URL`), that URL must be one another
  machine can open (the LAN address when bound to 0.0.0.0, https with a certificate), answer
  GET /healthz, let a client join a room, and the TURN credentials the `joined` message hands
  out must allocate a relay on the embedded TURN server;
- any other block must exit 0; a token it prints must be accepted by the running server.

Prints one JSON object per block: {"where", "status": "ok" | "failed" | "not-run", "detail"}.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bench.loopback import RedisProcess
from relayroom.signaling.tokens import Grants, mint_token
from tests.docs.commands import LAN_ADDRESS, ROOT, Block, blocks, substitute
from tests.turn.helpers import TurnClient

START_TIMEOUT_S = 90.0  # scripts/serve may run scripts/bootstrap first
CLI_TIMEOUT_S = 60.0
_URL = re.compile(r"serving on (https?://\S+)")
_JWT = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")


class CheckFailed(Exception):
    pass


class RunningServer:
    """A server block running in its own process group, and what it printed."""

    def __init__(self, block: Block, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.block = block
        self.proc = proc
        self.log = log
        self.url = ""
        self.stdout: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def wait_url(self) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    await self.proc.wait()
                    raise CheckFailed(f"exited {self.proc.returncode} before serving{self.tail()}")
                line = raw.decode(errors="replace")
                self.stdout.append(line)
                match = _URL.search(line)
                if match:
                    self.url = match.group(1)
                    self._drain = asyncio.create_task(self._read_rest())
                    return self.url

    async def _read_rest(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.stdout.append(raw.decode(errors="replace"))

    def tail(self) -> str:
        text = "".join(self.stdout) + self.log.read_text(errors="replace")
        return "\n" + "\n".join(text.splitlines()[-15:])

    def api_secret(self) -> str | None:
        """The secret the server process was started with (environment or --api-secret)."""
        for pid in _group_pids(self.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" not in cmdline:
                continue
            if b"--api-secret" in cmdline:
                return cmdline[cmdline.index(b"--api-secret") + 1].decode()
            for item in environ:
                if item.startswith(b"RELAYROOM_API_SECRET="):
                    return item.split(b"=", 1)[1].decode()
        return None

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        if self._drain is not None:
            self._drain.cancel()
        # The group's other processes (the server under `sh`) must be gone before the next block.
        for _ in range(100):
            if not _group_pids(self.proc.pid):
                return
            await asyncio.sleep(0.1)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class DocRun:
    """The scratch directory, environment and helpers one document's blocks share."""

    def __init__(self, scratch: Path, redis_url: str) -> None:
        self.scratch = scratch
        self.work = scratch / "work"
        self.work.mkdir()
        self.cert, self.key = scratch / "tls" / "fullchain.pem", scratch / "tls" / "privkey.pem"
        self.redis_url = redis_url
        self.secret = secrets.token_hex(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["XDG_DATA_HOME"] = str(scratch / "xdg")  # the default data dir, per document
        self.env = env
        self.servers: list[RunningServer] = []

    def make_certificate(self) -> None:
        self.cert.parent.mkdir(exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", str(self.key), "-out", str(self.cert), "-subj", f"/CN={LAN_ADDRESS}",
                "-addext", f"subjectAltName=IP:{LAN_ADDRESS}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip

    def script(self, text: str) -> str:
        return substitute(
            text, redis_url=self.redis_url, secret=self.secret, cert=self.cert, key=self.key
        )

    async def run_block(self, block: Block) -> str:
        """Servers keep running until the next block that starts one (a reader's terminal)."""
        if block.is_server or block.run_with is not None:
            await self.stop_servers()
        if block.run_with is not None:
            await self.start_server(Block(block.doc, block.line, block.run_with + "\n"))
        if block.is_server:
            return await self.start_server(block)
        return await self.run_cli(block)

    async def stop_servers(self) -> None:
        while self.servers:
            await self.servers.pop().stop()

    async def start_server(self, block: Block) -> str:
        text = self.script(block.text)
        log = self.scratch / f"server-{block.line}.log"
        proc = await asyncio.create_subprocess_exec(
            "sh", "-e", "-c", text,
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            start_new_session=True,
        )  # fmt: skip
        server = RunningServer(block, proc, log)
        self.servers.append(server)
        url = await server.wait_url()
        try:
            return await self.check_server(server, text)
        except (CheckFailed, AssertionError, OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise CheckFailed(f"{url}: {exc!r}{server.tail()}") from None

    async def check_server(self, server: RunningServer, text: str) -> str:
        url = server.url
        parts = urlsplit(url)
        if "--host 0.0.0.0" in text and parts.hostname != LAN_ADDRESS:
            raise CheckFailed(f"bound to 0.0.0.0 but prints {url}, not the LAN address")
        if "--tls-cert" in text and parts.scheme != "https":
            raise CheckFailed(f"serves a certificate but prints {url}")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "healthz", ssl=False) as resp:
                if resp.status != 200:
                    raise CheckFailed(f"GET /healthz: {resp.status}")
            token = await self._join_token(http, server)
            joined = await _join(http, url, token)
        relayed, turn_host = await _allocate(joined.get("ice_servers") or [])
        if relayed[0] != turn_host:
            raise CheckFailed(f"TURN relays from {relayed[0]}, clients reach it on {turn_host}")
        return f"{url} healthy; joined; TURN allocation {relayed[0]}:{relayed[1]}"

    async def _join_token(self, http: aiohttp.ClientSession, server: RunningServer) -> str:
        async with http.post(server.url + "api/dev/token", json={"room": "docs"}, ssl=False) as r:
            if r.status == 200:
                return str((await r.json())["token"])
        secret = server.api_secret()
        if secret is None:
            raise CheckFailed("not in dev mode and no RELAYROOM_API_SECRET to mint a token with")
        return mint_token(secret, room="docs", identity="docs-check", ttl_s=600, grants=Grants())

    async def run_cli(self, block: Block) -> str:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-e", "-c", self.script(block.text),
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise CheckFailed(f"did not finish within {CLI_TIMEOUT_S} s") from None
        output = out.decode(errors="replace")
        if proc.returncode != 0:
            raise CheckFailed(f"exit {proc.returncode}:\n{output[-2000:]}")
        last = output.strip().splitlines()[-1] if output.strip() else ""
        if _JWT.match(last):
            return await self._check_token(last)
        return f"exit 0 ({len(output)} bytes of output)"

    async def _check_token(self, token: str) -> str:
        """A printed token must work on the server the reader is running."""
        if not self.servers:
            raise CheckFailed("printed a token but no documented server runs to use it on")
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        url = self.servers[-1].url
        async with aiohttp.ClientSession() as http:
            if claims.get("room") == "*":
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(url + "api/rooms", headers=headers, ssl=False) as resp:
                    if resp.status != 200:
                        raise CheckFailed(f"the printed admin token gets {resp.status}")
                return "admin token accepted by the running server"
            await _join(http, url, token, room=str(claims["room"]))
        return "token accepted by the running server (joined)"

    async def close(self) -> None:
        await self.stop_servers()


async def _join(
    http: aiohttp.ClientSession, url: str, token: str, room: str = "docs"
) -> dict[str, Any]:
    ws_url = re.sub(r"^http", "ws", url) + "ws"
    async with http.ws_connect(ws_url, ssl=False) as ws:
        await ws.send_json({"type": "join", "id": "j", "room": room, "token": token})
        reply = await ws.receive_json(timeout=10)
        if reply.get("type") != "joined":
            raise CheckFailed(f"join answered {reply}")
        await ws.send_json({"type": "leave"})
        return dict(reply)


async def _allocate(ice_servers: list[dict[str, Any]]) -> tuple[tuple[str, int], str]:
    for entry in ice_servers:
        for turn_url in entry.get("urls", []):
            match = re.match(r"turn:([^:?]+):(\d+)\?(.*)", turn_url)
            if match and parse_qs(match[3]).get("transport") == ["udp"]:
                host, port = match[1], int(match[2])
                client = TurnClient((host, port), "udp", entry["username"], entry["credential"])
                await client.open()
                try:
                    relayed = await client.allocate()
                finally:
                    client.close()
                return (str(relayed[0]), int(relayed[1])), host
    raise CheckFailed(f"the server hands out no TURN/UDP server: {ice_servers}")


async def run_document(doc: Path) -> list[dict[str, str]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="relayroom-docs-") as tmp:
        scratch = Path(tmp)
        redis = RedisProcess(scratch)
        redis.start()
        run = DocRun(scratch, redis.url)
        try:
            run.make_certificate()
            for block in blocks(doc):
                result = {"where": block.where, "command": block.text.strip()}
                if block.not_run is not None:
                    results.append({**result, "status": "not-run", "detail": block.not_run})
                    continue
                try:
                    detail = await run.run_block(block)
                    results.append({**result, "status": "ok", "detail": detail})
                except CheckFailed as exc:
                    results.append({**result, "status": "failed", "detail": str(exc)})
        finally:
            await run.close()
            redis.stop()
    return results


def _enter_namespace() -> None:
    """Only inside a namespace of our own (no interface but lo) may the runner add addresses."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    if [line.split(":")[0].strip() for line in lines] != ["lo"]:
        raise SystemExit("tests.docs.runner: not in a fresh network namespace; refusing")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)
    subprocess.run([ip, "addr", "add", f"{LAN_ADDRESS}/32", "dev", "lo"], check=True)


def main(argv: list[str]) -> int:
    if argv[:1] != ["--in-namespace"]:
        unshare = ["unshare", "-rn", sys.executable, "-m", "tests.docs.runner", "--in-namespace"]
        return subprocess.run([*unshare, *argv], cwd=ROOT).returncode
    _enter_namespace()
    for result in asyncio.run(run_document(ROOT / argv[1])):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
