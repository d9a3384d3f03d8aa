"""PhysioNet gaitpdb (Infotronic force insoles) → FootStreams (layout ``gaitpdb8``, force in N).

A walk is a tab-separated file of 19 columns at 100 Hz: time [s]; the vertical
ground-reaction force [N] of 8 sensors under the left foot; 8 under the right;
total left; total right. No IMU.

Timing: the time column of the Ga files is printed with 4 decimals and advances by
0.0099 instead of 0.0100 once every ~143 rows, i.e. its clock runs 7 ppm fast (8.5 ms
over a 2-minute walk, under one sample). We check the column is uniformly sampled
(no gap, duplicate or jitter beyond the tolerances of
:func:`insole.importers.check_uniform_timing`) and use the documented 100 Hz.

The totals (columns 18/19) are checked against the sum of the 8 sensors, which
catches a file whose columns are not what this format says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.importers import check_uniform_timing, read_text_table
from insole.model import FloatArray, FootStream, Side

LAYOUT_NAME = "gaitpdb8"
RATE_HZ = 100.0
N_COLUMNS = 19
N_SENSORS = 8
# Sensors and totals are printed with 2 decimals; a sum of 8 rounded values may
# differ from the rounded total by up to 8 × 0.005 N.
TOTAL_TOLERANCE_N = 0.05


@dataclass
class GaitPdbWalk:
    path: Path
    streams: list[FootStream]  # left, right
    total_force_n: dict[Side, FloatArray]  # columns 18/19 as given in the file


def read_gaitpdb(path: Path) -> GaitPdbWalk:
    path = Path(path)
    # 19 columns: time, 8 left sensors, 8 right sensors, total left, total right.
    table = read_text_table(
        path, delimiter="\t", header="none", source="PhysioNet gaitpdb walk", n_columns=N_COLUMNS
    )
    values = table.all_numbers()
    times_s = values[:, 0]
    rate_hz = check_uniform_timing(times_s, table, nominal_rate_hz=RATE_HZ)
    streams: list[FootStream] = []
    totals: dict[Side, FloatArray] = {}
    sides: tuple[Side, Side] = ("left", "right")
    for k, side in enumerate(sides):
        force_n = values[:, 1 + k * N_SENSORS : 1 + (k + 1) * N_SENSORS]
        total_n = values[:, 1 + 2 * N_SENSORS + k]
        mismatch = np.abs(force_n.sum(axis=1) - total_n)
        worst = int(np.argmax(mismatch))
        if mismatch[worst] > TOTAL_TOLERANCE_N:
            raise UserError(
                f"{table.where(worst)}: {side} total {total_n[worst]} N differs from the sum of its "
                f"8 sensors ({force_n[worst].sum():.2f} N); columns are not in gaitpdb order"
            )
        streams.append(
            FootStream(
                side=side,
                rate_hz=rate_hz,
                t0_s=float(times_s[0]),
                layout=LAYOUT_NAME,
                pressure=force_n,
                pressure_unit="N",
                acc_ms2=None,
                gyro_dps=None,
                device="Infotronic force insole (PhysioNet gaitpdb)",
            )
        )
        totals[side] = total_n
    return GaitPdbWalk(path=path, streams=streams, total_force_n=totals)


def import_gaitpdb(path: Path) -> list[FootStream]:
    """Both feet of a gaitpdb walk, vertical force per sensor in N."""
    return read_gaitpdb(path).streams
