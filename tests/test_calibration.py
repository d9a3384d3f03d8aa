"""insole calibrate: the mounting yaw (known-angle walk, roll test), hil --mount-yaw, the zero check.

A sensor mounted with yaw δ (its x axis δ counter-clockwise from the foot's) reads every
foot-frame vector v as Rz(δ)ᵀ v; the simulator's feet are given that mounting here.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from insole.calibration import (
    CalibrationError,
    forward_angles,
    with_mount_yaw,
    yaw_from_known_angle_walk,
    yaw_from_roll_test,
    zero_check,
)
from insole.cli import main
from insole.emulation.board import SimulatedBoard
from insole.link import SerialLink
from insole.model import FootStream
from insole.protocol import Direction, Step
from insole.recording import write_recording
from insole.sim import Segment, SimulatedSession, Stand, Walk, simulate_session
from insole.validation.imu_cases import host_steps

FPA_DEG = {"left": 8.0, "right": 6.0}  # the walk's toe-out, the calibration's reference
YAW_TOLERANCE_DEG = 0.5


def mounted(stream: FootStream, yaw_deg: float) -> FootStream:
    """The stream as a sensor turned ``yaw_deg`` counter-clockwise on the foot reads it."""
    a = math.radians(yaw_deg)
    rotation = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    assert stream.acc_ms2 is not None and stream.gyro_dps is not None
    return dataclasses.replace(stream, acc_ms2=stream.acc_ms2 @ rotation, gyro_dps=stream.gyro_dps @ rotation)


@pytest.fixture(scope="module")
def walk() -> SimulatedSession:
    plan: list[Segment] = [Stand(duration_s=2.0), Walk(n_steps=40, fpa_deg=(FPA_DEG["left"], FPA_DEG["right"])), Stand(duration_s=2.0)]
    return simulate_session(plan, seed=3)


@pytest.mark.parametrize("yaw_deg", [7.5, -4.0])
def test_known_angle_walk_recovers_the_mounting_yaw(walk: SimulatedSession, yaw_deg: float) -> None:
    # The host twin computes the device's angles bit for bit (tests/test_gait_imu.py).
    for stream in walk.streams:
        steps = host_steps(mounted(stream, yaw_deg))
        angles = [a for a, d in zip(steps.fpa_deg, steps.direction, strict=True) if d == "forward"]
        estimate = yaw_from_known_angle_walk(stream.side, angles, FPA_DEG[stream.side])
        assert estimate.steps >= 15
        assert abs(estimate.yaw_deg - yaw_deg) < YAW_TOLERANCE_DEG, (stream.side, estimate)
        # Measured again through an insole that already takes 2° off: the same yaw.
        already = [a - 2.0 if stream.side == "left" else a + 2.0 for a in angles]
        again = yaw_from_known_angle_walk(stream.side, already, FPA_DEG[stream.side], current_yaw_deg=2.0)
        assert again.yaw_deg == pytest.approx(estimate.yaw_deg)


def test_known_angle_walk_needs_enough_steps() -> None:
    with pytest.raises(CalibrationError, match="3 straight forward steps"):
        yaw_from_known_angle_walk("left", [1.0, 2.0, math.nan, 3.0], 0.0)


def _step(fpa_cdeg: int | None, direction: int = Direction.FORWARD) -> Step:
    return Step(
        ic_index=0, to_index=50, stance_ms=500, swing_ms=400, fpa_cdeg=fpa_cdeg, direction=direction, flags=0,
        peak_pressure=None, medial_share=None, stride_mm=None, speed_mms=None, step_number=1,
    )  # fmt: skip


def test_with_mount_yaw_is_the_firmware_arithmetic() -> None:
    assert with_mount_yaw(_step(1000), "left", 250).fpa_cdeg == 750
    assert with_mount_yaw(_step(1000), "right", 250).fpa_cdeg == 1250
    assert with_mount_yaw(_step(8900), "right", 250).fpa_cdeg == 9000  # clamped as on the device
    assert with_mount_yaw(_step(None), "left", 250).fpa_cdeg is None
    assert forward_angles([_step(100), _step(200, Direction.BACKWARD), _step(None)]) == [1.0]


def _roll_stream(yaw_deg: float, roll_deg: float, tilt_deg: float) -> FootStream:
    """Still flat 2 s, a 1 s roll about the foot's long axis, still rolled 2 s, read by a
    sensor yawed ``yaw_deg`` and tilted ``tilt_deg`` about its own y axis (noise added)."""
    rate = 100.0
    roll = np.concatenate([np.zeros(200), np.linspace(0.0, math.radians(roll_deg), 100), np.full(200, math.radians(roll_deg))])
    rate_x = np.gradient(roll) * rate
    # Specific force in the foot frame: gravity's reaction seen from the rolled foot.
    acc_foot = 9.81 * np.stack([np.zeros_like(roll), np.sin(roll), np.cos(roll)], axis=1)
    gyro_foot = np.stack([np.degrees(rate_x), np.zeros_like(roll), np.zeros_like(roll)], axis=1)
    a, t = math.radians(yaw_deg), math.radians(tilt_deg)
    yaw = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[math.cos(t), 0.0, math.sin(t)], [0.0, 1.0, 0.0], [-math.sin(t), 0.0, math.cos(t)]])
    sensor = yaw @ tilt  # the sensor's axes in the foot frame
    rng = np.random.default_rng(0)
    return FootStream(
        side="right", rate_hz=rate, t0_s=0.0, layout="", pressure=None, pressure_unit="",
        acc_ms2=acc_foot @ sensor + rng.normal(0.0, 0.012, acc_foot.shape),
        gyro_dps=gyro_foot @ sensor + rng.normal(0.0, 0.07, gyro_foot.shape),
    )  # fmt: skip


@pytest.mark.parametrize(("yaw_deg", "roll_deg", "tilt_deg"), [(6.0, 35.0, 10.0), (-9.0, -60.0, -5.0)])
def test_roll_test_recovers_the_mounting_yaw(yaw_deg: float, roll_deg: float, tilt_deg: float) -> None:
    estimate = yaw_from_roll_test(_roll_stream(yaw_deg, roll_deg, tilt_deg))
    assert abs(estimate.yaw_deg - yaw_deg) < 0.2, estimate


def test_roll_test_refuses_a_shoe_not_rolled() -> None:
    with pytest.raises(CalibrationError, match="not rolled"):
        yaw_from_roll_test(_roll_stream(6.0, 5.0, 0.0))


def _with_offset(walk: SimulatedSession, cell: int, offset_kpa: float) -> list[FootStream]:
    left, right = walk.streams
    assert left.pressure is not None
    pressure = left.pressure.copy()
    pressure[:, cell] += offset_kpa
    return [dataclasses.replace(left, pressure=pressure), right]


def test_zero_check_flags_the_offset_cell_and_no_other(walk: SimulatedSession) -> None:
    streams = _with_offset(walk, 2, 20.0)
    flagged = []
    for stream in streams:
        own = [s for s in walk.steps if s.side == stream.side]
        cells = zero_check(stream, [s.ic_s for s in own], [s.to_s for s in own])
        assert len(cells) == 8 and cells[0].unit == "kPa"
        flagged += [(c.side, c.cell) for c in cells if c.flagged]
        if stream.side == "left":
            assert cells[2].swing_median == pytest.approx(20.0, abs=2.0)
    assert flagged == [("left", 3)]


# --------------------------------------------------------------------------- through the firmware


@pytest.fixture(scope="module")
def yawed_recording(walk: SimulatedSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "yawed.insole"
    streams = [mounted(s, 7.5) for s in _with_offset(walk, 2, 20.0)]
    write_recording(path, streams, source="simulated")
    return path


def _fpa(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"left": [], "right": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["direction"] == "forward" and row["fpa_deg"]:
                out[row["side"]].append(float(row["fpa_deg"]))
    return out


@pytest.mark.micropython
def test_calibrate_writes_the_yaw_and_hil_applies_it(
    yawed_recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings") as board:
        assert main(["calibrate", "walk", str(yawed_recording), "--reference-deg", "left=8,right=6",
                     "--side", "left", "--port", f"left={board.port}"]) == 0  # fmt: skip
        with SerialLink(board.port) as link:
            stored = link.get_settings().imu_yaw_cdeg
    assert abs(stored / 100 - 7.5) < YAW_TOLERANCE_DEG
    assert f"mounting yaw {stored / 100:+.2f}°" in capsys.readouterr().out

    raw, calibrated = tmp_path / "raw.csv", tmp_path / "calibrated.csv"
    assert main(["hil", str(yawed_recording), "--steps", str(raw)]) == 0
    assert main(["hil", str(yawed_recording), "--steps", str(calibrated), "--mount-yaw", "left=7.5,right=-2"]) == 0
    before, after = _fpa(raw), _fpa(calibrated)
    assert len(before["left"]) >= 15 and len(before["left"]) == len(after["left"])
    assert np.array(after["left"]) == pytest.approx(np.array(before["left"]) - 7.5, abs=1e-9)
    assert np.array(after["right"]) == pytest.approx(np.array(before["right"]) - 2.0, abs=1e-9)
    # Uncalibrated, the sensor's yaw sits in the angles; taken off, they are the walk's again.
    assert abs(float(np.median(before["left"])) - FPA_DEG["left"] - 7.5) < 1.0
    assert abs(float(np.median(after["left"])) - FPA_DEG["left"]) < 1.0


@pytest.mark.micropython
def test_reports_and_exports_take_the_mounting_yaw_off_a_replay(yawed_recording: Path) -> None:
    """`insole report` and `export` (session_results) replay with --mount-yaw as `hil` does:
    the sensor's 7.5° (on both feet) taken off, each foot's angles are the walk's again."""
    from insole.analysis.results import session_results

    results = session_results(yawed_recording, events_from="replay", mount_yaw_deg=7.5)
    for side in ("left", "right"):
        angles = [s.fpa_deg for s in results.steps if s.side == side and s.direction == "forward" and s.fpa_deg is not None]
        assert len(angles) >= 15
        assert abs(float(np.median(angles)) - FPA_DEG[side]) < 1.0, (side, float(np.median(angles)))


