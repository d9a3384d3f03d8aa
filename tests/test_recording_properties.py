"""Property tests of the recording reader (issue 10), on recordings the writers wrote from
random sessions: (a) what was written reads back, (b) a file cut at any byte (a crash
mid-write) reads back every frame before the cut, (c) corrupted bytes in the body raise
nothing and cost only the frames they touch.

The oracle is the session itself: which samples and events each frame carries, and where
each frame lies in the file, come from what the test wrote, not from the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from insole.errors import UserError
from insole.model import FootStream
from insole.protocol import NA_I16, NA_U16, Ack, Direction, PacketType, Step, encode_samples
from insole.quantise import counts_to_pressure, raw_to_imu
from insole.recording import (
    MAGIC,
    DamagedHeaderError,
    NotARecordingError,
    Recording,
    RecordingWriter,
    frame_record,
    header_bytes,
    make_header,
    read_recording,
    stream_header,
    write_recording,
)

# Bounded so that the file runs in seconds; deterministic so that CI sees the same
# examples on every run (and no .hypothesis folder is written into the checkout).
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RATES_HZ = (50.0, 100.0, 104.0, 204.8)
PRESSURE_SCALES = (0.001, 0.01, 0.5, 1.0, 2.0)
# Samples per packet for a layout: 1024-byte packets, 8-byte header and 5-byte batch
# header, 2 bytes per pressure cell and 12 per IMU sample; kept small so that a session
# has several frames.
MAX_BATCH = 12


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, bool]:
    """(n_pressure, imu) of a valid stream: some channel present."""
    n_pressure = draw(st.integers(0, 16))
    imu = draw(st.booleans()) if n_pressure else True
    return n_pressure, imu


def sample_values(draw: st.DrawFn, n: int, n_pressure: int, imu: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Counts as they travel: pressure u16 (NA_U16 = n/a), IMU i16 (NA_I16 = n/a)."""
    pressure = draw(arrays(np.uint16, (n, n_pressure), elements=st.integers(0, NA_U16)))
    imu_raw = draw(arrays(np.int16, (n, 6), elements=st.integers(NA_I16, 32767))) if imu else None
    return pressure, imu_raw


# (a) finished streams, as importers and the simulator write them ------------------------


@st.composite
def finished_sessions(draw: st.DrawFn) -> tuple[list[FootStream], list[float], list[np.ndarray], list[np.ndarray | None]]:
    sides = draw(st.sampled_from([["left"], ["right"], ["left", "right"]]))
    streams, scales, counts, raws = [], [], [], []
    for side in sides:
        n_pressure, imu = draw(layouts())
        n = draw(st.integers(0, 80))
        scale = draw(st.sampled_from(PRESSURE_SCALES))
        pressure_counts, imu_raw = sample_values(draw, n, n_pressure, imu)
        acc, gyro = raw_to_imu(imu_raw) if imu_raw is not None else (None, None)
        streams.append(
            FootStream(
                side=side,  # type: ignore[arg-type]
                rate_hz=draw(st.sampled_from(RATES_HZ)),
                t0_s=draw(st.sampled_from([0.0, 0.25, 12.5])),
                layout=draw(st.sampled_from(["", "insole8", "moticon16"])),
                pressure=counts_to_pressure(pressure_counts, scale) if n_pressure else None,
                pressure_unit=draw(st.sampled_from(["counts", "N", "N/cm2"])),
                acc_ms2=acc,
                gyro_dps=gyro,
                device=draw(st.text(max_size=8)),
                firmware_version="0.3.1",
                extra=draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)),
            )
        )
        scales.append(scale)
        counts.append(pressure_counts)
        raws.append(imu_raw)
    return streams, scales, counts, raws


