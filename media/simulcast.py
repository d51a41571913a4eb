"""Simulcast in SDP (RFC 8851 ``a=rid``, RFC 8853 ``a=simulcast``), sans-IO.

aiortc parses neither attribute: a publisher's offer goes through it untouched and its answer
says nothing about simulcast, so the browser would send one encoding. :func:`offered_simulcast`
reads what the client offers on each m-line; :func:`answer_simulcast` writes the receive side
into the answer (``a=rid:<rid> recv`` and ``a=simulcast:recv``), so the browser sends every
encoding, each on its own SSRC, named by the ``rtp-stream-id`` header extension (RTX by
``repaired-rtp-stream-id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SdpRejected

URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
SIMULCAST_EXTENSIONS = (URI_RID, URI_REPAIRED_RID)

# RFC 8851: rid-id = 1*(alpha-numeric / "-" / "_"); 16 characters like a MID (RFC 8843 keeps
# header extension values to 16 bytes).
_RID = re.compile(r"[A-Za-z0-9_-]{1,16}")


@dataclass(frozen=True)
class OfferedSimulcast:
    """The simulcast one m-line of an offer sends."""

    mid: str
    rids: tuple[str, ...]
    """Encodings in the order of ``a=simulcast:send`` (paused ones, ``~rid``, left out)."""
    extension_ids: dict[str, int]
    """``rtp-stream-id`` and ``repaired-rtp-stream-id`` as the offer numbers them."""


def _sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    return sections


def _send_rids(value: str) -> list[str]:
    """The rids of ``send <list>`` in an ``a=simulcast`` value (alternatives: the first)."""
    bits = value.split()
    out: list[str] = []
    for i in range(0, len(bits) - 1, 2):
        if bits[i] != "send":
            continue
        for choice in bits[i + 1].split(";"):
            rid = choice.split(",")[0]
            if not rid.startswith("~"):
                out.append(rid)
    return out


def offered_simulcast(sdp: str, max_layers: int) -> dict[str, OfferedSimulcast]:
    """The video m-lines of an offer that send simulcast, by MID.

    An m-line counts when it has ``a=simulcast:send`` naming at least two ``a=rid:<rid> send``
    lines and both the ``rtp-stream-id`` and ``mid`` header extensions (a stream is found by
    them). Bad rids or more than ``max_layers`` encodings raise :class:`SdpRejected`.
    """
    out: dict[str, OfferedSimulcast] = {}
    for lines in _sections(sdp):
        if not lines[0].startswith("m=video"):
            continue
        mid: str | None = None
        rids: list[str] = []
        declared: set[str] = set()
        ext: dict[str, int] = {}
        has_mid_ext = False
        for line in lines[1:]:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=rid:"):
                bits = line[6:].split()
                if len(bits) >= 2 and bits[1] == "send":
                    declared.add(bits[0])
            elif line.startswith("a=simulcast:"):
                rids = _send_rids(line[len("a=simulcast:") :])
            elif line.startswith("a=extmap:"):
                bits = line[len("a=extmap:") :].split()
                if len(bits) < 2:
                    continue
                try:
                    ext_id = int(bits[0].split("/")[0])
                except ValueError:
                    continue
                if bits[1] in SIMULCAST_EXTENSIONS:
                    ext[bits[1]] = ext_id
                elif bits[1] == "urn:ietf:params:rtp-hdrext:sdes:mid":
                    has_mid_ext = True
        if mid is None or len(rids) < 2:
            continue
        for rid in rids:
            if not _RID.fullmatch(rid):
                raise SdpRejected(f"m-line {mid}: invalid rid {rid[:40]!r}")
            if rid not in declared:
                raise SdpRejected(f"m-line {mid}: simulcast rid {rid!r} has no a=rid send line")
        if len(set(rids)) != len(rids):
            raise SdpRejected(f"m-line {mid}: duplicate rid in a=simulcast")
        if len(rids) > max_layers:
            raise SdpRejected(
                f"m-line {mid}: {len(rids)} simulcast encodings > {max_layers} "
                "(simulcast_max_layers)"
            )
        if URI_RID not in ext or not has_mid_ext:
            continue  # nothing to tell the streams apart by: answered without simulcast
        out[mid] = OfferedSimulcast(mid, tuple(rids), ext)
    return out


def answer_simulcast(answer: str, offered: dict[str, OfferedSimulcast]) -> str:
    """``answer`` with the receive side of each offered simulcast m-line added."""
    if not offered:
        return answer
    eol = "\r\n" if "\r\n" in answer else "\n"
    out: list[str] = []
    pending: list[str] = []
    for line in answer.splitlines():
        if line.startswith("m="):
            out.extend(pending)
            pending = []
        elif line.startswith("a=mid:"):
            sim = offered.get(line[6:].strip())
            if sim is not None:
                pending = [f"a=rid:{rid} recv" for rid in sim.rids]
                pending.append("a=simulcast:recv " + ";".join(sim.rids))
        if line:
            out.append(line)
    out.extend(pending)
    return eol.join(out) + eol
