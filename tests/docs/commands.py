"""The shell commands the documentation tells people to run, as the docs test runs them.

Every fenced block whose language is a shell (```sh) in README.md and docs/*.md is a command
to run. Two HTML comments, on the line right before a block, change how it runs:

- `<!-- not-run: reason -->`: the block is not run (the reason is shown in the test report);
  the only way to exempt a documented command.
- `<!-- run-with: COMMAND -->`: the block runs while COMMAND serves (a reader would have it
  running in another terminal), e.g. `<!-- run-with: scripts/serve -->`.

Placeholders readers replace are substituted with what exists inside the test's namespace
(see SUBSTITUTIONS and `substitute`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
LAN_ADDRESS = "192.0.2.10"
"""The non-loopback address the test adds inside its private network namespace."""

# Documentation addresses and names -> what the namespace has.
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    (r"\b203\.0\.113\.7\b", LAN_ADDRESS),
    (r"\b192\.168\.1\.20\b", LAN_ADDRESS),
)

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*(?P<kind>not-run|run-with):\s*(?P<value>.*?)\s*-->\s*$")
_SERVER = re.compile(r"(^|[\s;&|(])(relayroom\s+serve|scripts/serve)\b")


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a document."""

    doc: str
    line: int
    text: str
    not_run: str | None = None
    run_with: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def is_server(self) -> bool:
        """A block that starts a server (which runs until stopped)."""
        return _SERVER.search(self.text) is not None


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The shell blocks of one document, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, lang = len(fence["indent"]), fence["lang"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1  # the closing fence
        if lang not in SHELL_LANGS:
            continue
        mark = _MARK.match(lines[start - 1]) if start > 0 else None
        found.append(
            Block(
                doc=doc,
                line=start + 1,
                text="\n".join(body) + "\n",
                not_run=mark["value"] if mark and mark["kind"] == "not-run" else None,
                run_with=mark["value"] if mark and mark["kind"] == "run-with" else None,
            )
        )
    return found


def substitute(
    text: str, *, redis_url: str, secret: str, cert: Path, key: Path, repo: Path = ROOT
) -> str:
    """Replace the placeholders a reader fills in with what the namespace has."""
    for pattern, value in SUBSTITUTIONS:
        text = re.sub(pattern, value, text)
    text = re.sub(r"redis://[\w.-]+:6379/0", redis_url, text)
    text = re.sub(r"/etc/letsencrypt/live/[\w.-]+/fullchain\.pem", str(cert), text)
    text = re.sub(r"/etc/letsencrypt/live/[\w.-]+/privkey\.pem", str(key), text)
    text = re.sub(r"\bSECRET\b", secret, text)
    # The docs are written from the repository root; the test runs in a scratch directory.
    text = re.sub(r"(^|[\s;&|(])scripts/", lambda m: f"{m[1]}{repo}/scripts/", text)
    return text


def indented_commands(path: Path) -> list[str]:
    """Commands written as indented code or inline code instead of a fenced sh block."""
    found = []
    in_fence = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if re.match(r"^( {4}|\t)\s*(relayroom|scripts/|curl|\.venv/)\S*\s", line):
            found.append(f"{path.name}:{n}: {line.strip()}")
        for span in re.findall(r"`([^`]+)`", line):
            runnable = re.match(r"^(\w+=\S+\s+)*(relayroom (serve|token)|scripts/)\S*\s+--", span)
            if runnable and "[" not in span and "..." not in span:
                found.append(f"{path.name}:{n}: `{span}`")
    return found
