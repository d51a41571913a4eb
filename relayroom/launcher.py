"""The ``relayroom`` command: the CLI, imported with PyAV deferred (the relay never decodes)."""

from __future__ import annotations

from relayroom.lazy_av import deferred_av


def main() -> int:
    """Run the ``relayroom`` command line; PyAV is only loaded if something uses it."""
    with deferred_av():
        from relayroom.signaling.cli import main as cli_main
    return cli_main()
