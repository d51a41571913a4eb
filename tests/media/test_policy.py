"""SDP limits, codec allowlist, candidate filter and keyframe detection (no sockets)."""

from __future__ import annotations

import pytest

from relayroom.media import MediaSettings, SdpRejected
from relayroom.media.keyframes import detector_for, h264_keyframe_start, vp8_keyframe_start
from relayroom.media.sdp_policy import (
    candidate_address_allowed,
    candidate_line_allowed,
    check_sdp,
    filter_sdp_candidates,
)
from tests.media.sdp_samples import (
    client_offer,
    firefox_max_bundle_offer,
    with_candidates,
    without_lines,
)

OPEN = MediaSettings(allow_loopback_candidates=True)


async def test_valid_offer_passes_with_its_tracks() -> None:
    sdp = await client_offer(video=1, audio=1)
    checked = check_sdp(sdp, OPEN, "offer")
    assert [(s.kind, s.sends) for s in checked.sections] == [("video", True), ("audio", True)]
    assert all(s.track_id for s in checked.sections)
    assert checked.dropped_candidates == 0


async def test_sdp_over_size_limit_is_rejected() -> None:
    sdp = await client_offer()
    with pytest.raises(SdpRejected, match="too large"):
        check_sdp(sdp, MediaSettings(max_sdp_bytes=len(sdp) - 1), "offer")


async def test_too_many_mlines_is_rejected() -> None:
    sdp = await client_offer(video=2, audio=2)
    with pytest.raises(SdpRejected, match="too many m-lines: 4 > 3"):
        check_sdp(sdp, MediaSettings(max_mlines=3), "offer")


async def test_too_many_tracks_is_rejected() -> None:
    sdp = await client_offer(video=2, audio=1)
    with pytest.raises(SdpRejected, match="too many tracks: 3 > 2"):
        check_sdp(sdp, MediaSettings(max_tracks_per_participant=2), "offer")


async def test_offer_without_allowed_codec_is_rejected() -> None:
    sdp = await client_offer(video=1, audio=0, codec="VP8")
    with pytest.raises(SdpRejected, match="no allowed codec among VP8"):
        check_sdp(sdp, MediaSettings(codecs=("opus", "H264")), "offer")


async def test_missing_dtls_fingerprint_is_rejected() -> None:
    sdp = without_lines(await client_offer(), "a=fingerprint")
    with pytest.raises(SdpRejected, match="DTLS fingerprint required"):
        check_sdp(sdp, OPEN, "offer")


@pytest.mark.parametrize("garbage", ["", "hello", "v=0\r\nm=video x\r\n", "m=audio 9 RTP 999\r\n"])
def test_garbage_is_rejected_not_raised(garbage: str) -> None:
    with pytest.raises(SdpRejected):
        check_sdp(garbage, OPEN, "offer")


@pytest.mark.parametrize(
    ("address", "loopback", "private", "allowed"),
    [
        ("127.0.0.1", False, False, False),
        ("127.0.0.1", True, False, True),
        ("::1", True, False, True),
        ("10.1.2.3", True, False, False),
        ("172.20.0.1", False, True, True),
        ("192.168.1.5", False, False, False),
        ("169.254.10.1", False, False, False),
        ("169.254.10.1", False, True, True),
        ("fe80::1", False, False, False),
        ("fd00::5", False, False, False),
        ("fd00::5", False, True, True),
        ("::ffff:192.168.0.1", False, False, False),
        ("0.0.0.0", True, True, False),
        ("224.0.0.1", True, True, False),
        ("8.8.8.8", False, False, True),
        ("2001:4860:4860::8888", False, False, True),
        ("abcd.local", True, True, False),
        ("example.com", True, True, False),
    ],
)
def test_candidate_address_policy(
    address: str, loopback: bool, private: bool, allowed: bool
) -> None:
    settings = MediaSettings(allow_loopback_candidates=loopback, allow_private_candidates=private)
    assert candidate_address_allowed(address, settings) is allowed


def test_mdns_candidates_need_their_setting() -> None:
    assert candidate_address_allowed("x.local", MediaSettings(allow_mdns_candidates=True))


def test_candidate_lines_must_be_well_formed_udp() -> None:
    ok = "candidate:1 1 udp 2130706431 8.8.8.8 5000 typ host"
    assert candidate_line_allowed(ok, OPEN)
    assert candidate_line_allowed("a=" + ok, OPEN)
    assert not candidate_line_allowed(ok.replace("udp", "tcp"), OPEN)
    assert not candidate_line_allowed("candidate:1 1 udp 1 8.8.8.8 99999 typ host", OPEN)
    assert not candidate_line_allowed("candidate:1 1 udp", OPEN)


async def test_candidates_inside_the_sdp_are_filtered() -> None:
    sdp = with_candidates(await client_offer(), "192.168.7.7", "10.9.9.9", "8.8.4.4")
    filtered, dropped = filter_sdp_candidates(sdp, OPEN)
    assert dropped == 2
    assert "192.168.7.7" not in filtered and "10.9.9.9" not in filtered
    assert "8.8.4.4" in filtered and "127.0.0.1" in filtered
    checked = check_sdp(sdp, MediaSettings(), "offer")
    loopback = sdp.count(" 127.0.0.1 ")
    assert loopback >= 1
    assert checked.dropped_candidates == 2 + loopback  # loopback too, by default
    kept = [x for x in checked.sdp.splitlines() if x.startswith("a=candidate")]
    assert len(kept) == 1 and " 8.8.4.4 " in kept[0]


