"""A receiver's REMB set by the test, for the simulcast tests of capped subscribers."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from tests.support.sfu import WsSubscriber


async def send_capped_remb(sub: WsSubscriber, bps: int) -> None:
    """Act as a receiver whose estimate is ``bps``: the receiver's own REMB is switched off
    (test-client internals) and ours goes out every 300 ms for the stream it receives."""
    while True:
        for transceiver in sub.pc.getTransceivers():
            rx: Any = transceiver.receiver
            if transceiver.kind != "video" or rx.transport is None:
                continue
            rx._RTCRtpReceiver__remote_bitrate_estimator = None
            ssrcs = list(rx._RTCRtpReceiver__remote_streams)
            rtcp_ssrc = rx._RTCRtpReceiver__rtcp_ssrc
            if ssrcs and rtcp_ssrc is not None:
                fci = pack_remb_fci(bps, ssrcs[:1])
                packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
                await rx._send_rtcp(packet)
        await asyncio.sleep(0.3)