@PROPERTY_SETTINGS
@given(session=finished_sessions())
def test_finished_streams_read_back_as_written(session: tuple) -> None:
    streams, scales, counts, raws = session
    with TemporaryDirectory() as folder:
        path = Path(folder) / "finished.insole"
        write_recording(path, streams, source="simulated", pressure_scales=scales)
        recording = read_recording(path)
    assert recording.bad_frames == 0 and not recording.torn_tail and not recording.bad_packets
    assert recording.events == [] and recording.lost_samples == [0] * len(streams)
    for written, read, scale, pressure_counts, imu_raw in zip(
        streams, recording.streams, scales, counts, raws, strict=True
    ):
        assert (read.side, read.rate_hz, read.t0_s, read.layout, read.pressure_unit, read.device, read.extra) == (
            written.side, written.rate_hz, written.t0_s, written.layout, written.pressure_unit, written.device,
            written.extra,
        )  # fmt: skip
        assert read.n_samples == written.n_samples
        if written.pressure is None:
            assert read.pressure is None
        else:
            # Counts × scale, the n/a sentinel as NaN: exactly what was written.
            expected = np.where(pressure_counts == NA_U16, np.nan, pressure_counts * scale)
            np.testing.assert_allclose(read.pressure, expected, rtol=1e-12, atol=0)  # type: ignore[arg-type]
        if imu_raw is None:
            assert read.acc_ms2 is None and read.gyro_dps is None
        else:
            acc, gyro = raw_to_imu(imu_raw)
            np.testing.assert_array_equal(read.acc_ms2, acc)
            np.testing.assert_array_equal(read.gyro_dps, gyro)


# Sessions appended frame by frame (RecordingWriter) ---------------------------------------


SampleValues = tuple[np.ndarray, np.ndarray | None]  # one sample: pressure counts, IMU raw (or None)


@dataclass(frozen=True)
class WrittenEvent:
    type: int
    seq: int
    time_ms: int
    body: object


@dataclass(frozen=True)
class Appended:
    """One packet appended: its stream, bytes and arrival time, and what it carries."""

    stream: int
    packet: bytes
    host_ms: int
    samples: dict[int, SampleValues] = field(default_factory=dict)  # sample index → values
    event: WrittenEvent | None = None


@dataclass(frozen=True)
class WrittenFrame:
    """Where an appended packet's frame lies in the file: [start, end), its 0x00 included."""

    start: int
    end: int
    appended: Appended


@dataclass
class Session:
    layouts: list[tuple[int, bool]]  # (n_pressure, imu) per stream
    imported: bool  # host_ms 0 throughout, as importers write: rows count from index 0
    appended: list[Appended]  # in file order


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    """Both feet (or one) streaming SAMPLES batches with gaps (lost on the link), with STEP
    and ACK events, some STEPs resent (a backfill), in one interleaved arrival order.
    Live: host_ms is the arrival time and a stream may start at the index an insole
    reached before the host attached. Imported: host_ms 0, indices from 0."""
    imported = draw(st.booleans())
    stream_layouts = [draw(layouts()) for _ in range(draw(st.integers(1, 2)))]
    per_stream: list[list[Appended]] = []
    for stream_id, (n_pressure, imu) in enumerate(stream_layouts):
        appended: list[Appended] = []
        steps: list[Appended] = []
        index = draw(st.sampled_from([0, 7] if imported else [0, 7, 1_123_200]))
        seq = 0
        for _ in range(draw(st.integers(1, 6))):
            index += draw(st.sampled_from([0, 0, 0, 3, 40]))  # a gap: samples lost on the link
            count = draw(st.integers(1, MAX_BATCH))
            pressure, imu_raw = sample_values(draw, count, n_pressure, imu)
            time_ms = 10 * (index + count)  # the device's clock when it sent the batch
            (packet,) = encode_samples(index, pressure, imu_raw, seq_start=seq, time_ms=time_ms)
            samples = {index + k: (pressure[k], None if imu_raw is None else imu_raw[k]) for k in range(count)}
            appended.append(Appended(stream_id, packet, time_ms + 7, samples))
            seq, index = seq + 1, index + count
            then = draw(st.sampled_from(["nothing", "nothing", "step", "ack", "resent step"]))
            if then == "step":
                step = Step(max(index - 9, 0), max(index - 2, 0), 620, None, draw(st.integers(-3000, 3000)),
                            Direction.FORWARD, 0, draw(st.integers(0, 60000)), None, None, None, len(steps) + 1)  # fmt: skip
                event = WrittenEvent(int(PacketType.STEP), seq, time_ms, step)
                steps.append(Appended(stream_id, step.encode(seq, time_ms), time_ms + 8, event=event))
                appended.append(steps[-1])
                seq += 1
            elif then == "ack":
                ack = Ack(int(PacketType.COMMAND), 4, draw(st.integers(0, 65535)))
                event = WrittenEvent(int(PacketType.ACK), seq, time_ms, ack)
                appended.append(Appended(stream_id, ack.encode(seq, time_ms), time_ms + 9, event=event))
                seq += 1
            elif then == "resent step" and steps:
                appended.append(replace(draw(st.sampled_from(steps)), host_ms=time_ms + 9))
        per_stream.append(appended)
    # Arrival order: each foot's packets in order, the two feet interleaved at random.
    order = draw(st.permutations([s for s, appended in enumerate(per_stream) for _ in appended]))
    in_file_order = [per_stream[s].pop(0) for s in order]
    if imported:
        in_file_order = [replace(a, host_ms=0) for a in in_file_order]
    return Session(stream_layouts, imported, in_file_order)


