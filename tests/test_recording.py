"""Recording format v2: round trips, live appends, crash safety, damaged files and headers,
version 1 files. Property tests of the reader: tests/test_recording_properties.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from insole.cli import main as cli_main
from insole.errors import InsoleError, UnsupportedVersionError, UserError
from insole.model import FootStream
from insole.protocol import Ack, BackfillEnd, PacketType, Settings, Status, Step, encode_samples
from insole.quantise import counts_to_pressure, imu_to_raw, pressure_to_counts
from insole.recording import (
    DamagedHeaderError,
    LostEvents,
    NotARecordingError,
    RecordingWriter,
    frame_record,
    header_bytes,
    make_header,
    read_header,
    read_recording,
    stream_header,
    write_recording,
)

ACC_STEP_MS2 = 9.80665 / 1000  # one count
GYRO_STEP_DPS = 0.1


def foot(side: str, n: int, *, seed: int, pressure: bool = True, imu: bool = True, n_pressure: int = 8) -> FootStream:
    rng = np.random.default_rng(seed)
    return FootStream(
        side=side,  # type: ignore[arg-type]
        rate_hz=100.0,
        t0_s=0.25,
        layout="insole8",
        pressure=rng.uniform(0, 35.0, (n, n_pressure)) if pressure else None,
        pressure_unit="N/cm2",
        acc_ms2=rng.normal(0, 15, (n, 3)) + [0, 0, 9.81] if imu else None,
        gyro_dps=rng.normal(0, 250, (n, 3)) if imu else None,
        device="test-rig",
        firmware_version="0.3.1",
        extra={"subject": "S01", "weight_kg": np.float64(71.5)},
    )


def assert_close_to_quantised(original: FootStream, read: FootStream, pressure_scale: float) -> None:
    assert read.n_samples == original.n_samples
    if original.pressure is not None:
        assert read.pressure is not None
        np.testing.assert_array_equal(np.isnan(read.pressure), np.isnan(original.pressure))
        assert np.nanmax(np.abs(read.pressure - original.pressure)) <= pressure_scale / 2 + 1e-9
    else:
        assert read.pressure is None
    if original.acc_ms2 is not None:
        assert read.acc_ms2 is not None and read.gyro_dps is not None
        np.testing.assert_array_equal(np.isnan(read.acc_ms2), np.isnan(original.acc_ms2))
        assert np.nanmax(np.abs(read.acc_ms2 - original.acc_ms2)) <= ACC_STEP_MS2 / 2 + 1e-9
        assert np.nanmax(np.abs(read.gyro_dps - original.gyro_dps)) <= GYRO_STEP_DPS / 2 + 1e-9  # type: ignore[operator]
    else:
        assert read.acc_ms2 is None


def test_round_trip_both_feet(tmp_path: Path) -> None:
    left, right = foot("left", 1234, seed=1), foot("right", 1200, seed=2, n_pressure=16)
    left.pressure[10, 3] = np.nan  # type: ignore[index]
    left.acc_ms2[20, :] = np.nan  # type: ignore[index]
    left.gyro_dps[20, :] = np.nan  # type: ignore[index]
    path = tmp_path / "walk.insole"
    write_recording(
        path,
        [left, right],
        source="simulated",
        start_time_utc="2024-06-01T10:00:00Z",
        ground_truth={"steps": "walk.STEPS.csv", "raises": "walk.RAISES.csv"},
    )
    assert path.read_bytes().startswith(b"INSOLE-RECORDING 2\n{")
    recording = read_recording(path)
    header = recording.header
    assert header["format"] == "insole-recording" and header["format_version"] == 2 and header["protocol_version"] == 1
    assert header["source"] == "simulated" and header["start_time_utc"] == "2024-06-01T10:00:00Z"
    assert header["ground_truth"] == {"steps": "walk.STEPS.csv", "raises": "walk.RAISES.csv"}
    assert read_header(path) == header
    scales = [s["pressure_scale"] for s in header["streams"]]
    assert scales == [0.001, 0.001]  # 35 / 60000 → 0.001
    for original, read, scale in zip([left, right], recording.streams, scales, strict=True):
        assert (read.side, read.rate_hz, read.t0_s, read.layout, read.pressure_unit) == (
            original.side, 100.0, 0.25, "insole8", "N/cm2",
        )  # fmt: skip
        assert (read.device, read.firmware_version) == ("test-rig", "0.3.1")
        assert read.extra == {"subject": "S01", "weight_kg": 71.5}
        assert_close_to_quantised(original, read, scale)
    assert recording.bad_frames == 0 and not recording.torn_tail
    assert recording.lost_samples == [0, 0]
    assert recording.events == []
    assert recording.stream("right").n_pressure == 16


def test_round_trip_pressure_only_and_imu_only_with_given_scales(tmp_path: Path) -> None:
    pressure_only = foot("left", 300, seed=3, imu=False)
    pressure_only.pressure[0, 0] = -2.0  # type: ignore[index]  # unsigned field: clips to 0
    imu_only = foot("right", 300, seed=4, pressure=False)
    path = tmp_path / "two.insole"
    write_recording(path, [pressure_only, imu_only], source="csv", source_file="two.csv", pressure_scales=[0.01, 1.0])
    recording = read_recording(path)
    assert recording.header["source_file"] == "two.csv"
    assert recording.header["start_time_utc"] is None
    left, right = recording.streams
    assert left.acc_ms2 is None and right.pressure is None
    assert left.pressure is not None and left.pressure[0, 0] == 0.0
    pressure_only.pressure[0, 0] = 0.0  # type: ignore[index]
    assert_close_to_quantised(pressure_only, left, 0.01)
    assert_close_to_quantised(imu_only, right, 1.0)


def test_imported_counts_survive_exactly(tmp_path: Path) -> None:
    counts = np.random.default_rng(5).integers(0, 4096, (500, 8)).astype(np.float64)
    stream = FootStream("left", 50.0, 0.0, "insole8", counts, "counts", None, None)
    path = tmp_path / "counts.insole"
    write_recording(path, [stream], source="device", pressure_scales=[1.0])
    np.testing.assert_array_equal(read_recording(path).streams[0].pressure, counts)


def live_header(n_streams: int = 2) -> dict:
    sides = ["left", "right"]
    return make_header(
        source="device",
        start_time_utc="2024-06-01T10:00:00.000Z",
        streams=[
            stream_header(side=sides[i], rate_hz=100.0, n_pressure=8, imu=True, pressure_scale=1.0, layout="insole8")
            for i in range(n_streams)
        ],
    )


def batch(first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic sample values for index range [first, first+count)."""
    k = np.arange(first, first + count, dtype=np.int64)[:, None]
    pressure = ((k * 7 + np.arange(8)) % 65000).astype(np.uint16)
    imu = ((k * 3 + np.arange(6)) % 30000 - 15000).astype(np.int16)
    return pressure, imu