@pytest.mark.micropython
def test_calibrate_zero_reports_the_cell_reading_in_swing(
    yawed_recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibrate", "zero", str(yawed_recording)]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 16
    assert [(r["side"], r["cell"]) for r in rows if r["flagged"] == "yes"] == [("left", "p3")]


def test_calibrate_walk_counts_a_partial_stance_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # A stance an IMU-only insole reported in two halves (docs/protocol.md) is one step of
    # the walk, even when both halves carry its foot angle.
    import insole.hil
    from partial_stances import LEFT_RECORDS, RIGHT_RECORDS, write_partial_stance_recording

    path = tmp_path / "edges.insole"
    write_partial_stance_recording(path)
    second_half = dataclasses.replace(LEFT_RECORDS[4], fpa_cdeg=520, direction=Direction.FORWARD)
    replayed = {"left": [*LEFT_RECORDS[:4], second_half, *LEFT_RECORDS[5:]], "right": list(RIGHT_RECORDS)}

    def replay(streams: list[FootStream], _scales: list[float], **_options: object) -> list[insole.hil.FootReplay]:
        return [insole.hil.FootReplay(s.side, steps=replayed[s.side]) for s in streams]

    monkeypatch.setattr(insole.hil, "replay_recording", replay)
    assert main(["calibrate", "walk", str(path), "--reference-deg", "5", "--min-steps", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "left: mounting yaw" in out and ", 5 steps," in out  # stances 2 to 6, the fourth once
    assert ", 4 steps," in out
