"""Parse `application/trickle-ice-sdpfrag` bodies (RFC 8840, as WHIP's PATCH uses them).

Sans-IO: text in, a typed fragment out, or `FragError` with a message for the HTTP 400 body.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 1024


class FragError(ValueError):
    """A body that is not a trickle-ice-sdpfrag."""


@dataclass(frozen=True)
class FragCandidate:
    mid: str | None
    line: str  # "candidate:..." as RTCIceCandidateInit.candidate carries it


@dataclass(frozen=True)
class SdpFrag:
    ufrag: str | None
    pwd: str | None
    candidates: tuple[FragCandidate, ...]
    end_of_candidates: bool


def parse_sdpfrag(text: str) -> SdpFrag:
    """The ICE credentials, candidates (with the mid of the m-section they follow) and
    end-of-candidates of a fragment. Unknown attributes are ignored, as SDP parsers do."""
    ufrag: str | None = None
    pwd: str | None = None
    mid: str | None = None
    candidates: list[FragCandidate] = []
    end = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise FragError(f"line {number} is longer than {MAX_LINE} characters")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise FragError(f"line {number} is not an SDP line (<type>=<value>)")
        if not line.isprintable():
            raise FragError(f"line {number} has control characters")
        kind, value = line[0], line[2:]
        if kind == "m":
            mid = None
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name == "ice-ufrag":
                ufrag = _token(arg, number)
            elif name == "ice-pwd":
                pwd = _token(arg, number)
            elif name == "mid":
                mid = _token(arg, number)
            elif name == "candidate":
                if len(arg.split()) < 8:
                    raise FragError(f"line {number}: a candidate needs at least 8 fields")
                candidates.append(FragCandidate(mid, "candidate:" + arg))
            elif name == "end-of-candidates":
                end = True
    return SdpFrag(ufrag, pwd, tuple(candidates), end)


def _token(value: str, number: int) -> str:
    if not value or any(c.isspace() for c in value):
        raise FragError(f"line {number}: empty or spaced attribute value")
    return value
