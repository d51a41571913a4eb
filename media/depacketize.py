"""RTP to whole encoded frames, for recording (sans-IO: packets in, frames out).

A `FrameAssembler` takes the packets of one track as the relay receives them (RTX unwrapped, maybe
lost, duplicated or reordered), puts them back in order through a small reorder buffer, cuts them
into frames (video: one RTP timestamp, ended by the marker bit; audio: one packet each) and
depacketizes each frame for its codec (VP8: RFC 7741, H264: RFC 6184 packetization mode 1, Opus:
RFC 7587). A frame that lost a packet is never returned; after a video loss nothing is returned
until the next keyframe, and `need_keyframe` tells the caller to ask the publisher for one.
"""

from __future__ import annotations

from dataclasses import dataclass

H264_START = b"\x00\x00\x00\x01"
_RESTART_GAP = 3000  # a packet this far behind the expected one means a new sequence


class MalformedPayload(ValueError):
    """A payload its codec's depacketizer cannot read."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame: its bytes as a container stores them and its extended RTP timestamp."""

    data: bytes
    timestamp: int  # RTP timestamp, unwrapped (keeps growing past 2**32)
    keyframe: bool


# ------------------------------------------------------------------ VP8 (RFC 7741)


def vp8_descriptor_size(payload: bytes) -> int:
    """Length of a VP8 payload descriptor."""
    n = len(payload)
    if n < 1:
        raise MalformedPayload("empty VP8 payload")
    pos = 1
    if payload[0] & 0x80:  # X
        if n < 2:
            raise MalformedPayload("truncated VP8 descriptor")
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: picture id
            if pos >= n:
                raise MalformedPayload("truncated VP8 picture id")
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:  # L
            pos += 1
        if x & 0x30:  # T or K
            pos += 1
    if pos > n:
        raise MalformedPayload("truncated VP8 descriptor")
    return pos


def vp8_starts_frame(payload: bytes) -> bool:
    """S=1 and partition index 0: the first packet of a frame."""
    return bool(payload) and (payload[0] & 0x1F) == 0x10


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 keyframe's header (RFC 6386 9.1), None for other frames."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


# ------------------------------------------------------------------ H264 (RFC 6184)


def h264_nal_units(payload: bytes, fu_started: bool) -> tuple[list[bytes], bool]:
    """Annex B pieces of one RTP payload, and whether an FU-A is still open after it.

    A FU-A fragment continues the NAL unit of the packet before it: only its first fragment
    carries the start code and rebuilt NAL header.
    """
    if not payload:
        raise MalformedPayload("empty H264 payload")
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return [H264_START + payload], False
    if nal_type == 24:  # STAP-A
        out, pos, n = [], 1, len(payload)
        while pos + 2 <= n:
            size = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > n:
                raise MalformedPayload("bad STAP-A size")
            out.append(H264_START + payload[pos : pos + size])
            pos += size
        return out, False
    if nal_type == 28:  # FU-A
        if len(payload) < 2:
            raise MalformedPayload("truncated FU-A")
        fu = payload[1]
        start, end = bool(fu & 0x80), bool(fu & 0x40)
        if start:
            header = bytes(((payload[0] & 0xE0) | (fu & 0x1F),))
            return [H264_START + header + payload[2:]], not end
        if not fu_started:
            raise MalformedPayload("FU-A continues a NAL unit that never started")
        return [payload[2:]], not end
    raise MalformedPayload(f"unsupported H264 NAL unit type {nal_type}")


def h264_nal_types(frame: bytes) -> list[int]:
    """NAL unit types of an Annex B frame (as this module writes it: 4-byte start codes)."""
    types: list[int] = []
    pos = 0
    while True:
        at = frame.find(H264_START, pos)
        if at < 0 or at + 4 >= len(frame):
            return types
        types.append(frame[at + 4] & 0x1F)
        pos = at + 4


def h264_parameter_sets(frame: bytes) -> tuple[bytes | None, bytes | None]:
    """The SPS and PPS NAL units (without start codes) of an Annex B frame."""
    sps = pps = None
    for unit in frame.split(H264_START):
        if unit:
            kind = unit[0] & 0x1F
            if kind == 7:
                sps = unit
            elif kind == 8:
                pps = unit
    return sps, pps


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise MalformedPayload("SPS ends early")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise MalformedPayload("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def h264_dimensions(sps: bytes) -> tuple[int, int]:
    """(width, height) of an SPS NAL unit (ITU-T H.264 7.3.2.1.1), cropping applied."""
    r = _Bits(sps[1:])
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            r.bit()
        r.ue()
        r.ue()
        r.bit()
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.bit():
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se()) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()
    r.bit()  # direct_8x8_inference_flag
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 2 if chroma in (1, 2) else 1
        crop_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    if width <= 0 or height <= 0:
        raise MalformedPayload("SPS gives no picture size")
    return width, height


# ------------------------------------------------------------------ reorder + assembly


@dataclass(slots=True)
class AssemblerStats:
    packets: int = 0
    duplicates: int = 0  # already buffered or already passed
    late: int = 0  # arrived after the buffer gave up waiting for it
    lost: int = 0  # sequence numbers never seen
    frames: int = 0
    broken_frames: int = 0  # dropped: a packet missing or unreadable
    skipped_frames: int = 0  # whole frames dropped while waiting for a keyframe