def session_header(session: Session) -> dict:
    sides = ["left", "right"]
    return make_header(
        source="csv" if session.imported else "device",
        start_time_utc=None if session.imported else "2024-06-01T10:00:00Z",
        streams=[
            stream_header(side=sides[i], rate_hz=100.0, n_pressure=n_pressure, imu=imu)
            for i, (n_pressure, imu) in enumerate(session.layouts)
        ],
    )


def write_session(path: Path, session: Session) -> tuple[bytes, int, list[WrittenFrame]]:
    """(file bytes, header length, frames in file order) of the session, appended."""
    header = session_header(session)
    header_len = len(header_bytes(header))
    frames = []
    offset = header_len
    with RecordingWriter(path, header) as writer:
        for appended in session.appended:
            writer.append(appended.stream, appended.packet, appended.host_ms)
            end = offset + len(frame_record(appended.stream, appended.host_ms, appended.packet))
            frames.append(WrittenFrame(offset, end, appended))
            offset = end
    data = path.read_bytes()
    assert len(data) == offset
    return data, header_len, frames


def assert_reads_back(recording: Recording, session: Session, frames: list[WrittenFrame]) -> None:
    """The recording holds exactly the samples and events of ``frames`` (a resent STEP once)."""
    for stream_id, ((n_pressure, imu), read) in enumerate(zip(session.layouts, recording.streams, strict=True)):
        written = {i: v for f in frames if f.appended.stream == stream_id for i, v in f.appended.samples.items()}
        if not written:
            assert read.n_samples == 0
            continue
        # A live stream starts at its first sample; an imported one at index 0, whatever
        # frames were lost.
        first, last = (0 if session.imported else min(written)), max(written)
        assert read.extra.get("first_sample_index", 0) == first
        assert read.n_samples == last - first + 1
        assert recording.lost_samples[stream_id] == read.n_samples - len(written)
        expected_pressure = np.full((read.n_samples, n_pressure), NA_U16, dtype=np.uint16)
        expected_imu = np.full((read.n_samples, 6), NA_I16, dtype=np.int16)
        for index, (pressure, imu_raw) in written.items():
            expected_pressure[index - first] = pressure
            if imu_raw is not None:
                expected_imu[index - first] = imu_raw
        if n_pressure:
            np.testing.assert_array_equal(read.pressure, counts_to_pressure(expected_pressure, 1.0))
        else:
            assert read.pressure is None
        if imu:
            acc, gyro = raw_to_imu(expected_imu)
            np.testing.assert_array_equal(read.acc_ms2, acc)
            np.testing.assert_array_equal(read.gyro_dps, gyro)
        else:
            assert read.acc_ms2 is None
    expected_events: list[tuple[int, WrittenEvent, int]] = []
    steps_kept: set[tuple[int, bytes]] = set()
    for f in frames:
        a = f.appended
        if a.event is None:
            continue
        if a.event.type == PacketType.STEP:
            if (a.stream, a.packet) in steps_kept:
                continue  # a resent STEP (same bytes): kept once
            steps_kept.add((a.stream, a.packet))
        expected_events.append((a.stream, a.event, a.host_ms))
    read_events = [
        (e.stream, WrittenEvent(e.type, e.header.seq, e.header.time_ms, e.body), e.host_ms) for e in recording.events
    ]
    assert read_events == expected_events


