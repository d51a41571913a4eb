"""The signature and replay rules of webhook requests, on both sides (sender and SDK)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relayroom.api import WebhookReceiver, WebhookVerificationError
from relayroom.signaling.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    derive_key,
    signature,
    signed_headers,
)
from relayroom.signaling.webhooks import webhook_body
from tests.conftest import TEST_SECRET

KEY = "k" * 40
NOW = 1_800_000_000


def body_of(event: dict) -> bytes:
    made = webhook_body(event, "EV_test")
    assert made is not None
    return json.dumps(made).encode()


JOINED = body_of(
    {
        "seq": 3,
        "t": NOW - 0.5,
        "type": "participant_joined",
        "room": "demo",
        "participant_id": "PA_1",
        "identity": "alice",
        "name": "Alice",
    }
)


def receiver(now: float = NOW, **kwargs) -> WebhookReceiver:
    return WebhookReceiver(KEY, clock=lambda: now, **kwargs)


def rejection(body: bytes, headers: dict[str, str], now: float = NOW, **kwargs) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        receiver(now, **kwargs).verify(body, headers)
    return caught.value.code


def test_a_signed_fresh_request_verifies_and_parses():
    event = receiver().verify(JOINED, signed_headers(KEY, "EV_test", NOW, JOINED))
    assert event.id == "EV_test" and event.event == "participant_joined"
    assert event.room.name == "demo" and event.created_at == NOW - 0.5
    assert event.participant is not None
    assert (event.participant.id, event.participant.identity) == ("PA_1", "alice")
    assert event.track is None and event.recording is None and event.reason is None


def test_the_signature_covers_timestamp_dot_body_with_hmac_sha256():
    import hashlib
    import hmac

    expected = hmac.new(KEY.encode(), f"{NOW}.".encode() + JOINED, hashlib.sha256).hexdigest()
    assert signature(KEY, NOW, JOINED) == expected
    assert signed_headers(KEY, "EV_test", NOW, JOINED)[SIGNATURE_HEADER] == f"v1={expected}"


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in signed_headers(KEY, "EV_test", NOW, JOINED).items()}
    assert receiver().verify(JOINED, headers).event == "participant_joined"


def test_a_changed_body_is_a_bad_signature():
    headers = signed_headers(KEY, "EV_test", NOW, JOINED)
    assert rejection(JOINED.replace(b"alice", b"mallory"), headers) == "bad_signature"


def test_another_key_is_a_bad_signature():
    headers = signed_headers("x" * 40, "EV_test", NOW, JOINED)
    assert rejection(JOINED, headers) == "bad_signature"


def test_a_timestamp_changed_after_signing_is_a_bad_signature():
    headers = signed_headers(KEY, "EV_test", NOW - 600, JOINED)
    headers[TIMESTAMP_HEADER] = str(NOW)  # a replayer freshening an old request
    assert rejection(JOINED, headers) == "bad_signature"


@pytest.mark.parametrize("age", [301, -301, 86400])
def test_a_timestamp_outside_the_tolerance_is_stale(age):
    headers = signed_headers(KEY, "EV_test", NOW - age, JOINED)
    assert rejection(JOINED, headers) == "stale_timestamp"


@pytest.mark.parametrize("age", [0, 299, -299])
def test_a_timestamp_inside_the_tolerance_is_accepted(age):
    headers = signed_headers(KEY, "EV_test", NOW - age, JOINED)
    assert receiver().verify(JOINED, headers).id == "EV_test"


def test_the_tolerance_is_the_receivers_choice():
    headers = signed_headers(KEY, "EV_test", NOW - 20, JOINED)
    assert rejection(JOINED, headers, tolerance_s=10) == "stale_timestamp"
    assert receiver(tolerance_s=30).verify(JOINED, headers).id == "EV_test"


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_a_missing_header_is_refused(missing):
    headers = signed_headers(KEY, "EV_test", NOW, JOINED)
    del headers[missing]
    assert rejection(JOINED, headers) == "missing_header"


@pytest.mark.parametrize("value", ["", "soon", "1.5e9", "-5", "9" * 40, "\uff11\uff12\uff13"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(value):
    headers = signed_headers(KEY, "EV_test", NOW, JOINED)
    headers[TIMESTAMP_HEADER] = value
    assert rejection(JOINED, headers) == "bad_timestamp"


@pytest.mark.parametrize("value", ["", "v1=", "v0=abc", "sha256=" + "0" * 64, "v1=" + "z" * 5000])
def test_a_malformed_signature_header_is_a_bad_signature(value):
    headers = signed_headers(KEY, "EV_test", NOW, JOINED)
    headers[SIGNATURE_HEADER] = value
    assert rejection(JOINED, headers) == "bad_signature"


def test_any_one_matching_v1_entry_verifies_for_key_rotation():
    good = signed_headers(KEY, "EV_test", NOW, JOINED)[SIGNATURE_HEADER]
    headers = signed_headers(KEY, "EV_test", NOW, JOINED)
    headers[SIGNATURE_HEADER] = f"v1={'0' * 64}, {good}"
    assert receiver().verify(JOINED, headers).id == "EV_test"


def test_a_signed_body_that_is_not_an_event_is_a_bad_body():
    for body in (b"[1, 2]", b"{", b'{"id": "EV_x"}', b"\xff\xfe"):
        assert rejection(body, signed_headers(KEY, "EV_x", NOW, body)) == "bad_body"


def test_the_default_key_is_derived_from_the_api_secret_and_differs_from_it():
    key = derive_key(TEST_SECRET)
    assert key != TEST_SECRET and len(key) == 64 and key == derive_key(TEST_SECRET)
    assert derive_key(TEST_SECRET + "x") != key
    headers = signed_headers(key, "EV_test", NOW, JOINED)
    event = WebhookReceiver.from_api_secret(TEST_SECRET, clock=lambda: NOW).verify(JOINED, headers)
    assert event.id == "EV_test"


def test_a_short_key_or_secret_is_refused_at_construction():
    with pytest.raises(ValueError, match="at least 32"):
        WebhookReceiver("short")
    with pytest.raises(ValueError, match="api_secret"):
        WebhookReceiver.from_api_secret("short")
    with pytest.raises(ValueError, match="tolerance_s"):
        WebhookReceiver(KEY, tolerance_s=0)


def test_the_receiver_never_shows_its_key():
    assert KEY not in repr(receiver())


def test_body_of_each_event_kind():
    track = {"id": "v1", "kind": "video", "muted": False, "codec": "VP8"}
    who = {"participant_id": "PA_1", "identity": "alice", "name": "Alice"}
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "room_started": ({"mode": "sfu"}, {"room": {"name": "demo", "mode": "sfu"}}),
        "participant_left": (
            {**who, "reason": "left"},
            {"participant": {"id": "PA_1", "identity": "alice", "name": "Alice"}, "reason": "left"},
        ),
        "track_published": ({**who, "track": track}, {"track": track}),
        "recording_finished": (
            {"recording_id": "RE_1", "files": [{"path": "a.webm"}], "reason": "stopped"},
            {"recording": {"id": "RE_1", "files": [{"path": "a.webm"}]}, "reason": "stopped"},
        ),
    }
    for kind, (fields, expected) in cases.items():
        made = webhook_body({"seq": 1, "t": 5.0, "type": kind, "room": "demo", **fields}, "EV_1")
        assert made is not None
        for key, value in expected.items():
            assert made[key] == value, (kind, key, made)
        assert (made["id"], made["event"], made["created_at"]) == ("EV_1", kind, 5.0)
        parsed = receiver().verify(
            json.dumps(made).encode(), signed_headers(KEY, "EV_1", NOW, json.dumps(made).encode())
        )
        assert parsed.event == kind
    recording = (
        receiver()
        .verify(
            raw := json.dumps(
                webhook_body(
                    {
                        "t": 1.0,
                        "type": "recording_finished",
                        "room": "r",
                        "recording_id": "RE_1",
                        "files": ["a.webm"],
                    }
                )
            ).encode(),
            signed_headers(KEY, "x", NOW, raw),
        )
        .recording
    )
    assert recording is not None and recording.id == "RE_1" and recording.files == ("a.webm",)


def test_kinds_that_are_no_webhook_give_no_body():
    assert webhook_body({"t": 1.0, "type": "threshold_crossed", "room": "demo"}) is None
    assert webhook_body({"t": 1.0, "type": "errors", "counts": {}}) is None
