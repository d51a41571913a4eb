"""Fixtures of the workers tests: a real `relayroom serve --workers 2` host."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.workers.host import Host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """`host(*flags, setting=value)` starts `relayroom serve --workers 2 *flags`; every host
    started is stopped (with its workers) at the end of the test."""
    started: list[Host] = []

    def start(*args: str, **settings: str) -> Host:
        started.append(Host(tmp_path, *args, settings=settings))
        return started[-1]

    yield start
    for h in started:
        h.stop()
