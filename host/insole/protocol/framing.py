"""Serial framing: ``COBS(prefix ‖ packet ‖ crc16_le) ‖ 0x00``, and a byte stream to packets.

The link uses no prefix; recordings use a 5-byte ``stream u8 ‖ host_ms u32`` prefix
(docs/recording.md), hence ``prefix_len``. :class:`FrameDecoder` never raises on
garbage, it counts it; :class:`PacketStream` stacks it on :func:`decode_packet` and
counts refused packets by reason.
"""

from __future__ import annotations

import binascii
from collections import Counter
from collections.abc import Callable

from cobs import cobs

from insole.errors import ProtocolError
from insole.protocol.constants import CRC_LEN, HEADER_LEN, MAX_PACKET_LEN
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


class FrameDecoder:
    """Splits a byte stream into verified frames; never raises on garbage.

    ``feed(data)`` returns the frame contents (``prefix ‖ packet``, CRC stripped and
    checked) completed by ``data``. Bytes between delimiters that fail COBS, CRC or
    the length limits count as one bad frame each; ``skipped_bytes`` counts every byte
    that ended up in no frame. Partial frames are buffered across calls, at most one
    longest frame: older bytes of an over-long run are dropped and counted.

    With ``recover_glued`` (the default) a frame glued to preceding garbage (no 0x00 in
    between) is still found: when a run fails, the decoder looks for the longest tail
    of the run that is a valid frame. A receiver that only splits at 0x00 agrees on
    every stream where garbage is followed by a delimiter.
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
        self.bad_reasons: Counter[str] = Counter()
        self._buffer = bytearray()
        self._overflowed = False

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
        parts = bytes(data).split(b"\x00")
        if len(parts) == 1:
            self._buffer += parts[0]
            self._trim_buffer()
            return []
        out: list[bytes] = []
        first = bytes(self._buffer) + parts[0]
        self._process_run(first, self._overflowed, out)
        for run in parts[1:-1]:
            self._process_run(run, False, out)
        self._buffer = bytearray(parts[-1])
        self._overflowed = False
        self._trim_buffer()
        return out

    def _trim_buffer(self) -> None:
        excess = len(self._buffer) - self.max_encoded_len
        if excess > 0:
            # Keep the newest bytes: a valid frame may still end this run.
            del self._buffer[:excess]
            self.skipped_bytes += excess
            self._overflowed = True

    def _check(self, encoded: bytes) -> tuple[bytes | None, str]:
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
        if not run:
            return  # empty run between two 0x00: harmless (senders may flush with 0x00)
        whole_checked = not overflowed and len(run) <= self.max_encoded_len
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
            self.skipped_bytes += len(run)
            return
        start, body = recovered
        self.skipped_bytes += start
        self.frames += 1
        out.append(body)

    def _count_bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] += 1

    def _recover_tail(self, run: bytes, first_start: int) -> tuple[int, bytes] | None:
        """(start, frame body) of the longest valid frame that ends ``run``, if any.

        A COBS frame is a chain of code bytes that lands exactly on its end; walking
        backwards marks every start whose chain does, and only those are tried.
        """
        n = len(run)
        lowest = max(first_start, n - self.max_encoded_len)
        lands = bytearray(n + 1)
        lands[n] = 1
        for i in range(n - 1, lowest - 1, -1):
            j = i + run[i]
            lands[i] = 1 if j <= n and lands[j] else 0
        for start in range(lowest, n - self.min_frame_len):
            if lands[start]:
                body, _reason = self._check(run[start:])
                if body is not None:
                    return start, body
        return None


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

