"""Session measures from a session's results: the numbers of a report (docs/report.md).

Everything here is a measurement: counts, times, distances, angles and shares. Nothing
is compared with norms; the limb symmetry index's 0.8 and 0.9 marks are reference
lines for the reader, not a verdict.

Walking time is measured in strides: a stride of one foot runs from one initial contact
to the next of the same foot, at most :data:`MAX_STRIDE_S` apart (longer gaps are
pauses). A stride takes the direction of the step it ends in, and counts as brisk when
its cadence (two steps per stride: 120 / stride time) is at least
:data:`BRISK_CADENCE_SPM`. Session minutes (walking, backward, brisk) are the mean over
the feet of each foot's stride time.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from insole.analysis.results import Band, CueResult, RaiseResult, SessionResults, StepResult
from insole.model import SIDES, Side, WalkingDirection
from insole.session.live import symmetry_index

MAX_STRIDE_S = 2.5  # longer between two contacts of a foot: a pause, not a stride
BRISK_CADENCE_SPM = 100.0
LSI_MARKS = (0.8, 0.9)
LSI_MARKS_NOTE = (
    "0.8 and 0.9 are reference lines often drawn in rehabilitation reports; they are shown "
    "for orientation and are not a judgement of this session"
)
SCHEMA = "insole-report"
SCHEMA_VERSION = 1
# Time bins for measures over time: the first width that gives at most this many bins.
_BIN_WIDTHS_S = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_MAX_BINS = 60


@dataclass(frozen=True)
class Stride:
    """One foot's stride: from ``start_s`` to ``end_s`` (consecutive initial contacts)."""

    side: Side
    start_s: float
    end_s: float
    direction: WalkingDirection

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def cadence_spm(self) -> float:
        return 120.0 / self.duration_s


def strides(ic_times: Sequence[tuple[Side, float, WalkingDirection]]) -> list[Stride]:
    """Strides from (side, initial contact time, direction) of every step, any order."""
    out: list[Stride] = []
    for side in SIDES:
        own = sorted((t, d) for s, t, d in ic_times if s == side)
        for (start, _), (end, direction) in itertools.pairwise(own):
            if 0.0 < end - start <= MAX_STRIDE_S:
                out.append(Stride(side, start, end, direction))
    return out


def step_strides(steps: Sequence[StepResult]) -> list[Stride]:
    """Strides between the contacts the insoles saw (a stance whose contact came before
    its stream has none)."""
    return strides([(s.side, s.ic_s, s.direction) for s in steps if s.ic_s is not None])


def walking_minutes(all_strides: Sequence[Stride], sides: Sequence[Side]) -> dict[str, float]:
    """Minutes walking, walking backward and walking at a brisk cadence: per foot, averaged over ``sides``."""
    if not sides:
        return {"walking_min": 0.0, "backward_min": 0.0, "brisk_min": 0.0}
    totals = dict.fromkeys(("walking_min", "backward_min", "brisk_min"), 0.0)
    for s in all_strides:
        totals["walking_min"] += s.duration_s
        if s.direction == "backward":
            totals["backward_min"] += s.duration_s
        if s.cadence_spm >= BRISK_CADENCE_SPM:
            totals["brisk_min"] += s.duration_s
    return {key: totals[key] / 60.0 / len(sides) for key in ("walking_min", "backward_min", "brisk_min")}


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """n, mean, median, sd (sample), min and max of the values given (None skipped)."""
    present = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not len(present):
        return {"n": 0, "mean": None, "median": None, "sd": None, "min": None, "max": None}
    return {
        "n": len(present),
        "mean": float(present.mean()),
        "median": float(np.median(present)),
        "sd": float(present.std(ddof=1)) if len(present) > 1 else None,
        "min": float(present.min()),
        "max": float(present.max()),
    }


def bin_width_s(duration_s: float) -> float:
    for width in _BIN_WIDTHS_S:
        if duration_s / width <= _MAX_BINS:
            return width
    return _BIN_WIDTHS_S[-1]


def _band_json(band: Band | None) -> dict[str, float] | None:
    return None if band is None else {"target_deg": band.target_deg, "half_width_deg": band.half_width_deg}


def _share_pct(flags: Sequence[bool]) -> float | None:
    return 100.0 * sum(flags) / len(flags) if flags else None


