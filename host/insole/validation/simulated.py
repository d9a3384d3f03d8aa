"""Validation rows on simulated walks, whose ground truth is exact by construction.

The simulator (`insole.sim`) knows every footfall, foot progression angle, walking
direction and heel-raise repetition; its sensors carry realistic noise, bias, drift
and gain spread (`SensorModel()`), so these rows test the algorithms, not a perfect
signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from insole.sim import HeelRaises, Stand, Walk, simulate_session
from insole.sim.plan import Segment
from insole.validation.metrics import EventPool, match_events
from insole.validation.table import Goal, Row, replay_streams, step_directions, step_times_s

SIM_RATE_HZ = 104.0  # the ESP32 board's IMU rate
FPA_SWEEP_DEG = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def fpa_plan(fpa_values_deg: Sequence[float] = FPA_SWEEP_DEG, steps_per_value: int = 16) -> list[Segment]:
    """Straight bouts across the toe-in to toe-out range, forward, then some backward."""
    segments: list[Segment] = [Stand(duration_s=2.0)]
    for fpa in fpa_values_deg:
        segments += [Walk(n_steps=steps_per_value, fpa_deg=fpa), Stand(duration_s=1.5)]
    for fpa in (0.0, 15.0):
        segments += [
            Walk(n_steps=steps_per_value, fpa_deg=fpa, direction="backward", cadence_spm=96.0, stride_length_m=0.7),
            Stand(duration_s=1.5),
        ]
    return segments


def heel_raise_plan() -> list[Segment]:
    """Two sets of raises, walking and swaying in between: only the raises may count."""
    return [
        Stand(duration_s=3.0),
        HeelRaises(reps=8, hold_s=2.0, rest_s=1.0, sets=2, set_rest_s=20.0),
        Stand(duration_s=2.0),
        Walk(duration_s=15.0),
        Stand(duration_s=16.0, weight_shift=True),
        HeelRaises(reps=5, hold_s=3.0, rest_s=1.5, sets=1),
        Stand(duration_s=3.0),
    ]


def simulated_fpa_row(seed: int = 11, steps_per_value: int = 16) -> Row:
    row = Row(
        data=f"simulated, FPA {FPA_SWEEP_DEG[0]:+.0f}…{FPA_SWEEP_DEG[-1]:+.0f}°, fwd + back",
        reference="exact (simulator)",
        goals=(Goal("fpa_mae_deg", "<=", 1.0), Goal("direction_pct", ">=", 99.0), Goal("f1", ">=", 0.98)),
    )
    sim = simulate_session(fpa_plan(steps_per_value=steps_per_value), rate_hz=SIM_RATE_HZ, seed=seed)
    replays = replay_streams(sim.streams)
    pool = EventPool()
    errors: list[float] = []
    hits = total = 0
    for stream, replay in zip(sim.streams, replays, strict=True):
        # Events are scored against every ground contact (bout starts and ends too);
        # foot angle and direction against the walking steps, which carry them.
        contacts = [c for c in sim.contacts if c.side == stream.side]
        ic_s, to_s = step_times_s(stream, replay)
        pool.add(
            match_events(ic_s, [c.ic_s for c in contacts if c.ic_s is not None]),
            match_events(to_s, [c.to_s for c in contacts if c.to_s is not None]),
            [],
        )
        truth = [t for t in sim.step_truth if t.side == stream.side]
        match = match_events(ic_s, [t.ic_s for t in truth])
        directions = step_directions(replay)
        for i, j in zip(match.detected_index, match.reference_index, strict=True):
            fpa = replay.steps[int(i)].fpa_deg
            if fpa is not None:
                errors.append(fpa - truth[int(j)].fpa_deg)
            total += 1
            hits += directions[int(i)] == truth[int(j)].direction
    summary = pool.summary("forward")
    row.n_reference = int(summary["n_reference"])
    row.f1, row.to_f1 = float(summary["ic_f1"]), float(summary["to_f1"])
    row.ic_mae_ms, row.to_mae_ms = float(summary["ic_mae_ms"]), float(summary["to_mae_ms"])
    row.fpa_n = len(errors)
    row.fpa_mae_deg = float(np.mean(np.abs(errors))) if errors else float("nan")
    row.direction_pct = 100.0 * hits / total if total else float("nan")
    row.notes.append(f"FPA on {len(errors)} of {total} matched steps")
    if errors:
        row.notes.append(f"FPA bias {np.mean(errors):+.2f}°")
    return row


def simulated_heel_raise_row(seed: int = 5) -> Row:
    row = Row(
        data="simulated heel raises (+ walking, weight shifts)",
        reference="exact (simulator)",
        goals=(Goal("raise_count_error", "==", 0),),
    )
    sim = simulate_session(heel_raise_plan(), rate_hz=SIM_RATE_HZ, seed=seed)
    replays = replay_streams(sim.streams)
    error = 0
    n_true = 0
    for stream, replay in zip(sim.streams, replays, strict=True):
        truth = [t for t in sim.raise_truth if t.side == stream.side]
        n_true += len(truth)
        error += abs(len(replay.raises) - len(truth))
        detected_sets = [(r.set, r.rep) for r in replay.raises]
        true_sets = [(t.set, t.rep) for t in truth]
        if detected_sets != true_sets:
            row.notes.append(f"{stream.side}: set/rep numbering differs from the truth")
        holds = [r.hold_ms / 1000.0 for r in replay.raises if r.hold_ms is not None]
        if holds and len(holds) == len(truth):
            worst = max(abs(h - t.hold_s) / t.hold_s for h, t in zip(holds, truth, strict=True) if t.hold_s > 0)
            row.notes.append(f"{stream.side}: worst hold error {100 * worst:.0f} %")
    row.n_reference = n_true
    row.raise_count_error = error
    return row
