"""The ``relayroom`` command: the CLI, with the WebRTC stack loaded only when a call needs it."""

from __future__ import annotations

from relayroom import lazy_stack


def main() -> int:
    """Run the ``relayroom`` command line; aiortc loads at the first call, PyAV and dnspython
    only if something uses them (``relayroom/lazy_stack.py``).

    Only aiortc's own import is deferred (its uses of PyAV are known, see ``lazy_av``): any
    other module that imports ``av`` gets the real one.
    """
    lazy_stack.install()

    from relayroom.signaling.cli import main as cli_main

    return cli_main()
