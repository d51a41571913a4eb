"""Run the `relayroom` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m relayroom ARGS` from the repository root, without the caller's RELAYROOM_*."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYROOM_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "relayroom", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        cwd=ROOT,
    )
