"""Reading recordings back: streams in physical units and an account of what did not survive.

:func:`read_recording` returns the streams (NaN for n/a values and for lost samples),
the event packets and what was dropped on the way, including events the device
reported lost for good (BACKFILL_END packets). A live stream's samples are placed on
the host clock (:func:`~insole.link.clocksync.sample_timeline`), so both feet line up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from insole.errors import UserError
from insole.link.clocksync import SampleTimeline, sample_timeline
from insole.model import FloatArray, FootStream
from insole.protocol import (
    HEADER_LEN,
    LOGGED_EVENT_TYPES,
    NA_I16,
    PROTOCOL_VERSION,
    BackfillEnd,
    DecodedPacket,
    FrameDecoder,
    PacketError,
    PacketType,
    PacketVersionError,
    decode_packet,
    decode_sample_batches,
)
from insole.quantise import counts_to_pressure, raw_to_imu
from insole.recording.header import RECORD_PREFIX_LEN, parse_header

# Fill at most this many lost-sample rows beyond 10× the samples present: more means corruption.
_MAX_GAP_ROWS = 1_000_000


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


def _plausible(payloads: list[bytes], bad_packets: Counter[str]) -> list[bytes]:
    """The SAMPLES payloads whose first index lies within reach of the stream's others.

    One packet with a valid CRC but a wild index (a bit flip in a torn write, a bug)
    would otherwise stretch the stream to millions of empty rows: it is dropped and
    counted ("implausible_index"), the rest kept. Reach: the stream's own length ten
    times over, plus _MAX_GAP_ROWS, around the median first index.
    """
    if len(payloads) < 3:
        return payloads
    firsts = np.array([int.from_bytes(p[0:4], "little") if len(p) >= 4 else 0 for p in payloads], dtype=np.int64)
    n_samples = sum(p[4] for p in payloads if len(p) > 4)
    reach = 10 * n_samples + _MAX_GAP_ROWS
    keep = np.abs(firsts - np.median(firsts)) <= reach
    if keep.all():
        return payloads
    bad_packets["implausible_index"] += int((~keep).sum())
    return [p for p, ok in zip(payloads, keep, strict=True) if ok]


def _decode_stream_samples(
    payloads: list[bytes], n_pressure: int, imu: bool, bad_packets: Counter[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bulk decode; on a refusal, drop only the offending payloads (counted) and decode the rest."""
    payloads = _plausible(payloads, bad_packets)
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
    first_index: int = 0,
) -> tuple[FootStream, int]:
    """A FootStream with row k = sample index first_index + k (NaN rows for lost
    samples), and the lost count."""
    indices = indices - first_index
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
        assert imu_raw is not None  # decoded with imu=True
        raw = np.full((n_rows, 6), NA_I16, dtype=np.int16)
        raw[indices] = imu_raw
        acc, gyro = raw_to_imu(raw)
    extra = entry.get("extra")
    extra = dict(extra) if isinstance(extra, dict) else {}
    if first_index:
        extra["first_sample_index"] = first_index  # events' sample indices count from the stream's start
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
        extra=extra,
    )
    return stream, n_rows - present


def read_recording(path: Path) -> Recording:
    """Read a whole recording (every frame that passes its CRC; a torn tail is ignored).

    Raises NotARecordingError for a file that is not a recording, DamagedHeaderError
    (a NotARecordingError) for a recording whose header is damaged, RecordingVersionError
    (an UnsupportedVersionError, exit status 2 as for a UserError) for another format or
    protocol version, and UserError for an unreadable file or one whose sample indices
    leave no doubt that it is corrupt. Damage in the frames is counted, never raised.
    """
    path = Path(path)
    origin = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read recording {path}: {exc.strerror or exc}") from exc
    header, body_start = parse_header(data, origin)
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
    for entry, payloads, clocks in zip(entries, sample_payloads, sample_clocks, strict=True):
        indices, pressure_counts, imu_raw = _decode_stream_samples(
            payloads, int(entry["n_pressure"]), bool(entry["imu"]), bad_packets
        )
        # A live stream may have begun long before the host attached (an insole measures
        # from power-on): its rows start at the first sample recorded. Replays and
        # imports (host_ms 0 throughout) start at index 0, also when their first frame
        # is damaged: their rows stay their sample indices.
        live = any(host_ms for _, _, host_ms in clocks)
        first_index = int(indices.min()) if live and len(indices) else 0
        stream, n_lost = _stream_from_samples(entry, indices, pressure_counts, imu_raw, origin, first_index)
        timeline = _live_timeline(stream, clocks, first_index) if live else None
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


def _live_timeline(stream: FootStream, clocks: list[tuple[int, int, int]], first_index: int) -> SampleTimeline | None:
    """The stream's host timeline when it was recorded live (packets with arrival times)."""
    if not clocks:
        return None
    index, device_ms, host_ms = (np.array(column, dtype=np.int64) for column in zip(*clocks, strict=True))
    index = index - first_index  # row numbers of the stream
    order = np.argsort(host_ms, kind="stable")  # backfilled packets arrive late: still fine
    return sample_timeline(index[order], device_ms[order], host_ms[order], stream.rate_hz)
