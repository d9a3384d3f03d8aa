"""Serial framing: ``COBS(prefix ‖ packet ‖ crc16_le) ‖ 0x00``, and a byte stream to packets.

The link uses no prefix; recordings use a 5-byte ``stream u8 ‖ host_ms u32`` prefix
(docs/recording.md), hence ``prefix_len``. :class:`FrameDecoder` never raises on
garbage, it counts it; :class:`PacketStream` stacks it on :func:`decode_packet` and
counts refused packets by reason.
"""

from __future__ import annotations

import binascii
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from cobs import cobs

from insole.errors import ProtocolError
from insole.protocol.constants import (
    CRC_LEN,
    FIXED_PAYLOAD_LEN,
    HEADER_LEN,
    MAX_PACKET_LEN,
    PROTOCOL_VERSION,
    SAMPLES_HEADER_LEN,
    PacketType,
)
from insole.protocol.header import PacketError, PacketVersionError
from insole.protocol.packets import DecodedPacket, decode_packet


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): 0x29B1 for b"123456789"."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(packet: bytes, prefix: bytes = b"") -> bytes:
    """``COBS(prefix ‖ packet ‖ crc16_le) ‖ 0x00``; the link uses no prefix."""
    body = bytes(prefix) + bytes(packet)
    encoded: bytes = cobs.encode(body + crc16(body).to_bytes(2, "little"))
    return encoded + b"\x00"


def max_encoded_frame_len(prefix_len: int = 0) -> int:
    """Longest COBS-encoded frame (without the 0x00) a receiver has to buffer."""
    raw = prefix_len + MAX_PACKET_LEN + CRC_LEN
    return raw + raw // 254 + 1


# Where a glued frame may start: its packet header's version byte then a known packet
# type. COBS leaves both as they are (neither is 0, and a block is 254 bytes long), 1 +
# prefix_len bytes after the frame's first code byte; without a prefix that code byte
# is at least 3, as its block holds both.
_HEADER = re.escape(bytes([PROTOCOL_VERSION])) + b"[" + re.escape(bytes([min(PacketType)])) + b"-" + re.escape(
    bytes([max(PacketType)])
) + b"]"
_PACKET_TYPES = frozenset(int(t) for t in PacketType)
_FRAME_START = {0: re.compile(b"[\x03-\xff]" + _HEADER), "prefixed": re.compile(_HEADER)}
# Per failed run, at most this many tails that decode are checked (CRC), so the work
# stays linear in the input whatever it holds. Two: a tail of garbage that both decodes
# and starts like a packet header, before a glued frame, is rare; two rarer still.
_GLUED_TRIES = 2
# A feed() with more 0x00 than this locates its runs with numpy: junk of short runs (or
# 0x00 only) would otherwise cost a Python loop per run.
_MANY_RUNS = 64


