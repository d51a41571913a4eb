from collections.abc import Sequence
from typing import Any

MAX_PLAINTEXT: int

def build_rtp(
    b0: int,
    b1: int,
    seq: int,
    ts: int,
    ssrc: int,
    csrc: Sequence[int],
    head: bytes,
    middle: bytes,
    tail: bytes,
    payload: bytes,
    padding: int,
    vp8_shift: int | None,
    /,
) -> bytes: ...

class FastSender:
    packets: int
    octets: int
    dropped: int
    fd: int
    queueing: int
    def __init__(
        self,
        fd: int,
        host: str,
        port: int,
        session: int,
        protect: int,
        owner: object,
        dtls: object,
        connected: object,
        overflow: Any = None,
    ) -> None: ...
    def send(self, data: bytes, /) -> bool: ...
    def emit(
        self,
        history: dict[int, Any],
        key: int,
        b0: int,
        b1: int,
        seq: int,
        ts: int,
        ssrc: int,
        csrc: Sequence[int],
        head: bytes,
        middle: bytes,
        tail: bytes,
        payload: bytes,
        padding: int,
        vp8_shift: int | None,
        /,
    ) -> bool: ...
    def close(self) -> None: ...

class Unprotector:
    def __init__(self, session: int, unprotect: int, owner: object, error: type) -> None: ...
    def __call__(self, data: bytes, /) -> bytes: ...

def parse_rtp(
    data: bytes,
    kinds: bytes,
    packet_type: type,
    extensions_type: type,
    other_profile: Any,
    /,
) -> Any: ...
