"""A recording's samples as one CSV in physical units (``insole export``).

Rows grouped by side, columns ``side,index,t_s,p1..pN,ax,ay,az,gx,gy,gz``: pressure in
the stream's unit, acceleration in m/s², angular rate in deg/s; missing values (n/a,
lost samples) are empty cells. Each column prints with the decimals its resolution
needs, so a value read back is the value recorded. Or one CSV per foot in
``insole import csv``'s columns (:func:`export_foot_csvs`), which that importer reads back.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.model import FootStream
from insole.protocol import IMU_FIELD_NAMES
from insole.recording import Recording


def _decimals(step: float, limit: int = 9) -> int:
    """Fewest decimals that print multiples of ``step`` exactly (0.001 → 3, 2.5 → 1)."""
    for decimals in range(limit + 1):
        scaled = step * 10**decimals
        if math.isclose(scaled, round(scaled), rel_tol=1e-9, abs_tol=1e-9):
            return decimals
    return limit


def _time_decimals(rate_hz: float) -> int:
    # The sample period's own decimals (100 Hz → 3), at most µs (204.8 Hz → 6).
    return min(6, max(3, _decimals(1.0 / rate_hz)))


def export_csv(recording: Recording, output: Path, side: str = "all") -> int:
    """Write ``side`` ("left", "right" or "all") of ``recording`` to ``output``; returns the row count."""
    streams = [s for s in recording.streams if side in ("all", s.side)]
    if not streams:
        present = ", ".join(s.side for s in recording.streams)
        raise UserError(f"{recording.path} has no {side} stream (it has: {present})")
    order = {"left": 0, "right": 1}
    streams.sort(key=lambda s: order.get(s.side, 2))
    n_pressure = max(s.n_pressure for s in streams)
    with_imu = any(s.has_imu for s in streams)
    columns = ["side", "index", "t_s"] + [f"p{k + 1}" for k in range(n_pressure)]
    if with_imu:
        columns += IMU_FIELD_NAMES
    scales = [float(e.get("pressure_scale", 1.0)) for e in recording.header["streams"]]
    scale_of = {id(s): scale for s, scale in zip(recording.streams, scales, strict=True)}
    rows = 0
    try:
        with open(output, "w", newline="") as f:
            f.write(",".join(columns) + "\n")
            for stream in streams:
                f.write(_format_block(stream, n_pressure, with_imu, scale_of.get(id(stream), 1.0)))
                rows += stream.n_samples
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from exc
    return rows


def foot_csv_path(output: Path, side: str) -> Path:
    """OUT.csv → OUT.left.csv / OUT.right.csv."""
    return output.with_name(f"{output.stem}.{side}{output.suffix or '.csv'}")


def export_foot_csvs(recording: Recording, output: Path, side: str = "all") -> dict[str, tuple[Path, int]]:
    """One CSV per foot in `insole import csv`'s columns (``t_s,p1..pN,ax,ay,az,gx,gy,gz``), so that
    ``insole import csv --left OUT.left.csv --right OUT.right.csv`` reads the samples back;
    returns {side: (path, rows)}. ``side``: "left", "right" or "all"."""
    scales = [float(e.get("pressure_scale", 1.0)) for e in recording.header["streams"]]
    written: dict[str, tuple[Path, int]] = {}
    for stream, scale in zip(recording.streams, scales, strict=True):
        if side not in ("all", stream.side):
            continue
        path = foot_csv_path(output, stream.side)
        columns = ["t_s"] + [f"p{k + 1}" for k in range(stream.n_pressure)]
        columns += IMU_FIELD_NAMES if stream.has_imu else []
        try:
            with open(path, "w", newline="") as f:
                f.write(",".join(columns) + "\n")
                f.write(_format_block(stream, stream.n_pressure, stream.has_imu, scale, side_and_index=False))
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written[stream.side] = (path, stream.n_samples)
    if not written:
        present = ", ".join(s.side for s in recording.streams)
        raise UserError(f"{recording.path} has no {side} stream (it has: {present})")
    return written


def _format_block(
    stream: FootStream, n_pressure: int, with_imu: bool, pressure_scale: float, *, side_and_index: bool = True
) -> str:
    """All rows of one stream as CSV text: one %-format over the whole block, no loop per row."""
    n = stream.n_samples
    blocks: list[np.ndarray] = [np.arange(n, dtype=np.float64)[:, None], stream.times_s()[:, None]]
    formats = ["%d", f"%.{_time_decimals(stream.rate_hz)}f"]
    if not side_and_index:
        blocks, formats = blocks[1:], formats[1:]
    pressure = np.full((n, n_pressure), np.nan)
    if stream.pressure is not None:
        pressure[:, : stream.n_pressure] = stream.pressure
    blocks.append(pressure)
    formats += [f"%.{_decimals(pressure_scale)}f"] * n_pressure
    if with_imu:
        imu = np.full((n, 6), np.nan)
        if stream.acc_ms2 is not None and stream.gyro_dps is not None:
            imu[:, :3] = stream.acc_ms2
            imu[:, 3:] = stream.gyro_dps
        blocks.append(imu)
        # 1 mg ≈ 0.0098 m/s²: 5 decimals keep it; gyro counts are 0.1 deg/s exactly.
        formats += ["%.5f"] * 3 + ["%.1f"] * 3
    values = np.hstack(blocks)
    row_format = (stream.side + "," if side_and_index else "") + ",".join(formats) + "\n"
    # NaN prints as "nan", which no number or side name contains: blank it in one pass.
    return ((row_format * n) % tuple(values.ravel().tolist())).replace("nan", "")
