"""gaitmap example data (``imu_sample*.csv``) → two IMU-only FootStreams (no pressure).

The gaitmap project's example recordings (MaD Lab, "sensor position comparison 2019",
MIT licence) hold one foot-mounted IMU per foot. The CSV has two header rows, then one
row per sample::

    sensor,left_sensor,right_sensor,left_sensor,...
    axis,acc_x,acc_x,acc_y,...
    0,0.88,0.31,2.76,...

The first column is the sample number; the others interleave the feet. Units are
m/s² (specific force, +9.81 on z at rest) and deg/s. The ``imu_sample.csv`` family is
already rotated into the foot frame (x toes, y left, z up, both feet), which is ours;
``imu_sample_not_rotated.csv`` is in the sensor frame and imports only with
``allow_sensor_frame=True``. There is no time column: the rate is the study's
204.8 Hz unless given (the ``imu_sample_ic_stride.csv`` walk is at 102.4 Hz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.importers import TextTable, read_text_table
from insole.model import STANDARD_GRAVITY_MS2, FootStream, Side

RATE_HZ = 204.8
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


def import_gaitmap(path: Path, *, rate_hz: float = RATE_HZ, allow_sensor_frame: bool = False) -> list[FootStream]:
    """Both feet of a gaitmap example recording, ``[left, right]``, IMU only."""
    path = Path(path)
    if "not_rotated" in path.stem and not allow_sensor_frame:
        raise UserError(f"{path}: this recording is in the sensor frame, not the foot frame; pass allow_sensor_frame")
    table = read_text_table(path, delimiter=",", header="first", source=SOURCE)
    if table.columns[0] != "sensor" or table.n_rows < 2:
        raise UserError(f"{path}: first header row must start with 'sensor' ({SOURCE} expected)")
    axis_row = [c.strip() for c in str(table.data_lines[0]).split(",")]
    if axis_row[0] != "axis":
        raise UserError(f"{table.where(0)}: second header row must start with 'axis' ({SOURCE} expected)")
    positions = _column_positions(path, table.columns[1:], axis_row[1:])
    data = TextTable(path, table.columns, table.data_lines[1:], table.line_numbers[1:], ",")
    values = data.all_numbers()
    index = values[:, 0]
    if len(index) > 1 and not np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        bad = int(np.flatnonzero(np.diff(index) != 1)[0]) + 1
        raise UserError(f"{data.where(bad)}: sample number {index[bad]:g} does not follow {index[bad - 1]:g}")
    streams = []
    for side, cols in positions.items():
        imu = values[:, [c + 1 for c in cols]]
        acc, gyro = imu[:, :3], imu[:, 3:]
        # Units check: gravity must read about 1 g in m/s² (not g, not mg).
        median_norm = float(np.median(np.linalg.norm(acc, axis=1)))
        if not 0.8 * STANDARD_GRAVITY_MS2 <= median_norm <= 1.25 * STANDARD_GRAVITY_MS2:
            raise UserError(f"{path}: {side} acceleration has median norm {median_norm:.3g}; m/s² expected")
        streams.append(
            FootStream(
                side=side,
                rate_hz=float(rate_hz),
                t0_s=float(index[0]) / rate_hz,
                layout="",
                pressure=None,
                pressure_unit="",
                acc_ms2=acc.copy(),
                gyro_dps=gyro.copy(),
                device="gaitmap example (MaD Lab)",
                extra={"source": str(path), "first_sample": int(index[0])},
            )
        )
    return streams
