"""A session's own results as tables: steps, cues, heel raises and a gaitmap stride list.

One definition per table (:data:`TABLES`: column names, types, units in docs/export.md)
serves both the CSV files and the Parquet dataset, so the two always agree. Rows are
per foot; ``side`` is a column in CSV and the ``foot=`` folder in Parquet.

The stride list follows gaitmap's "ic" stride list (its ``stride_list`` datatype): one
row per stride of a foot, from one initial contact to the next (at most
``insole.analysis.measures.MAX_STRIDE_S`` apart), ``s_id`` unique over the file,
``start``/``end``/``ic``/``tc`` in samples since the stream's start (``end`` exclusive,
the next stride's ``start``), and gaitmap's parameter names for the stride's values
(``stride_time``, ``stance_time``, ``swing_time`` in s, ``stride_length`` in m,
``gait_velocity`` in m/s). The insole does not report gaitmap's ``min_vel`` event, so
the list is a stride list of gaitmap's basic kind (start, end) with ``ic`` and ``tc``.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from insole.analysis.measures import MAX_STRIDE_S
from insole.analysis.results import CueResult, RaiseResult, SessionResults, StepResult
from insole.errors import UserError
from insole.model import SIDES, Side

ColumnKind = Literal["str", "int", "float", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    decimals: int = 3  # in CSV, for floats


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]  # without ``side``
    rows: Callable[[SessionResults], list[tuple[Side, dict[str, Any]]]]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _band_fields(band: Any) -> dict[str, float | None]:
    return {
        "band_target_deg": None if band is None else band.target_deg,
        "band_half_width_deg": None if band is None else band.half_width_deg,
    }


def _step_row(s: StepResult) -> dict[str, Any]:
    return {
        "step_number": s.step_number,
        "ic_index": s.ic_index,
        "to_index": s.to_index,
        "ic_s": s.ic_s,
        "to_s": s.to_s,
        "stance_s": s.stance_s,
        "swing_s": s.swing_s,
        "fpa_deg": s.fpa_deg,
        "in_band": s.in_band,
        **_band_fields(s.band),
        "direction": s.direction,
        "stride_length_m": s.stride_length_m,
        "speed_ms": s.speed_ms,
        "peak_pressure": s.peak_pressure,
        "medial_share_pct": s.medial_share_pct,
    }


def _cue_row(c: CueResult) -> dict[str, Any]:
    return {
        "t_s": c.t_s,
        "step_number": c.step_number,
        "reason": c.reason,
        "outcome": c.outcome,
        "delivered": c.delivered,
        "fpa_deg": c.fpa_deg,
        **_band_fields(c.band),
        "pattern": c.pattern,
        "duration_ms": c.duration_ms,
        "latency_ms": c.latency_ms,
    }


def _raise_row(r: RaiseResult) -> dict[str, Any]:
    return {
        "set": r.set,
        "rep": r.rep,
        "start_index": r.start_index,
        "end_index": r.end_index,
        "start_s": r.start_s,
        "end_s": r.end_s,
        "hold_s": r.hold_s,
    }


def stride_rows(results: SessionResults) -> list[tuple[Side, dict[str, Any]]]:
    """gaitmap-style strides: step k's contact to step k+1's, same foot (see the module's text)."""
    rows: list[tuple[Side, dict[str, Any]]] = []
    s_id = 0
    for side in SIDES:
        if side not in results.sides:
            continue
        rate_hz = results.stream(side).rate_hz
        own = sorted((s for s in results.steps if s.side == side), key=lambda s: s.t_s)
        for first, second in itertools.pairwise(own):
            # A stride needs its two contacts and the toe-off between them: a partial
            # stance (docs/protocol.md) leaves out the strides it is missing an event of.
            if first.ic_index is None or first.to_index is None or second.ic_index is None:
                continue
            duration_s = (second.ic_index - first.ic_index) / rate_hz
            if not 0.0 < duration_s <= MAX_STRIDE_S:
                continue
            rows.append(
                (
                    side,
                    {
                        "s_id": s_id,
                        "start": first.ic_index,
                        "end": second.ic_index,
                        "ic": first.ic_index,
                        "tc": first.to_index,
                        "stride_time": duration_s,
                        "stance_time": first.stance_s,
                        # The stride's own values come with the step that ends it: the swing
                        # before its contact, the displacement into it, its foot angle.
                        "swing_time": second.swing_s,
                        "stride_length": second.stride_length_m,
                        "gait_velocity": second.speed_ms,
                        "fpa_deg": second.fpa_deg,
                        "direction": second.direction,
                    },
                )
            )
            s_id += 1
    return rows


STEPS = Table(
    "steps",
    (
        Column("step_number", "int"),
        Column("ic_index", "int"),
        Column("to_index", "int"),
        Column("ic_s", "float", 4),
        Column("to_s", "float", 4),
        Column("stance_s", "float"),
        Column("swing_s", "float"),
        Column("fpa_deg", "float", 2),
        Column("in_band", "bool"),
        Column("band_target_deg", "float", 2),
        Column("band_half_width_deg", "float", 2),
        Column("direction", "str"),
        Column("stride_length_m", "float"),
        Column("speed_ms", "float"),
        Column("peak_pressure", "float", 4),
        Column("medial_share_pct", "float", 1),
    ),
    lambda r: [(s.side, _step_row(s)) for s in r.steps],
)
CUES = Table(
    "cues",
    (
        Column("t_s", "float", 4),
        Column("step_number", "int"),
        Column("reason", "str"),
        Column("outcome", "str"),
        Column("delivered", "bool"),
        Column("fpa_deg", "float", 2),
        Column("band_target_deg", "float", 2),
        Column("band_half_width_deg", "float", 2),
        Column("pattern", "str"),
        Column("duration_ms", "int"),
        Column("latency_ms", "float"),
    ),
    lambda r: [(c.side, _cue_row(c)) for c in r.cues],
)
HEEL_RAISES = Table(
    "heel_raises",
    (
        Column("set", "int"),
        Column("rep", "int"),
        Column("start_index", "int"),
        Column("end_index", "int"),
        Column("start_s", "float", 4),
        Column("end_s", "float", 4),
        Column("hold_s", "float"),
    ),
    lambda r: [(h.side, _raise_row(h)) for h in r.raises],
)
STRIDES = Table(
    "strides",
    (
        Column("s_id", "int"),
        Column("start", "int"),
        Column("end", "int"),
        Column("ic", "int"),
        Column("tc", "int"),
        Column("stride_time", "float", 4),
        Column("stance_time", "float"),
        Column("swing_time", "float"),
        Column("stride_length", "float"),
        Column("gait_velocity", "float"),
        Column("fpa_deg", "float", 2),
        Column("direction", "str"),
    ),
    stride_rows,
)
TABLES = (STEPS, CUES, HEEL_RAISES, STRIDES)


def _cell(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind == "bool":
        return "true" if value else "false"
    if column.kind == "float":
        return f"{value:.{column.decimals}f}"
    return str(value)


def csv_path(folder: Path, stem: str, table: Table) -> Path:
    """FOLDER/STEM.TABLE.csv; the stride list is gaitmap's, named so."""
    name = "gaitmap-strides" if table is STRIDES else table.name.replace("_", "-")
    return folder / f"{stem}.{name}.csv"


def write_table_csv(path: Path, table: Table, results: SessionResults) -> int:
    """One table as CSV: ``side`` first, then the table's columns; empty cells where n/a.
    The stride list names its foot ``foot``, with ``s_id`` first, as gaitmap's example files do."""
    rows = table.rows(results)
    if table is STRIDES:
        header = ["s_id", "foot", *table.column_names[1:]]
    else:
        header = ["side", *table.column_names]
    try:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for side, row in rows:
                cells = {c.name: _cell(c, row[c.name]) for c in table.columns}
                if table is STRIDES:
                    writer.writerow([cells["s_id"], side, *(cells[n] for n in table.column_names[1:])])
                else:
                    writer.writerow([side, *(cells[n] for n in table.column_names)])
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(rows)


def write_results_csv(results: SessionResults, folder: Path, stem: str) -> dict[str, tuple[Path, int]]:
    """Every table of the session as STEM.*.csv in ``folder``: {table: (path, rows)}."""
    return {t.name: (csv_path(folder, stem, t), write_table_csv(csv_path(folder, stem, t), t, results)) for t in TABLES}


def result_paths(folder: Path, stem: str, tables: Sequence[Table] = TABLES) -> list[Path]:
    return [csv_path(folder, stem, t) for t in tables]
