"""The ``relayroom`` command: the CLI, with aiortc imported while PyAV and aioice's mDNS wait."""

from __future__ import annotations

from relayroom.lazy_av import deferred_av
from relayroom.lazy_mdns import deferred_mdns


def main() -> int:
    """Run the ``relayroom`` command line; PyAV and dnspython load only if something uses them.

    Only aiortc's own import is deferred (its uses of PyAV are known, see ``lazy_av``): any
    other module that imports ``av`` gets the real one.
    """
    with deferred_av(), deferred_mdns():
        import aiortc  # noqa: F401

    from relayroom.signaling.cli import main as cli_main

    return cli_main()