@PROPERTY_SETTINGS
@given(session=sessions())
def test_appended_sessions_read_back_as_written(session: Session) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "appended.insole"
        _, _, frames = write_session(path, session)
        recording = read_recording(path)
    assert recording.bad_frames == 0 and not recording.torn_tail and not recording.bad_packets
    assert_reads_back(recording, session, frames)


# (b) a crash mid-write: the file cut at any byte ---------------------------------------------


@PROPERTY_SETTINGS
@given(session=sessions(), data=st.data())
def test_a_recording_cut_at_any_byte_reads_every_frame_before_the_cut(session: Session, data: st.DataObject) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "cut.insole"
        written, header_len, frames = write_session(path, session)
        at = data.draw(st.integers(0, len(written)), label="cut at")
        path.write_bytes(written[:at])
        if at < header_len:
            # Cut inside the header (written in one write(), but a power loss may keep part
            # of it): refused as a damaged header, or as no recording before the magic.
            expected_error = DamagedHeaderError if at > len(MAGIC) else NotARecordingError
            try:
                read_recording(path)
            except expected_error:
                return
            raise AssertionError(f"a file cut at byte {at} of a {header_len}-byte header was read")
        recording = read_recording(path)
    complete = [f for f in frames if f.end <= at]
    assert recording.bad_frames == 0 and not recording.bad_packets
    assert recording.torn_tail == (at not in {header_len, *(f.end for f in frames)})
    assert_reads_back(recording, session, complete)


# (c) corrupted bytes in the body ---------------------------------------------------------------


@PROPERTY_SETTINGS
@given(session=sessions(), data=st.data())
def test_corrupted_body_costs_only_the_frames_it_touches(session: Session, data: st.DataObject) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "corrupt.insole"
        written, header_len, frames = write_session(path, session)
        # Anywhere in the body, and often where it hurts most: a frame's COBS code byte, the
        # 0x00 between two frames (the next frame is glued to the damaged one), the last
        # frame's 0x00 (a torn tail).
        positions = st.one_of(
            st.integers(header_len, len(written) - 1),
            st.sampled_from([f.end - 1 for f in frames]),
            st.sampled_from([f.start for f in frames]),
        )
        damage = data.draw(
            st.dictionaries(positions, st.integers(0, 255), min_size=1, max_size=6), label="byte values at positions"
        )
        corrupted = bytearray(written)
        for position, value in damage.items():
            corrupted[position] = value if value != written[position] else value ^ 0xFF
        path.write_bytes(bytes(corrupted))
        try:
            recording = read_recording(path)
        except UserError as exc:
            # The one error body damage may raise (a CRC-16 that passes by chance on a wild
            # sample index); anything else is a bug.
            assert "corrupt" in str(exc)
            return
    intact = [f for f in frames if not any(f.start <= position < f.end for position in damage)]
    assert len(intact) < len(frames)
    # What the damage cost is accounted for: a bad frame, or a last frame left torn.
    assert recording.bad_frames >= 1 or recording.torn_tail
    # Every intact frame is kept, whole, where it belongs; nothing else was read into the
    # streams or the events (a damaged frame never passes as data).
    assert_reads_back(recording, session, intact)
