"""Active speakers: ranked from the forwarded audio level extension, sent only on change."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relayroom.media.aiortc_hooks import configure_ice
from relayroom.media.speakers import SpeakerDetector
from tests.media.client import LOOPBACK, client_pc

# ---------------------------------------------------------------------- the detector


def test_louder_first_quiet_ones_left_out_and_only_changes_reported() -> None:
    detector = SpeakerDetector(threshold_dbov=-50, max_speakers=2)
    for _ in range(10):
        detector.observe("a", 30)  # -30 dBov
        detector.observe("b", 10)  # -10 dBov: louder
        detector.observe("c", 127)  # silence
    ranking = detector.rank()
    assert ranking is not None
    assert [(s.participant_id, s.level_dbov) for s in ranking] == [("b", -10.0), ("a", -30.0)]
    for _ in range(10):
        detector.observe("a", 31)
        detector.observe("b", 12)
    assert detector.rank() is None  # same order: nothing to tell
    detector.observe("a", 20)
    assert [s.participant_id for s in detector.rank() or []] == ["a"]  # b went quiet
    assert detector.rank() == []  # nobody speaks any more: reported once
    assert detector.rank() is None


def test_mean_is_of_power_and_at_most_max_speakers() -> None:
    detector = SpeakerDetector(threshold_dbov=-50, max_speakers=1)
    detector.observe("a", 0)  # one loud packet among silence still averages loud
    for _ in range(9):
        detector.observe("a", 127)
    detector.observe("b", 15)
    ranking = detector.rank()
    assert ranking is not None and [s.participant_id for s in ranking] == ["a"]
    assert ranking[0].level_dbov == pytest.approx(-10.0, abs=0.1)


# ---------------------------------------------------------------------- a real call


class ToneTrack(MediaStreamTrack):  # type: ignore[misc]
    """A 440 Hz tone of a given amplitude, 20 ms frames in real time."""

    kind = "audio"

    def __init__(self, amplitude: int) -> None:
        super().__init__()
        t = np.arange(960) / 48000
        self._samples = (np.sin(2 * np.pi * 440 * t) * amplitude).astype(np.int16)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._pts / 48000 - loop.time()))
        frame = av.AudioFrame.from_ndarray(
            self._samples.reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


async def publish_tone(ws: Any, amplitude: int) -> Any:
    pc = client_pc()
    pc.addTransceiver(ToneTrack(amplitude), direction="sendonly")
    configure_ice(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send({"type": "publish_offer", "sdp": pc.localDescription.sdp})
    answer = await ws.expect("publish_answer", 10)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return pc


@pytest.mark.slow
async def test_the_louder_publisher_is_first(start_server: Any, connect: Any) -> None:
    _, ts = await start_server(allow_loopback_candidates=True, active_speaker_interval_s=0.3)
    loud_ws, quiet_ws, listener = await connect(ts), await connect(ts), await connect(ts)
    loud = (await loud_ws.join("talk", "loud"))["participant"]["id"]
    quiet = (await quiet_ws.join("talk", "quiet"))["participant"]["id"]
    await listener.join("talk", "listener", can_publish=False)
    pcs = [await publish_tone(quiet_ws, 800), await publish_tone(loud_ws, 20000)]
    try:
        for _ in range(20):
            message = await listener.expect("active_speakers", 10)
            ranked = [s["participant_id"] for s in message["speakers"]]
            if len(ranked) == 2:
                break
        assert ranked == [loud, quiet], message
        levels = [s["level"] for s in message["speakers"]]
        # 20000/32768 and 800/32768 of full scale (a sine's RMS is 3 dB under its peak).
        assert levels[0] == pytest.approx(-7.3, abs=2), levels
        assert levels[1] == pytest.approx(-35.2, abs=2), levels
        # The loud one stops: the next change leaves the quiet one alone.
        await pcs[1].close()
        for _ in range(20):
            message = await listener.expect("active_speakers", 10)
            if [s["participant_id"] for s in message["speakers"]] == [quiet]:
                break
        else:
            raise AssertionError(message)
    finally:
        for pc in pcs:
            await pc.close()
