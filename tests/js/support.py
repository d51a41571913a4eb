"""Paths and tools of the JS client checks: Node, and TypeScript pinned in tests/js."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLIENT = ROOT / "web" / "js"
TSC = HERE / "node_modules" / "typescript" / "bin" / "tsc"


def node() -> str:
    found = shutil.which("node")
    assert found is not None, "Node.js is needed for the JS client checks (apt-get install nodejs)"
    return found


def npm() -> str:
    found = shutil.which("npm")
    assert found is not None, "npm is needed for the JS client checks (apt-get install npm)"
    return found


def tsc(*args: str, cwd: Path = HERE) -> subprocess.CompletedProcess[str]:
    """Run the pinned TypeScript compiler (scripts/test runs `npm ci` in tests/js)."""
    assert TSC.exists(), "tests/js/node_modules is missing (scripts/test runs npm ci there)"
    return subprocess.run(
        [node(), str(TSC), *args], cwd=cwd, capture_output=True, text=True, timeout=180
    )
