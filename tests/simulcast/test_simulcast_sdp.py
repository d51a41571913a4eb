"""Reading simulcast from an offer and answering it (a=rid, a=simulcast)."""

from __future__ import annotations

import pytest

from relayroom.media.errors import SdpRejected
from relayroom.media.simulcast import (
    URI_REPAIRED_RID,
    URI_RID,
    answer_simulcast,
    offered_simulcast,
)

VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 96 97
a=mid:{mid}
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
{rids}
"""
RIDS = """a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f"""


def offer(rids: str = RIDS, mid: str = "1") -> str:
    head = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    return head + audio + VIDEO.format(mid=mid, rids=rids).replace("\n", "\r\n")


def test_chromium_style_offer_is_read() -> None:
    sim = offered_simulcast(offer(), 3)
    assert list(sim) == ["1"]
    assert sim["1"].rids == ("q", "h", "f")
    assert sim["1"].extension_ids == {URI_RID: 10, URI_REPAIRED_RID: 11}


def test_paused_rids_and_alternatives() -> None:
    rids = "a=rid:a send\na=rid:b send\na=rid:c send\na=simulcast:send a,x;~b;c"
    assert offered_simulcast(offer(rids), 3)["1"].rids == ("a", "c")


def test_no_simulcast_without_the_attribute() -> None:
    assert offered_simulcast(offer(""), 3) == {}
    assert offered_simulcast(offer("a=rid:q send\na=simulcast:send q"), 3) == {}  # one layer


@pytest.mark.parametrize(
    ("rids", "message"),
    [
        ("a=rid:q send\na=rid:h send\na=rid:f send\na=simulcast:send q;h;f", "3 simulcast"),
        ("a=rid:q send\na=simulcast:send q;h", "no a=rid send line"),
        ("a=rid:q send\na=rid:q%0a send\na=simulcast:send q;q%0a", "invalid rid"),
        ("a=rid:q send\na=simulcast:send q;q", "duplicate rid"),
    ],
)
def test_bad_simulcast_is_refused_with_a_reason(rids: str, message: str) -> None:
    with pytest.raises(SdpRejected, match=message):
        offered_simulcast(offer(rids), 2)


def test_answer_gets_the_receive_side_on_its_m_line() -> None:
    sim = offered_simulcast(offer(), 3)
    answer = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=recvonly\r\n"
    out = answer_simulcast(answer, sim)
    video = out.split("m=video", 1)[1]
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n" in video
    assert "a=rid" not in out.split("m=video", 1)[0]
    assert answer_simulcast(answer, {}) == answer
