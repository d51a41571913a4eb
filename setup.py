"""The compiled forwarding step (media/_fastpath.c); everything else is in pyproject.toml.

Optional: without a C compiler the install goes on and relayroom forwards in Python (the same
packets, more CPU per packet; `relayroom doctor`-style check: `relayroom.media.fastpath`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "relayroom.media._fastpath",
            sources=["media/_fastpath.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
