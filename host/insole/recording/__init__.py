"""Recordings (``.insole``, format version 2, docs/recording.md): append-only,
self-describing, readable after a crash, the header protected by a CRC-32.

* :mod:`~insole.recording.header` — the opening lines, the JSON header and its checksum, record frames;
* :mod:`~insole.recording.writer` — :func:`write_recording`, :class:`RecordingWriter`;
* :mod:`~insole.recording.reader` — :func:`read_recording` → :class:`Recording`.
"""

from insole.recording.header import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAGIC,
    READABLE_FORMAT_VERSIONS,
    RECORD_PREFIX,
    RECORD_PREFIX_LEN,
    SOURCES,
    SUFFIX,
    DamagedHeaderError,
    NotARecordingError,
    RecordingVersionError,
    device_header,
    frame_record,
    header_bytes,
    make_header,
    read_header,
    stream_header,
    stream_header_for,
    validate_header,
)
from insole.recording.reader import LostEvents, Recording, read_recording
from insole.recording.writer import RecordingWriter, write_recording

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MAGIC", "READABLE_FORMAT_VERSIONS", "RECORD_PREFIX", "RECORD_PREFIX_LEN",
    "SOURCES", "SUFFIX", "DamagedHeaderError", "LostEvents", "NotARecordingError", "Recording",
    "RecordingVersionError", "RecordingWriter", "device_header", "frame_record", "header_bytes", "make_header", "read_header",
    "read_recording", "stream_header", "stream_header_for", "validate_header", "write_recording",
]
