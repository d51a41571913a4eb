"""AccessToken and `relayroom token` make the same JWT, and the server admits it the same way."""

from __future__ import annotations

import jwt
import pytest

from relayroom.api import AccessToken, Grants, RoomService, TokenRequestError
from tests.conftest import TEST_SECRET
from tests.support.cli import run_cli

CLI_ARGS = [
    "token",
    "--room",
    "demo",
    "--identity",
    "carol",
    "--name",
    "Carol",
    "--ttl",
    "3600",
    "--mode",
    "sfu",
    "--grant",
    "can_publish=false",
    "--grant",
    "admin=true",
]


def sdk_token(**overrides: object) -> AccessToken:
    fields: dict[str, object] = {
        "api_secret": TEST_SECRET,
        "identity": "carol",
        "name": "Carol",
        "room": "demo",
        "ttl_s": 3600,
        "mode": "sfu",
        "grants": Grants(can_publish=False, admin=True),
    }
    fields.update(overrides)
    return AccessToken(**fields)  # type: ignore[arg-type]


def test_cli_and_sdk_tokens_are_byte_identical():
    result = run_cli(*CLI_ARGS, env={"RELAYROOM_API_SECRET": TEST_SECRET})
    assert result.returncode == 0, result.stderr
    from_cli = result.stdout.strip()
    claims = jwt.decode(from_cli, TEST_SECRET, algorithms=["HS256"])
    assert sdk_token().to_jwt(now=claims["iat"]) == from_cli
    assert claims["exp"] - claims["iat"] == 3600


async def test_server_admits_cli_and_sdk_tokens_alike(start_server, connect):
    _, ts = await start_server()
    result = run_cli(*CLI_ARGS, env={"RELAYROOM_API_SECRET": TEST_SECRET})
    seen = []
    for token in (result.stdout.strip(), sdk_token().to_jwt()):
        client = await connect(ts)
        await client.send({"type": "join", "room": "demo", "token": token})
        joined = await client.expect("joined")
        async with RoomService(str(ts.make_url("/")), api_secret=TEST_SECRET) as service:
            info = await service.get_participant("demo", joined["participant"]["id"])
        seen.append((info.identity, info.name, info.grants, joined["room"]["mode"]))
        await client.close()
    expected = ("carol", "Carol", Grants(can_publish=False, admin=True), "sfu")
    assert seen == [expected, expected]


@pytest.mark.parametrize(
    "overrides, field, cli_args",
    [
        ({"identity": ""}, "identity", ["--identity", ""]),
        ({"identity": "x" * 129}, "identity", ["--identity", "x" * 129]),
        ({"room": " "}, "room", ["--room", " "]),
        ({"room": "r" * 129}, "room", ["--room", "r" * 129]),
        ({"room": "*", "grants": Grants()}, "room", ["--room", "*"]),
        ({"ttl_s": 0}, "ttl", ["--ttl", "0"]),
        ({"ttl_s": -5}, "ttl", ["--ttl", "-5"]),
        ({"name": "n" * 65}, "name", ["--name", "n" * 65]),
        ({"mode": "mesh"}, "mode", None),  # argparse refuses it first
        ({"api_secret": "short"}, "api_secret", None),  # the CLI checks the secret itself
    ],
)
def test_tokens_the_server_would_refuse_are_not_minted(overrides, field, cli_args):
    with pytest.raises(TokenRequestError) as info:
        sdk_token(**overrides)
    assert info.value.field == field
    if cli_args is not None:
        args = ["token", "--room", "demo", "--identity", "carol", *cli_args]
        result = run_cli(*args, env={"RELAYROOM_API_SECRET": TEST_SECRET})
        assert result.returncode == 2 and f"invalid token {field!r}" in result.stderr, result


def test_admin_token_has_only_the_admin_grant_and_hides_the_secret():
    token = AccessToken.admin(TEST_SECRET, identity="ops")
    claims = jwt.decode(token.to_jwt(), TEST_SECRET, algorithms=["HS256"])
    assert claims["room"] == "*" and claims["admin"] is True
    assert not (claims["can_publish"] or claims["can_subscribe"] or claims["can_publish_data"])
    assert TEST_SECRET not in repr(token)
