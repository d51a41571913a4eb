"""Load the WebRTC stack (aiortc, aioice, cryptography, pylibsrtp) at the first call, not at start.

An idle server needs none of it: about 10 MB of its resident memory. ``install()`` (run by the
``relayroom`` command before anything else) puts an import hook in front of ``sys.meta_path``
so that whenever ``aiortc`` or ``aioice`` is first imported, by whichever module, it is imported
with PyAV and aioice's mDNS deferred (:mod:`relayroom.lazy_av`, :mod:`relayroom.lazy_mdns`).
The server's modules then import the media stack only where a room is made or a call is read
(``relayroom.media``'s package exports are lazy too); ``tests/media/test_lazy_av.py`` checks
that an idle server has not loaded it and that a call still works.

This module imports nothing of aiortc or aioice.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

from relayroom.lazy_av import deferred_av
from relayroom.lazy_mdns import deferred_mdns

# Heavy modules an idle server must not have imported (tests check the list).
STACK = ("aiortc", "aioice", "pylibsrtp", "cryptography", "OpenSSL", "av")


class _DeferringLoader(importlib.abc.Loader):
    """Runs the real loader of ``aiortc``/``aioice`` with PyAV and mDNS deferred."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        # get_source, is_package, get_resource_reader...: the real loader's
        return getattr(self._inner, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._inner.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        with contextlib.ExitStack() as stack:
            if module.__name__ == "aiortc":
                stack.enter_context(deferred_av())
            # aioice.mdns must be a stand-in before aioice's own code runs; deferred_mdns
            # refuses once "aioice" is in sys.modules, which it is while it executes.
            stack.enter_context(_mdns_stand_in())
            self._inner.exec_module(module)


@contextlib.contextmanager
def _mdns_stand_in() -> Any:
    if "aioice.ice" in sys.modules:
        yield False
        return
    aioice = sys.modules.pop("aioice", None)
    try:
        with deferred_mdns() as deferred:
            if aioice is not None:
                sys.modules["aioice"] = aioice
            yield deferred
    finally:
        if aioice is not None:
            sys.modules["aioice"] = aioice


class _Finder(importlib.abc.MetaPathFinder):
    """Hands out :class:`_DeferringLoader` for the first import of ``aiortc`` and ``aioice``."""

    NAMES = ("aiortc", "aioice")

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.NAMES:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec: importlib.machinery.ModuleSpec | None = getattr(
                finder, "find_spec", lambda *a: None
            )(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _DeferringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Defer PyAV and aioice's mDNS for whenever aiortc/aioice get imported. Idempotent."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


@contextlib.contextmanager
def without_cryptography() -> Iterator[bool]:
    """Imports inside this block find no ``cryptography`` unless it is loaded already.

    For PyJWT: it imports cryptography (about 10 MB resident) only for its RSA/EC/EdDSA
    algorithms and goes without them when it is missing; relayroom's tokens are HS256 (hmac).
    Yields whether cryptography was hidden.
    """
    if "cryptography" in sys.modules:
        yield False
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
    try:
        yield True
    finally:
        if sys.modules.get("cryptography", 0) is None:
            del sys.modules["cryptography"]


def loaded() -> list[str]:
    """Which of :data:`STACK` this process has imported."""
    return [name for name in STACK if name in sys.modules]
