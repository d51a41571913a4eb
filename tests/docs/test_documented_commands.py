"""Every shell command in README.md and docs/*.md runs, as written, and does what it says.

Each document's fenced sh blocks run in order inside a fresh network namespace with a LAN
address (tests/docs/runner.py has the checks); a block that cannot run there carries a
`<!-- not-run: reason -->` comment, the only exemption. The results of the last run are kept
in test-artifacts/docs-commands.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.commands import ROOT, blocks, documents, indented_commands

ARTIFACTS = Path(os.environ.get("RELAYROOM_TEST_ARTIFACTS", ROOT / "test-artifacts"))
DOCS_WITH_COMMANDS = [p for p in documents() if blocks(p)]


def run_document(doc: Path) -> list[dict[str, str]]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.docs.runner", str(doc.relative_to(ROOT))],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_documented_commands_run(doc: Path) -> None:
    results = run_document(doc)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / "docs-commands.json"
    previous = json.loads(report.read_text()) if report.exists() else {}
    previous[str(doc.relative_to(ROOT))] = results
    report.write_text(json.dumps(previous, indent=1))
    assert len(results) == len(blocks(doc)), results
    failed = [r for r in results if r["status"] not in ("ok", "not-run")]
    assert not failed, "\n\n".join(f"{r['where']}: {r['command']}\n{r['detail']}" for r in failed)


def test_the_docs_have_commands_to_run() -> None:
    names = {p.name for p in DOCS_WITH_COMMANDS}
    assert {"README.md", "deployment.md", "operations.md"} <= names


def test_commands_are_fenced_sh_blocks() -> None:
    """An inline or indented command would escape the test: write it as a ```sh block."""
    found = [hit for doc in documents() for hit in indented_commands(doc)]
    assert not found, "\n".join(found)


def test_every_exemption_gives_a_reason() -> None:
    for doc in documents():
        for block in blocks(doc):
            if block.not_run is not None:
                assert len(block.not_run) >= 10, block.where


def test_only_marked_blocks_are_exempt(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- not-run: needs a real phone on the LAN -->\n```sh\nfalse\n```\n\n"
        "A comment further up does not count.\n<!-- not-run: stale -->\n\n```sh\ntrue\n```\n"
        "  <!-- run-with: scripts/serve -->\n  ```sh\n  relayroom token --room r\n  ```\n"
        "```python\nprint()\n```\n"
    )
    found = blocks(doc)
    assert [(b.not_run, b.run_with, b.text) for b in found] == [
        ("needs a real phone on the LAN", None, "false\n"),
        (None, None, "true\n"),
        (None, "scripts/serve", "relayroom token --room r\n"),
    ]


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_docs_link_only_to_files_in_the_repository() -> None:
    """The repository's docs stand alone: no links to files readers do not have."""
    for doc in documents():
        text = doc.read_text(encoding="utf-8")
        assert "/work/" not in text, doc.name
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+://", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name}: {target} is outside the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"
