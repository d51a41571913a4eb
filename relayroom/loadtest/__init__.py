"""`relayroom load-test`: size a deployment with synthetic participants.

Starts R rooms x P publishers x S subscribers against any running relayroom (URL plus the API
secret, or a token endpoint). Publishers send pre-encoded VP8 video, Opus audio and DataChannel
messages; subscribers decrypt and check the RTP they get without decoding it (sequence gaps,
frame completeness, latency from the publisher's sender reports) and answer with RTCP like a
browser. Prints a live table and a final JSON summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayroom.loadtest.runner import LoadTestSpec, run_load_test

__all__ = ["LoadTestSpec", "run_load_test"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the `relayroom` command imports this package for its flags, and the
    # load generator's media stack (numpy, PyAV) must stay out of `relayroom serve`.
    if name in __all__:
        from relayroom.loadtest import runner

        return getattr(runner, name)
    raise AttributeError(name)
