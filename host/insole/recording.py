"""Recordings (``.insole``), format version 1: see docs/recording.md.

A recording is two text lines (magic and a one-line JSON header) followed by record
frames ``COBS(stream u8 ‖ host_ms u32 ‖ packet ‖ crc16_le) ‖ 0x00``. Writers only
append whole frames, so a crash leaves at most one torn frame at the end, which the
reader ignores.

* :func:`write_recording` quantises finished :class:`~insole.model.FootStream`s
  (importers, simulator) into SAMPLES packets and writes a whole file.
* :class:`RecordingWriter` appends packets as they arrive from a device.
* :func:`read_recording` returns the streams in physical units (NaN for n/a values
  and for lost samples), the event packets and what was dropped on the way,
  including events the device reported lost for good (BACKFILL_END packets).
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from insole.clocksync import SampleTimeline, sample_timeline
from insole.errors import ProtocolError, UnsupportedVersionError, UserError
from insole.model import FloatArray, FootStream
from insole.protocol import (
    HEADER_LEN,
    LOGGED_EVENT_TYPES,
    MAX_PACKET_LEN,
    NA_I16,
    PROTOCOL_VERSION,
    U32_WRAP,
    BackfillEnd,
    DecodedPacket,
    FrameDecoder,
    PacketError,
    PacketType,
    PacketVersionError,
    choose_pressure_scale,
    counts_to_pressure,
    decode_packet,
    decode_sample_batches,
    encode_samples,
    frame,
    imu_to_raw,
    pressure_to_counts,
    raw_to_imu,
    unsupported_version_message,
)

MAGIC = b"INSOLE-RECORDING"
FORMAT_NAME = "insole-recording"
FORMAT_VERSION = 1
SUFFIX = ".insole"
RECORD_PREFIX = struct.Struct("<BI")  # stream u8, host_ms u32
RECORD_PREFIX_LEN = RECORD_PREFIX.size
SOURCES = ("device", "simulated", "moticon", "gaitpdb", "csv")

# A header line longer than this is not a header (guards against reading a huge binary file as text).
_MAX_HEADER_LINE = 1 << 20
# Fill at most this many lost-sample rows beyond 10× the samples present: more means corruption.
_MAX_GAP_ROWS = 1_000_000


class NotARecordingError(UserError):
    """The file is not an insole recording (or its header is unreadable)."""


class RecordingVersionError(UnsupportedVersionError, UserError):
    """A recording of another format or protocol version (a UserError, so the CLI prints it plainly)."""


# --------------------------------------------------------------------------- header


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


def validate_header(header: dict[str, Any], *, origin: str) -> None:
    """Raise UnsupportedVersionError for other versions and NotARecordingError for a bad header."""
    if header.get("format") != FORMAT_NAME:
        raise NotARecordingError(f"{origin}: header format is {header.get('format')!r}, expected {FORMAT_NAME!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise RecordingVersionError(
            f"{origin}: recording format version {header.get('format_version')} is not supported; "
            f"this side reads version {FORMAT_VERSION}"
        )
    if header.get("protocol_version") != PROTOCOL_VERSION:
        message = unsupported_version_message(header.get("protocol_version"))  # type: ignore[arg-type]
        raise RecordingVersionError(f"{origin}: {message}")
    streams = header.get("streams")
    if not isinstance(streams, list) or not streams:
        raise NotARecordingError(f"{origin}: header has no streams")
    if len(streams) > 256:
        raise NotARecordingError(f"{origin}: {len(streams)} streams; the stream id is a u8")
    for i, s in enumerate(streams):
        try:
            ok = (
                s["side"] in ("left", "right")
                and float(s["rate_hz"]) > 0
                and 0 <= int(s["n_pressure"]) <= 16
                and (int(s["n_pressure"]) > 0 or bool(s["imu"]))
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
    """The two text lines that open a recording."""
    line = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    return MAGIC + b" %d\n" % FORMAT_VERSION + line.encode("utf-8") + b"\n"


def _parse_header(data: bytes, origin: str) -> tuple[dict[str, Any], int]:
    """(header, offset of the first frame byte) of a recording's bytes."""
    if not data.startswith(MAGIC + b" "):
        raise NotARecordingError(f"{origin} is not an insole recording (it does not start with 'INSOLE-RECORDING 1')")
    end1 = data.find(b"\n", 0, 64)
    try:
        version = int(data[len(MAGIC) + 1 : end1]) if end1 > 0 else None
    except ValueError:
        version = None
    if version is None:
        raise NotARecordingError(f"{origin}: the first line is not 'INSOLE-RECORDING <version>'")
    if version != FORMAT_VERSION:
        raise RecordingVersionError(
            f"{origin}: recording format version {version} is not supported; this side reads version {FORMAT_VERSION}"
        )
    end2 = data.find(b"\n", end1 + 1, end1 + 1 + _MAX_HEADER_LINE)
    if end2 < 0:
        raise NotARecordingError(f"{origin}: the JSON header line is missing or incomplete")
    try:
        header = json.loads(data[end1 + 1 : end2].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotARecordingError(f"{origin}: the header line is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise NotARecordingError(f"{origin}: the header line is not a JSON object")
    validate_header(header, origin=origin)
    return header, end2 + 1


def read_header(path: Path) -> dict[str, Any]:
    """Only the JSON header (cheap: reads the first lines)."""
    path = Path(path)
    with open(path, "rb") as f:
        first = f.readline(64)
        second = f.readline(_MAX_HEADER_LINE)
    return _parse_header(first + second, str(path))[0]


# --------------------------------------------------------------------------- writing


def frame_record(stream: int, host_ms: int, packet: bytes) -> bytes:
    """One record frame: ``COBS(stream ‖ host_ms ‖ packet ‖ crc16_le) ‖ 0x00``."""
    if not 0 <= stream <= 0xFF:
        raise ValueError(f"stream id {stream} does not fit a u8")
    if not HEADER_LEN <= len(packet) <= MAX_PACKET_LEN:
        raise ProtocolError(f"packet of {len(packet)} bytes; expected {HEADER_LEN}..{MAX_PACKET_LEN}")
    if host_ms < 0:
        raise ValueError(f"host_ms must not be negative, got {host_ms}")
    return frame(packet, RECORD_PREFIX.pack(stream, host_ms % U32_WRAP))


def write_recording(
    path: Path,
    streams: list[FootStream],
    *,
    source: str,
    start_time_utc: str | None = None,
    source_file: str | None = None,
    ground_truth: dict[str, Any] | None = None,
    pressure_scales: list[float] | None = None,
) -> None:
    """Write finished streams as a recording (host_ms 0, as for imported data).

    Pressure is stored as counts × ``pressure_scale``; without ``pressure_scales`` each
    stream gets a round scale that puts its maximum near 60000 counts. Negative
    pressures clip to 0 (the field is unsigned). SAMPLES batches of all streams are
    interleaved in sample-time order, so a sequential reader sees them as a device
    would have sent them. The file appears atomically (written beside, then renamed).
    """
    path = Path(path)
    if not streams:
        raise ValueError("a recording needs at least one stream")
    if pressure_scales is not None and len(pressure_scales) != len(streams):
        raise ValueError(f"{len(pressure_scales)} pressure scales for {len(streams)} streams")
    entries = []
    timed_frames: list[tuple[float, int, int, bytes]] = []
    for stream_id, stream in enumerate(streams):
        if pressure_scales is not None:
            scale = float(pressure_scales[stream_id])
        elif stream.pressure is not None:
            scale = choose_pressure_scale(stream.pressure)
        else:
            scale = 1.0
        entries.append(stream_header_for(stream, scale))
        pressure_counts = None if stream.pressure is None else pressure_to_counts(stream.pressure, scale)
        imu_raw = None if not stream.has_imu else imu_to_raw(stream.acc_ms2, stream.gyro_dps)  # type: ignore[arg-type]
        if stream.n_samples == 0:
            continue
        packets = encode_samples(0, pressure_counts, imu_raw, rate_hz=stream.rate_hz)
        for seq, packet in enumerate(packets):
            sent = int.from_bytes(packet[8:12], "little") + packet[12]
            sent_s = stream.t0_s + sent / stream.rate_hz
            timed_frames.append((sent_s, stream_id, seq, frame_record(stream_id, 0, packet)))
    header = make_header(
        source=source,
        streams=entries,
        start_time_utc=start_time_utc,
        source_file=source_file,
        ground_truth=ground_truth,
    )
    timed_frames.sort(key=lambda item: item[:3])
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "wb") as f:
        f.write(header_bytes(header))
        f.write(b"".join(item[3] for item in timed_frames))
    os.replace(temporary, path)


class RecordingWriter:
    """Appends packets to a recording as they arrive (live recording).

    The file is opened with O_APPEND and every :meth:`append` is one ``write()`` of one
    whole frame, straight to the kernel (no user-space buffer), so a killed process
    leaves every appended frame on disk and at most one torn frame. With
    ``fsync=True``, :meth:`flush` and :meth:`close` also force the data to the device
    (survives power loss).

    A new file is created (``FileExistsError`` if it exists) unless ``append=True``,
    which continues an existing recording: its own header stays (``header`` is only
    used when the file is new) and a torn last frame is closed with a 0x00 first so
    the next frame starts clean.
    """

    def __init__(self, path: Path, header: dict[str, Any], *, fsync: bool = False, append: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.frames_written = 0
        if append and self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                opening = f.readline(64) + f.readline(_MAX_HEADER_LINE)
                self.header = _parse_header(opening, str(self.path))[0]
                f.seek(0, os.SEEK_END)
                has_frames = f.tell() > len(opening)
                f.seek(-1, os.SEEK_END)
                torn = has_frames and f.read(1) != b"\x00"
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            if torn:
                self._write(b"\x00")
        else:
            complete = dict(header)
            complete.setdefault("format", FORMAT_NAME)
            complete.setdefault("format_version", FORMAT_VERSION)
            complete.setdefault("protocol_version", PROTOCOL_VERSION)
            validate_header(complete, origin=str(self.path))
            self.header = complete
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if append else os.O_EXCL)
            self._fd = os.open(self.path, flags, 0o644)
            self._write(header_bytes(complete))
            self.flush()
        self._n_streams = len(self.header["streams"])

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a regular file takes it in one go; loop for the pathological short write
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, stream: int, packet: bytes, host_ms: int) -> None:
        """Append one packet received on ``stream`` at ``host_ms`` (ms since start_time_utc)."""
        if not 0 <= stream < self._n_streams:
            raise ValueError(f"stream {stream} is not in the header ({self._n_streams} streams)")
        self._write(frame_record(stream, host_ms, packet))
        self.frames_written += 1

    def append_many(self, items: Iterable[tuple[int, bytes, int]]) -> None:
        """Append several ``(stream, packet, host_ms)`` at once: one write of whole frames."""
        frames = []
        for stream, packet, host_ms in items:
            if not 0 <= stream < self._n_streams:
                raise ValueError(f"stream {stream} is not in the header ({self._n_streams} streams)")
            frames.append(frame_record(stream, host_ms, packet))
        if frames:
            self._write(b"".join(frames))
            self.frames_written += len(frames)

    def flush(self) -> None:
        """Data is already in the kernel after each append; with ``fsync`` also on disk."""
        if self.fsync and self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LostEvents:
    """Events of one stream that the device reported gone for good: ``count`` seqs of
    ``event_type`` from ``first_seq`` (wrapping at 65536)."""

    stream: int
    event_type: int
    first_seq: int
    count: int