class FrameAssembler:
    """Packets of one track in, whole frames out (see the module docstring).

    A missing packet is waited for up to ``reorder_s`` (the publisher's retransmission of a
    packet the relay NACKed needs one round trip; a keyframe arrives as a burst of dozens of
    packets within milliseconds, so a window counted in packets would give up too soon), and at
    most while ``max_packets`` later packets wait behind it (bounded memory). Then it is lost.
    """

    def __init__(self, codec: str, *, reorder_s: float = 0.3, max_packets: int = 2048) -> None:
        name = codec.lower()
        if name not in ("vp8", "h264", "opus"):
            raise ValueError(f"cannot record codec {codec!r} (VP8, H264 and Opus can be)")
        self.codec = name
        self.video = name != "opus"
        self._reorder_s = reorder_s
        self._max_packets = max(1, max_packets)
        self._gap_since: float | None = None  # when the packet awaited next went missing
        self._buffer: dict[int, tuple[int, bool, bytes]] = {}  # ext seq -> (ts, marker, payload)
        self._next: int | None = None  # extended sequence number expected next
        self._ts_ext: int | None = None  # last extended timestamp
        self._parts: list[bytes] = []
        self._frame_ts = 0
        self._broken = False
        self._fu_open = False
        self._waiting_keyframe = self.video
        self.need_keyframe = self.video  # the caller should ask the publisher for a keyframe
        self.stats = AssemblerStats()

    @property
    def waiting_keyframe(self) -> bool:
        """Video frames are being dropped until the next keyframe."""
        return self._waiting_keyframe

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> list[Frame]:
        """Add one packet that arrived at ``now`` (seconds, monotonic); returns the frames it
        completed (usually none or one)."""
        self.stats.packets += 1
        if self._next is None:
            self._next = seq
            ext = seq
        else:
            base = self._next
            ext = base + (((seq - base + 0x8000) & 0xFFFF) - 0x8000)
            if ext < base:
                if base - ext > _RESTART_GAP:  # far behind: the sender restarted its sequence
                    frames = self.flush()
                    self._next = seq
                    self._loss()
                    self._buffer[seq] = (timestamp, marker, payload)
                    return frames + self._drain(now)
                self.stats.late += 1
                return []
        if ext in self._buffer:
            self.stats.duplicates += 1
            return []
        self._buffer[ext] = (timestamp, marker, payload)
        return self._drain(now)

    def flush(self) -> list[Frame]:
        """Give up on every missing packet (end of recording): return what is complete."""
        frames: list[Frame] = []
        while self._buffer:
            frames += self._skip_gap()
        return frames

    def _drain(self, now: float) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        while buffer:
            assert self._next is not None
            item = buffer.pop(self._next, None)
            if item is not None:
                self._next += 1
                self._gap_since = None
                frames += self._packet(*item)
                continue
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < self._reorder_s and len(buffer) < self._max_packets:
                break
            self._gap_since = None
            frames += self._skip_gap()
        return frames

    def _skip_gap(self) -> list[Frame]:
        assert self._next is not None
        first = min(self._buffer)
        if first > self._next:
            self.stats.lost += first - self._next
            self._next = first
            self._loss()
        return self._drain_one()

    def _drain_one(self) -> list[Frame]:
        assert self._next is not None
        item = self._buffer.pop(self._next)
        self._next += 1
        return self._packet(*item)

    def _loss(self) -> None:
        if self._parts:
            self._broken = True
        if self.video:
            self._waiting_keyframe = True
            self.need_keyframe = True
        self._fu_open = False

    def _unwrap(self, timestamp: int) -> int:
        last = self._ts_ext
        if last is None:
            ext = timestamp
        else:
            ext = last + (((timestamp - last + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
        self._ts_ext = ext
        return ext

    def _packet(self, timestamp: int, marker: bool, payload: bytes) -> list[Frame]:
        ts = self._unwrap(timestamp)
        if not self.video:
            return self._emit([payload], ts, False)
        frames: list[Frame] = []
        if self._parts and ts != self._frame_ts:
            # A new timestamp without the marker before it: the marker packet was lost.
            self._broken = True
            frames += self._finish()
        if not self._parts:
            self._frame_ts = ts
            self._broken = self._broken or not self._starts_frame(payload)
        try:
            self._parts += self._depacketize(payload)
        except MalformedPayload:
            self._broken = True
            self._parts.append(b"")
        if marker:
            frames += self._finish()
        return frames

    def _starts_frame(self, payload: bytes) -> bool:
        if self.codec == "vp8":
            return vp8_starts_frame(payload)
        # H264: anything but the continuation of a fragmented NAL unit can start an access unit.
        return not (
            payload and payload[0] & 0x1F == 28 and len(payload) > 1 and not payload[1] & 0x80
        )

    def _depacketize(self, payload: bytes) -> list[bytes]:
        if self.codec == "vp8":
            return [payload[vp8_descriptor_size(payload) :]]
        units, self._fu_open = h264_nal_units(payload, self._fu_open)
        return units

    def _finish(self) -> list[Frame]:
        parts, broken = self._parts, self._broken
        self._parts, self._broken, self._fu_open = [], False, False
        if broken:
            self.stats.broken_frames += 1
            if self.video:
                self._waiting_keyframe = True
                self.need_keyframe = True
            return []
        return self._emit(parts, self._frame_ts, True)

    def _emit(self, parts: list[bytes], ts: int, video: bool) -> list[Frame]:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if not data:
            self.stats.broken_frames += 1
            return []
        keyframe = True
        if video:
            vp8 = self.codec == "vp8"
            keyframe = not data[0] & 0x01 if vp8 else 5 in h264_nal_types(data)
            if self._waiting_keyframe:
                if not keyframe:
                    self.stats.skipped_frames += 1
                    return []
                self._waiting_keyframe = False
        self.stats.frames += 1
        return [Frame(data, ts, keyframe)]
