"""The 8-byte packet header every packet starts with, and why a packet is refused.

``version u8 ‖ type u8 ‖ seq u16 ‖ time_ms u32``, little-endian (docs/protocol.md).
A refused packet raises :class:`PacketError` or :class:`PacketVersionError`, both with
the ERROR ``code`` (and ``detail``) a device answers with and a short ``reason`` for
counting.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from insole.errors import ProtocolError, UnsupportedVersionError
from insole.protocol.constants import (
    HEADER_LEN,
    MAX_PACKET_LEN,
    PROTOCOL_VERSION,
    U16_WRAP,
    U32_WRAP,
    ErrorCode,
)


class PacketError(ProtocolError):
    """A packet refused under protocol v1.

    ``code`` is the ERROR code a device answers with, ``detail`` the payload offset of
    the first bad field (BAD_VALUE) and ``reason`` a short name for counting
    (``"truncated"``, ``"bad_length"``, ``"unknown_type"``, ``"unknown_command"``,
    ``"bad_value"``).
    """

    def __init__(self, message: str, code: ErrorCode, *, reason: str, detail: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.detail = detail


class PacketVersionError(UnsupportedVersionError):
    """A packet whose header names a protocol version other than 1."""

    code = ErrorCode.UNSUPPORTED_VERSION
    reason = "unsupported_version"
    detail = 0

    def __init__(self, version: int) -> None:
        super().__init__(unsupported_version_message(version))
        self.version = version


def unsupported_version_message(version: object, what: str = "protocol") -> str:
    return f"{what} version {version} is not supported; this side speaks version {PROTOCOL_VERSION}"


# The refusals the decoders raise; ``reason`` tells a too-short payload ("truncated")
# from any other wrong length.
def bad_length(message: str) -> PacketError:
    return PacketError(message, ErrorCode.BAD_LENGTH, reason="bad_length")


def truncated(message: str) -> PacketError:
    return PacketError(message, ErrorCode.BAD_LENGTH, reason="truncated")


def bad_value(message: str, detail: int) -> PacketError:
    return PacketError(message, ErrorCode.BAD_VALUE, reason="bad_value", detail=detail)


_HEADER = struct.Struct("<BBHI")


@dataclass(frozen=True)
class Header:
    version: int
    type: int
    seq: int
    time_ms: int


def encode_packet(
    packet_type: int, seq: int, time_ms: int, payload: bytes, *, version: int = PROTOCOL_VERSION
) -> bytes:
    """Header + payload. ``seq`` and ``time_ms`` wrap (mod 2^16, 2^32) as the spec says.

    This is the raw layer: it checks only the 1024-byte limit, so it can build packets
    of unknown types or versions for tests of the receiving side.
    """
    if seq < 0 or time_ms < 0:
        raise ProtocolError(f"seq ({seq}) and time_ms ({time_ms}) must not be negative")
    if not 0 <= version <= 0xFF or not 0 <= packet_type <= 0xFF:
        raise ProtocolError(f"version {version} / type {packet_type} do not fit a u8")
    packet = _HEADER.pack(version, packet_type, seq % U16_WRAP, time_ms % U32_WRAP) + bytes(payload)
    if len(packet) > MAX_PACKET_LEN:
        raise ProtocolError(f"packet of {len(packet)} bytes exceeds the {MAX_PACKET_LEN}-byte limit")
    return packet


def decode_header(data: bytes) -> Header:
    """The 8-byte header, after checking length and version (not the type)."""
    if len(data) < HEADER_LEN:
        raise truncated(f"packet of {len(data)} bytes is shorter than the {HEADER_LEN}-byte header")
    if len(data) > MAX_PACKET_LEN:
        raise bad_length(f"packet of {len(data)} bytes exceeds the {MAX_PACKET_LEN}-byte limit")
    version, ptype, seq, time_ms = _HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise PacketVersionError(version)
    return Header(version, ptype, seq, time_ms)

