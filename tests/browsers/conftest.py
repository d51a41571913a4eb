"""Fixtures for the cross-browser tests: Firefox ESR next to the Chromium of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.browsers.firefox import Firefox


@pytest.fixture
async def firefox() -> AsyncIterator[Firefox]:
    """Headless Debian Firefox ESR driven over WebDriver BiDi (never a downloaded browser)."""
    instance = await Firefox.launch()
    try:
        yield instance
    finally:
        await instance.close()