def test_live_writer_with_gaps_and_events(tmp_path: Path) -> None:
    path = tmp_path / "live.insole"
    with RecordingWriter(path, live_header(), fsync=True) as writer:
        seq = 0
        for first in (0, 10, 30, 40):  # batch at 20 is lost on the left
            pressure, imu = batch(first, 10)
            for packet in encode_samples(first, pressure, imu, seq_start=seq):
                writer.append(0, packet, host_ms=first * 10 + 5)
            seq += 1
        pressure, imu = batch(0, 25)
        writer.append_many((1, p, 300) for p in encode_samples(0, pressure, imu, max_count=10))
        step = Step(3, 21, 180, None, 850, 1, 1, 30000, 100, None, None, 1)
        writer.append(1, step.encode(0, 260), host_ms=270)
        writer.append(0, Settings(side=0, cue_mode=1).encode(0, 0), host_ms=1)
        writer.append(0, Ack(PacketType.COMMAND, 4, 3).encode(0, 1), host_ms=2)
        writer.flush()
        with pytest.raises(ValueError, match="stream 2"):
            writer.append(2, step.encode(), 0)
    assert writer.closed
    recording = read_recording(path)
    left, right = recording.streams
    assert left.n_samples == 50 and right.n_samples == 25
    assert recording.lost_samples == [10, 0]
    assert left.pressure is not None and np.isnan(left.pressure[20:30]).all()
    assert left.acc_ms2 is not None and np.isnan(left.acc_ms2[20:30]).all()
    expected_p, expected_imu = batch(0, 50)
    kept = np.r_[0:20, 30:50]
    np.testing.assert_array_equal(left.pressure[kept], expected_p[kept].astype(float))
    assert left.gyro_dps is not None
    np.testing.assert_array_equal(imu_to_raw(left.acc_ms2[kept], left.gyro_dps[kept]), expected_imu[kept])
    assert [type(e.body).__name__ for e in recording.events] == ["Step", "Settings", "Ack"]
    assert [(e.stream, e.host_ms) for e in recording.events] == [(1, 270), (0, 1), (0, 2)]
    assert recording.events[0].body == step
    assert np.allclose(left.times_s()[[0, 49]], [0.0, 0.49])