def test_settings_validate_port_range() -> None:
    with pytest.raises(ValueError):
        MediaSettings(udp_port_min=50000, udp_port_max=40000)
    assert MediaSettings(udp_port_min=40000, udp_port_max=40010).port_range == (40000, 40010)
    assert MediaSettings().port_range is None


# ---- keyframes

VP8_KEY = bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])  # S=1 PID=0, P=0
VP8_DELTA = bytes([0x10, 0x01])  # P=1
VP8_CONT = bytes([0x00, 0x00])  # S=0
VP8_EXT_KEY = bytes([0x90, 0x80, 0x81, 0x23, 0x00])  # X, I with 2-byte picture id, P=0
VP8_EXT_DELTA = bytes([0x90, 0xE0, 0x05, 0x07, 0x01])  # X, I (1 byte), L, T; P=1


def test_vp8_keyframe_detection() -> None:
    assert vp8_keyframe_start(VP8_KEY)
    assert vp8_keyframe_start(VP8_EXT_KEY)
    assert not vp8_keyframe_start(VP8_DELTA)
    assert not vp8_keyframe_start(VP8_CONT)
    assert not vp8_keyframe_start(VP8_EXT_DELTA)
    assert not vp8_keyframe_start(b"")
    assert not vp8_keyframe_start(bytes([0x90, 0x80]))  # truncated


def test_h264_keyframe_detection() -> None:
    assert h264_keyframe_start(bytes([0x67, 0x42]))  # SPS
    assert h264_keyframe_start(bytes([0x65, 0x88]))  # IDR
    assert not h264_keyframe_start(bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert h264_keyframe_start(stap)
    assert not h264_keyframe_start(bytes([0x78, 0x00, 0x02, 0x41, 0x9A]))
    assert not h264_keyframe_start(bytes([0x78, 0x00, 0x09, 0x67]))  # truncated
    assert h264_keyframe_start(bytes([0x7C, 0x85, 0x00]))  # FU-A start of IDR
    assert not h264_keyframe_start(bytes([0x7C, 0x05, 0x00]))  # FU-A middle
    assert detector_for("opus")(b"") is True


async def test_track_ids_that_cannot_be_msid_are_rejected() -> None:
    sdp = await client_offer(video=1, audio=0)
    checked = check_sdp(sdp, OPEN, "offer")
    track_id = checked.sections[0].track_id
    assert track_id is not None
    bad = sdp.replace(track_id, "bad\u00e9" + "x" * 70)
    with pytest.raises(SdpRejected, match="invalid track id"):
        check_sdp(bad, OPEN, "offer")


def test_firefox_max_bundle_offer_publishes_its_bundle_only_mlines() -> None:
    checked = check_sdp(firefox_max_bundle_offer(), OPEN, "offer")
    assert [(s.kind, s.port, s.bundle_only, s.sends) for s in checked.sections] == [
        ("audio", 41360, False, True),
        ("video", 0, True, True),
    ]
    assert all(s.track_id and s.track_id.startswith("{") for s in checked.sections)


def test_bundle_only_mline_needs_its_own_fingerprint() -> None:
    # The sample's fingerprint is session-level: move it into the first m-line only.
    sdp = firefox_max_bundle_offer()
    fingerprint = next(line for line in sdp.split("\r\n") if line.startswith("a=fingerprint:"))
    sdp = without_lines(sdp, "a=fingerprint:").replace(
        "a=mid:0\r\n", f"a=mid:0\r\n{fingerprint}\r\n"
    )
    with pytest.raises(SdpRejected, match="m-line 1: DTLS fingerprint required"):
        check_sdp(sdp, OPEN, "offer")


def test_bundle_only_mline_needs_ice_credentials() -> None:
    sdp = firefox_max_bundle_offer()
    lines = sdp.split("\r\n")
    video = lines.index(next(line for line in lines if line.startswith("m=video")))
    kept = lines[:video] + [
        line for line in lines[video:] if not line.startswith(("a=ice-ufrag", "a=ice-pwd"))
    ]
    with pytest.raises(SdpRejected, match="m-line 1: ICE credentials required"):
        check_sdp("\r\n".join(kept), OPEN, "offer")


def test_bundle_only_mline_needs_an_allowed_codec() -> None:
    # Firefox offers no H264 here: with H264 only, its bundle-only video m-line has no codec.
    with pytest.raises(SdpRejected, match=r"m-line 1 \(video\): no allowed codec"):
        check_sdp(firefox_max_bundle_offer(), MediaSettings(codecs=("H264", "opus")), "offer")


def test_port_zero_without_bundle_only_is_a_rejected_mline() -> None:
    sdp = without_lines(firefox_max_bundle_offer(), "a=bundle-only")
    checked = check_sdp(sdp, OPEN, "offer")
    assert [(s.kind, s.sends) for s in checked.sections] == [("audio", True), ("video", False)]
