"""Browser fixtures for the WHIP/WHEP tests: the Firefox of tests/browsers, and a Chromium
whose fake camera captures 30 fps (its default is 20, under the issue's 25 fps floor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.chromium import CHROMIUM
from tests.browsers.conftest import firefox
from tests.conftest import CHROMIUM_ARGS

__all__ = ["chromium_30fps", "firefox"]


@pytest.fixture
async def chromium_30fps() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    args = [
        "--use-fake-device-for-media-stream=fps=30"
        if arg == "--use-fake-device-for-media-stream"
        else arg
        for arg in CHROMIUM_ARGS
    ]
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield instance
        finally:
            await instance.close()