def test_a_stream_attached_hours_after_power_on_starts_at_its_first_sample(tmp_path: Path) -> None:
    # The insole measures from power-on; a host that starts recording three hours later
    # gets sample indices from 1,123,200 on. The stream's rows begin there.
    path = tmp_path / "attached.insole"
    start = 3 * 3600 * 104
    with RecordingWriter(path, live_header(1)) as writer:
        for k in range(40):
            first = start + 10 * k
            pressure, imu = batch(k * 10, 10)
            for packet in encode_samples(first, pressure, imu, seq_start=k, time_ms=(first + 9) * 10):
                writer.append(0, packet, host_ms=5000 + (first - start + 9) * 10 + 7)
    recording = read_recording(path)
    (stream,) = recording.streams
    assert stream.n_samples == 400 and recording.lost_samples == [0]
    assert stream.extra["first_sample_index"] == start
    assert stream.pressure is not None
    np.testing.assert_array_equal(stream.pressure[:, 0], batch(0, 400)[0][:, 0].astype(float))
    assert recording.timelines[0] is not None and abs(stream.t0_s - 5.0) < 0.02  # host time of its first sample


def test_one_packet_with_a_wild_sample_index_is_counted_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "wild.insole"
    with RecordingWriter(path, live_header(1)) as writer:
        for k in range(20):
            first = 10 * k if k != 7 else 50_000_000  # a valid frame, an impossible index
            pressure, imu = batch(10 * k, 10)
            for packet in encode_samples(first, pressure, imu, seq_start=k):
                writer.append(0, packet, host_ms=100 * k)
    recording = read_recording(path)
    assert recording.bad_packets["implausible_index"] == 1
    assert recording.streams[0].n_samples == 200 and recording.lost_samples == [10]


def test_packets_each_within_reach_that_still_span_too_far_are_corrupt(tmp_path: Path) -> None:
    # Three packets 1,000,000 indices apart: none is wild beside the others (each lies
    # within the reach of the median), but 600 samples spread over 2,000,200 rows are
    # more gap than any real loss leaves.
    path = tmp_path / "spread.insole"
    header = make_header(source="device", start_time_utc="2024-06-01T10:00:00.000Z",
                         streams=[stream_header(side="left", rate_hz=100.0, n_pressure=1, imu=False, pressure_scale=1.0)])
    with RecordingWriter(path, header) as writer:
        for k, first in enumerate((0, 1_000_000, 2_000_000)):
            for packet in encode_samples(first, np.ones((200, 1), np.uint16), None, seq_start=k):
                writer.append(0, packet, host_ms=0)
    with pytest.raises(UserError, match="jumps to sample index 2000199 with only 600 samples present"):
        read_recording(path)


