"""Import aioice without loading dnspython until a ``.local`` candidate needs resolving.

aioice imports its mDNS module (and with it dnspython, about 2.5 MB of resident memory) at
import time, only to resolve remote candidates whose host is an mDNS name (``*.local``: what a
browser offers when it hides its addresses). In the server process aiortc is imported inside
:func:`deferred_mdns`: ``aioice.mdns`` is then a stand-in module that imports the real one on
first use (``create_mdns_protocol`` when such a candidate arrives) and forwards every attribute
to it. The one name aioice reads at import time, the ``MDnsProtocol`` return annotation, gets
a placeholder class. ``tests/media/test_lazy_av.py`` checks both (no dnspython after importing
the server; a ``.local`` candidate still resolves).

This module imports nothing of aioice (it must run before aioice is imported).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

MODULE = "aioice.mdns"


class _DeferredMdns(types.ModuleType):
    """Stands in for ``aioice.mdns``: every attribute comes from the real module, loaded then."""

    def __init__(self) -> None:
        super().__init__(MODULE)
        self._real: types.ModuleType | None = None

    def is_mdns_hostname(self, name: str) -> bool:
        # aioice asks this of every remote candidate: only a ``.local`` name needs the module
        # (an address never ends so), so a call with plain addresses keeps dnspython unloaded.
        if not name.endswith(".local"):
            return False
        result: bool = self.__getattr__("is_mdns_hostname")(name)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_real":
            raise AttributeError(name)
        real = self._real
        if real is None:
            if sys.modules.get(MODULE) is self:
                del sys.modules[MODULE]
            real = importlib.import_module(MODULE)
            self._real = real
        return getattr(real, name)


class _Placeholder:
    """``aioice.mdns.MDnsProtocol`` while aioice is imported (it is only an annotation there)."""


def mdns_loaded() -> bool:
    """Whether aioice's real mDNS module (and dnspython) is imported in this process."""
    module = sys.modules.get(MODULE)
    return module is not None and not isinstance(module, _DeferredMdns)


@contextlib.contextmanager
def deferred_mdns() -> Iterator[bool]:
    """Imports inside this block get a stand-in ``aioice.mdns``; False if aioice was loaded."""
    if "aioice" in sys.modules or MODULE in sys.modules:
        yield False
        return
    stand_in = _DeferredMdns()
    stand_in.MDnsProtocol = _Placeholder  # type: ignore[attr-defined]
    sys.modules[MODULE] = stand_in
    try:
        yield True
    finally:
        del stand_in.MDnsProtocol  # type: ignore[attr-defined]  # from the real module now
        if sys.modules.get(MODULE) is stand_in:
            del sys.modules[MODULE]  # a later `import aioice.mdns` loads the real one