class FrameDecoder:
    """Splits a byte stream into verified frames; never raises on garbage.

    ``feed(data)`` returns the frame contents (``prefix ‖ packet``, CRC stripped and
    checked) completed by ``data``. Bytes between delimiters that fail COBS, CRC or
    the length limits count as one bad frame each; ``skipped_bytes`` counts every byte
    that ended up in no frame. Partial frames are buffered across calls, at most one
    longest frame: older bytes of an over-long run are dropped and counted.

    With ``recover_glued`` (the default) a frame glued to preceding garbage (no 0x00 in
    between) is still found: when a run fails, the decoder tries the tails of the run
    that start with a packet header (version 1, a known type), longest first, two per
    run at most. A receiver that only splits at 0x00
    agrees on every stream where garbage is followed by a delimiter.

    The work is linear in the input: ``checked_bytes`` counts the bytes handed to COBS
    decoding (whole runs and tried tails), at most a few times the bytes fed.
    """

    def __init__(self, prefix_len: int = 0, *, recover_glued: bool = True) -> None:
        self.prefix_len = prefix_len
        self.min_frame_len = prefix_len + HEADER_LEN + CRC_LEN
        self.max_frame_len = prefix_len + MAX_PACKET_LEN + CRC_LEN
        self.max_encoded_len = max_encoded_frame_len(prefix_len)
        self.recover_glued = recover_glued
        self.frames = 0
        self.bad_frames = 0
        self.skipped_bytes = 0
        self.checked_bytes = 0
        self.bad_reasons: Counter[str] = Counter()
        self._buffer = bytearray()
        self._overflowed = False
        # Shortest run that can hold a frame: its decoded bytes plus the first code byte.
        self._min_encoded_len = self.min_frame_len + 1

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame waiting for their 0x00 (a torn tail at end of input)."""
        return len(self._buffer)

    def reset(self) -> None:
        """Drop any partial frame (e.g. after reopening a link)."""
        self.skipped_bytes += len(self._buffer)
        self._buffer.clear()
        self._overflowed = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        data = bytes(data)
        delimiters = data.count(0)
        if not delimiters:
            self._buffer += data
            self._trim_buffer()
            return []
        out: list[bytes] = []
        first_end = data.index(0)
        last_end = data.rindex(0)
        short: list[bytes] = []  # runs too short for a frame, counted at the end
        first = bytes(self._buffer) + data[:first_end]
        if len(first) >= self._min_encoded_len or self._overflowed:
            self._process_run(first, self._overflowed, out)
        elif first:
            short.append(first)
        if delimiters > _MANY_RUNS:
            self._process_many_runs(data, out)
        else:
            for run in data[first_end + 1 : last_end].split(b"\x00"):
                if len(run) >= self._min_encoded_len:
                    self._process_run(run, False, out)
                elif run:  # empty runs (00 00) are harmless: senders may flush with 0x00
                    short.append(run)
        if short:
            lengths = np.fromiter(map(len, short), dtype=np.int64, count=len(short))
            ends = np.cumsum(lengths)
            self._count_short(np.frombuffer(b"".join(short), dtype=np.uint8), ends - lengths, ends)
        self._buffer = bytearray(data[last_end + 1 :])
        self._overflowed = False
        self._trim_buffer()
        return out

    def _process_many_runs(self, data: bytes, out: list[bytes]) -> None:
        """The runs between the first and the last 0x00 of ``data``, located without a
        Python loop per run: junk of short runs (or 00 00, a harmless flush) costs no
        more than frames."""
        codes = np.frombuffer(data, dtype=np.uint8)
        delimiters = np.flatnonzero(codes == 0)
        starts = delimiters[:-1] + 1
        ends = delimiters[1:]
        lengths = ends - starts
        for start, end in _spans(starts, ends, lengths >= self._min_encoded_len):
            self._process_run(data[start:end], False, out)
        short = (lengths > 0) & (lengths < self._min_encoded_len)
        if short.any():
            self._count_short(codes, starts[short], ends[short])

    def _count_short(
        self, codes: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
    ) -> None:
        """Runs ``codes[start:end]`` too short to hold a frame (and so is every tail of
        theirs), counted by reason: "too_short" when their code bytes chain to the run's
        end (COBS decodes them), else "bad_cobs"; the chains of all of them walked at once."""
        at = starts.copy()
        walking = np.ones(len(at), dtype=bool)
        while walking.any():
            at[walking] += codes[at[walking]]
            walking = at < ends
        landed = int(np.count_nonzero(at == ends))
        self.bad_frames += len(at)
        self.skipped_bytes += int((ends - starts).sum())
        if landed:
            self.bad_reasons["too_short"] += landed
        if landed < len(at):
            self.bad_reasons["bad_cobs"] += len(at) - landed

    def _trim_buffer(self) -> None:
        excess = len(self._buffer) - self.max_encoded_len
        if excess > 0:
            # Keep the newest bytes: a valid frame may still end this run.
            del self._buffer[:excess]
            self.skipped_bytes += excess
            self._overflowed = True

    def _check(self, encoded: bytes) -> tuple[bytes | None, str]:
        self.checked_bytes += len(encoded)
        try:
            raw = cobs.decode(encoded)
        except cobs.DecodeError:
            return None, "bad_cobs"
        if len(raw) < self.min_frame_len:
            return None, "too_short"
        if len(raw) > self.max_frame_len:
            return None, "too_long"
        body = raw[:-CRC_LEN]
        if crc16(body) != int.from_bytes(raw[-CRC_LEN:], "little"):
            return None, "bad_crc"
        return body, "ok"

    def _process_run(self, run: bytes, overflowed: bool, out: list[bytes]) -> None:
        n = len(run)
        whole_checked = not overflowed and n <= self.max_encoded_len
        if whole_checked:
            body, reason = self._check(run)
            if body is not None:
                self.frames += 1
                out.append(body)
                return
        else:
            reason = "too_long"
        self._count_bad(reason)
        recovered = self._recover_tail(run, 1 if whole_checked else 0) if self.recover_glued else None
        if recovered is None:
            self.skipped_bytes += n
            return
        start, body = recovered
        self.skipped_bytes += start
        self.frames += 1
        out.append(body)

    def _count_bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] += 1

    def _recover_tail(self, run: bytes, first_start: int) -> tuple[int, bytes] | None:
        """(start, frame body) of a valid frame that ends ``run``, if one is found.

        A tail can be that frame only if its COBS code bytes chain to the run's end, it
        starts with a packet header (version 1, a known type), and it decodes to that
        packet's length (from the fixed payload lengths, or a SAMPLES batch's count and
        record size). One backward pass over the run gives every start's chain end and
        decoded length, and a few hops decode a candidate's header: damaged frames full
        of header-like bytes (zero-rich ones are) cost O(1) per candidate. The longest
        plausible tails are decoded and CRC-checked, at most ``_GLUED_TRIES``: the work
        stays linear in the run.
        """
        n = len(run)
        lowest = max(first_start, n - self.max_encoded_len)
        last = n - self._min_encoded_len
        if last < lowest:
            return None
        prefix_len = self.prefix_len
        pattern = _FRAME_START[0] if prefix_len == 0 else _FRAME_START["prefixed"]
        to_match = 0 if prefix_len == 0 else 1 + prefix_len  # from the frame's first code byte
        match = pattern.search(run, lowest + to_match)
        if match is None or match.start() - to_match > last:
            return None
        decoded_lens = _decoded_lengths(run, lowest)
        head_len = prefix_len + HEADER_LEN + SAMPLES_HEADER_LEN
        tries = _GLUED_TRIES
        while match is not None and tries:
            start = match.start() - to_match
            if start > last:
                break
            decoded_len = decoded_lens[start - lowest]
            if decoded_len >= 0 and _plausible(_decode_head(run, start, head_len), prefix_len, decoded_len):
                tries -= 1
                body, _reason = self._check(run[start:])
                if body is not None:
                    return start, body
            match = pattern.search(run, match.start() + 1)  # overlapping matches too
        return None


def _decoded_lengths(run: bytes, lowest: int) -> list[int]:
    """For each start i >= ``lowest``: the length ``run[i:]`` COBS-decodes to, or -1 where
    its code bytes do not chain to the run's end (``[i - lowest]``; one backward pass)."""
    n = len(run)
    lengths = [-1] * (n - lowest + 1)
    lengths[n - lowest] = 0
    for i in range(n - 1, lowest - 1, -1):
        code = run[i]
        j = i + code
        if j <= n:
            rest = lengths[j - lowest]
            if rest >= 0:
                # The block's data bytes, and the 0x00 it stands for unless it is the
                # last block or a full one (0xFF).
                lengths[i - lowest] = rest + code - 1 + (code < 0xFF and j < n)
    return lengths


