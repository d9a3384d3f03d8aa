"""The validation table: what the firmware computes on each dataset, scored against its reference.

Every row replays its data through the real firmware (the MicroPython unix port
behind a pty, as `insole hil` does) and scores the STEP and HEEL_RAISE records that
come back; the one exception, a leave-one-subject-out row, runs the firmware's host
twin (the same events sample for sample, tests/test_voisard.py) with the constants
each fold chose. A row lists its goals; `insole validate` prints the table and fails when a
goal is missed; the CI tests (tests/test_validation.py) hold every metric of the same
rows to its measured value and report the missed goals.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from insole.hil import FootReplay, replay_recording
from insole.model import FootStream
from insole.protocol import direction_name
from insole.quantise import choose_pressure_scale

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


@dataclass(frozen=True)
class Goal:
    metric: str  # a Row attribute
    op: str  # ">=", "<=" or "=="
    value: float

    def met(self, row: Row) -> bool:
        actual = getattr(row, self.metric)
        return actual is not None and not (isinstance(actual, float) and math.isnan(actual)) and _OPS[self.op](
            actual, self.value
        )

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass
class Row:
    """One line of the table; NaN/None where a metric does not apply to the data."""

    data: str
    reference: str
    goals: tuple[Goal, ...]
    n_reference: int = 0  # reference steps (or raises) scored
    f1: float = math.nan  # initial contacts
    to_f1: float = math.nan  # toe-offs
    ic_mae_ms: float = math.nan
    to_mae_ms: float = math.nan
    fpa_mae_deg: float = math.nan
    fpa_n: int = 0  # steps with both an estimated and a reference FPA
    direction_pct: float = math.nan  # steps with the expected direction, % of detected steps
    raise_count_error: int | None = None  # detected − true repetitions, summed over feet
    turning_backward: int | None = None  # steps of turning bouts read as backward
    # Rows whose reference labels each step's category (voisard_cases): recall by
    # category, the timing offset (median error) apart from its scatter (mean absolute
    # deviation from the offset), and the straight steps read the opposite way.
    straight_ic_recall: float = math.nan
    straight_to_recall: float = math.nan
    edge_ic_recall: float = math.nan  # the first and last swing of a bout
    edge_to_recall: float = math.nan
    turn_ic_recall: float = math.nan
    turn_to_recall: float = math.nan
    ic_offset_ms: float = math.nan
    ic_scatter_ms: float = math.nan
    to_offset_ms: float = math.nan
    to_scatter_ms: float = math.nan
    wrong_direction_pct: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(goal.met(self) for goal in self.goals)


def pressure_scales(streams: Sequence[FootStream]) -> list[float]:
    return [1.0 if s.pressure is None else choose_pressure_scale(s.pressure) for s in streams]


def replay_streams(streams: Sequence[FootStream]) -> list[FootReplay]:
    """All feet through the firmware on simulated boards, in parallel."""
    return replay_recording(streams, pressure_scales(streams))


def _time_s(stream: FootStream, index: int | None) -> float:
    return math.nan if index is None else stream.t0_s + index / stream.rate_hz


def step_times_s(stream: FootStream, replay: FootReplay) -> tuple[np.ndarray, np.ndarray]:
    """IC and TO times of every step; NaN where an index is n/a (only an IMU-only step
    is ever partial; a NaN matches no reference event)."""
    ic = np.array([_time_s(stream, s.ic_index) for s in replay.steps])
    to = np.array([_time_s(stream, s.to_index) for s in replay.steps])
    return ic, to


def step_directions(replay: FootReplay) -> list[str]:
    return [direction_name(s.direction) for s in replay.steps]


def _fmt(value: float | int | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pair(first: float, second: float, digits: int) -> str:
    return f"{_fmt(first, digits)} / {_fmt(second, digits)}"


def _markdown(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(row) + " |" for row in cells
    ]


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The table as Markdown (readable in a terminal at any width and pasteable into
    notes); the rows that score steps by category get a second table of those numbers."""
    headers = ("data", "reference", "steps", "IC F1", "TO F1", "IC MAE ms", "TO MAE ms", "FPA MAE °", "dir %",
               "raise err", "goals", "ok")
    lines = _markdown(headers, [
        (row.data, row.reference, str(row.n_reference), _fmt(row.f1, 3), _fmt(row.to_f1, 3), _fmt(row.ic_mae_ms, 1),
         _fmt(row.to_mae_ms, 1), _fmt(row.fpa_mae_deg, 2), _fmt(row.direction_pct, 1),
         _fmt(row.raise_count_error, 0), "; ".join(str(g) for g in row.goals), "yes" if row.passed else "NO")
        for row in rows
    ])
    by_category = [row for row in rows if not math.isnan(row.straight_ic_recall)]
    if by_category:
        category_headers = ("data", "IC / TO recall straight", "edge", "turn", "IC offset / scatter ms",
                   "TO offset / scatter ms", "straight dir % / wrong %", "turn backward")
        lines += [""] + _markdown(category_headers, [
            (row.data, _pair(row.straight_ic_recall, row.straight_to_recall, 3),
             _pair(row.edge_ic_recall, row.edge_to_recall, 3), _pair(row.turn_ic_recall, row.turn_to_recall, 3),
             _pair(row.ic_offset_ms, row.ic_scatter_ms, 1), _pair(row.to_offset_ms, row.to_scatter_ms, 1),
             _pair(row.direction_pct, row.wrong_direction_pct, 1), _fmt(row.turning_backward, 0))
            for row in by_category
        ])
    return lines
