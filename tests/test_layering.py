"""The import contract between relayroom's packages, checked on the source (no import needed).

- everything imports relayroom's own code as ``relayroom.*``, never by the bare folder names;
- ``relayroom.media`` never imports ``relayroom.signaling``;
- ``relayroom.turn`` imports nothing else of relayroom;
- ``relayroom.web`` is static: it imports nothing of relayroom;
- only the CLI imports ``relayroom.signaling.server`` (the wiring): the other parts are given
  their collaborators and never reach back for the Server, not even for a type.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("signaling", "media", "turn", "web")
FORBIDDEN = {
    "signaling": set(),
    "media": {"relayroom.signaling"},
    "turn": {"relayroom.signaling", "relayroom.media", "relayroom.web"},
    "web": {"relayroom.signaling", "relayroom.media", "relayroom.turn"},
}


def absolute_imports(path: Path, package: str) -> set[str]:
    """Every module `path` imports, relative imports resolved against `relayroom.<package>`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_parts = ["relayroom", package, *path.relative_to(ROOT / package).with_suffix("").parts]
    if module_parts[-1] == "__init__":
        module_parts.pop()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                is_package = path.name == "__init__.py"
                base = module_parts[: len(module_parts) - node.level + (1 if is_package else 0)]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_respects_layering(package: str) -> None:
    violations = []
    for path in sources(package):
        for name in absolute_imports(path, package):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "\n".join(violations)


def test_only_the_cli_imports_the_server() -> None:
    server = "relayroom.signaling.server"
    importers = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sources(package)
        if server in absolute_imports(path, package)
    ]
    assert importers == ["signaling/cli.py"]


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "bench", "scripts"])
def test_nothing_imports_bare_folder_names(folder: str) -> None:
    violations = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in PACKAGES:
                    violations.append(
                        f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')} imports {name}"
                    )
    assert not violations, "\n".join(violations)


def test_test_modules_import_no_other_test_module() -> None:
    """Shared helpers live in tests/support/ (or a folder's helper module), not in a test."""
    violations = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("tests.") and name.split(".")[-1].startswith("test_"):
                    violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not violations, "\n".join(violations)


def test_relayroom_folder_links_the_source_folders() -> None:
    for package in PACKAGES:
        link = ROOT / "relayroom" / package
        assert link.is_symlink() and link.resolve() == ROOT / package
