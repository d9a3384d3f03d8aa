"""gaitmap example data (``imu_sample*.csv``) → IMU-only FootStreams (no pressure).

The gaitmap project's example recordings (MaD Lab studies, MIT licence) hold one
foot-mounted IMU per foot, in m/s² (specific force, +9.81 on z at rest) and deg/s.
They come in two layouts:

* both feet in one file, two header rows (sensor, then axis; the first cell of each is
  ``sensor``/``axis`` or empty), then one row per sample whose first cell is the
  sample number or, in the stair files, the time in seconds::

      sensor,left_sensor,right_sensor,left_sensor,...
      axis,acc_x,acc_x,acc_y,...
      0,0.88,0.31,2.76,...

* one foot per file (``imu_sample_ms_left.csv`` / ``_right``): one header row
  ``,index,acc_x,...,gyr_z``, the row number, then the sensor's sample counter. The
  side comes from the file name; the two feet were not synchronised, so each file
  imports on its own.

The rates are gaitmap's own (``gaitmap.example_data``): 204.8 Hz, and 102.4 Hz for
``imu_sample_ic_stride.csv`` and the MS walk; ``rate_hz`` overrides. Every file is
rotated into the foot frame (x toes, y left, z up, both feet), which is ours, except
``imu_sample_not_rotated.csv``, in the sensor frame: it imports only with
``allow_sensor_frame=True`` (foot angles and directions from it are not meaningful).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.importers import TextTable, read_text_table
from insole.model import STANDARD_GRAVITY_MS2, FloatArray, FootStream, Side

RATE_HZ = 204.8
# Files recorded at another rate than RATE_HZ (gaitmap.example_data's docstrings).
_RATES_HZ = {"imu_sample_ic_stride": 102.4, "imu_sample_ms_left": 102.4, "imu_sample_ms_right": 102.4}
SENSORS: dict[str, Side] = {"left_sensor": "left", "right_sensor": "right"}
AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
SOURCE = "gaitmap IMU example CSV"


def _column_positions(path: Path, sensors: list[str], axes: list[str]) -> dict[Side, list[int]]:
    positions: dict[Side, list[int]] = {}
    for side_name, side in SENSORS.items():
        found = []
        for axis in AXES:
            matches = [k for k, (s, a) in enumerate(zip(sensors, axes, strict=True)) if s == side_name and a == axis]
            if len(matches) != 1:
                raise UserError(f"{path}: expected one column {side_name}/{axis}, found {len(matches)}")
            found.append(matches[0])
        positions[side] = found
    return positions


def import_gaitmap(
    path: Path, *, rate_hz: float | None = None, allow_sensor_frame: bool = False
) -> list[FootStream]:
    """The feet of a gaitmap example recording (``[left, right]``, or the one foot of a
    one-foot file), IMU only."""
    path = Path(path)
    if "not_rotated" in path.stem and not allow_sensor_frame:
        raise UserError(
            f"{path}: this recording is in the sensor frame, not the foot frame",
            advice="import it with --sensor-frame if that is what you want (foot angles from it are not meaningful)",
        )
    rate = float(rate_hz) if rate_hz is not None else _RATES_HZ.get(path.stem, RATE_HZ)
    table = read_text_table(path, delimiter=",", header="first", source=SOURCE)
    if table.columns[1:2] == ["index"]:
        return [_one_foot(path, table, rate)]
    if table.columns[0] not in ("sensor", "") or table.n_rows < 2:
        raise UserError(f"{path}: first header row must start with 'sensor' ({SOURCE} expected)")
    axis_row = [c.strip() for c in str(table.data_lines[0]).split(",")]
    if axis_row[0] not in ("axis", ""):
        raise UserError(f"{table.where(0)}: second header row must start with 'axis' ({SOURCE} expected)")
    positions = _column_positions(path, table.columns[1:], axis_row[1:])
    data = TextTable(path, table.columns, table.data_lines[1:], table.line_numbers[1:], ",")
    values = data.all_numbers()
    first_sample = _first_sample(data, values[:, 0], rate)
    return [
        _stream(path, side, values[:, [c + 1 for c in cols]], rate, first_sample)
        for side, cols in positions.items()
    ]


def _one_foot(path: Path, table: TextTable, rate_hz: float) -> FootStream:
    side: Side | None = "left" if path.stem.endswith("_left") else "right" if path.stem.endswith("_right") else None
    if side is None:
        raise UserError(f"{path}: a one-foot gaitmap file names its foot: ..._left.csv or ..._right.csv")
    missing = [axis for axis in AXES if axis not in table.columns]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)} ({SOURCE} expected)")
    values = table.all_numbers()
    first_sample = _first_sample(table, values[:, 1], rate_hz)  # the sensor's counter, not the row number
    return _stream(path, side, values[:, [table.columns.index(axis) for axis in AXES]], rate_hz, first_sample)


def _first_sample(table: TextTable, index: FloatArray, rate_hz: float) -> int:
    """The first sample's number; the index runs on without gaps, in samples or seconds."""
    if len(index) > 1 and np.all(index == np.round(index)):
        steps, unit = np.diff(index), 1.0  # sample numbers
    else:
        steps, unit = np.diff(index) * rate_hz, 1.0 / rate_hz  # seconds (the stair files)
    gaps = np.flatnonzero(np.abs(steps - 1.0) > 1e-6)
    if gaps.size:
        bad = int(gaps[0]) + 1
        raise UserError(
            f"{table.where(bad)}: sample {index[bad]:g} does not follow {index[bad - 1]:g} at {rate_hz:g} Hz"
        )
    return round(float(index[0]) / unit) if len(index) else 0


def _stream(path: Path, side: Side, imu: FloatArray, rate_hz: float, first_sample: int) -> FootStream:
    acc, gyro = imu[:, :3], imu[:, 3:]
    # Units check: gravity must read about 1 g in m/s² (not g, not mg) while the foot is
    # still: the tenth of the samples that turn least (a walk without pauses, as the MS
    # one, reads 2 g in its median).
    turning = np.linalg.norm(gyro, axis=1)
    still = turning <= np.percentile(turning, 10) if len(turning) else turning.astype(bool)
    still_norm = float(np.median(np.linalg.norm(acc[still], axis=1))) if still.any() else float("nan")
    if not 0.8 * STANDARD_GRAVITY_MS2 <= still_norm <= 1.25 * STANDARD_GRAVITY_MS2:
        raise UserError(f"{path}: {side} acceleration reads {still_norm:.3g} with the foot still; m/s² expected")
    return FootStream(
        side=side,
        rate_hz=rate_hz,
        t0_s=first_sample / rate_hz,
        layout="",
        pressure=None,
        pressure_unit="",
        acc_ms2=acc.copy(),
        gyro_dps=gyro.copy(),
        device="gaitmap example (MaD Lab)",
        extra={"source": str(path), "first_sample": first_sample},
    )
