"""Calibration of a fitted insole: the IMU's mounting yaw and the pressure cells' zero.

The mounting yaw (docs/gait-imu.md, docs/calibration.md) is the angle by which the
sensor's x axis is turned counter-clockwise from the foot's long axis. It adds to the
left foot's angle and subtracts from the right's, one for one; the insole keeps it in
its settings (``imu_yaw_cdeg``) and takes it off every live foot angle. Two ways to
measure it:

* :func:`yaw_from_known_angle_walk`: the wearer walks straight at a foot angle known
  from a reference (feet parallel along a line, footprints, video); the yaw is the
  median difference between the device's per-step angle and the reference.
* :func:`yaw_from_roll_test`: the shoe stands still flat, then still rolled about its
  heel–toe line; gravity turns about that line, whose heading in the sensor's levelled
  frame is minus the yaw (:func:`insole.gait.stride.mounting_yaw_from_roll_deg`).

:func:`zero_check` reports pressure cells that read load while the foot is in the air.
:func:`with_mount_yaw` takes a yaw off a step's angle exactly as the firmware does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insole.errors import UserError
from insole.gait.stride import mounting_yaw_from_roll_deg
from insole.model import STANDARD_GRAVITY_MS2, FloatArray, FootStream, Side
from insole.protocol import Settings, Step

MIN_WALK_STEPS = 10  # straight steps per foot: the median's error is ~0.3° at 0.8° step-to-step scatter
MAX_FPA_CDEG = 9000  # the device clamps every foot angle to ±90°
# The roll test's still poses: the gyro below this (deg/s, |g|), |a| within this of g, this long.
STILL_GYRO_DPS = 3.0
STILL_ACC_TOLERANCE = 0.05
STILL_MIN_S = 1.0
MIN_ROLL_DEG = 20.0  # less and the cross product of the two gravity readings is too short to trust
# Swing: the middle of each toe-off -> next initial contact gap of one foot; the edges are
# trimmed because the cells unload and load over tens of ms around the events.
SWING_TRIM_FRACTION = 0.2
MAX_SWING_S = 1.5  # a longer gap is standing or a lost step, not a swing
DEFAULT_ZERO_FRACTION = 0.03  # default threshold: 3 % of the foot's 99th-percentile cell reading


class CalibrationError(UserError):
    """The data cannot give a calibration (too few steps, no still poses ...)."""


def _sign(side: Side) -> float:
    # The yaw adds to the left foot's angle and subtracts from the right's.
    return 1.0 if side == "left" else -1.0


@dataclass(frozen=True)
class YawEstimate:
    """A mounting yaw measured on one foot.

    ``yaw_deg`` is what the insole should store; ``current_yaw_deg`` the yaw that was
    already taken off the angles measured (0 for a replay); ``steps`` how many steps
    (or, for the roll test, poses: 2) it rests on; ``scatter_deg`` the steps' robust
    standard deviation (1.4826 × MAD) and ``uncertainty_deg`` the median's standard
    error (1.2533 × scatter / √n); NaN for the roll test."""

    side: Side
    yaw_deg: float
    method: str
    steps: int
    scatter_deg: float = math.nan
    uncertainty_deg: float = math.nan
    current_yaw_deg: float = 0.0


def yaw_from_known_angle_walk(
    side: Side,
    fpa_deg: Sequence[float],
    reference_deg: float,
    *,
    current_yaw_deg: float = 0.0,
    min_steps: int = MIN_WALK_STEPS,
) -> YawEstimate:
    """The mounting yaw from the device's angles of straight forward steps walked at a
    known foot angle ``reference_deg`` (positive toe-out), measured with
    ``current_yaw_deg`` already taken off. Left: yaw = current + (device − reference);
    right: current − (device − reference); the median over the steps."""
    angles = np.asarray([a for a in fpa_deg if math.isfinite(a)], dtype=np.float64)
    if len(angles) < min_steps:
        raise CalibrationError(
            f"{side} foot: {len(angles)} straight forward steps with a foot angle, need at least {min_steps}",
            advice="walk straight for longer (turns and the first steps from standing do not count)",
        )
    per_step = current_yaw_deg + _sign(side) * (angles - reference_deg)
    median = float(np.median(per_step))
    scatter = 1.4826 * float(np.median(np.abs(per_step - median)))
    return YawEstimate(
        side=side,
        yaw_deg=median,
        method=f"known-angle walk at {reference_deg:+g}°",
        steps=len(angles),
        scatter_deg=scatter,
        uncertainty_deg=1.2533 * scatter / math.sqrt(len(angles)),
        current_yaw_deg=current_yaw_deg,
    )


def forward_angles(steps: Sequence[Step]) -> list[float]:
    """The foot angles of a device's forward steps (turns, backward and unknown left out)."""
    from insole.protocol import Direction

    return [s.fpa_cdeg / 100.0 for s in steps if s.direction == Direction.FORWARD and s.fpa_cdeg is not None]


def with_mount_yaw(step: Step, side: Side, yaw_cdeg: int) -> Step:
    """The step as an insole storing ``yaw_cdeg`` would have reported it: the firmware's
    own arithmetic (``insolefw/stride.py``), on the same integers, clamped to ±90°."""
    if step.fpa_cdeg is None or not yaw_cdeg:
        return step
    cdeg = step.fpa_cdeg - yaw_cdeg if side == "left" else step.fpa_cdeg + yaw_cdeg
    return dataclasses.replace(step, fpa_cdeg=max(-MAX_FPA_CDEG, min(MAX_FPA_CDEG, cdeg)))


