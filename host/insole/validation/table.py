"""The validation table: what the firmware computes on each dataset, scored against its reference.

Every row replays its data through the real firmware (the MicroPython unix port
behind a pty, as `insole hil` does) and scores the STEP and HEEL_RAISE records that
come back. A row lists its goals; `insole validate` prints the table and fails when a
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
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(goal.met(self) for goal in self.goals)


def pressure_scales(streams: Sequence[FootStream]) -> list[float]:
    return [1.0 if s.pressure is None else choose_pressure_scale(s.pressure) for s in streams]


def replay_streams(streams: Sequence[FootStream]) -> list[FootReplay]:
    """All feet through the firmware on simulated boards, in parallel."""
    return replay_recording(streams, pressure_scales(streams))


def step_times_s(stream: FootStream, replay: FootReplay) -> tuple[np.ndarray, np.ndarray]:
    ic = np.array([stream.t0_s + s.ic_index / stream.rate_hz for s in replay.steps])
    to = np.array([stream.t0_s + s.to_index / stream.rate_hz for s in replay.steps])
    return ic, to


def step_directions(replay: FootReplay) -> list[str]:
    return [direction_name(s.direction) for s in replay.steps]
