"""Fixtures for the multi-node tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest


@pytest.fixture
def start_server(redis_server: Any, start_server: Callable[..., Awaitable[Any]]) -> Any:
    """The shared `start_server`, set up after the test's Redis so it is torn down before it:
    nodes shut down with Redis still there (as a deployment does), whatever order a test names
    its fixtures in. Shutting down while Redis is away has its own test."""
    return start_server
