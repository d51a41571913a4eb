"""Config precedence, CLI commands, and a real `relayroom serve` subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bench.loopback import free_port
from relayroom import __version__
from relayroom.signaling.config import ConfigError, load_config, setting_docs
from relayroom.signaling.tokens import verify_token
from tests.support.cli import ROOT, run_cli

SECRET = "cli-secret-0123456789abcdef-0123456789"


def test_precedence_file_then_env_then_flags(tmp_path):
    file = tmp_path / "relayroom.toml"
    file.write_text('port = 9001\nhost = "127.0.0.2"\nroom_max_participants = 7\n')
    config = load_config(
        file=file,
        env={"RELAYROOM_PORT": "9002", "RELAYROOM_ICE_HOSTS": "127.0.0.1, 127.0.0.3"},
        overrides={"port": "9003"},
    )
    assert config.port == 9003
    assert config.host == "127.0.0.2"
    assert config.room_max_participants == 7
    assert config.ice_hosts == ("127.0.0.1", "127.0.0.3")


@pytest.mark.parametrize(
    "source, field",
    [
        ({"env": {"RELAYROOM_PORT": "eighty"}}, "RELAYROOM_PORT"),
        ({"env": {"RELAYROOM_DEV": "maybe"}}, "RELAYROOM_DEV"),
        ({"overrides": {"port": 70000}}, "port"),
        ({"overrides": {"ws_max_frame_bytes": 10}}, "ws_max_frame_bytes"),
        ({"overrides": {"log_level": "loud"}}, "log_level"),
        ({"overrides": {"ice_hosts": ("not-an-ip",)}}, "ice_hosts"),
        ({"overrides": {"tls_cert": "/x.pem"}}, "tls_key"),
        ({"overrides": {"colour": "blue"}}, "colour"),
    ],
)
def test_invalid_values_name_the_field(source, field):
    with pytest.raises(ConfigError) as info:
        load_config(env=source.get("env", {}), overrides=source.get("overrides"))
    assert info.value.field_name == field
    assert field in str(info.value)


def test_unknown_key_in_file_is_rejected(tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config(file=file, env={})


def test_cli_invalid_value_exits_nonzero_naming_field():
    result = run_cli("serve", "--port", "99999", env={"RELAYROOM_API_SECRET": SECRET})
    assert result.returncode != 0
    assert "port" in result.stderr


def test_serve_without_secret_outside_dev_mode_is_refused(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "api_secret" in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.stdout.strip() == f"relayroom {__version__}"


def test_token_command_mints_a_verifiable_token():
    result = run_cli(
        "token",
        "--room",
        "r1",
        "--identity",
        "ann",
        "--name",
        "Ann",
        "--ttl",
        "60",
        "--grant",
        "can_publish=false",
        env={"RELAYROOM_API_SECRET": SECRET},
    )
    assert result.returncode == 0, result.stderr
    access = verify_token(SECRET, result.stdout.strip(), room="r1")
    assert access.identity == "ann" and access.name == "Ann"
    assert access.grants.can_publish is False and access.grants.can_subscribe is True
    assert access.expires_at - time.time() <= 61


def test_token_command_rejects_unknown_grant():
    result = run_cli(
        "token",
        "--room",
        "r",
        "--identity",
        "a",
        "--grant",
        "superuser=true",
        env={"RELAYROOM_API_SECRET": SECRET},
    )
    assert result.returncode != 0 and "grant" in result.stderr


@pytest.mark.slow
def test_dev_secret_is_generated_once_and_reused(tmp_path):
    env = {"RELAYROOM_DATA_DIR": str(tmp_path)}
    first = run_cli("token", "--dev", "--room", "r", "--identity", "a", env=env)
    second = run_cli("token", "--dev", "--room", "r", "--identity", "a", env=env)
    assert first.returncode == 0 and second.returncode == 0
    secret = (tmp_path / "dev-api-secret").read_text().strip()
    assert (tmp_path / "dev-api-secret").stat().st_mode & 0o077 == 0
    verify_token(secret, first.stdout.strip(), room="r")
    verify_token(secret, second.stdout.strip(), room="r")


def test_configuration_doc_lists_every_setting_with_its_default():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for name, env, default, _ in setting_docs():
        assert f"`{name}`" in doc, name
        assert env in doc, env
        assert default in doc, (name, default)


async def _start_serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    env["RELAYROOM_DRAIN_TIMEOUT_S"] = "5"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relayroom",
            "serve",
            "--dev",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "serve.log").open("w"),
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    match = re.search(r"(https?://\S+)", line)
    if match is None:
        proc.kill()
        proc.wait()
        raise AssertionError(f"no URL printed: {line!r}")
    return proc, match.group(1)


async def test_sigterm_sends_reconnect_closes_1001_and_exits_0(tmp_path):
    proc, url = await _start_serve(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "api/dev/token", json={"room": "r"}) as resp:
                token = (await resp.json())["token"]
            ws = await session.ws_connect(url + "ws")
            await ws.send_json({"type": "join", "room": "r", "token": token})
            assert (await ws.receive_json())["type"] == "joined"
            proc.send_signal(signal.SIGTERM)
            notice = await ws.receive_json(timeout=5)
            assert notice["type"] == "reconnect" and notice["reason"] == "server_shutdown"
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1001
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_readyz_and_healthz_on_a_real_process(tmp_path):
    proc, url = await _start_serve(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "healthz") as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "ok"
            async with session.get(url + "readyz") as resp:
                assert resp.status == 200
            async with session.get(url) as resp:
                assert resp.status == 200 and "relayroom" in await resp.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_draining_server_refuses_upgrades_with_503(start_server, connect):
    server, ts = await start_server(drain_timeout_s=1)
    client = await connect(ts)
    await client.join("r", "a")
    drain = asyncio.create_task(server.drain())
    await client.expect("reconnect")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ts.make_url("/ws"))
        assert info.value.status == 503
        async with session.get(ts.make_url("/readyz")) as resp:
            assert resp.status == 503
    await drain


@pytest.mark.slow
async def test_tls_serves_https_and_wss(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    proc, url = await _start_serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert url.startswith("https://")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "healthz", ssl=False) as resp:
                assert resp.status == 200
            ws = await session.ws_connect(url.replace("https", "wss") + "ws", ssl=False)
            await ws.send_str(json.dumps({"type": "ping", "id": 1}))
            assert (await ws.receive_json())["type"] == "pong"
            await ws.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