@dataclass
class Recording:
    """A recording read back: streams in physical units and what did not survive.

    ``streams[i]`` is row-aligned with sample index: row k is index k, at
    ``t0_s + k / rate_hz``; indices that never arrived are NaN rows, counted in
    ``lost_samples[i]``. ``events`` are all non-SAMPLES packets in file order, with
    their ``stream`` and ``host_ms`` set. ``bad_frames`` counts frames that failed
    COBS/CRC/length checks, ``bad_packets`` frames whose packet was refused (by
    reason), and ``torn_tail`` tells whether the file ends in an unfinished frame.

    Events a device resent after a link loss (GET_EVENTS) may be in the file twice;
    ``events`` keeps the first copy of each identical STEP, HEEL_RAISE or CUE packet
    (``duplicate_events`` counts the others). ``lost_events`` lists the event seqs the
    device said were gone for good (from the BACKFILL_END packets in the file).
    """

    path: Path
    header: dict[str, Any]
    streams: list[FootStream]
    events: list[DecodedPacket]
    bad_frames: int
    torn_tail: bool
    lost_samples: list[int]
    bad_packets: Counter[str] = field(default_factory=Counter)
    lost_events: list[LostEvents] = field(default_factory=list)
    duplicate_events: int = 0
    # Per stream: where its samples fall on the host clock (live recordings), else None.
    timelines: list[SampleTimeline | None] = field(default_factory=list)

    def stream(self, side: str) -> FootStream:
        for s in self.streams:
            if s.side == side:
                return s
        raise KeyError(f"no {side} stream in {self.path}")


