"""The compiled steps of the packet path (media/_fastpath.c); the rest is in pyproject.toml.

Optional: without a C compiler (or Python's headers) the install goes on and relayroom sends
and receives in Python (the same packets, more CPU per packet); the server then logs a
warning at start.
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
