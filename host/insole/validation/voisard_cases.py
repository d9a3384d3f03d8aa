"""IMU-only contact events on Voisard et al.'s walkers (:mod:`insole.validation.voisard`), scored.

What the validation table calls for its voisard rows. Each trial (stand, walk 10 m,
U-turn, walk back, stop) has hand-checked ``[toe_off, heel_strike]`` labels per swing;
a labelled swing belongs to one category (:func:`swing_categories`):

* ``turn``: it overlaps the U-turn (``UTurnBoundaries``);
* ``edge``: the first or last swing of a bout (bout 1 before the turn, bout 2 after),
  where the walker starts from or comes to standing;
* ``straight``: the others, steady walking.

:func:`score_trials` runs the firmware (``engine="firmware"``, one simulated board per
foot) or its host twin (``engine="host"``, with other :class:`ImuTrackerParameters` if
asked) on both feet of every trial, forward or time-reversed (backward walking by
construction), and pools per subject (:class:`VoisardPool`). Its :meth:`VoisardPool.summary`
is a plain dict of numbers, per event kind (``ic``, ``to``):

* ``{kind}_f1`` over all steps; ``{kind}_recall_{category}``;
* ``{kind}_offset_ms``: the median error against the labels, and ``{kind}_scatter_ms``:
  the mean absolute deviation from an offset, reported apart. The labels come from
  gyro-based detectors, the project's contacts are tuned to force and motion capture:
  a constant offset between the two is a matter of definition, the scatter around it
  is what a walker adds;
* the directions of the steps matched to each category's swings; ``direction_pct``,
  ``unknown_pct`` and ``wrong_direction_pct`` of the straight steps, and
  ``turning_backward``, steps in the turn read as backward.

:func:`leave_one_subject_out` is the host twin scored on walkers it was not tuned on:
for each subject, the stance test's two thresholds are chosen from
:data:`STANCE_GRID` on the four other subjects (mean of their pooled IC and TO F1), as
are the IC and TO offsets; the fifth is scored with them, its scatter measured around
the learnt offsets. The five held-out scores are pooled.

Events are matched one-to-one within ±100 ms (:func:`insole.validation.metrics.match_events`);
a step reported in two partial records (an index n/a) is scored by its valid events,
its direction counted with its initial contact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from insole.gait import ImuTrackerParameters
from insole.model import FloatArray, FootStream
from insole.validation.imu_cases import Engine, FootSteps, run
from insole.validation.metrics import EventMatch, match_events, reversed_times_s, time_reversed
from insole.validation.pressure_cases import REPLAY_WORKERS
from insole.validation.references import ReferenceSteps
from insole.validation.voisard import VoisardTrial

StrArray = npt.NDArray[np.str_]

CATEGORIES = ("straight", "edge", "turn")
DIRECTIONS = ("forward", "backward", "unknown")
EVENT_KINDS = ("ic", "to")

# The stance test's thresholds a fold chooses from: |gx|+|gy|+|gz| and |gy| [deg/s].
STANCE_GYR_GRID_DPS = (50.0, 75.0, 100.0, 125.0)
STANCE_PITCH_GRID_DPS = (15.0, 25.0, 35.0)
STANCE_GRID = tuple(
    ImuTrackerParameters(stance_gyr_threshold_dps=gyr, stance_pitch_threshold_dps=pitch)
    for gyr in STANCE_GYR_GRID_DPS
    for pitch in STANCE_PITCH_GRID_DPS
)


def swing_categories(ic_s: FloatArray, to_s: FloatArray, turn_s: tuple[float, float]) -> StrArray:
    """Category of each labelled swing ``[to_s[k], ic_s[k]]`` (see the module)."""
    start, end = turn_s
    turn = (ic_s >= start) & (to_s <= end)  # the swing overlaps the turn
    categories = np.where(turn, "turn", "straight")
    for bout in (np.flatnonzero(~turn & (ic_s < start)), np.flatnonzero(~turn & (to_s > end))):
        if len(bout):
            categories[[bout[0], bout[-1]]] = "edge"
    return categories


@dataclass(frozen=True)
class LabelledSwings:
    """One foot's labelled swings in the time base of the stream played (mirrored when
    it is time-reversed: a swing's toe-off becomes its initial contact)."""

    ic_s: FloatArray
    to_s: FloatArray
    category: StrArray  # per swing
    score_from_s: float
    score_to_s: float