def _decode_stream_samples(
    payloads: list[bytes], n_pressure: int, imu: bool, bad_packets: Counter[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bulk decode; on a refusal, drop only the offending payloads (counted) and decode the rest."""
    try:
        return decode_sample_batches(payloads, n_pressure=n_pressure, imu=imu)
    except PacketError:
        pass
    good = []
    for payload in payloads:  # slow path, per packet, only for damaged recordings
        try:
            decode_sample_batches([payload], n_pressure=n_pressure, imu=imu)
        except PacketError as exc:
            bad_packets[exc.reason] += 1
            continue
        good.append(payload)
    return decode_sample_batches(good, n_pressure=n_pressure, imu=imu)


def _stream_from_samples(
    entry: dict[str, Any],
    indices: np.ndarray,
    pressure_counts: np.ndarray,
    imu_raw: np.ndarray | None,
    origin: str,
) -> tuple[FootStream, int]:
    """A FootStream with row k = sample index k (NaN rows for lost samples), and the lost count."""
    n_pressure = int(entry["n_pressure"])
    has_imu = bool(entry["imu"])
    present = len(np.unique(indices))
    n_rows = int(indices.max()) + 1 if len(indices) else 0
    if n_rows - present > 10 * present + _MAX_GAP_ROWS:
        raise UserError(
            f"{origin}: {entry['side']} stream jumps to sample index {n_rows - 1} with only {present} "
            "samples present; the recording is corrupt"
        )
    pressure: FloatArray | None = None
    if n_pressure:
        pressure = np.full((n_rows, n_pressure), np.nan)
        pressure[indices] = counts_to_pressure(pressure_counts, float(entry.get("pressure_scale", 1.0)))
    acc: FloatArray | None = None
    gyro: FloatArray | None = None
    if has_imu:
        raw = np.full((n_rows, 6), NA_I16, dtype=np.int16)
        raw[indices] = imu_raw
        acc, gyro = raw_to_imu(raw)
    extra = entry.get("extra")
    stream = FootStream(
        side=entry["side"],
        rate_hz=float(entry["rate_hz"]),
        t0_s=float(entry.get("t0_s", 0.0)),
        layout=str(entry.get("layout", "")),
        pressure=pressure,
        pressure_unit=str(entry.get("pressure_unit", "counts")),
        acc_ms2=acc,
        gyro_dps=gyro,
        device=str(entry.get("device", "")),
        firmware_version=str(entry.get("firmware_version", "")),
        extra=dict(extra) if isinstance(extra, dict) else {},
    )
    return stream, n_rows - present


def read_recording(path: Path) -> Recording:
    """Read a whole recording (every frame that passes its CRC; a torn tail is ignored).

    Raises NotARecordingError for a file that is not a recording and
    RecordingVersionError (an UnsupportedVersionError) for another format or protocol
    version; both are UserErrors.
    """
    path = Path(path)
    origin = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read recording {path}: {exc.strerror or exc}") from exc
    header, body_start = _parse_header(data, origin)
    entries: list[dict[str, Any]] = header["streams"]

    decoder = FrameDecoder(RECORD_PREFIX_LEN)
    frames = decoder.feed(memoryview(data)[body_start:])
    bad_packets: Counter[str] = Counter()
    sample_payloads: list[list[bytes]] = [[] for _ in entries]
    sample_clocks: list[list[tuple[int, int, int]]] = [[] for _ in entries]
    events: list[DecodedPacket] = []
    samples_type = int(PacketType.SAMPLES)
    logged_types = {int(t) for t in LOGGED_EVENT_TYPES}
    seen_events: set[bytes] = set()  # stream id + packet of every logged event kept
    duplicates = 0
    lost_events: list[LostEvents] = []
    for raw in frames:  # one iteration per packet (not per sample)
        stream_id = raw[0]
        packet = raw[RECORD_PREFIX_LEN:]
        if stream_id >= len(entries):
            bad_packets["unknown_stream"] += 1
            continue
        if packet[0] == PROTOCOL_VERSION and packet[1] == samples_type:
            sample_payloads[stream_id].append(packet[HEADER_LEN:])  # validated in bulk below
            if len(packet) >= HEADER_LEN + 5:  # (last index, device time, host time): the clock
                sample_clocks[stream_id].append(
                    (
                        # A live packet's time is when its last sample was added.
                        int.from_bytes(packet[HEADER_LEN : HEADER_LEN + 4], "little") + packet[HEADER_LEN + 4] - 1,
                        int.from_bytes(packet[4:8], "little"),
                        int.from_bytes(raw[1:RECORD_PREFIX_LEN], "little"),
                    )
                )
            continue
        try:
            decoded = decode_packet(packet)
        except (PacketError, PacketVersionError) as exc:
            bad_packets[exc.reason] += 1
            continue
        if decoded.type in logged_types:
            key = bytes(raw[:1]) + bytes(packet)
            if key in seen_events:
                duplicates += 1
                continue
            seen_events.add(key)
        body = decoded.body
        if isinstance(body, BackfillEnd) and body.lost_count:
            gone = LostEvents(stream_id, body.event_type, body.lost_from, body.lost_count)
            if gone not in lost_events:
                lost_events.append(gone)
        host_ms = int.from_bytes(raw[1:RECORD_PREFIX_LEN], "little")
        events.append(replace(decoded, stream=stream_id, host_ms=host_ms))

    streams: list[FootStream] = []
    lost: list[int] = []
    timelines: list[SampleTimeline | None] = []
    for entry, payloads, clocks in zip(entries, sample_payloads, sample_clocks):
        indices, pressure_counts, imu_raw = _decode_stream_samples(
            payloads, int(entry["n_pressure"]), bool(entry["imu"]), bad_packets
        )
        stream, n_lost = _stream_from_samples(entry, indices, pressure_counts, imu_raw, origin)
        timeline = _live_timeline(stream, clocks)
        if timeline is not None:
            # A live stream: its samples on the host's clock, so that feet line up.
            stream = replace(stream, t0_s=timeline.t0_s, rate_hz=timeline.rate_hz)
        streams.append(stream)
        timelines.append(timeline)
        lost.append(n_lost)
    return Recording(
        path=path,
        header=header,
        streams=streams,
        events=events,
        bad_frames=decoder.bad_frames,
        torn_tail=decoder.pending_bytes > 0,
        lost_samples=lost,
        bad_packets=bad_packets,
        lost_events=lost_events,
        duplicate_events=duplicates,
        timelines=timelines,
    )


def _live_timeline(stream: FootStream, clocks: list[tuple[int, int, int]]) -> SampleTimeline | None:
    """The stream's host timeline when it was recorded live (packets with arrival times)."""
    if not clocks:
        return None
    index, device_ms, host_ms = (np.array(column, dtype=np.int64) for column in zip(*clocks))
    order = np.argsort(host_ms, kind="stable")  # backfilled packets arrive late: still fine
    return sample_timeline(index[order], device_ms[order], host_ms[order], stream.rate_hz)
