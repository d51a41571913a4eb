"""Recording tests: an admin-enabled server, aiortc publishers, ffprobe on the files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import token_for
from tests.stats.conftest import admin_server

__all__ = ["admin_server"]  # the fixture, for the tests in this folder


def admin_headers(room: str = "*") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(room, 'ops', admin=True)}"}


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file: format and streams."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def decode_errors(path: Path) -> str:
    """What `ffmpeg -v error -i FILE -f null -` prints (empty: the file decodes cleanly)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return (out.stderr + ("" if out.returncode == 0 else f"exit {out.returncode}")).strip()


def decoded_frames(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return int(out.stdout.strip().split(",")[0] or 0)
