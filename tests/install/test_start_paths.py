"""The ways people start relayroom: LAN/production addresses, a second dev server, the token
command next to a dev server, and the errors a wrong setting gets (issue 10, items 1, 7, 11)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from relayroom.signaling.addresses import display_url, relay_host
from relayroom.signaling.config import ConfigError, load_config
from relayroom.signaling.tokens import verify_token
from relayroom.signaling.turn_service import turn_config

ROOT = Path(__file__).resolve().parents[2]
SECRET = "start-paths-secret-0123456789abcdef0123"


def cfg(**overrides: object):  # type: ignore[no-untyped-def]
    return load_config(env={}, overrides={"api_secret": SECRET, **overrides})


def test_wildcard_host_relays_from_the_local_ice_host() -> None:
    config = cfg(host="0.0.0.0", ice_hosts=("192.0.2.10",))
    assert relay_host(config, ["192.0.2.10", "198.51.100.3"]) == "192.0.2.10"
    turn = turn_config(config, "s", interfaces=["192.0.2.10", "198.51.100.3"])
    assert turn.relay_host == "192.0.2.10" and turn.relay_public_host is None


def test_wildcard_host_behind_nat_relays_locally_and_advertises_the_ice_host() -> None:
    config = cfg(host="0.0.0.0", ice_hosts=("203.0.113.7",))
    turn = turn_config(config, "s", interfaces=["10.0.0.11"])
    assert turn.relay_host == "10.0.0.11" and turn.relay_public_host == "203.0.113.7"


def test_wildcard_host_without_ice_host_uses_the_only_interface_address() -> None:
    config = cfg(host="0.0.0.0")
    assert relay_host(config, ["192.0.2.10"]) == "192.0.2.10"
    with pytest.raises(ConfigError) as info:
        relay_host(config, ["192.0.2.10", "198.51.100.3"])
    assert info.value.field_name == "turn_host" and "--ice-host" in str(info.value)


def test_printed_url_is_one_another_machine_can_open() -> None:
    assert display_url(cfg(host="0.0.0.0", ice_hosts=("192.0.2.10",)), 8080) == (
        "http://192.0.2.10:8080/"
    )
    tls = cfg(host="0.0.0.0", ice_hosts=("192.0.2.10",), tls_cert="c.pem", tls_key="k.pem")
    assert display_url(tls, 8443) == "https://192.0.2.10:8443/"
    assert display_url(cfg(host="127.0.0.1"), 9000) == "http://127.0.0.1:9000/"
    assert display_url(cfg(public_url="https://meet.example.org"), 1) == (
        "https://meet.example.org/"
    )


@pytest.mark.parametrize(
    "url", ["notaurl", "http://h:6379/0", "redis://:6379/0", "redis://h:port/0", "redis://h/x"]
)
def test_malformed_redis_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg(redis_url=url)
    assert info.value.field_name == "redis_url"


@pytest.mark.parametrize(
    "url", ["redis://10.0.0.5:6379/0", "rediss://u:p@h:6380", "unix:///run/redis.sock"]
)
def test_redis_urls_are_accepted(url: str) -> None:
    assert cfg(redis_url=url).redis_url == url


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):  # type: ignore[no-untyped-def]
    full = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "relayroom", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        cwd=cwd,
    )


def test_bad_redis_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("serve", "--dev", "--data-dir", str(tmp_path), "--redis", "notaurl")
    assert result.returncode == 2
    assert result.stderr.startswith("relayroom: invalid setting 'redis_url'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_an_address_the_machine_lacks_blames_host(tmp_path: Path) -> None:
    result = run("serve", "--dev", "--data-dir", str(tmp_path), "--host", "198.51.100.1")
    assert result.returncode == 2
    assert "invalid setting 'host'" in result.stderr and "turn_port" not in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_turn_port_in_production_names_the_flag(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = str(busy.getsockname()[1])
        result = run(
            "serve", "--data-dir", str(tmp_path), "--port", "0", "--turn-port", port,
            env={"RELAYROOM_API_SECRET": SECRET},
        )  # fmt: skip
    assert result.returncode == 2
    assert "invalid setting 'turn_port'" in result.stderr and "--turn-port" in result.stderr


async def test_second_dev_server_takes_a_free_turn_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        proc, lines = await _serve(tmp_path, "--dev", "--port", "0", "--turn-port", str(port))
        try:
            turn = re.search(r"TURN/STUN on 127\.0\.0\.1 port (\d+)", lines[1])
            assert turn and int(turn.group(1)) not in (0, port), lines
        finally:
            await _stop(proc)


@pytest.mark.slow
async def test_token_signs_with_the_dev_servers_secret(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    missing = run("token", "--room", "r", "--identity", "a", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "scripts/serve" in missing.stderr
    proc, _ = await _serve(tmp_path, "--dev", "--port", "0", "--turn-port", "0", env=env)
    try:
        minted = run("token", "--room", "r", "--identity", "a", env=env, cwd=tmp_path)
        assert minted.returncode == 0, minted.stderr
        stored = (tmp_path / "xdg" / "relayroom" / "dev-api-secret").read_text().strip()
        assert verify_token(stored, minted.stdout.strip(), room="r").identity == "a"
    finally:
        await _stop(proc)


async def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, list[str]]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    full.update(env or {"RELAYROOM_DATA_DIR": str(tmp_path)})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relayroom", "serve", *args,
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "serve.log").open("w"),
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode() for _ in range(2)]
    assert "serving on" in lines[0], [*lines, (tmp_path / "serve.log").read_text()]
    return proc, lines


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 15)
