"""`insole import` then `insole hil`: real and simulated recordings through the firmware."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import require_shared_data
from insole.cli import main
from insole.export.events_csv import read_steps_csv

pytestmark = pytest.mark.micropython


def _hil(recording: Path, tmp_path: Path) -> list:
    steps_csv = tmp_path / "steps.csv"
    raises_csv = tmp_path / "raises.csv"
    assert main(["hil", str(recording), "--steps", str(steps_csv), "--heel-raises", str(raises_csv)]) == 0
    with open(raises_csv) as f:
        assert next(csv.reader(f)) == ["side", "start_s", "end_s", "hold_s"]
    return read_steps_csv(steps_csv)


def test_gaitpdb_import_and_hil(tmp_path: Path) -> None:
    source = require_shared_data("gaitpdb", "GaCo01_01.txt")
    recording = tmp_path / "walk.insole"
    assert main(["import", "gaitpdb", str(source), "-o", str(recording)]) == 0
    steps = _hil(recording, tmp_path)
    for side in ("left", "right"):
        mine = [s for s in steps if s.side == side]
        # A 2-minute walk of a healthy control: roughly one stride per second per foot.
        assert 80 <= len(mine) <= 120, (side, len(mine))
        # Stance times of walking; a few long ones where the subject stops or turns.
        assert sum(0.3 <= s.to_s - s.ic_s <= 1.5 for s in mine) >= 0.95 * len(mine)
        assert sum(s.direction == "forward" for s in mine) >= 0.9 * len(mine)


def test_moticon_import_and_hil(tmp_path: Path) -> None:
    source = require_shared_data("moticon_opengo", "230927_102114.txt")
    recording = tmp_path / "walk.insole"
    assert main(["import", "moticon", str(source), "-o", str(recording)]) == 0
    steps = _hil(recording, tmp_path)
    assert {s.side for s in steps} == {"left", "right"}
    assert len(steps) >= 10


def test_simulated_walk_hil_matches_ground_truth_counts(tmp_path: Path) -> None:
    recording = tmp_path / "sim.insole"
    assert main(["simulate", "-o", str(recording), "--plan", "walk", "--duration-s", "30", "--seed", "3"]) == 0
    truth = read_steps_csv(recording.with_suffix(".steps.csv"))
    steps = _hil(recording, tmp_path)
    for side in ("left", "right"):
        expected = [s for s in truth if s.side == side]
        found = [s for s in steps if s.side == side]
        assert abs(len(found) - len(expected)) <= 2, (side, len(found), len(expected))
        # Each true contact has a detected one within 100 ms.
        matched = sum(any(abs(f.ic_s - e.ic_s) <= 0.1 for f in found) for e in expected)
        assert matched >= len(expected) - 2, (side, matched, len(expected))


def test_simulated_demo_hil_writes_accurate_angles_directions_and_raises(tmp_path: Path) -> None:
    """The demo session (toe-out walking, a turn, backward walking, weight shifts, heel
    raises) through `insole hil`: the rows carry the foot angle, the direction and the
    repetitions the simulator knows exactly."""
    from insole.export.events_csv import read_raises_csv

    recording = tmp_path / "demo.insole"
    assert main(["simulate", "-o", str(recording), "--plan", "demo", "--seed", "2"]) == 0
    truth = read_steps_csv(recording.with_suffix(".steps.csv"))
    true_raises = read_raises_csv(recording.with_suffix(".raises.csv"))
    steps_csv, raises_csv = tmp_path / "steps.csv", tmp_path / "raises.csv"
    assert main(["hil", str(recording), "--steps", str(steps_csv), "--heel-raises", str(raises_csv)]) == 0
    steps = read_steps_csv(steps_csv)
    errors, directions = [], []
    for expected in truth:
        near = [s for s in steps if s.side == expected.side and abs(s.ic_s - expected.ic_s) <= 0.1]
        if not near:
            continue
        found = near[0]
        directions.append(found.direction == expected.direction)
        if found.fpa_deg is not None and expected.fpa_deg is not None:
            errors.append(abs(found.fpa_deg - expected.fpa_deg))
    assert len(directions) >= 0.95 * len(truth)
    assert sum(directions) >= 0.97 * len(directions)  # forward and backward bouts, and a turn
    assert len(errors) >= 0.8 * len(truth) and sum(errors) / len(errors) < 1.5
    raises = read_raises_csv(raises_csv)
    for side in ("left", "right"):
        assert len([r for r in raises if r.side == side]) == len([r for r in true_raises if r.side == side])


def test_steps_csv_holds_whole_stances_of_partial_records(tmp_path: Path) -> None:
    # The two halves of a stance an IMU-only insole reported apart (docs/protocol.md) are
    # one STEPS.csv row; a half whose other half never came has none (STEPS.csv rows are
    # whole stances).
    from insole.export.events_csv import write_steps_csv
    from insole.hil import FootReplay, step_rows
    from partial_stances import LEFT_RECORDS, imu_stream

    stream = imu_stream("left")
    rows = step_rows(stream, FootReplay("left", steps=list(LEFT_RECORDS)))
    assert [(row.ic_s, row.to_s, row.fpa_deg) for row in rows] == [
        (1.4, 2.0, 5.0), (2.5, 3.1, 9.0), (3.6, 9.0, 5.2), (10.0, 10.6, 4.8),
    ]  # fmt: skip
    assert write_steps_csv(tmp_path / "steps.csv", rows) == 4
    assert [row.ic_s for row in read_steps_csv(tmp_path / "steps.csv")] == [1.4, 2.5, 3.6, 10.0]
