"""Sans-IO checks on SDP from clients: limits, codec allowlist, candidate filter.

Everything here works on strings and aiortc's SDP parser; nothing touches a socket, so each rule
is tested directly. Violations raise :class:`media.errors.SdpRejected` with a precise reason.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from aiortc import sdp as aiortc_sdp

from .errors import SdpRejected
from .settings import MediaSettings

MEDIA_KINDS = ("audio", "video")

# msid identifiers (RFC 8830): 1 to 64 token characters. Ids that go into the msid of the
# subscriber offers (participant ids, track ids) must match, or browsers reject the SDP.
MSID_ID = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")


def valid_msid_id(value: str) -> bool:
    """Whether ``value`` can be a stream or track id in an ``a=msid`` line."""
    return MSID_ID.fullmatch(value) is not None


# Ranges the brief calls "private" (RFC 1918, ULA) and link-local, v4 and v6.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


@dataclass(frozen=True)
class MediaSection:
    """What the media plane needs to know about one m-line of a client's SDP."""

    index: int
    kind: str
    mid: str | None
    port: int
    direction: str
    track_id: str | None
    """Track id of the msid attribute (``a=msid:<stream> <track>``), if any."""
    codecs: tuple[str, ...]
    """Codec names (mimeType subtypes) in the order offered, RTX excluded."""
    bundle_only: bool = False
    """Port 0 with ``a=bundle-only`` inside a BUNDLE group (RFC 8843): in use, on the bundle's
    transport. Firefox with ``bundlePolicy: "max-bundle"`` offers every m-line but the first so."""

    @property
    def active(self) -> bool:
        """Whether the m-line is in use (a port, or bundled without one)."""
        return self.port != 0 or self.bundle_only

    @property
    def sends(self) -> bool:
        """Whether the client sends media on this m-line."""
        return self.active and self.direction in ("sendrecv", "sendonly")


@dataclass(frozen=True)
class CheckedSdp:
    """An SDP that passed every rule, with candidates the policy refuses removed."""

    sdp: str
    sections: tuple[MediaSection, ...]
    dropped_candidates: int


def candidate_address_allowed(address: str, settings: MediaSettings) -> bool:
    """Whether a remote ICE candidate address is acceptable under ``settings``.

    Loopback and private/link-local ranges need their setting; mDNS names need theirs; anything
    else that is not globally routable (unspecified, multicast, reserved, documentation, CGNAT)
    and hostnames are always refused.
    """
    if address.lower().endswith(".local"):
        return settings.allow_mdns_candidates
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return settings.allow_loopback_candidates
    if any(ip in net for net in _PRIVATE_NETWORKS):
        return settings.allow_private_candidates
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return ip.is_global


def candidate_line_allowed(candidate: str, settings: MediaSettings) -> bool:
    """Apply :func:`candidate_address_allowed` to a ``candidate:...`` attribute value.

    Malformed candidates are refused. Only UDP candidates are kept (aioice does not do ICE-TCP).
    """
    value = candidate.strip()
    if value.startswith("a="):
        value = value[2:]
    if value.startswith("candidate:"):
        value = value[len("candidate:") :]
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        return False
    if bits[2].lower() != "udp":
        return False
    try:
        port = int(bits[5])
    except ValueError:
        return False
    if not 0 < port < 65536:
        return False
    return candidate_address_allowed(bits[4], settings)


def filter_sdp_candidates(sdp: str, settings: MediaSettings) -> tuple[str, int]:
    """Remove the ``a=candidate`` lines the policy refuses; return the SDP and how many went."""
    lines = sdp.splitlines(keepends=True)
    kept: list[str] = []
    dropped = 0
    for line in lines:
        if line.startswith("a=candidate:") and not candidate_line_allowed(line, settings):
            dropped += 1
            continue
        kept.append(line)
    return "".join(kept), dropped


