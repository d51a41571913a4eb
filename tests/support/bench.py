"""Run a benchmark's quick mode as a user would, and read what it prints: one JSON report,
then its summary lines."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class BenchRun:
    report: dict[str, Any]
    lines: list[str]  # the summary lines printed after the report

    @property
    def summary(self) -> str:
        return self.lines[-1]


def run_bench(script: str, *args: str, timeout: float = 180) -> BenchRun:
    """`python bench/<script> <args>` from the repository root; it must exit 0."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    report, end = json.JSONDecoder().raw_decode(text, text.index("{"))
    lines = [line for line in text[end:].splitlines() if line.strip()]
    assert lines, f"bench/{script} printed no summary line"
    return BenchRun(report, lines)
