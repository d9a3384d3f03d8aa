"""The recording format (version 2, docs/recording.md): the opening lines and the record frames.

A recording is three text lines (magic, a one-line JSON header, and the CRC-32 of the
two lines before it) followed by record frames
``COBS(stream u8 ‖ host_ms u32 ‖ packet ‖ crc16_le) ‖ 0x00``. The header says what each
stream is (side, rate, channels, pressure scale, layout …). Version 1 recordings (no
checksum line) still read.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from insole.errors import ProtocolError, UnsupportedVersionError, UserError
from insole.model import FootStream
from insole.protocol import (
    HEADER_LEN,
    MAX_PACKET_LEN,
    PROTOCOL_VERSION,
    U32_WRAP,
    Status,
    frame,
    unsupported_version_message,
)

MAGIC = b"INSOLE-RECORDING"
FORMAT_NAME = "insole-recording"
FORMAT_VERSION = 2
# Version 1 is version 2 without the checksum line (recordings written before it existed).
READABLE_FORMAT_VERSIONS = (1, 2)
SUFFIX = ".insole"
RECORD_PREFIX = struct.Struct("<BI")  # stream u8, host_ms u32
RECORD_PREFIX_LEN = RECORD_PREFIX.size
SOURCES = ("device", "simulated", "moticon", "gaitpdb", "csv")

# A header line longer than this is not a header (guards against reading a huge binary file as text).
MAX_HEADER_LINE = 1 << 20
MAX_FIRST_LINE = 64
# Line 3 of a version 2 recording: "crc32 " and the CRC-32 (zlib's) of lines 1 and 2, exact bytes.
# Lower-case hex only, so that a flipped case bit is damage too, not a second spelling.
HEADER_CHECKSUM_LINE = re.compile(rb"crc32 ([0-9a-f]{8})\n")
HEADER_CHECKSUM_LINE_LEN = len(b"crc32 01234567\n")


class NotARecordingError(UserError):
    """The file is not an insole recording (or its header is unreadable)."""


class DamagedHeaderError(NotARecordingError):
    """A recording whose header (the lines that say what the samples mean) is damaged:
    its checksum does not match, or its lines are broken. Nothing after it is read, since
    a damaged scale, rate or channel count would turn every sample into wrong numbers."""

    advice = "restore the file from a copy; its samples cannot be interpreted without an intact header"

    def __init__(self, origin: str, detail: str) -> None:
        super().__init__(f"{origin}: the recording's header is damaged ({detail})")


class RecordingVersionError(UnsupportedVersionError):
    """A recording of another format or protocol version: a file the user gave that this
    host cannot read (the CLI's exit status 2, as for other unusable input)."""

    exit_code = 2


def stream_header(
    *,
    side: str,
    rate_hz: float,
    n_pressure: int,
    imu: bool,
    pressure_scale: float = 1.0,
    pressure_unit: str = "counts",
    layout: str = "",
    t0_s: float = 0.0,
    firmware_version: str = "",
    device: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of the header's ``streams`` list (for live recording, before any sample exists)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    entry: dict[str, Any] = {
        "side": side,
        "rate_hz": float(rate_hz),
        "t0_s": float(t0_s),
        "n_pressure": int(n_pressure),
        "imu": bool(imu),
        "layout": layout,
        "pressure_unit": pressure_unit,
        "pressure_scale": float(pressure_scale),
        "firmware_version": firmware_version,
        "device": device,
    }
    if extra:
        entry["extra"] = extra
    return entry


def stream_header_for(stream: FootStream, pressure_scale: float) -> dict[str, Any]:
    """The header entry describing a FootStream quantised with ``pressure_scale``."""
    return stream_header(
        side=stream.side,
        rate_hz=stream.rate_hz,
        n_pressure=stream.n_pressure,
        imu=stream.has_imu,
        pressure_scale=pressure_scale,
        pressure_unit=stream.pressure_unit,
        layout=stream.layout,
        t0_s=stream.t0_s,
        firmware_version=stream.firmware_version,
        device=stream.device,
        extra=dict(stream.extra) if stream.extra else None,
    )


def make_header(
    *,
    source: str,
    streams: Sequence[dict[str, Any]],
    start_time_utc: str | None = None,
    source_file: str | None = None,
    ground_truth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete, validated recording header. ``start_time_utc`` is null when unknown."""
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "start_time_utc": start_time_utc,
        "source": source,
        "streams": [dict(s) for s in streams],
    }
    if source_file is not None:
        header["source_file"] = source_file
    if ground_truth is not None:
        header["ground_truth"] = ground_truth
    validate_header(header, origin="header")
    return header


def device_header(feet: Sequence[tuple[str, float, Status, str]]) -> dict[str, Any]:
    """The header of a recording of live insoles, from what each said about itself:
    ``(side, rate_hz, STATUS, device)`` per foot; started now."""
    streams = [
        stream_header(
            side=side,
            rate_hz=rate_hz,
            n_pressure=status.n_pressure,
            imu=bool(status.imu),
            pressure_unit="counts",
            layout="insole8" if status.n_pressure == 8 else "",
            firmware_version=f"{status.fw_major}.{status.fw_minor}.{status.fw_patch}",
            device=device,
        )
        for side, rate_hz, status, device in feet
    ]
    return make_header(source="device", streams=streams, start_time_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _unsupported_format_message(origin: str, version: object) -> str:
    readable = " and ".join(str(v) for v in READABLE_FORMAT_VERSIONS)
    return f"{origin}: recording format version {version} is not supported; this side reads versions {readable}"


def validate_header(header: dict[str, Any], *, origin: str, format_version: int = FORMAT_VERSION) -> None:
    """Raise UnsupportedVersionError for other versions and NotARecordingError for a bad
    header. ``format_version`` is the one the first line gave (the header must agree)."""
    if header.get("format") != FORMAT_NAME:
        raise NotARecordingError(f"{origin}: header format is {header.get('format')!r}, expected {FORMAT_NAME!r}")
    declared = header.get("format_version")
    if declared not in READABLE_FORMAT_VERSIONS:
        raise RecordingVersionError(_unsupported_format_message(origin, declared))
    if declared != format_version:
        raise NotARecordingError(
            f"{origin}: the header says format version {declared}, its first line {format_version}"
        )
    if header.get("protocol_version") != PROTOCOL_VERSION:
        message = unsupported_version_message(header.get("protocol_version"))
        raise RecordingVersionError(f"{origin}: {message}")
    streams = header.get("streams")
    if not isinstance(streams, list) or not streams:
        raise NotARecordingError(f"{origin}: header has no streams")
    if len(streams) > 256:
        raise NotARecordingError(f"{origin}: {len(streams)} streams; the stream id is a u8")
    for i, s in enumerate(streams):
        try:
            # Every key the reader needs, read up front: a damaged header is reported as
            # such, not as a KeyError later.
            imu = s["imu"]
            ok = (
                s["side"] in ("left", "right")
                and float(s["rate_hz"]) > 0
                and 0 <= int(s["n_pressure"]) <= 16
                and isinstance(imu, bool)
                and (int(s["n_pressure"]) > 0 or imu)
                and float(s.get("pressure_scale", 1.0)) > 0
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NotARecordingError(f"{origin}: stream {i} in the header is incomplete: {exc!r}") from exc
        if not ok:
            raise NotARecordingError(f"{origin}: stream {i} in the header is invalid: {s}")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def header_bytes(header: dict[str, Any]) -> bytes:
    """The three text lines that open a recording: magic, JSON header, their checksum."""
    line = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    opening = MAGIC + b" %d\n" % FORMAT_VERSION + line.encode("utf-8") + b"\n"
    return opening + b"crc32 %08x\n" % zlib.crc32(opening)


def read_opening(f: BinaryIO) -> bytes:
    """The bytes of a recording's opening lines from the start of an open file (with a
    version 1 recording, some frame bytes too: parse_header says where the frames begin)."""
    return f.readline(MAX_FIRST_LINE) + f.readline(MAX_HEADER_LINE) + f.readline(HEADER_CHECKSUM_LINE_LEN)


def parse_header(data: bytes, origin: str) -> tuple[dict[str, Any], int]:
    """(header, offset of the first frame byte) of a recording's bytes.

    The checksum line is checked first, over the exact bytes before it, so that damage
    anywhere in the opening lines (the magic and the version included) is reported as a
    damaged header rather than read as another header, version or file type.
    """
    end1 = data.find(b"\n", 0, MAX_FIRST_LINE)
    end2 = data.find(b"\n", end1 + 1, end1 + 1 + MAX_HEADER_LINE) if end1 >= 0 else -1
    line3 = data[end2 + 1 : end2 + 1 + HEADER_CHECKSUM_LINE_LEN] if end2 >= 0 else b""
    checksum = HEADER_CHECKSUM_LINE.fullmatch(line3)
    if checksum is not None and int(checksum[1], 16) != zlib.crc32(data[: end2 + 1]):
        raise DamagedHeaderError(origin, "its CRC-32 does not match its bytes")
    if not data.startswith(MAGIC + b" "):
        raise NotARecordingError(f"{origin} is not an insole recording (it does not start with 'INSOLE-RECORDING')")
    # From here on the file says it is a recording: what cannot be read is damage.
    try:
        version = int(data[len(MAGIC) + 1 : end1]) if end1 > 0 else None
    except ValueError:
        version = None
    if version is None:
        raise DamagedHeaderError(origin, "the first line is not 'INSOLE-RECORDING <version>'")
    if version not in READABLE_FORMAT_VERSIONS:
        raise RecordingVersionError(_unsupported_format_message(origin, version))
    if end2 < 0:
        raise DamagedHeaderError(origin, "the JSON header line is missing or incomplete")
    body_start = end2 + 1
    if version >= 2:
        if checksum is None:
            raise DamagedHeaderError(origin, "its checksum line is missing or broken")
        body_start += HEADER_CHECKSUM_LINE_LEN
    try:
        header = json.loads(data[end1 + 1 : end2].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedHeaderError(origin, f"the header line is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise DamagedHeaderError(origin, "the header line is not a JSON object")
    validate_header(header, origin=origin, format_version=version)
    return header, body_start


def read_header(path: Path) -> dict[str, Any]:
    """Only the JSON header (cheap: reads the first lines)."""
    path = Path(path)
    with open(path, "rb") as f:
        opening = read_opening(f)
    return parse_header(opening, str(path))[0]


def frame_record(stream: int, host_ms: int, packet: bytes) -> bytes:
    """One record frame: ``COBS(stream ‖ host_ms ‖ packet ‖ crc16_le) ‖ 0x00``."""
    if not 0 <= stream <= 0xFF:
        raise ValueError(f"stream id {stream} does not fit a u8")
    if not HEADER_LEN <= len(packet) <= MAX_PACKET_LEN:
        raise ProtocolError(f"packet of {len(packet)} bytes; expected {HEADER_LEN}..{MAX_PACKET_LEN}")
    if host_ms < 0:
        raise ValueError(f"host_ms must not be negative, got {host_ms}")
    return frame(packet, RECORD_PREFIX.pack(stream, host_ms % U32_WRAP))
