"""Bad pipe settings and malformed pipe descriptions get clear errors."""

from __future__ import annotations

import socket

import pytest

from relayroom.media.pipe import PipedTrack, PipeEndpoint, PipeSettings
from relayroom.media.pipe_wire import pipe_key
from relayroom.signaling.config import ConfigError, load_config


def test_a_pipe_port_range_needs_both_ends_in_order() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"pipe_port_min": 40000, "dev": True})
    assert info.value.field_name == "pipe_port_max"
    with pytest.raises(ConfigError):
        load_config(env={}, overrides={"pipe_port_min": 40010, "pipe_port_max": 40000, "dev": True})


def test_the_pipe_timeout_must_be_longer_than_the_keepalive() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"pipe_keepalive_s": 1.0, "pipe_timeout_s": 1.0, "dev": True})
    assert info.value.field_name == "pipe_timeout_s"


async def test_a_busy_pipe_port_range_says_which_range() -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        endpoint = PipeEndpoint(pipe_key("x"), PipeSettings(port_min=port, port_max=port))
        with pytest.raises(OSError, match=f"{port}-{port}"):
            await endpoint.start()
    finally:
        busy.close()


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"track": {"id": "t", "kind": "screen", "muted": False, "codec": "VP8"}},
        {"clock_rate": "fast"},
        {"publisher": "p", "track": None},
    ],
)
def test_a_malformed_piped_track_is_refused(broken: dict[str, object]) -> None:
    good = {
        "publisher": "p",
        "track": {"id": "t", "kind": "video", "muted": False, "codec": "VP8"},
        "mime_type": "video/VP8",
        "clock_rate": 90000,
        "payload_type": 96,
    }
    data = {**good, **broken} if broken else {}
    with pytest.raises((ValueError, KeyError, TypeError)):
        PipedTrack.from_wire(data)
    assert PipedTrack.from_wire(good).info.kind == "video"