def labelled_swings(stream: FootStream, reference: ReferenceSteps, turn_s: tuple[float, float], *,
                    reversed: bool = False) -> LabelledSwings:
    """The swings of ``reference`` (of ``stream``) inside its scored span with their
    categories, as scored on ``stream`` or, ``reversed``, on ``time_reversed(stream)``.

    Some trials have labelled swings after the walk (33 of 1013: the walker moves off
    seconds after the stop); outside the scored span they are neither scored nor do
    they make the walk's last swing a straight one."""
    inside = (reference.to_s >= reference.score_from_s) & (reference.ic_s <= reference.score_to_s)
    ic_s, to_s = reference.ic_s[inside], reference.to_s[inside]
    category = swing_categories(ic_s, to_s, turn_s)
    if not reversed:
        return LabelledSwings(ic_s, to_s, category, reference.score_from_s, reference.score_to_s)
    score_from_s, score_to_s = reversed_times_s(stream, [reference.score_to_s, reference.score_from_s])
    return LabelledSwings(reversed_times_s(stream, to_s), reversed_times_s(stream, ic_s), category,
                          float(score_from_s), float(score_to_s))


def _count_by_category(categories: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(CATEGORIES, 0)
    for c in categories:
        counts[str(c)] += 1
    return counts


@dataclass
class EventTally:
    """One event kind's matches pooled over feet, trials and subjects."""

    n_detected: int = 0
    n_reference: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    errors_s: list[float] = field(default_factory=list)  # detected − label, per match
    # Per match, the offset learnt on other subjects its scatter is measured around
    # (NaN: none learnt, the tally's own median is used).
    centres_s: list[float] = field(default_factory=list)

    def add(self, match: EventMatch, categories: StrArray) -> None:
        self.n_detected += match.n_detected
        for c, n in _count_by_category(categories).items():
            self.n_reference[c] += n
        for c, n in _count_by_category(categories[match.reference_index]).items():
            self.hits[c] += n
        self.errors_s.extend(float(e) for e in match.errors_s)
        self.centres_s.extend([math.nan] * len(match.errors_s))

    def merge(self, other: EventTally) -> None:
        self.n_detected += other.n_detected
        for c in CATEGORIES:
            self.n_reference[c] += other.n_reference[c]
            self.hits[c] += other.hits[c]
        self.errors_s.extend(other.errors_s)
        self.centres_s.extend(other.centres_s)

    def centred_on(self, offset_s: float) -> EventTally:
        """A copy whose scatter is measured around ``offset_s``."""
        return dataclasses.replace(self, n_reference=dict(self.n_reference), hits=dict(self.hits),
                                   errors_s=list(self.errors_s), centres_s=[offset_s] * len(self.errors_s))

    @property
    def f1(self) -> float:
        total = self.n_detected + sum(self.n_reference.values())
        return 2.0 * sum(self.hits.values()) / total if total else math.nan

    def recall(self, category: str) -> float:
        n = self.n_reference[category]
        return self.hits[category] / n if n else math.nan

    @property
    def offset_s(self) -> float:
        return float(np.median(self.errors_s)) if self.errors_s else math.nan

    @property
    def scatter_s(self) -> float:
        """Mean absolute deviation of the errors from their offset (learnt, else own median)."""
        if not self.errors_s:
            return math.nan
        centres = np.array(self.centres_s)
        centres[np.isnan(centres)] = self.offset_s
        return float(np.mean(np.abs(np.array(self.errors_s) - centres)))


def _empty_directions() -> dict[str, dict[str, int]]:
    return {c: dict.fromkeys(DIRECTIONS, 0) for c in CATEGORIES}


@dataclass
class VoisardPool:
    """Initial contacts, toe-offs and step directions by category, pooled."""

    ic: EventTally = field(default_factory=EventTally)
    to: EventTally = field(default_factory=EventTally)
    directions: dict[str, dict[str, int]] = field(default_factory=_empty_directions)  # category -> direction -> steps

    def add_foot(self, stream: FootStream, steps: FootSteps, swings: LabelledSwings) -> None:
        """Every valid event of ``steps`` (of ``stream``) inside the scored span against
        the swings; each step with a valid contact matched to a swing's contact gives
        its direction to that swing's category."""
        ic_s = stream.t0_s + steps.ic_index / stream.rate_hz
        to_s = stream.t0_s + steps.to_index / stream.rate_hz
        scored_ic = np.flatnonzero(steps.has_ic & (ic_s >= swings.score_from_s) & (ic_s <= swings.score_to_s))
        scored_to = np.flatnonzero(steps.has_to & (to_s >= swings.score_from_s) & (to_s <= swings.score_to_s))
        ic = match_events(ic_s[scored_ic], swings.ic_s)
        self.ic.add(ic, swings.category)
        self.to.add(match_events(to_s[scored_to], swings.to_s), swings.category)
        for step, swing in zip(scored_ic[ic.detected_index], ic.reference_index, strict=True):
            self.directions[str(swings.category[swing])][steps.direction[step]] += 1

    def merge(self, other: VoisardPool) -> None:
        self.ic.merge(other.ic)
        self.to.merge(other.to)
        for c in CATEGORIES:
            for d in DIRECTIONS:
                self.directions[c][d] += other.directions[c][d]

    def centred_on(self, ic_offset_s: float, to_offset_s: float) -> VoisardPool:
        """A copy whose scatters are measured around offsets learnt elsewhere."""
        return VoisardPool(self.ic.centred_on(ic_offset_s), self.to.centred_on(to_offset_s),
                           {c: dict(d) for c, d in self.directions.items()})

    @property
    def objective(self) -> float:
        """What a fold maximises: the mean of the pooled IC and TO F1."""
        return (self.ic.f1 + self.to.f1) / 2.0

    def summary(self, expected: str = "forward") -> dict[str, Any]:
        """Plain numbers (see the module); ``expected`` is the straight steps' direction."""
        out: dict[str, Any] = {
            "n_reference": sum(self.ic.n_reference.values()),
            "n_detected": self.ic.n_detected,
            "f1": self.ic.f1,
        }
        for kind, tally in (("ic", self.ic), ("to", self.to)):
            out[f"{kind}_f1"] = tally.f1
            # A median of errors between two 10 ms grids: rounded to 0.1 ms, free of float noise.
            out[f"{kind}_offset_ms"] = round(1000.0 * tally.offset_s, 1)
            out[f"{kind}_scatter_ms"] = 1000.0 * tally.scatter_s
            for c in CATEGORIES:
                out[f"{kind}_recall_{c}"] = tally.recall(c)
        for c in CATEGORIES:
            out[f"n_{c}"] = self.ic.n_reference[c]
        straight = self.directions["straight"]
        n = sum(straight.values())
        wrong = "backward" if expected == "forward" else "forward"
        out["n_direction"] = n
        out["direction_pct"] = 100.0 * straight[expected] / n if n else math.nan
        out["unknown_pct"] = 100.0 * straight["unknown"] / n if n else math.nan
        out["wrong_direction_pct"] = 100.0 * straight[wrong] / n if n else math.nan
        out["turning_backward"] = self.directions["turn"]["backward"]
        out["turning_n"] = sum(self.directions["turn"].values())
        out["directions"] = {c: dict(d) for c, d in self.directions.items()}
        return out


def pooled(pools: Iterable[VoisardPool]) -> VoisardPool:
    total = VoisardPool()
    for pool in pools:
        total.merge(pool)
    return total


def _trial_pool(trial: VoisardTrial, engine: Engine, reversed: bool,
                parameters: ImuTrackerParameters | None) -> VoisardPool:
    streams = [time_reversed(s) if reversed else s for s in trial.streams]
    feet, _ = run(streams, engine, parameters)
    pool = VoisardPool()
    for original, played, reference, steps in zip(trial.streams, streams, trial.references, feet, strict=True):
        pool.add_foot(played, steps, labelled_swings(original, reference, trial.turn_s, reversed=reversed))
    return pool


def score_trials(
    trials: Sequence[VoisardTrial],
    *,
    engine: Engine = "firmware",
    reversed: bool = False,
    parameters: ImuTrackerParameters | None = None,
) -> dict[int, VoisardPool]:
    """Each subject's pool over its trials; firmware replays run :data:`REPLAY_WORKERS`
    trials at a time (a replay mostly waits on its pty)."""
    workers = REPLAY_WORKERS if engine == "firmware" else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        played = list(pool.map(lambda t: _trial_pool(t, engine, reversed, parameters), trials))
    by_subject: dict[int, VoisardPool] = {}
    for trial, trial_pool in zip(trials, played, strict=True):
        by_subject.setdefault(trial.subject, VoisardPool()).merge(trial_pool)
    return by_subject


@dataclass(frozen=True)
class Fold:
    """What one leave-one-subject-out fold chose on the other subjects."""

    subject: int  # held out
    parameters: ImuTrackerParameters
    train_objective: float
    ic_offset_s: float  # learnt on the other subjects with those parameters
    to_offset_s: float


def choose_folds(
    pools: Mapping[ImuTrackerParameters, Mapping[int, VoisardPool]],
) -> tuple[list[Fold], VoisardPool]:
    """Per subject, the grid point with the best objective on the others (the first in
    grid order on a tie) and the offsets learnt there; the held-out subjects' pools with
    their fold's parameters, centred on its learnt offsets, pooled."""
    subjects = sorted({s for by_subject in pools.values() for s in by_subject})
    folds: list[Fold] = []
    held_out: list[VoisardPool] = []
    for subject in subjects:
        best: tuple[ImuTrackerParameters, VoisardPool] | None = None
        for point, by_subject in pools.items():
            train = pooled(p for s, p in by_subject.items() if s != subject)
            if best is None or train.objective > best[1].objective:
                best = (point, train)
        assert best is not None, "an empty grid"
        point, train = best
        folds.append(Fold(subject, point, train.objective, train.ic.offset_s, train.to.offset_s))
        held_out.append(pools[point][subject].centred_on(train.ic.offset_s, train.to.offset_s))
    return folds, pooled(held_out)


def leave_one_subject_out(
    trials: Sequence[VoisardTrial], grid: Sequence[ImuTrackerParameters] = STANCE_GRID
) -> dict[str, Any]:
    """The host twin scored subject by subject with what the other subjects chose (see
    the module): the pooled held-out summary, with ``folds`` (:class:`Fold` per subject)."""
    pools = {point: score_trials(trials, engine="host", parameters=point) for point in grid}
    folds, held_out = choose_folds(pools)
    return {**held_out.summary("forward"), "folds": folds}


def score_all(trials: Sequence[VoisardTrial], *, engine: Engine = "firmware", reversed: bool = False) -> dict[str, Any]:
    """Every subject with the shipped constants, pooled."""
    return pooled(score_trials(trials, engine=engine, reversed=reversed).values()).summary(
        "backward" if reversed else "forward")


def main() -> None:
    """``python -m insole.validation.voisard_cases [host]``: print the rows' numbers."""
    import sys
    import time

    from insole.validation.voisard import load_voisard_trial, voisard_trial_names

    engine: Engine = "host" if sys.argv[1:] == ["host"] else "firmware"
    trials = [load_voisard_trial(name) for name in voisard_trial_names()]
    rows: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
        ("loso host", lambda: leave_one_subject_out(trials)),
        (f"all {engine}", lambda: score_all(trials, engine=engine)),
        (f"all {engine} reversed", lambda: score_all(trials, engine=engine, reversed=True)),
    )
    for name, scores in rows:
        started = time.perf_counter()
        row = scores()
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        print(f"{name:24} {time.perf_counter() - started:5.1f} s " + " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))
        print(f"{'':24} directions {row['directions']}")
        for fold in row.get("folds", []):
            print(f"{'':24} {fold}")


if __name__ == "__main__":
    main()