def _decode_head(run: bytes, start: int, count: int) -> bytes:
    """The first ``count`` bytes ``run[start:]`` decodes to (fewer if it is shorter)."""
    n = len(run)
    head = bytearray()
    at = start
    while len(head) < count and at < n:
        code = run[at]
        head += run[at + 1 : at + code]
        at += code
        if code < 0xFF and at < n:
            head.append(0)
    return bytes(head[:count])


def _plausible(head: bytes, prefix_len: int, decoded_len: int) -> bool:
    """Whether a frame whose decoded bytes start with ``head`` can be ``decoded_len`` long."""
    if len(head) < prefix_len + HEADER_LEN or head[prefix_len] != PROTOCOL_VERSION:
        return False
    packet_type = head[prefix_len + 1]
    if packet_type not in _PACKET_TYPES:
        return False
    packet_len = decoded_len - prefix_len - CRC_LEN
    fixed = FIXED_PAYLOAD_LEN.get(packet_type)
    if fixed is not None:
        return packet_len == HEADER_LEN + fixed
    if packet_type == PacketType.SAMPLES:
        if len(head) < prefix_len + HEADER_LEN + SAMPLES_HEADER_LEN:
            return False
        at = prefix_len + HEADER_LEN + 4  # count, n_pressure, imu
        count, n_pressure, imu = head[at], head[at + 1], head[at + 2]
        record = 2 * n_pressure + 12 * imu
        return packet_len == HEADER_LEN + SAMPLES_HEADER_LEN + count * record
    return HEADER_LEN <= packet_len <= MAX_PACKET_LEN


def _spans(starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    return list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))


class PacketStream:
    """Frames → decoded packets, counting every refusal by reason; never raises.

    ``bad_packets`` counts frames that passed the CRC but whose packet was refused,
    keyed by reason (``"unsupported_version"``, ``"bad_length"``, ``"truncated"``,
    ``"unknown_type"``, ``"unknown_command"``, ``"bad_value"``); ``last_error`` keeps
    the latest refusal for a message.
    """

    def __init__(self, prefix_len: int = 0, *, recover_glued: bool = True) -> None:
        self.decoder = FrameDecoder(prefix_len, recover_glued=recover_glued)
        self.bad_packets: Counter[str] = Counter()
        self.last_error: ProtocolError | None = None
        self.packets = 0

    @property
    def bad_frames(self) -> int:
        return self.decoder.bad_frames

    @property
    def unsupported_version(self) -> int:
        return self.bad_packets["unsupported_version"]

    def feed(self, data: bytes, on_frame: Callable[[bytes], None] | None = None) -> list[DecodedPacket]:
        """Decoded packets completed by ``data``. ``on_frame`` sees every verified frame
        body first, unchanged, whether or not its packet decodes (recorders keep those)."""
        out = []
        prefix_len = self.decoder.prefix_len
        for body in self.decoder.feed(data):
            if on_frame is not None:
                on_frame(body)
            try:
                out.append(decode_packet(body[prefix_len:]))
            except (PacketError, PacketVersionError) as exc:
                self.bad_packets[exc.reason] += 1
                self.last_error = exc
        self.packets += len(out)
        return out

