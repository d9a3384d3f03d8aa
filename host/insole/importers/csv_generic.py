"""Generic CSV → FootStreams: one comma-separated file per foot, for data of any other source.

Columns (header row, names case-insensitive, any order):

* ``t_s`` — time in seconds, every row (required);
* ``p1`` … ``pN`` — N ≤ 16 pressure channels in any one unit (``pressure_unit``),
  numbered without gaps (optional);
* ``ax, ay, az`` [m/s², specific force: +9.81 on z at rest] and ``gx, gy, gz``
  [deg/s, right-handed] in the foot frame (x toward the toes, y to the left, z up,
  both feet) — all six or none (optional).

A file needs pressure or IMU columns (or both). Empty cells are missing values (NaN).
The sampling rate is estimated from the time column and must be 50..250 Hz with
uniform steps (see :func:`insole.importers.check_uniform_timing`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.importers import check_uniform_timing, read_text_table
from insole.layouts import MAX_CHANNELS, load_layout
from insole.model import FloatArray, FootStream, Side

MIN_RATE_HZ = 50.0
MAX_RATE_HZ = 250.0
TIME_COLUMN = "t_s"
ACC_COLUMNS = ("ax", "ay", "az")
GYRO_COLUMNS = ("gx", "gy", "gz")
_PRESSURE_COLUMN = re.compile(r"^p(\d+)$")


def _columns(path: Path, names: list[str]) -> tuple[int, list[int], list[int] | None]:
    """Indices of (t_s, p1..pN, ax..gz or None), after checking the header."""
    lowered = [n.lower() for n in names]
    seen: set[str] = set()
    for name in lowered:
        if name in seen:
            raise UserError(f"{path}:1: column {name!r} appears twice")
        seen.add(name)
    if TIME_COLUMN not in lowered:
        raise UserError(f"{path}:1: no {TIME_COLUMN!r} column (time in seconds) in the header {','.join(names)}")
    imu_names = ACC_COLUMNS + GYRO_COLUMNS
    pressure: dict[int, int] = {}
    for index, name in enumerate(lowered):
        match = _PRESSURE_COLUMN.match(name)
        if match:
            pressure[int(match.group(1))] = index
        elif name != TIME_COLUMN and name not in imu_names:
            raise UserError(
                f"{path}:1: unknown column {names[index]!r}; expected {TIME_COLUMN}, p1..pN, "
                f"{','.join(ACC_COLUMNS)}, {','.join(GYRO_COLUMNS)}"
            )
    numbers = sorted(pressure)
    if len(numbers) > MAX_CHANNELS:
        raise UserError(f"{path}:1: {len(numbers)} pressure columns; at most {MAX_CHANNELS} are supported")
    if numbers != list(range(1, len(numbers) + 1)):
        raise UserError(
            f"{path}:1: pressure columns {', '.join(f'p{n}' for n in numbers)} must be p1..pN without gaps"
        )
    present_imu = [n for n in imu_names if n in lowered]
    if present_imu and len(present_imu) != len(imu_names):
        missing = [n for n in imu_names if n not in lowered]
        raise UserError(
            f"{path}:1: partial IMU columns: has {','.join(present_imu)} but not {','.join(missing)} "
            "(give all six of ax,ay,az,gx,gy,gz or none)"
        )
    if not numbers and not present_imu:
        raise UserError(f"{path}:1: no data columns: need p1..pN and/or ax,ay,az,gx,gy,gz besides {TIME_COLUMN}")
    imu = [lowered.index(n) for n in imu_names] if present_imu else None
    return lowered.index(TIME_COLUMN), [pressure[n] for n in numbers], imu


def read_foot_csv(path: Path, side: Side, *, layout: str | None = None, pressure_unit: str = "a.u.") -> FootStream:
    """One foot's CSV as a FootStream; ``layout`` defaults to the built-in ``generic<N>``."""
    path = Path(path)
    table = read_text_table(path, delimiter=",", header="first", source="CSV")
    time_column, pressure_columns, imu_columns = _columns(path, table.columns)
    times_s = table.numbers(time_column, allow_empty=False)
    # Rounded so that stamps printed to a few decimals give exactly 50.0, not 49.9999.
    rate_hz = round(check_uniform_timing(times_s, table), 3)
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise UserError(
            f"{path}: sampling rate {rate_hz:.2f} Hz (from {TIME_COLUMN}) is outside "
            f"{MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz; is the time in seconds?"
        )
    pressure: FloatArray | None = None
    layout_name = ""
    if pressure_columns:
        pressure = np.column_stack([table.numbers(c) for c in pressure_columns])
        layout_name = layout or f"generic{len(pressure_columns)}"
        n_layout = load_layout(layout_name).n_channels
        if n_layout != len(pressure_columns):
            raise UserError(
                f"{path}: {len(pressure_columns)} pressure columns but layout {layout_name!r} has {n_layout} channels"
            )
    acc: FloatArray | None = None
    gyro: FloatArray | None = None
    if imu_columns is not None:
        acc = np.column_stack([table.numbers(c) for c in imu_columns[:3]])
        gyro = np.column_stack([table.numbers(c) for c in imu_columns[3:]])
    return FootStream(
        side=side,
        rate_hz=rate_hz,
        t0_s=float(times_s[0]),
        layout=layout_name,
        pressure=pressure,
        pressure_unit=pressure_unit if pressure is not None else "",
        acc_ms2=acc,
        gyro_dps=gyro,
        device=f"CSV {path.name}",
    )


def import_csv(
    left: Path | None = None,
    right: Path | None = None,
    *,
    layout: str | None = None,
    pressure_unit: str = "a.u.",
) -> list[FootStream]:
    """Streams from one CSV per foot (at least one of `left`/`right`)."""
    if left is None and right is None:
        raise UserError("give at least one of --left/--right")
    files: list[tuple[Side, Path | None]] = [("left", left), ("right", right)]
    return [
        read_foot_csv(path, side, layout=layout, pressure_unit=pressure_unit)
        for side, path in files
        if path is not None
    ]
