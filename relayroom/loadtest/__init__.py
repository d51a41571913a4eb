"""`relayroom load-test`: size a deployment with synthetic participants.

Starts R rooms x P publishers x S subscribers against any running relayroom (URL plus the API
secret, or a token endpoint). Publishers send pre-encoded VP8 video, Opus audio and DataChannel
messages; subscribers decrypt and check the RTP they get without decoding it (sequence gaps,
frame completeness, latency from the publisher's sender reports) and answer with RTCP like a
browser. Prints a live table and a final JSON summary.
"""

from relayroom.loadtest.runner import LoadTestSpec, run_load_test

__all__ = ["LoadTestSpec", "run_load_test"]
