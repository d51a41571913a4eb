"""The ``relayroom`` command: the CLI, with aiortc imported while PyAV is deferred."""

from __future__ import annotations

from relayroom.lazy_av import deferred_av


def main() -> int:
    """Run the ``relayroom`` command line; PyAV is only loaded if something uses it.

    Only aiortc's own import is deferred (its uses of PyAV are known, see ``lazy_av``): any
    other module that imports ``av`` gets the real one.
    """
    with deferred_av():
        import aiortc  # noqa: F401

    from relayroom.signaling.cli import main as cli_main

    return cli_main()
