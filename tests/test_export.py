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
