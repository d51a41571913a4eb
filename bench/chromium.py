"""Headless Chromium as the browser benchmarks launch it (fake camera, loopback ICE)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("RELAYROOM_CHROMIUM", "/usr/bin/chromium")


def chromium_args(*, fake_fps: int | None = None, gpu: bool = False) -> list[str]:
    """Command-line flags: a fake camera (at ``fake_fps`` when given) granted without asking."""
    camera = "--use-fake-device-for-media-stream"
    args = [
        "--no-sandbox",
        f"{camera}=fps={fake_fps}" if fake_fps else camera,
        "--use-fake-ui-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    return args if gpu else [*args, "--disable-gpu"]