def test_status_packets_and_lost_events_read_back(tmp_path: Path) -> None:
    # A STATUS packet is an event, never taken for samples; a BACKFILL_END that reports
    # seqs gone for good is listed once in lost_events, one that reports none is not.
    path = tmp_path / "status.insole"
    status = Status(0, 3, 1, 0, 1, 8, 1, 80, 10000, 3900, 0, 25, 40000, 0, 0)
    lost = BackfillEnd(PacketType.STEP, 9, 100, 20, 17, 110, 3, 120)
    none_lost = BackfillEnd(PacketType.CUE, 10, 5, 4, 4, 0, 0, 9)
    with RecordingWriter(path, live_header(1)) as writer:
        pressure, imu = batch(0, 10)
        writer.append(0, status.encode(0, 5), host_ms=5)
        for packet in encode_samples(0, pressure, imu, seq_start=1):
            writer.append(0, packet, host_ms=105)
        writer.append(0, status.encode(2, 150), host_ms=150)
        for body, seq in ((lost, 3), (none_lost, 4), (lost, 5)):
            writer.append(0, body.encode(seq, 200), host_ms=200)
    recording = read_recording(path)
    assert recording.bad_packets == {} and recording.lost_samples == [0]
    assert recording.streams[0].n_samples == 10
    np.testing.assert_array_equal(recording.streams[0].pressure, pressure.astype(float))
    assert [e.body for e in recording.events] == [status, status, lost, none_lost, lost]
    assert recording.lost_events == [LostEvents(0, PacketType.STEP, 110, 3)]


def test_writer_refuses_to_overwrite_and_appends_after_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "append.insole"
    pressure, imu = batch(0, 20)
    packets = encode_samples(0, pressure, imu, max_count=10)
    with RecordingWriter(path, live_header(1)) as writer:
        writer.append(0, packets[0], 0)
    with pytest.raises(FileExistsError):
        RecordingWriter(path, live_header(1))
    # A crash tore the next frame in half...
    with open(path, "ab") as f:
        f.write(frame_record(0, 50, packets[1])[:100])
    torn = read_recording(path)
    assert torn.torn_tail and torn.bad_frames == 0 and torn.streams[0].n_samples == 10
    # ... and a restarted recorder continues the file: the torn piece becomes one bad frame.
    with RecordingWriter(path, {}, append=True) as writer:
        assert writer.header["streams"][0]["side"] == "left"
        writer.append(0, packets[1], 60)
    resumed = read_recording(path)
    assert not resumed.torn_tail and resumed.bad_frames == 1
    assert resumed.streams[0].n_samples == 20 and resumed.lost_samples == [0]