def yaw_cdeg(yaw_deg: float) -> int:
    """A yaw in the settings' unit (0.01°)."""
    return round(yaw_deg * 100)


# --------------------------------------------------------------------------- roll test


@dataclass(frozen=True)
class StillPose:
    """A still stretch of an IMU stream: sample range and mean specific force (m/s²)."""

    start: int
    end: int  # exclusive
    gravity_ms2: FloatArray


def still_poses(stream: FootStream) -> list[StillPose]:
    """Stretches of at least ``STILL_MIN_S`` where the sensor does not move."""
    if stream.acc_ms2 is None or stream.gyro_dps is None:
        raise CalibrationError(f"{stream.side} stream has no IMU: the roll test needs one")
    gyro = np.linalg.norm(np.nan_to_num(stream.gyro_dps, nan=1e9), axis=1)
    acc = np.linalg.norm(np.nan_to_num(stream.acc_ms2, nan=0.0), axis=1)
    still = (gyro < STILL_GYRO_DPS) & (np.abs(acc / STANDARD_GRAVITY_MS2 - 1.0) < STILL_ACC_TOLERANCE)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(np.int8), [0]])))
    min_len = math.ceil(STILL_MIN_S * stream.rate_hz)
    return [
        StillPose(int(a), int(b), stream.acc_ms2[a:b].mean(axis=0))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if b - a >= min_len
    ]


def _angle_deg(a: FloatArray, b: FloatArray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _vector(v: FloatArray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def yaw_from_roll_test(stream: FootStream) -> YawEstimate:
    """The mounting yaw from a roll test in ``stream``: the first still pose is the shoe
    flat, the still pose whose gravity is farthest from it (at least ``MIN_ROLL_DEG``)
    the shoe rolled about its heel–toe line."""
    poses = still_poses(stream)
    if not poses:
        raise CalibrationError(f"{stream.side} foot: no still pose of {STILL_MIN_S:g} s or more")
    flat = poses[0]
    rolled = max(poses[1:], key=lambda p: _angle_deg(flat.gravity_ms2, p.gravity_ms2), default=None)
    roll = _angle_deg(flat.gravity_ms2, rolled.gravity_ms2) if rolled is not None else 0.0
    if rolled is None or roll < MIN_ROLL_DEG:
        raise CalibrationError(
            f"{stream.side} foot: the shoe was not rolled (largest turn between still poses {roll:.1f}°, "
            f"need {MIN_ROLL_DEG:g}°)",
            advice="hold the shoe flat for 2 s, then rolled about its heel–toe line by 30° or more for 2 s",
        )
    yaw = mounting_yaw_from_roll_deg(_vector(flat.gravity_ms2), _vector(rolled.gravity_ms2))
    return YawEstimate(side=stream.side, yaw_deg=yaw, method=f"roll test ({roll:.0f}° roll)", steps=2)


# --------------------------------------------------------------------------- writing


def settings_with_yaw(current: Settings, yaw_deg: float) -> Settings:
    """``current`` with the mounting yaw replaced, checked as ``insole cue set`` checks it."""
    from insole.settings import apply_cue_options

    return apply_cue_options(current, mount_yaw_deg=yaw_deg)


# --------------------------------------------------------------------------- zero check


@dataclass(frozen=True)
class CellZero:
    """One pressure cell's reading while its foot is in the air."""

    side: Side
    cell: int  # 1-based, as in the CSV columns p1..pN
    swing_median: float
    threshold: float
    unit: str

    @property
    def flagged(self) -> bool:
        return self.swing_median > self.threshold


def swing_mask(stream: FootStream, ic_s: Sequence[float], to_s: Sequence[float]) -> npt.NDArray[np.bool_]:
    """Samples in the middle of this foot's swings: from each toe-off to the next initial
    contact (at most ``MAX_SWING_S`` later), ``SWING_TRIM_FRACTION`` trimmed at each end."""
    t = stream.times_s()
    mask = np.zeros(len(t), dtype=bool)
    contacts = np.sort(np.asarray(ic_s, dtype=np.float64))
    for off in to_s:
        later = contacts[contacts > off]
        if not len(later) or later[0] - off > MAX_SWING_S:
            continue
        trim = SWING_TRIM_FRACTION * (later[0] - off)
        mask |= (t >= off + trim) & (t <= later[0] - trim)
    return mask



def zero_check(
    stream: FootStream, ic_s: Sequence[float], to_s: Sequence[float], *, threshold: float | None = None
) -> list[CellZero]:
    """Per cell, the median reading in the middle of the foot's swings; flagged above
    ``threshold`` (in ``stream.pressure_unit``; default ``DEFAULT_ZERO_FRACTION`` of the
    foot's 99th-percentile cell reading)."""
    if stream.pressure is None:
        raise CalibrationError(f"{stream.side} stream has no pressure cells")
    mask = swing_mask(stream, ic_s, to_s)
    if not mask.any():
        raise CalibrationError(f"{stream.side} foot: no swing phase found (no steps)", advice="walk a few steps")
    if threshold is None:
        threshold = DEFAULT_ZERO_FRACTION * float(np.nanpercentile(stream.pressure, 99))
    swing = stream.pressure[mask]
    return [
        CellZero(stream.side, k + 1, float(np.nanmedian(swing[:, k])), threshold, stream.pressure_unit)
        for k in range(swing.shape[1])
    ]
