"""Sans-IO rewrites of SDP around rejected m-lines (RFC 8843, JSEP 5.2.2 and 5.3.1).

aiortc describes a stopped or rejected m-line as if it were in use: with a port, in the BUNDLE
group. A browser refuses such an answer (Chromium: "A BUNDLE group in answer contains a MID='2'
that was not in the offered group"), and JSEP wants a stopped transceiver's m-line in an offer to
be port 0 and outside every BUNDLE group too. :func:`reject_mlines` rewrites what the relay sends;
:func:`rejected_mids` reads which m-lines a client rejected; :func:`answer_fits_offer` tells an
answer to the pending offer from a late answer to an earlier one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

# Lines that describe a transport or a stream: meaningless on a rejected m-line.
_DROPPED_ON_REJECT = (
    "a=candidate:",
    "a=end-of-candidates",
    "a=bundle-only",
    "a=ssrc:",
    "a=ssrc-group:",
    "a=msid:",
)
_DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")


@dataclass(frozen=True)
class _Section:
    kind: str
    port: int
    mid: str | None
    bundle_only: bool


def _eol(sdp: str) -> str:
    return "\r\n" if "\r\n" in sdp else "\n"


def _split(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and the lines of each m-section (line endings removed)."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        elif line:
            session.append(line)
    return session, sections


def _describe(lines: list[str]) -> _Section:
    bits = lines[0][2:].split()
    kind = bits[0] if bits else ""
    try:
        port = int(bits[1]) if len(bits) > 1 else 0
    except ValueError:
        port = -1
    mid = next((line[6:].strip() for line in lines if line.startswith("a=mid:")), None)
    bundle_only = any(line.strip() == "a=bundle-only" for line in lines)
    return _Section(kind, port, mid, bundle_only)


def _bundled(session: list[str]) -> set[str]:
    return {
        mid
        for line in session
        if line.startswith("a=group:BUNDLE")
        for mid in line[len("a=group:BUNDLE") :].split()
    }


def rejected_mids(sdp: str) -> set[str]:
    """MIDs of the audio/video m-lines that ``sdp`` rejects: port 0 and not bundle-only.

    A port-0 m-line with ``a=bundle-only`` in a BUNDLE group (Firefox's max-bundle) is in use.
    """
    session, sections = _split(sdp)
    bundled = _bundled(session)
    out: set[str] = set()
    for lines in sections:
        s = _describe(lines)
        in_use = s.port != 0 or (s.bundle_only and s.mid in bundled)
        if s.kind in ("audio", "video") and s.mid is not None and not in_use:
            out.add(s.mid)
    return out


def reject_mlines(sdp: str, mids: Collection[str]) -> str:
    """``sdp`` with the m-lines of ``mids`` rejected: port 0, ``a=inactive``, no candidates, no
    stream, and outside the BUNDLE group (a group left empty goes). Codecs stay: an m-line needs
    at least one format. Other m-lines are untouched."""
    if not mids:
        return sdp
    eol = _eol(sdp)
    session, sections = _split(sdp)
    out: list[str] = []
    for line in session:
        if line.startswith("a=group:BUNDLE"):
            kept = [m for m in line[len("a=group:BUNDLE") :].split() if m not in mids]
            if not kept:
                continue
            line = "a=group:BUNDLE " + " ".join(kept)
        out.append(line)
    for lines in sections:
        if _describe(lines).mid not in mids:
            out.extend(lines)
            continue
        bits = lines[0].split(" ")
        if len(bits) > 1:
            bits[1] = "0"
        out.append(" ".join(bits))
        direction_written = False
        for line in lines[1:]:
            if line.startswith(_DROPPED_ON_REJECT):
                continue
            if line.strip() in _DIRECTIONS:
                if not direction_written:
                    out.append("a=inactive")
                    direction_written = True
                continue
            out.append(line)
        if not direction_written:
            out.append("a=inactive")
    return eol.join(out) + eol


def answer_fits_offer(offer: str, answer: str) -> bool:
    """Whether ``answer`` can answer ``offer``: the same m-lines (kind and MID, in order).

    An answer to an earlier offer fails this when tracks were added since, which is what a late
    duplicate of an answer looks like. (aiortc answers a rejected m-line with a port, so a port
    is not held against an answer.)
    """
    _, offered = _split(offer)
    _, answered = _split(answer)
    if len(offered) != len(answered):
        return False
    for o_lines, a_lines in zip(offered, answered, strict=True):
        o, a = _describe(o_lines), _describe(a_lines)
        if (o.kind, o.mid) != (a.kind, a.mid):
            return False
    return True