def test_torn_half_frame_by_hand_keeps_every_complete_frame(tmp_path: Path) -> None:
    stream = foot("left", 400, seed=6)
    path = tmp_path / "torn.insole"
    write_recording(path, [stream], source="simulated")
    complete = read_recording(path)
    data = path.read_bytes()
    extra = frame_record(0, 0, encode_samples(400, *batch(400, 30))[0])
    path.write_bytes(data + extra[: len(extra) // 2])
    torn = read_recording(path)
    assert torn.torn_tail and torn.bad_frames == 0 and torn.lost_samples == [0]
    np.testing.assert_array_equal(torn.streams[0].pressure, complete.streams[0].pressure)
    # Cutting the file inside the last frame loses exactly that frame's samples.
    last_frame_start = data.rindex(b"\x00", 0, len(data) - 1) + 1
    path.write_bytes(data[: last_frame_start + 10])
    cut = read_recording(path)
    assert cut.torn_tail and 0 < cut.streams[0].n_samples < 400
    n = cut.streams[0].n_samples
    np.testing.assert_array_equal(cut.streams[0].pressure, complete.streams[0].pressure[:n])  # type: ignore[index]


def test_damaged_frame_in_the_middle_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "damaged.insole"
    write_recording(path, [foot("left", 1000, seed=7)], source="simulated", pressure_scales=[0.001])
    data = bytearray(path.read_bytes())
    body_start = data.index(b"\n", data.index(b"\n") + 1) + 1
    second_frame = data.index(b"\x00", body_start) + 1
    data[second_frame + 30] ^= 0x5A
    path.write_bytes(bytes(data))
    recording = read_recording(path)
    assert recording.bad_frames == 1 and not recording.torn_tail
    per_packet = 36  # 8 channels + IMU: (1024 - 16) // 28
    assert recording.lost_samples == [per_packet]
    assert np.isnan(recording.streams[0].pressure[per_packet : 2 * per_packet]).all()  # type: ignore[index]
    assert not np.isnan(recording.streams[0].pressure[2 * per_packet :]).any()  # type: ignore[index]


def test_a_frame_glued_to_a_damaged_one_is_still_found(tmp_path: Path) -> None:
    # An unloaded foot reads 0 on every cell: its frames are mostly COBS code bytes 0x01.
    stream = FootStream("left", 100.0, 0.0, "insole8", np.zeros((400, 8)), "counts", None, None)
    path = tmp_path / "glued.insole"
    write_recording(path, [stream], source="simulated", pressure_scales=[1.0])
    data = bytearray(path.read_bytes())
    body_start = len(header_bytes(read_recording(path).header))
    first_delimiter = data.index(b"\x00", body_start)
    data[first_delimiter] = 0xFF  # the first frame is damaged and glued to the second
    path.write_bytes(bytes(data))
    recording = read_recording(path)
    per_packet = (1024 - 8 - 5) // 16
    assert recording.bad_frames == 1 and recording.lost_samples == [per_packet]
    assert recording.streams[0].n_samples == 400


SIGKILL_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from insole.protocol import encode_samples
    from insole.recording import RecordingWriter, make_header, stream_header

    header = make_header(source="device", streams=[stream_header(side="left", rate_hz=100.0, n_pressure=8, imu=True)])
    with RecordingWriter(sys.argv[1], header) as writer:
        first = 0
        for seq in range(1_000_000):  # runs until killed (bounded in case the parent dies)
            k = np.arange(first, first + 10, dtype=np.int64)[:, None]
            pressure = ((k * 7 + np.arange(8)) % 65000).astype(np.uint16)
            imu = ((k * 3 + np.arange(6)) % 30000 - 15000).astype(np.int16)
            for packet in encode_samples(first, pressure, imu, seq_start=seq):
                writer.append(0, packet, host_ms=first * 10)
            writer.flush()
            first += 10
    """
)


def test_sigkill_mid_write_keeps_every_complete_frame(tmp_path: Path) -> None:
    path = tmp_path / "killed.insole"
    child = subprocess.Popen([sys.executable, "-c", SIGKILL_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 300_000:
                break
            assert child.poll() is None, "the writer exited early"
            time.sleep(0.005)
        else:
            pytest.fail("the writer did not write 300 kB in 30 s")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    recording = read_recording(path)
    stream = recording.streams[0]
    assert recording.bad_frames == 0 and recording.lost_samples == [0]
    n = stream.n_samples
    frames_on_disk = path.read_bytes().count(b"\x00")  # every complete frame ends in the file's only 0x00 bytes
    assert n == 10 * frames_on_disk and n >= 1000
    expected_p, expected_imu = batch(0, n)
    np.testing.assert_array_equal(stream.pressure, expected_p.astype(float))
    np.testing.assert_array_equal(imu_to_raw(stream.acc_ms2, stream.gyro_dps), expected_imu)  # type: ignore[arg-type]


def test_not_a_recording_and_other_versions(tmp_path: Path) -> None:
    text = tmp_path / "data.csv"
    text.write_text("time,p1\n0,1\n")
    with pytest.raises(NotARecordingError, match="is not an insole recording") as info:
        read_recording(text)
    assert isinstance(info.value, UserError)
    empty = tmp_path / "empty.insole"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="not an insole recording"):
        read_recording(empty)
    missing = tmp_path / "missing.insole"
    with pytest.raises(UserError) as unreadable:
        read_recording(missing)
    assert str(unreadable.value) == f"cannot read recording {missing}: No such file or directory"
    future = tmp_path / "future.insole"
    future.write_bytes(b'INSOLE-RECORDING 3\n{"format":"insole-recording","format_version":3}\n')
    expected = "format version 3 is not supported; this side reads versions 1 and 2"
    with pytest.raises(UnsupportedVersionError, match=expected) as v:
        read_recording(future)
    # The CLI prints it without a traceback, with the exit status of unusable input.
    assert isinstance(v.value, InsoleError) and v.value.exit_code == UserError.exit_code == 2
    header = live_header(1)
    header["protocol_version"] = 2
    newer_protocol = tmp_path / "protocol2.insole"
    newer_protocol.write_bytes(header_bytes(header))
    with pytest.raises(UnsupportedVersionError, match="protocol version 2 is not supported; this side speaks version 1"):
        read_recording(newer_protocol)
    broken = tmp_path / "broken.insole"
    broken.write_bytes(b"INSOLE-RECORDING 1\n{not json\n")
    with pytest.raises(NotARecordingError, match="not valid JSON"):
        read_recording(broken)
    headless = tmp_path / "headless.insole"
    headless.write_bytes(b"INSOLE-RECORDING 1\n{\"format\":")
    with pytest.raises(NotARecordingError, match="incomplete"):
        read_recording(headless)


@pytest.mark.parametrize("damage", ["no imu key", "imu not a bool"])
def test_a_stream_entry_without_what_the_reader_needs_is_a_damaged_header(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "damaged.insole"
    write_recording(path, [foot("left", 50, seed=1)], source="simulated")
    _, header_line, _, body = path.read_bytes().split(b"\n", 3)
    header = json.loads(header_line)
    if damage == "no imu key":
        del header["streams"][0]["imu"]
    else:
        header["streams"][0]["imu"] = "yes"
    path.write_bytes(header_bytes(header) + body)  # written that way: its checksum matches
    with pytest.raises(NotARecordingError, match=r"stream 0 in the header is (incomplete|invalid)"):
        read_recording(path)


def write_two_feet(path: Path, writer: str) -> None:
    """A small recording of both feet, as write_recording (importers, simulator) or
    RecordingWriter (live recording) writes it."""
    if writer == "write_recording":
        write_recording(
            path,
            [foot("left", 20, seed=1), foot("right", 20, seed=2, n_pressure=16)],
            source="simulated",
            start_time_utc="2024-06-01T10:00:00Z",
            ground_truth={"steps": "walk.STEPS.csv", "raises": "walk.RAISES.csv"},
        )
        return
    with RecordingWriter(path, live_header()) as live:
        for first in (0, 10):
            for packet in encode_samples(first, *batch(first, 10), time_ms=first * 10):
                live.append(0, packet, host_ms=first * 10 + 5)
                live.append(1, packet, host_ms=first * 10 + 6)


@pytest.mark.parametrize("writer", ["write_recording", "RecordingWriter"])
def test_every_single_bit_flip_in_the_header_is_reported_as_damage(tmp_path: Path, writer: str) -> None:
    # Issue 10: before the header had a checksum, 2239 of these 5480 flips (41 %) read
    # without an error as another header (a renamed pressure_scale, another rate, …).
    path = tmp_path / "flip.insole"
    write_two_feet(path, writer)
    data = path.read_bytes()
    original = read_recording(path).header
    header_len = len(header_bytes(original))
    assert data[:header_len] == header_bytes(original)
    damaged = identical = 0
    silent = []
    for bit in range(8 * header_len):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(flipped)
        try:
            header = read_recording(path).header
        except DamagedHeaderError as exc:
            assert str(exc).startswith(f"{path}: the recording's header is damaged")
            damaged += 1
            continue
        if header == original:
            identical += 1
        else:
            silent.append(bit)
    print(f"{writer}: {8 * header_len} bit flips in the header: {damaged} damaged, {identical} identical")
    assert silent == []
    assert damaged + identical == 8 * header_len


def test_insole_export_refuses_a_damaged_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The case: one bit turned "pressure_scale" into "qressure_scale", the reader
    # fell back to a scale of 1 and the export exited 0 with every pressure ×100.
    path = tmp_path / "scaled.insole"
    write_recording(path, [foot("left", 50, seed=1)], source="simulated", pressure_scales=[0.01])
    data = bytearray(path.read_bytes())
    at = data.index(b'"pressure_scale"') + 1
    data[at] ^= 0x01
    assert data[at : at + 14] == b"qressure_scale"
    path.write_bytes(bytes(data))
    csv = tmp_path / "scaled.csv"
    status = cli_main(["export", str(path), "-o", str(csv)])
    assert status == 2 and not csv.exists()
    message = capsys.readouterr().err
    assert message.startswith(f"insole export: error: {path}: the recording's header is damaged")
    assert "Traceback" not in message


def version_1_bytes(version_2: bytes) -> bytes:
    """The same recording as the version 1 writer wrote it: no checksum line, version 1 in
    the first line and in the header."""
    _, header_line, _, body = version_2.split(b"\n", 3)
    header = json.loads(header_line)
    header["format_version"] = 1
    line = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return b"INSOLE-RECORDING 1\n" + line + b"\n" + body


def test_version_1_recordings_still_read_and_continue(tmp_path: Path) -> None:
    current = tmp_path / "v2.insole"
    write_two_feet(current, "RecordingWriter")
    old = tmp_path / "v1.insole"
    old.write_bytes(version_1_bytes(current.read_bytes()))
    new, legacy = read_recording(current), read_recording(old)
    assert legacy.header == {**new.header, "format_version": 1} and read_header(old) == legacy.header
    assert legacy.bad_frames == 0 and legacy.lost_samples == new.lost_samples == [0, 0]
    for a, b in zip(new.streams, legacy.streams, strict=True):
        np.testing.assert_array_equal(a.pressure, b.pressure)
        np.testing.assert_array_equal(a.acc_ms2, b.acc_ms2)
    # A recorder restarted on a version 1 file keeps its header and continues it.
    with RecordingWriter(old, {}, append=True) as writer:
        assert writer.header["format_version"] == 1
        for packet in encode_samples(20, *batch(20, 10), time_ms=200):
            writer.append(0, packet, host_ms=205)
    continued = read_recording(old)
    assert continued.bad_frames == 0 and not continued.torn_tail
    assert [s.n_samples for s in continued.streams] == [30, 20]


def test_ten_minutes_of_two_feet_read_back_whole(tmp_path: Path) -> None:
    # Its speed: tools/bench_recording.py (no timed assertion here).
    n = 10 * 60 * 100
    streams = [foot("left", n, seed=8), foot("right", n, seed=9)]
    path = tmp_path / "long.insole"
    write_recording(path, streams, source="simulated")
    recording = read_recording(path)
    assert [s.n_samples for s in recording.streams] == [n, n]


def test_quantisation_helpers_agree_with_recorded_values(tmp_path: Path) -> None:
    stream = foot("right", 50, seed=10)
    path = tmp_path / "q.insole"
    write_recording(path, [stream], source="simulated", pressure_scales=[0.002])
    read = read_recording(path).streams[0]
    expected = counts_to_pressure(pressure_to_counts(stream.pressure, 0.002), 0.002)  # type: ignore[arg-type]
    np.testing.assert_array_equal(read.pressure, expected)
