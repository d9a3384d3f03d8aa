"""STEPS.csv and RAISES.csv: the event tables written by `insole hil` and `insole simulate`.

STEPS.csv: one row per stance phase, columns ``side,ic_s,to_s,fpa_deg,direction``;
``fpa_deg`` is empty where it cannot be estimated. RAISES.csv: ``side,start_s,end_s,hold_s``.
Times are in the recording's own time base, in seconds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from insole.model import HeelRaiseRow, StepRow, as_side, as_walking_direction

STEP_COLUMNS = ("side", "ic_s", "to_s", "fpa_deg", "direction")
RAISE_COLUMNS = ("side", "start_s", "end_s", "hold_s")


def write_steps_csv(path: Path, steps: Iterable[StepRow]) -> int:
    rows = sorted(steps, key=lambda s: (s.ic_s, s.side))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(STEP_COLUMNS)
        for s in rows:
            fpa = "" if s.fpa_deg is None else f"{s.fpa_deg:.2f}"
            writer.writerow((s.side, f"{s.ic_s:.3f}", f"{s.to_s:.3f}", fpa, s.direction))
    return len(rows)


def write_raises_csv(path: Path, raises: Iterable[HeelRaiseRow]) -> int:
    rows = sorted(raises, key=lambda r: (r.start_s, r.side))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RAISE_COLUMNS)
        for r in rows:
            writer.writerow((r.side, f"{r.start_s:.3f}", f"{r.end_s:.3f}", f"{r.hold_s:.3f}"))
    return len(rows)


def read_steps_csv(path: Path) -> list[StepRow]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != STEP_COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(STEP_COLUMNS)}, got {reader.fieldnames}")
        return [
            StepRow(
                side=as_side(row["side"]),
                ic_s=float(row["ic_s"]),
                to_s=float(row["to_s"]),
                fpa_deg=float(row["fpa_deg"]) if row["fpa_deg"] else None,
                direction=as_walking_direction(row["direction"]),
            )
            for row in reader
        ]


def read_raises_csv(path: Path) -> list[HeelRaiseRow]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != RAISE_COLUMNS:
            raise ValueError(f"{path}: expected columns {','.join(RAISE_COLUMNS)}, got {reader.fieldnames}")
        return [
            HeelRaiseRow(as_side(row["side"]), float(row["start_s"]), float(row["end_s"]), float(row["hold_s"]))
            for row in reader
        ]