def _over_time(results: SessionResults, all_strides: Sequence[Stride]) -> dict[str, Any]:
    width = bin_width_s(results.duration_s)
    t0 = min((s.t0_s for s in results.streams), default=0.0)
    n_bins = max(1, math.ceil(results.duration_s / width - 1e-9))
    start_s = [t0 + k * width for k in range(n_bins)]
    steps = [0] * n_bins
    in_band: list[list[bool]] = [[] for _ in range(n_bins)]
    cadence: list[list[float]] = [[] for _ in range(n_bins)]

    def bin_of(t: float) -> int:
        return min(n_bins - 1, max(0, int((t - t0) // width)))

    for step in results.steps:
        k = bin_of(step.t_s)
        steps[k] += 1
        if step.in_band is not None:
            in_band[k].append(step.in_band)
    for stride in all_strides:
        cadence[bin_of(stride.end_s)].append(stride.cadence_spm)
    return {
        "bin_s": width,
        "start_s": start_s,
        "steps": steps,
        "cadence_spm": [float(np.median(c)) if c else None for c in cadence],
        "in_band_pct": [_share_pct(flags) for flags in in_band],
    }


def _histogram(steps: Sequence[StepResult], sides: Sequence[Side]) -> dict[str, Any]:
    angles = [s.fpa_deg for s in steps if s.fpa_deg is not None]
    if not angles:
        return {"edges_deg": [], **{side: [] for side in sides}}
    low, high = math.floor(min(angles)), math.ceil(max(angles))
    high = max(high, low + 1)
    edges = np.arange(low, high + 1, 1.0)
    out: dict[str, Any] = {"edges_deg": edges.tolist()}
    for side in sides:
        values = [s.fpa_deg for s in steps if s.side == side and s.fpa_deg is not None]
        out[side] = np.histogram(values, bins=edges)[0].astype(int).tolist()
    return out


def _heel_raises(raises: Sequence[RaiseResult], side: Side) -> dict[str, Any]:
    own = [r for r in raises if r.side == side]
    sets = []
    for number in sorted({r.set for r in own}):
        in_set = [r for r in own if r.set == number]
        holds = [r.hold_s for r in in_set if r.hold_s is not None]
        sets.append(
            {
                "set": number,
                "reps": len(in_set),
                "hold_mean_s": float(np.mean(holds)) if holds else None,
                "hold_max_s": max(holds) if holds else None,
                "start_s": min(r.start_s for r in in_set),
            }
        )
    return {"reps": len(own), "sets": sets, "hold_s": summary([r.hold_s for r in own])}


def _cues(cues: Sequence[CueResult], n_steps: int) -> dict[str, Any]:
    delivered = [c for c in cues if c.delivered]
    by_reason = Counter(c.reason for c in delivered)
    suppressed = Counter(c.outcome for c in cues if not c.delivered)
    return {
        "delivered": len(delivered),
        "by_reason": dict(sorted(by_reason.items())),
        "by_side": {side: sum(1 for c in delivered if c.side == side) for side in SIDES},
        "suppressed": dict(sorted(suppressed.items())),
        "per_100_steps": 100.0 * len(delivered) / n_steps if n_steps else None,
        "latency_ms": summary([c.latency_ms for c in delivered]),
    }


def _per_side(results: SessionResults, side: Side, own_strides: Sequence[Stride]) -> dict[str, Any]:
    own = [s for s in results.steps if s.side == side]
    flags = [s.in_band for s in own if s.in_band is not None]
    return {
        "steps": len(own),
        "stance_s": summary([s.stance_s for s in own]),
        "swing_s": summary([s.swing_s for s in own]),
        "stride_time_s": summary([s.duration_s for s in own_strides]),
        "stride_length_m": summary([s.stride_length_m for s in own]),
        "speed_ms": summary([s.speed_ms for s in own]),
        "fpa_deg": summary([s.fpa_deg for s in own]),
        "in_band_pct": _share_pct(flags),
        "peak_pressure": summary([s.peak_pressure for s in own]),
        "medial_share_pct": summary([s.medial_share_pct for s in own]),
    }


SYMMETRY_PARAMETERS = (
    "steps",
    "stance_s",
    "swing_s",
    "stride_time_s",
    "stride_length_m",
    "speed_ms",
    "heel_raise_reps",
)


def _symmetry(per_side: dict[Side, dict[str, Any]], raises: dict[Side, dict[str, Any]]) -> dict[str, Any]:
    """LSI (the smaller side over the larger; 1 = equal) per parameter, of the feet's medians."""
    if set(per_side) != set(SIDES):
        return {"parameters": {}, "fpa_difference_deg": None, "marks": list(LSI_MARKS), "marks_note": LSI_MARKS_NOTE}
    parameters: dict[str, Any] = {}
    for name in SYMMETRY_PARAMETERS:
        if name == "steps":
            left, right = float(per_side["left"]["steps"]), float(per_side["right"]["steps"])
        elif name == "heel_raise_reps":
            left, right = float(raises["left"]["reps"]), float(raises["right"]["reps"])
        else:
            left, right = per_side["left"][name]["median"], per_side["right"][name]["median"]
        parameters[name] = {"left": left, "right": right, "lsi": symmetry_index(left, right)}
    left_fpa, right_fpa = per_side["left"]["fpa_deg"]["median"], per_side["right"]["fpa_deg"]["median"]
    return {
        "parameters": parameters,
        # A signed angle has no ratio: the feet's difference instead (left minus right).
        "fpa_difference_deg": None if left_fpa is None or right_fpa is None else left_fpa - right_fpa,
        "marks": list(LSI_MARKS),
        "marks_note": LSI_MARKS_NOTE,
    }


def _main_band(steps: Sequence[StepResult]) -> Band | None:
    counts = Counter(s.band for s in steps if s.band is not None)
    return counts.most_common(1)[0][0] if counts else None


def _quality(results: SessionResults) -> dict[str, Any]:
    q = results.quality
    return {
        "streams": {
            s.side: {
                "rate_hz": s.rate_hz,
                "samples": s.samples,
                "lost_samples": s.lost_samples,
                "lost_pct": 100.0 * s.lost_samples / max(1, s.samples + s.lost_samples),
                "backfilled_sample_packets": s.backfilled_sample_packets,
                "backfilled_events": s.backfilled_events,
                "lost_events": s.lost_events,
            }
            for s in q.streams
        },
        "bad_frames": q.bad_frames,
        "bad_packets": dict(q.bad_packets),
        "torn_tail": q.torn_tail,
        "duplicate_events": q.duplicate_events,
    }


def session_measures(results: SessionResults) -> dict[str, Any]:
    """The measures of one session as plain JSON values (the layout of docs/report.md)."""
    sides = results.sides
    all_strides = step_strides(results.steps)
    per_side = {side: _per_side(results, side, [s for s in all_strides if s.side == side]) for side in sides}
    raises = {side: _heel_raises(results.raises, side) for side in sides}
    directions = Counter(s.direction for s in results.steps)
    flags = [s.in_band for s in results.steps if s.in_band is not None]
    durations = [s.duration_s for s in all_strides]
    return {
        "participant": results.participant,
        "session": results.session,
        "recording": results.path.name,
        "start_time_utc": results.start_time_utc,
        "source": results.source,
        "events_from": results.events_from,
        "duration_s": results.duration_s,
        "sides": list(sides),
        "band": _band_json(_main_band(results.steps)),
        "band_source": results.band_source,
        "steps": {
            "total": len(results.steps),
            **{side: per_side[side]["steps"] for side in sides},
            **{direction: directions.get(direction, 0) for direction in ("forward", "backward", "unknown")},
        },
        "walking": {
            **walking_minutes(all_strides, sides),
            "brisk_threshold_spm": BRISK_CADENCE_SPM,
            "strides": len(all_strides),
            "cadence_spm": 120.0 / float(np.median(durations)) if durations else None,
        },
        "per_side": per_side,
        "symmetry": _symmetry(per_side, raises),
        "foot_angle": {
            "in_band_pct": _share_pct(flags),
            "steps_with_angle": sum(1 for s in results.steps if s.fpa_deg is not None),
            "histogram": _histogram(results.steps, sides),
        },
        "over_time": _over_time(results, all_strides),
        "cues": _cues(results.cues, len(results.steps)),
        "heel_raises": {
            "per_side": raises,
            "sets": max((len(r["sets"]) for r in raises.values()), default=0),
            "reps": max((r["reps"] for r in raises.values()), default=0),
        },
        "data_quality": _quality(results),
    }


TREND_MEASURES: dict[str, tuple[str, ...]] = {
    # name in the trend: path into a session's measures
    "steps": ("steps", "total"),
    "walking_min": ("walking", "walking_min"),
    "cadence_spm": ("walking", "cadence_spm"),
    "in_band_pct": ("foot_angle", "in_band_pct"),
    "backward_min": ("walking", "backward_min"),
    "brisk_min": ("walking", "brisk_min"),
    "cues_delivered": ("cues", "delivered"),
    "heel_raise_reps": ("heel_raises", "reps"),
    "heel_raise_sets": ("heel_raises", "sets"),
    "lsi_stance": ("symmetry", "parameters", "stance_s", "lsi"),
    "lsi_stride_length": ("symmetry", "parameters", "stride_length_m", "lsi"),
}


def _dig(measures: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = measures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def trend(sessions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The same measures across sessions, in the order given (one list entry per session)."""
    return {
        "sessions": [s["session"] for s in sessions],
        "start_time_utc": [s["start_time_utc"] for s in sessions],
        "measures": {name: [_dig(s, path) for s in sessions] for name, path in TREND_MEASURES.items()},
    }


def report_document(
    sessions: Sequence[dict[str, Any]], generator: str, program: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole JSON document of a report: every session, the trend when there are
    several, and the exercise program's (:func:`insole.analysis.program.program_json`) when
    the recordings hold one."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_by": generator,
        "sessions": list(sessions),
        "trend": trend(sessions) if len(sessions) > 1 else None,
        "program": program,
    }
