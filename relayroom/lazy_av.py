"""Import aiortc without loading PyAV until something really uses it.

aiortc imports PyAV (FFmpeg: about 20 MB of resident memory) at import time for its encoders,
decoders and frame types. The relay forwards RTP and never encodes or decodes, so in the
server process aiortc is imported inside :func:`deferred_av`: while it runs, ``av`` and the
few submodules aiortc imports names from are stand-in modules whose names are stand-in
classes. A stand-in class forwards ``isinstance``, calls and attribute reads to the real PyAV
class, importing PyAV at that moment; once the block ends, the stand-in modules hand out the
real objects and a new ``import av`` is the real one. So everything keeps working, and a
process that never touches a frame never loads FFmpeg. ``tests/media/test_lazy_av.py`` checks
both (no PyAV after importing the server; a real aiortc call encoding and decoding after).

This module imports nothing of aiortc (it must run before aiortc is imported).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

# ``av`` and the submodules aiortc 1.16 imports names from (``from av.frame import Frame``...).
MODULES = ("av", "av.frame", "av.packet", "av.video", "av.video.codeccontext")


class _Deferred(type):
    """Metaclass of the stand-in classes: everything goes to the real PyAV class."""

    _module: str
    _name: str
    _target: Any

    def _real(cls) -> Any:
        target = cls.__dict__.get("_target")
        if target is None:
            _end_deferral()
            target = getattr(importlib.import_module(cls._module), cls._name)
            type.__setattr__(cls, "_target", target)
        return target

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls._real())

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, cls._real())

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real(), name)


class _DeferredModule(types.ModuleType):
    """A stand-in module: stand-in classes while deferring, the real objects afterwards."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []
        self.deferring = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self.deferring:
            stand_in = _Deferred(name, (), {"_module": self.__name__, "_name": name})
            setattr(self, name, stand_in)
            return stand_in
        _end_deferral()
        return getattr(importlib.import_module(self.__name__), name)


def _end_deferral() -> None:
    """Take the stand-in modules out of ``sys.modules`` (the next import is the real PyAV)."""
    for name in MODULES:
        module = sys.modules.get(name)
        if isinstance(module, _DeferredModule):
            module.deferring = False
            del sys.modules[name]


def av_loaded() -> bool:
    """Whether the real PyAV is imported in this process."""
    return "av._core" in sys.modules or any(
        name in sys.modules and not isinstance(sys.modules[name], _DeferredModule)
        for name in MODULES
    )


@contextlib.contextmanager
def deferred_av() -> Iterator[bool]:
    """Imports inside this block get stand-ins for PyAV; yields False if PyAV was loaded already."""
    if any(name in sys.modules for name in MODULES):
        yield False
        return
    for name in MODULES:
        sys.modules[name] = _DeferredModule(name)
    try:
        yield True
    finally:
        for name in MODULES:
            module = sys.modules.get(name)
            if isinstance(module, _DeferredModule):
                module.deferring = False
                del sys.modules[name]
