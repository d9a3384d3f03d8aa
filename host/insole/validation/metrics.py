"""Scoring detected gait events against a reference: matching, F1, mean absolute errors.

Events are matched one-to-one in time order: a detection matches the nearest
still-unmatched reference event within ``tolerance_s`` (±100 ms by default, the
window the validation table uses). Unmatched detections are false positives,
unmatched references false negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from insole.model import FootStream

FloatArray = npt.NDArray[np.float64]
MATCH_TOLERANCE_S = 0.100


@dataclass(frozen=True)
class EventMatch:
    """Result of matching detected event times to reference times (both in seconds)."""

    detected_index: npt.NDArray[np.int64]  # index into the detections of each matched pair
    reference_index: npt.NDArray[np.int64]  # index into the references of each matched pair
    n_detected: int
    n_reference: int
    errors_s: FloatArray  # detected - reference for each matched pair

    @property
    def true_positives(self) -> int:
        return len(self.detected_index)

    @property
    def f1(self) -> float:
        total = self.n_detected + self.n_reference
        return 2.0 * self.true_positives / total if total else float("nan")

    @property
    def mae_ms(self) -> float:
        return float(np.mean(np.abs(self.errors_s)) * 1000.0) if len(self.errors_s) else float("nan")

    @property
    def bias_ms(self) -> float:
        return float(np.mean(self.errors_s) * 1000.0) if len(self.errors_s) else float("nan")


def match_events(
    detected_s: Sequence[float] | FloatArray,
    reference_s: Sequence[float] | FloatArray,
    tolerance_s: float = MATCH_TOLERANCE_S,
) -> EventMatch:
    """One-to-one matching of two event lists; closest pairs are taken first."""
    det = np.asarray(detected_s, dtype=np.float64)
    ref = np.asarray(reference_s, dtype=np.float64)
    pairs: list[tuple[float, int, int]] = []
    if len(det) and len(ref):
        order = np.argsort(ref)
        sorted_ref = ref[order]
        for i, t in enumerate(det):
            lo = int(np.searchsorted(sorted_ref, t - tolerance_s, side="left"))
            hi = int(np.searchsorted(sorted_ref, t + tolerance_s, side="right"))
            for j in range(lo, hi):
                pairs.append((abs(float(sorted_ref[j]) - float(t)), i, int(order[j])))
    pairs.sort()
    used_det: set[int] = set()
    used_ref: set[int] = set()
    matched: list[tuple[int, int]] = []
    for _, i, j in pairs:
        if i in used_det or j in used_ref:
            continue
        used_det.add(i)
        used_ref.add(j)
        matched.append((i, j))
    matched.sort()
    di = np.array([m[0] for m in matched], dtype=np.int64)
    rj = np.array([m[1] for m in matched], dtype=np.int64)
    errors = det[di] - ref[rj] if len(matched) else np.zeros(0)
    return EventMatch(di, rj, len(det), len(ref), errors)


@dataclass
class ScoreSums:
    """Pools matches over feet and files, so a table row scores all of its data at once."""

    true_positives: int = 0
    n_detected: int = 0
    n_reference: int = 0
    errors_s: list[float] = field(default_factory=list)

    def add(self, match: EventMatch) -> None:
        self.true_positives += match.true_positives
        self.n_detected += match.n_detected
        self.n_reference += match.n_reference
        self.errors_s.extend(float(e) for e in match.errors_s)

    @property
    def f1(self) -> float:
        total = self.n_detected + self.n_reference
        return 2.0 * self.true_positives / total if total else float("nan")

    @property
    def mae_ms(self) -> float:
        return float(np.mean(np.abs(self.errors_s)) * 1000.0) if self.errors_s else float("nan")


@dataclass
class EventPool:
    """IC and TO matches and step directions pooled over feet and files (one table row)."""

    ic: ScoreSums = field(default_factory=ScoreSums)
    to: ScoreSums = field(default_factory=ScoreSums)
    directions: dict[str, int] = field(default_factory=lambda: {"forward": 0, "backward": 0, "unknown": 0})

    def add(self, ic: EventMatch, to: EventMatch, directions: Sequence[str]) -> None:
        self.ic.add(ic)
        self.to.add(to)
        for d in directions:
            self.directions[d] += 1

    def summary(self, expected: str) -> dict[str, Any]:
        n = sum(self.directions.values())
        wrong = "backward" if expected == "forward" else "forward"

        def pct(count: int) -> float:
            return 100.0 * count / n if n else float("nan")

        def bias_ms(sums: ScoreSums) -> float:
            return float(np.mean(sums.errors_s) * 1000.0) if sums.errors_s else float("nan")

        return {
            "f1": self.ic.f1,
            "ic_f1": self.ic.f1,
            "to_f1": self.to.f1,
            "ic_mae_ms": self.ic.mae_ms,
            "to_mae_ms": self.to.mae_ms,
            "ic_bias_ms": bias_ms(self.ic),
            "to_bias_ms": bias_ms(self.to),
            "n_reference": self.ic.n_reference,
            "n_detected": self.ic.n_detected,
            "n_direction": n,
            "direction_pct": pct(self.directions[expected]),
            "unknown_pct": pct(self.directions["unknown"]),
            "wrong_direction_pct": pct(self.directions[wrong]),
        }


def time_reversed(stream: FootStream) -> FootStream:
    """The same foot walking backward: samples in reverse order, gyroscope negated.

    Reversing time keeps positions and accelerations (a second derivative) and flips
    the sign of every rate, so the accelerometer is kept and the gyroscope negated;
    pressures are simply played backwards. The result is kinematically valid backward
    walking; event times map as ``t' = t0 + t_end - t``, IC and TO swapping roles.
    """
    acc = None if stream.acc_ms2 is None else stream.acc_ms2[::-1].copy()
    gyro = None if stream.gyro_dps is None else -stream.gyro_dps[::-1]
    pressure = None if stream.pressure is None else stream.pressure[::-1].copy()
    extra = dict(stream.extra)
    extra["time_reversed"] = True
    return FootStream(
        side=stream.side,
        rate_hz=stream.rate_hz,
        t0_s=stream.t0_s,
        layout=stream.layout,
        pressure=pressure,
        pressure_unit=stream.pressure_unit,
        acc_ms2=acc,
        gyro_dps=gyro,
        device=stream.device,
        firmware_version=stream.firmware_version,
        extra=extra,
    )


def reversed_times_s(stream: FootStream, times_s: Sequence[float] | FloatArray) -> FloatArray:
    """Where the events at ``times_s`` of ``stream`` land in ``time_reversed(stream)``."""
    t = np.asarray(times_s, dtype=np.float64)
    last_s = stream.t0_s + (stream.n_samples - 1) / stream.rate_hz
    return stream.t0_s + last_s - t
