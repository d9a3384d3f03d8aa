"""Writing recordings: whole files from finished streams, or packet by packet as they arrive.

* :func:`write_recording` quantises finished :class:`~insole.model.FootStream` objects
  (importers, simulator) into SAMPLES packets and writes a whole file, atomically.
* :class:`RecordingWriter` appends packets as they arrive from a device: writers only
  append whole frames, so a crash leaves at most one torn frame at the end, which the
  reader ignores.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from insole.model import FootStream
from insole.protocol import PROTOCOL_VERSION, encode_samples
from insole.quantise import stream_counts
from insole.recording.header import (
    FORMAT_NAME,
    FORMAT_VERSION,
    frame_record,
    header_bytes,
    make_header,
    parse_header,
    read_opening,
    stream_header_for,
    validate_header,
)


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
        counts = stream_counts(stream, None if pressure_scales is None else float(pressure_scales[stream_id]))
        entries.append(stream_header_for(stream, counts.pressure_scale))
        if stream.n_samples == 0:
            continue
        packets = encode_samples(0, counts.pressure, counts.imu, rate_hz=stream.rate_hz)
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
                self.header, body_start = parse_header(read_opening(f), str(self.path))
                f.seek(0, os.SEEK_END)
                has_frames = f.tell() > body_start
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
