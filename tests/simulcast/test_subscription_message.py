"""The ``subscription`` message: parsed at the edge, hostile values refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relayroom.signaling.gateway import layer_request
from relayroom.signaling.protocol import (
    ErrorCode,
    ProtocolError,
    Subscription,
    parse_client_message,
)


def parse(**fields: Any) -> Subscription:
    message = parse_client_message(json.dumps({"type": "subscription", "id": 1, **fields}))
    assert isinstance(message, Subscription)
    return message


def test_size_quality_and_pause_become_a_layer_request() -> None:
    request = layer_request(parse(track_id="cam", max_width=320, max_height=180))
    assert (request.max_width, request.max_height, request.paused) == (320, 180, False)
    assert layer_request(parse(track_id="cam", quality="low")).quality == "low"
    assert layer_request(parse(track_id="cam", paused=True)).paused


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "'track_id' is required"),
        ({"track_id": "cam", "max_width": 0}, "'max_width' must be 1 to 16384"),
        ({"track_id": "cam", "max_height": 10**9}, "'max_height' must be 1 to 16384"),
        ({"track_id": "cam", "max_width": -5}, "'max_width' must be 1 to 16384"),
        ({"track_id": "cam", "max_width": 320.5}, "'max_width' has the wrong type"),
        ({"track_id": "cam", "max_width": True}, "'max_width' has the wrong type"),
        ({"track_id": "cam", "max_width": "320"}, "'max_width' has the wrong type"),
        ({"track_id": "cam", "quality": "ultra"}, "'quality' must be one of low, medium, high"),
        ({"track_id": "cam", "quality": "low", "max_width": 3}, "not both"),
        ({"track_id": "cam", "paused": "yes"}, "'paused' has the wrong type"),
        ({"track_id": "c\u0000m"}, "control characters"),
        ({"track_id": "x" * 200}, "longer than 128"),
    ],
)
def test_hostile_values_get_a_clear_error(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(json.dumps({"type": "subscription", "id": 7, **fields}))
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert reason in info.value.message
    assert info.value.ref == 7
