"""The JS client SDK (web/js): unit tests under Node, type-checked by tsc, declarations fresh."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

from relayroom import __version__
from tests.js.support import CLIENT, HERE, node, tsc

UNIT = HERE / "unit"


def test_pure_modules_pass_their_node_unit_tests() -> None:
    files = sorted(str(p) for p in UNIT.glob("*.test.mjs"))
    assert len(files) >= 3, files
    result = subprocess.run([node(), "--test", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


def test_client_modules_type_check_under_tsc() -> None:
    result = tsc("-p", "tsconfig.json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_client_module_is_checked() -> None:
    # tsconfig.json names index.js; every module the package ships must be reached from it
    # and carry // @ts-check (so editors check them too).
    shipped = json.loads((CLIENT / "package.json").read_text())["files"]
    modules = [name for name in shipped if name.endswith(".js")]
    result = tsc("-p", "tsconfig.json", "--listFilesOnly")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {Path(line).resolve() for line in result.stdout.split()}
    for name in modules:
        assert (CLIENT / name).resolve() in listed, f"{name} is not reached from index.js"
        assert (CLIENT / name).read_text().startswith("// @ts-check\n"), name


def test_committed_declarations_are_generated_from_the_current_jsdoc(tmp_path: Path) -> None:
    result = tsc("-p", "tsconfig.types.json", "--outDir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    committed = CLIENT / "types"
    fresh = sorted(p.name for p in tmp_path.glob("*.d.ts"))
    assert fresh == sorted(p.name for p in committed.glob("*.d.ts"))
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, committed, fresh, shallow=False)
    assert not mismatch and not errors, (
        f"stale declarations {mismatch + errors}: run `npm run types` in tests/js and commit"
    )


def test_package_version_is_the_server_version() -> None:
    package = json.loads((CLIENT / "package.json").read_text())
    assert package["version"] == __version__
    assert package["type"] == "module"
    assert not package.get("dependencies"), "the client must have no runtime dependencies"
