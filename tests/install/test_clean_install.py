"""`pip install relayroom` without extras, in a fresh venv, serves a call.

A real, non-editable install from the repository into a new venv (offline, from the wheels
`scripts/bootstrap --test` keeps in .venv/wheelhouse), so optional extras that leak into the
core (the `redis` import of issue 10) fail here. The installed `relayroom serve` then relays
video between two aiortc peers from the test suite.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import WsClient
from tests.support.polling import eventually
from tests.support.sfu import WsSubscriber, publish

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "*.egg-info",
    "test-artifacts",
    "__pycache__",
    ".*_cache",
    "data",
    "*.so",  # the compiled step is built by the install, not copied
)


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYROOM_", "PYTHON"))}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with relayroom installed from a copy of the repository, no extras."""
    assert (WHEELHOUSE / ".complete").exists(), "run scripts/bootstrap --test first"
    base = tmp_path_factory.mktemp("clean-install")
    source = base / "relayroom-src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=COPY_IGNORE)
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=base)
    assert made.returncode == 0, made.stderr
    pip: list[str | Path] = [
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--no-index",
        "--disable-pip-version-check",
    ]
    installed = _run(*pip, "--find-links", WHEELHOUSE, source, cwd=base, timeout=300)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_clean_install_is_a_real_install_without_redis(clean_venv: Path) -> None:
    where = _run(
        clean_venv / "bin" / "python",
        "-c",
        "import relayroom; print(relayroom.__file__)",
        cwd=clean_venv,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(clean_venv), where.stdout  # not editable
    redis = _run(clean_venv / "bin" / "python", "-c", "import redis", cwd=clean_venv)
    assert redis.returncode != 0 and "ModuleNotFoundError" in redis.stderr
    # This machine has a C compiler: the install built the compiled packet steps.
    compiled = _run(
        clean_venv / "bin" / "python",
        "-c",
        "import relayroom.media._fastpath as m; print(m.__file__)",
        cwd=clean_venv,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert Path(compiled.stdout.strip()).is_relative_to(clean_venv), compiled.stdout


@pytest.mark.slow
def test_redis_without_the_extra_names_the_extra(clean_venv: Path, tmp_path: Path) -> None:
    result = _run(
        clean_venv / "bin" / "relayroom", "serve", "--dev", "--data-dir", tmp_path,
        "--port", "0", "--redis", "redis://127.0.0.1:6379/0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "pip install 'relayroom[redis]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.slow
async def test_clean_install_serves_a_call(clean_venv: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYROOM_", "PYTHON"))}
    env["RELAYROOM_TURN_PORT"] = "0"
    proc = await asyncio.create_subprocess_exec(
        str(clean_venv / "bin" / "relayroom"), "serve", "--dev", "--port", "0",
        "--data-dir", str(tmp_path), "--ice-host", "127.0.0.1",
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "serve.log").open("w"),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"serving on (http://\S+)", line)
        assert match, line + (tmp_path / "serve.log").read_text()
        url = match.group(1)
        async with aiohttp.ClientSession() as http:
            pub_ws, sub_ws = await _join(http, url, "pub"), await _join(http, url, "sub")
            subscriber = WsSubscriber(sub_ws)
            pub_pc, _ = await publish(pub_ws)
            try:
                await sub_ws.expect("track_published", 10)
                await subscriber.answer_next_offer()
                assert await eventually(
                    lambda: any(len(c) >= 30 for c in subscriber.counters.values()), 20
                ), subscriber.counters
            finally:
                await subscriber.close()
                await pub_pc.close()
                await pub_ws.ws.close()
                await sub_ws.ws.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]


async def _join(http: aiohttp.ClientSession, url: str, name: str) -> WsClient:
    async with http.post(url + "api/dev/token", json={"room": "install", "name": name}) as resp:
        token = (await resp.json())["token"]
    client = WsClient(await http.ws_connect(url + "ws"))
    await client.send({"type": "join", "id": "j", "room": "install", "token": token})
    await client.expect("joined", 10)
    return client
