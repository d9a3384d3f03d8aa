"""`insole export`: recording → CSV in physical units."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from insole.commands import export
from insole.errors import InsoleError, UserError
from insole.model import FootStream
from insole.recording import read_recording, write_recording


def run_export(*argv: str) -> int:
    """Parse and run like the CLI does, with only the export subcommand registered."""
    parser = argparse.ArgumentParser(prog="insole")
    export.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *argv])
    return int(args.func(args))


def make_recording(path: Path) -> tuple[FootStream, FootStream]:
    rng = np.random.default_rng(11)
    left = FootStream(
        side="left", rate_hz=204.8, t0_s=1.5, layout="insole8",
        pressure=rng.uniform(0, 30, (40, 8)), pressure_unit="N/cm2",
        acc_ms2=rng.normal(0, 10, (40, 3)), gyro_dps=rng.normal(0, 200, (40, 3)),
    )  # fmt: skip
    left.pressure[3, 2] = np.nan  # type: ignore[index]
    left.gyro_dps[5, :] = np.nan  # type: ignore[index]
    left.acc_ms2[5, :] = np.nan  # type: ignore[index]
    right = FootStream(
        side="right", rate_hz=100.0, t0_s=0.0, layout="gaitpdb8",
        pressure=rng.uniform(0, 900, (25, 4)), pressure_unit="N",
        acc_ms2=None, gyro_dps=None,
    )  # fmt: skip
    # Streams are given right first: the CSV still groups left before right.
    write_recording(path, [right, left], source="simulated", pressure_scales=[0.02, 0.001])
    return left, right


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows])


def test_export_all_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording_path = tmp_path / "walk.insole"
    left, right = make_recording(recording_path)
    out = tmp_path / "walk.csv"
    assert run_export(str(recording_path), "-o", str(out)) == 0
    assert "65 rows" in capsys.readouterr().out
    columns, rows = read_csv(out)
    assert columns == ["side", "index", "t_s"] + [f"p{k}" for k in range(1, 9)] + ["ax", "ay", "az", "gx", "gy", "gz"]
    sides = [r["side"] for r in rows]
    assert sides == ["left"] * 40 + ["right"] * 25
    left_rows, right_rows = rows[:40], rows[40:]
    assert column(left_rows, "index").tolist() == list(range(40))
    np.testing.assert_allclose(column(left_rows, "t_s"), 1.5 + np.arange(40) / 204.8, atol=5e-7)  # µs
    recorded = read_recording(recording_path)
    left_read = recorded.stream("left")
    for k in range(8):
        exported = column(left_rows, f"p{k + 1}")
        np.testing.assert_array_equal(np.isnan(exported), np.isnan(left.pressure[:, k]))  # type: ignore[index]
        np.testing.assert_allclose(exported, left_read.pressure[:, k], atol=1e-12)  # type: ignore[index]
    assert left_rows[3]["p3"] == "" and left_rows[5]["gx"] == "" and left_rows[5]["ax"] == ""
    np.testing.assert_allclose(column(left_rows, "ax"), left.acc_ms2[:, 0], atol=0.0049 + 5e-6)  # type: ignore[index]
    np.testing.assert_allclose(column(left_rows, "gz"), left.gyro_dps[:, 2], atol=0.05 + 1e-9)  # type: ignore[index]
    # The right foot has 4 channels and no IMU: its other cells are empty.
    assert all(r["p5"] == "" and r["ax"] == "" and r["gz"] == "" for r in right_rows)
    np.testing.assert_allclose(column(right_rows, "p1"), right.pressure[:, 0], atol=0.01 + 1e-9)  # type: ignore[index]
    assert right_rows[1]["t_s"] == "0.010"


def test_export_one_side(tmp_path: Path) -> None:
    recording_path = tmp_path / "walk.insole"
    make_recording(recording_path)
    out = tmp_path / "right.csv"
    assert run_export(str(recording_path), "-o", str(out), "--stream", "right") == 0
    columns, rows = read_csv(out)
    assert columns == ["side", "index", "t_s", "p1", "p2", "p3", "p4"]
    assert len(rows) == 25 and {r["side"] for r in rows} == {"right"}


def test_export_errors_are_user_errors(tmp_path: Path) -> None:
    only_left = tmp_path / "left.insole"
    stream = FootStream("left", 100.0, 0.0, "insole8", np.ones((5, 8)), "counts", None, None)
    write_recording(only_left, [stream], source="device")
    with pytest.raises(UserError, match="has no right stream"):
        run_export(str(only_left), "-o", str(tmp_path / "x.csv"), "--stream", "right")
    not_recording = tmp_path / "x.txt"
    not_recording.write_text("hello\n")
    with pytest.raises(UserError, match="not an insole recording"):
        run_export(str(not_recording), "-o", str(tmp_path / "y.csv"))
    future = tmp_path / "future.insole"
    future.write_bytes(b"INSOLE-RECORDING 3\n{}\n")
    # A version error is no UserError (it is an UnsupportedVersionError), but the CLI
    # treats it as one: printed plainly, with the exit status of unusable input.
    with pytest.raises(InsoleError, match="version 3 is not supported") as info:
        run_export(str(future), "-o", str(tmp_path / "z.csv"))
    assert info.value.exit_code == UserError.exit_code == 2


# --------------------------------------------------------------------------- per foot, round trip


def test_export_per_foot_round_trips_through_import_csv(tmp_path: Path) -> None:
    from insole.commands import import_

    recording_path = tmp_path / "walk.insole"
    make_recording(recording_path)
    assert run_export(str(recording_path), "-o", str(tmp_path / "walk.csv"), "--per-foot") == 0
    parser = argparse.ArgumentParser(prog="insole")
    import_.add_parser(parser.add_subparsers(dest="command", required=True))
    back = tmp_path / "back.insole"
    args = parser.parse_args(
        ["import", "csv", "--left", str(tmp_path / "walk.left.csv"), "--right", str(tmp_path / "walk.right.csv"),
         "-o", str(back)]
    )  # fmt: skip
    assert args.func(args) == 0
    original, imported = read_recording(recording_path), read_recording(back)
    for side in ("left", "right"):
        a, b = original.stream(side), imported.stream(side)
        assert (b.rate_hz, b.n_samples, b.n_pressure, b.has_imu) == (a.rate_hz, a.n_samples, a.n_pressure, a.has_imu)
        assert b.t0_s == pytest.approx(a.t0_s, abs=1e-9)
        scale = float(imported.header["streams"][[s.side for s in imported.streams].index(side)]["pressure_scale"])
        assert a.pressure is not None and b.pressure is not None
        np.testing.assert_array_equal(np.isnan(b.pressure), np.isnan(a.pressure))
        np.testing.assert_allclose(b.pressure, a.pressure, atol=scale / 2 + 1e-9)  # re-quantised once
        if a.has_imu:
            np.testing.assert_allclose(b.acc_ms2, a.acc_ms2, atol=1e-5)  # type: ignore[arg-type]
            np.testing.assert_allclose(b.gyro_dps, a.gyro_dps, atol=1e-9)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the session's own results


def _events_recording(path: Path) -> None:
    """Two feet of 600 samples with the insoles' own events appended: a SETTINGS band of
    10° ± 3°, three steps per foot (the second of the left foot out of band, with its
    CUE), and two heel raises of one set on the left."""
    from insole.protocol import Cue, CueOutcome, CuePattern, CueReason, HeelRaise, Settings, Step
    from insole.recording import RecordingWriter

    streams = [
        FootStream(side, 100.0, 0.0, "insole8", np.full((600, 8), 5.0), "kPa", None, None) for side in ("left", "right")
    ]
    write_recording(path, streams, source="device", pressure_scales=[0.01, 0.01])
    with RecordingWriter(path, {}, append=True) as writer:
        for stream_id in (0, 1):
            writer.append(stream_id, Settings(fpa_target_cdeg=1000, fpa_half_width_cdeg=300).encode(), 0)
            for k, (ic, fpa) in enumerate(((100, 950), (210, 1500 if stream_id == 0 else 1100), (320, 1050))):
                step = Step(ic_index=ic + 50 * stream_id, to_index=ic + 50 * stream_id + 62, stance_ms=620,
                            swing_ms=None if k == 0 else 480, fpa_cdeg=fpa, direction=1, flags=1, peak_pressure=6000,
                            medial_share=100, stride_mm=1300, speed_mms=None if k == 0 else 1190, step_number=k + 1)  # fmt: skip
                writer.append(stream_id, step.encode(seq=k), 0)
                if stream_id == 0 and k == 1:
                    cue = Cue(step_number=2, decision_index=ic + 62, decision_ms=0, motor_start_ms=1, latency_us=900,
                              fpa_cdeg=fpa, target_cdeg=1000, half_width_cdeg=300, reason=CueReason.TOE_IN,
                              outcome=CueOutcome.CUED, pattern=CuePattern.LONG, duty_pct=60, duration_ms=300,
                              out_of_band_steps=1)  # fmt: skip
                    writer.append(stream_id, cue.encode(seq=0), 0)
        for rep, start in enumerate((400, 500), start=1):
            raised = HeelRaise(start_index=start, end_index=start + 80, hold_ms=500, rep=rep, set=1)
            writer.append(0, raised.encode(seq=rep - 1), 0)


def test_export_results_csv_parquet_and_gaitmap_strides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.dataset as ds  # type: ignore[import-untyped]

    recording_path = tmp_path / "s01.insole"
    _events_recording(recording_path)
    out = tmp_path / "out"
    out.mkdir()
    root = tmp_path / "dataset"
    assert run_export(str(recording_path), "--results", str(out), "--parquet", str(root), "--participant", "p7") == 0
    assert "results from the recording's events: 6 steps, 1 cues, 2 heel raises" in capsys.readouterr().out

    _columns, steps = read_csv(out / "s01.steps.csv")
    assert [(r["side"], r["ic_index"], r["in_band"]) for r in steps] == [
        ("left", "100", "true"), ("right", "150", "true"), ("left", "210", "false"),
        ("right", "260", "true"), ("left", "320", "true"), ("right", "370", "true"),
    ]  # fmt: skip
    assert steps[0]["band_target_deg"] == "10.00" and steps[0]["ic_s"] == "1.0000" and steps[0]["swing_s"] == ""
    _columns, cues = read_csv(out / "s01.cues.csv")
    assert [(c["side"], c["t_s"], c["reason"], c["delivered"], c["latency_ms"]) for c in cues] == [
        ("left", "2.7200", "toe_in", "true", "0.900")
    ]
    _columns, raises = read_csv(out / "s01.heel-raises.csv")
    assert [(r["side"], r["set"], r["rep"], r["hold_s"]) for r in raises] == [
        ("left", "1", "1", "0.500"),
        ("left", "1", "2", "0.500"),
    ]
    columns, strides = read_csv(out / "s01.gaitmap-strides.csv")
    # gaitmap's stride list: s_id unique over the file, then the foot, events in samples.
    assert columns[:6] == ["s_id", "foot", "start", "end", "ic", "tc"]
    assert [(r["s_id"], r["foot"], r["start"], r["end"], r["ic"], r["tc"]) for r in strides] == [
        ("0", "left", "100", "210", "100", "162"), ("1", "left", "210", "320", "210", "272"),
        ("2", "right", "150", "260", "150", "212"), ("3", "right", "260", "370", "260", "322"),
    ]  # fmt: skip
    assert strides[0]["stride_time"] == "1.1000" and strides[0]["fpa_deg"] == "15.00"  # the step the stride ends in

    dataset = ds.dataset(root / "steps", format="parquet", partitioning="hive")
    table = dataset.to_table().to_pylist()
    assert {(r["participant"], r["session"], r["foot"]) for r in table} == {
        ("p7", "s01", "left"),
        ("p7", "s01", "right"),
    }
    assert sorted(r["ic_index"] for r in table if r["foot"] == "left") == [100, 210, 320]
    assert "side" not in dataset.schema.names  # the foot is the partition
    assert (
        root / "cues" / "participant=p7" / "session=s01" / "foot=right" / "part-0.parquet"
    ).exists()  # empty, with schema
    samples = ds.dataset(root / "samples", format="parquet", partitioning="hive").to_table()
    assert samples.num_rows == 1200 and samples.column("p1").to_pylist()[0] == pytest.approx(5.0)

    # The same session again: refused without --force, replaced with it.
    with pytest.raises(UserError, match="is in the dataset already"):
        run_export(str(recording_path), "--parquet", str(root), "--participant", "p7")
    assert run_export(str(recording_path), "--parquet", str(root), "--participant", "p7", "-f") == 0
    assert ds.dataset(root / "steps", format="parquet", partitioning="hive").count_rows() == 6


def test_export_reports_damage_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording_path = tmp_path / "walk.insole"
    stream = FootStream("left", 100.0, 0.0, "insole8", np.full((2000, 8), 5.0), "kPa", None, None)
    write_recording(recording_path, [stream], source="device", pressure_scales=[0.01])
    data = bytearray(recording_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one frame's CRC fails: its samples are lost
    recording_path.write_bytes(bytes(data))
    assert run_export(str(recording_path), "-o", str(tmp_path / "walk.csv")) == 0
    err = capsys.readouterr().err
    lost = read_recording(recording_path).lost_samples[0]
    assert lost > 0
    assert "1 damaged frame(s) skipped" in err
    assert f"left: {lost} lost sample(s)" in err


def test_export_needs_something_to_write(tmp_path: Path) -> None:
    recording_path = tmp_path / "walk.insole"
    make_recording(recording_path)
    with pytest.raises(UserError, match="nothing to write"):
        run_export(str(recording_path))
    with pytest.raises(UserError, match="--per-foot"):
        run_export(str(recording_path), "--per-foot", "--results", str(tmp_path))
    with pytest.raises(UserError, match="participant id"):
        run_export(str(recording_path), "--parquet", str(tmp_path / "d"), "--participant", "../x")


def test_export_results_of_partial_stances(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # IMU-only insoles report the stances at a walk's edges in halves (docs/protocol.md):
    # each stance is one row, its missing event an empty cell, and a stride that misses
    # one of its events is left out of gaitmap's list.
    import pyarrow.dataset as ds

    from partial_stances import LEFT_STANCES, RIGHT_STANCES, write_partial_stance_recording

    recording_path = tmp_path / "edges.insole"
    write_partial_stance_recording(recording_path)
    out = tmp_path / "out"
    out.mkdir()
    root = tmp_path / "dataset"
    assert run_export(str(recording_path), "--results", str(out), "--parquet", str(root)) == 0
    assert f"{LEFT_STANCES + RIGHT_STANCES} steps, 0 cues" in capsys.readouterr().out

    _columns, steps = read_csv(out / "edges.steps.csv")
    left = [(r["step_number"], r["ic_index"], r["to_index"], r["stance_s"], r["swing_s"]) for r in steps if r["side"] == "left"]
    assert left == [
        ("1", "", "40", "", ""),  # began at rest: its toe-off only
        ("2", "140", "200", "0.600", "1.000"),
        ("3", "250", "310", "0.600", "0.500"),
        ("4", "360", "900", "", "0.500"),  # came to rest and walked on: one step, no stance time
        ("5", "1000", "1060", "0.600", "1.000"),
        ("6", "1110", "", "", "0.500"),  # ended standing
    ]  # fmt: skip
    first = next(r for r in steps if r["step_number"] == "1" and r["side"] == "left")
    assert (first["ic_s"], first["to_s"], first["fpa_deg"], first["in_band"]) == ("", "0.4000", "", "")
    assert [(r["step_number"], r["to_index"]) for r in steps if r["side"] == "right"] == [
        ("1", "255"), ("2", "365"), ("3", ""), ("4", "660"),
    ]  # fmt: skip

    _columns, strides = read_csv(out / "edges.gaitmap-strides.csv")
    assert [(r["foot"], r["start"], r["end"], r["tc"]) for r in strides] == [
        ("left", "140", "250", "200"), ("left", "250", "360", "310"), ("left", "1000", "1110", "1060"),
        ("right", "195", "305", "255"), ("right", "305", "415", "365"),  # 415 -> 600: its toe-off is missing
    ]  # fmt: skip

    table = ds.dataset(root / "steps", format="parquet", partitioning="hive").to_table().to_pylist()
    left_rows = sorted((r for r in table if r["foot"] == "left"), key=lambda r: r["step_number"])
    assert [(r["ic_index"], r["to_index"], r["stance_s"]) for r in left_rows] == [
        (None, 40, None), (140, 200, 0.6), (250, 310, 0.6), (360, 900, None), (1000, 1060, 0.6), (1110, None, None),
    ]  # fmt: skip
    assert len(table) == LEFT_STANCES + RIGHT_STANCES