def _bundle_only_indexes(sdp: str) -> set[int]:
    """Indexes of the m-lines that carry ``a=bundle-only`` (aiortc's parser drops it)."""
    indexes: set[int] = set()
    index = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        elif index >= 0 and line.strip() == "a=bundle-only":
            indexes.add(index)
    return indexes


def check_sdp(
    sdp: str, settings: MediaSettings, sdp_type: Literal["offer", "answer"]
) -> CheckedSdp:
    """Check a client's SDP against the limits; return it with refused candidates removed.

    Rules: size, m-line count, media kinds, a DTLS fingerprint on every m-line, at least one
    allowed codec on every active audio/video m-line, and (offers) the number of sent tracks.
    """
    size = len(sdp.encode("utf-8", "surrogateescape"))
    if size > settings.max_sdp_bytes:
        raise SdpRejected(f"sdp too large: {size} bytes > {settings.max_sdp_bytes}")
    mlines = sum(1 for line in sdp.splitlines() if line.startswith("m="))
    if mlines > settings.max_mlines:
        raise SdpRejected(f"too many m-lines: {mlines} > {settings.max_mlines}")
    if mlines == 0:
        raise SdpRejected("sdp has no m-line")

    filtered, dropped = filter_sdp_candidates(sdp, settings)
    try:
        parsed = aiortc_sdp.SessionDescription.parse(filtered)
    except Exception as exc:  # the parser raises assorted errors on garbage
        raise SdpRejected(f"malformed sdp: {type(exc).__name__}: {exc}") from None

    sections: list[MediaSection] = []
    sent_tracks = 0
    bundled = {mid for group in parsed.group if group.semantic == "BUNDLE" for mid in group.items}
    bundle_only = _bundle_only_indexes(filtered)
    for index, media in enumerate(parsed.media):
        if media.kind not in (*MEDIA_KINDS, "application"):
            raise SdpRejected(f"m-line {index}: unsupported media kind {media.kind!r}")
        # A bundle-only m-line (port 0) is as much in use as one with a port: same checks.
        is_bundle_only = index in bundle_only and media.rtp.muxId in bundled
        active = media.port != 0 or is_bundle_only
        if active and (media.dtls is None or not media.dtls.fingerprints):
            raise SdpRejected(f"m-line {index}: DTLS fingerprint required")
        if active and (
            media.ice is None or not media.ice.usernameFragment or not media.ice.password
        ):
            raise SdpRejected(f"m-line {index}: ICE credentials required")
        if media.kind == "application":
            continue
        codec_names = tuple(
            c.mimeType.split("/", 1)[-1] for c in media.rtp.codecs if c.name.lower() != "rtx"
        )
        if active and not any(settings.codec_allowed(n) for n in codec_names):
            raise SdpRejected(
                f"m-line {index} ({media.kind}): no allowed codec among "
                f"{', '.join(codec_names) or 'none'} (allowed: {', '.join(settings.codecs)})"
            )
        track_id: str | None = None
        msid = media.msid or next((s.msid for s in media.ssrc if s.msid), None)
        if msid:
            bits = msid.split()
            track_id = bits[1] if len(bits) > 1 else bits[0]
        section = MediaSection(
            index=index,
            kind=media.kind,
            mid=media.rtp.muxId,
            port=media.port,
            direction=media.direction or "sendrecv",
            track_id=track_id,
            codecs=codec_names,
            bundle_only=is_bundle_only,
        )
        if sdp_type == "offer" and section.sends:
            sent_tracks += 1
        sections.append(section)

    if sent_tracks > settings.max_tracks_per_participant:
        raise SdpRejected(f"too many tracks: {sent_tracks} > {settings.max_tracks_per_participant}")
    if sdp_type == "offer":
        ids = [s.track_id for s in sections if s.sends and s.track_id]
        for track_id in ids:
            if not valid_msid_id(track_id):
                raise SdpRejected(f"invalid track id in msid: {track_id[:80]!r}")
        if len(ids) != len(set(ids)):
            raise SdpRejected("duplicate track id in msid")
    return CheckedSdp(sdp=filtered, sections=tuple(sections), dropped_candidates=dropped)
