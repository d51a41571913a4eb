"""Long-term credential checks: the 401/438 matrix, REST and static credentials, rate limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time

import pytest

from relayroom.turn.auth import NonceIssuer
from relayroom.turn.codec import Attr, MessageClass, Method, encode_message
from relayroom.turn.config import TurnConfigError
from relayroom.turn.credentials import CredentialStore, rest_credentials
from relayroom.turn.server import TurnServer
from tests.turn.conftest import SECRET, ClientFactory, ServerFactory, turn_test_config
from tests.turn.helpers import ManualClock, TurnRequestError, error_code

ALLOCATE = [(Attr.REQUESTED_TRANSPORT, 17)]


async def test_request_without_integrity_gets_401_with_realm_and_nonce(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server)
    response = await client.request_once(Method.ALLOCATE, ALLOCATE, sign=False)
    assert response.cls is MessageClass.ERROR
    assert error_code(response) == 401
    assert response.get_str(Attr.REALM) == "relayroom.test"
    assert response.get_str(Attr.NONCE)
    assert not response.has(Attr.MESSAGE_INTEGRITY)
    assert server.allocations_active == 0


async def test_bad_password_gets_401(server: TurnServer, make_client: ClientFactory) -> None:
    username, _ = rest_credentials(SECRET, "mallory", 300)
    client = await make_client(server, credentials=(username, "not-the-password"))
    with pytest.raises(TurnRequestError) as info:
        await client.allocate()
    assert info.value.code == 401
    assert server.allocations_active == 0


async def test_expired_rest_credential_gets_401(
    server: TurnServer, make_client: ClientFactory
) -> None:
    expired = rest_credentials(SECRET, "alice", 300, now=time.time() - 301)
    client = await make_client(server, credentials=expired)
    with pytest.raises(TurnRequestError) as info:
        await client.allocate()
    assert info.value.code == 401


async def test_credential_minted_with_another_secret_gets_401(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server, credentials=rest_credentials("other", "alice", 300))
    with pytest.raises(TurnRequestError) as info:
        await client.allocate()
    assert info.value.code == 401


async def test_stale_nonce_gets_438_with_a_fresh_nonce(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    server = await make_server(clock, nonce_lifetime_s=1)
    client = await make_client(server)
    await client.allocate()
    old_nonce = client.nonce
    clock.advance(2)
    response = await client.request_once(Method.REFRESH, [(Attr.LIFETIME, 600)])
    assert error_code(response) == 438
    assert response.get_str(Attr.NONCE) not in (None, old_nonce)


async def test_nonce_from_another_client_address_gets_438(
    server: TurnServer, make_client: ClientFactory
) -> None:
    first = await make_client(server)
    await first.allocate()
    second = await make_client(server)
    second.realm, second.nonce = first.realm, first.nonce
    response = await second.request_once(Method.ALLOCATE, ALLOCATE)
    assert error_code(response) == 438


async def test_static_user_can_allocate(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(secret=None, static_users={"bob": "hunter2"})
    client = await make_client(server, credentials=("bob", "hunter2"))
    relayed = await client.allocate()
    assert relayed[0] == "127.0.0.1"


async def test_valid_rest_credential_allocates(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server)
    relayed = await client.allocate()
    assert relayed[0] == "127.0.0.1"
    assert server.allocations_active == 1


async def test_other_user_on_same_five_tuple_gets_441(
    server: TurnServer, make_client: ClientFactory
) -> None:
    client = await make_client(server, user="alice")
    await client.allocate()
    client.username, client.password = rest_credentials(SECRET, "eve", 300)
    response = await client.request_once(Method.REFRESH, [(Attr.LIFETIME, 600)])
    assert error_code(response) == 441


async def test_401_replies_are_rate_limited_per_source(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    server = await make_server(auth_reject_rate_per_s=1.0, auth_reject_burst=5)
    client = await make_client(server)
    for _ in range(30):
        tid = os.urandom(12)
        client.send_raw(encode_message(Method.ALLOCATE, MessageClass.REQUEST, tid, ALLOCATE))
    await asyncio.sleep(0.3)
    answered = len(client.unmatched)
    assert 5 <= answered <= 7
    assert server.stats.auth_failures == 30


def test_server_refuses_to_start_without_credentials() -> None:
    with pytest.raises(TurnConfigError):
        TurnServer(turn_test_config(secret=None))


def test_rest_credentials_are_coturn_format() -> None:
    username, password = rest_credentials("s3cret", "alice", 300, now=1_700_000_000)
    assert username == "1700000300:alice"
    mac = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert password == base64.b64encode(mac).decode()


def test_credential_store_counts_rest_users_by_user_part() -> None:
    store = CredentialStore("s", {})
    username, password = rest_credentials("s", "alice", 300)
    assert store.password(username) == password
    assert store.quota_user(username) == "alice"


def test_nonce_expires_after_its_lifetime() -> None:
    now = [1000.0]
    issuer = NonceIssuer(600, clock=lambda: now[0])
    nonce = issuer.issue(("127.0.0.1", 5000), "udp")
    now[0] += 600
    assert issuer.is_valid(nonce, ("127.0.0.1", 5000), "udp")
    now[0] += 1
    assert not issuer.is_valid(nonce, ("127.0.0.1", 5000), "udp")


def test_nonce_is_bound_to_client_transport_address() -> None:
    issuer = NonceIssuer(600)
    nonce = issuer.issue(("127.0.0.1", 5000), "udp")
    assert not issuer.is_valid(nonce, ("127.0.0.1", 5001), "udp")
    assert not issuer.is_valid(nonce, ("127.0.0.1", 5000), "tcp")


async def test_allocation_outlives_its_rest_credential_but_new_ones_need_a_fresh_one(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    clock = ManualClock()
    server = await make_server(clock)
    short = rest_credentials(SECRET, "carol", 60, now=clock.wall())
    client = await make_client(server, credentials=short)
    await client.allocate()
    clock.advance(61)  # the credential has expired; the allocation (600 s) is still live
    assert await client.refresh(600) == 600
    await client.create_permission(("127.0.0.1", 9))
    newcomer = await make_client(server, credentials=short)
    with pytest.raises(TurnRequestError) as info:
        await newcomer.allocate()
    assert info.value.code == 401
