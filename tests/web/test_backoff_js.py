"""The JS client's pure modules, unit-tested with Node's own test runner (`node --test`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

JS_TESTS = Path(__file__).parent / "js"


def test_js_unit_tests_pass_under_node() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the JS unit tests (apt-get install nodejs)"
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, "no JS tests found"
    # web/js has no package.json: let Node detect that the .js files are ES modules.
    result = subprocess.run(
        [node, "--experimental-detect-module", "--test", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
