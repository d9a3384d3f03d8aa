"""IMU gait (events, direction, foot progression angle) on real and simulated data, scored.

What the validation table calls for its IMU rows. Every function runs either the real
firmware (``engine="firmware"``: the MicroPython unix port, one simulated board per
foot, as ``insole hil`` does) or the host reference (``engine="host"``,
:class:`insole.gait.ImuTracker`) on IMU-only streams, so steps are delimited by the IMU's own
contacts, and returns plain dicts of numbers:

* :func:`score_gaitmap_events` — gaitmap's 2 × 20 m walk against motion-capture IC/TC
  (``reversed=True``: the walk played backwards, backward walking by construction);
* :func:`score_gaitmap_fpa` — foot progression angle of the straight strides against
  motion capture, paired three ways (see there), raw and after a yaw calibration;
* :func:`score_moticon_imu` — Moticon exports (their IMU alone) against the vendor's
  pressure-based steps, forward or time-reversed;
* :func:`score_simulated` — simulated walks with exact truth (FPA sweep, backward
  walking, turns, mounting tilt);
* :func:`agreement` — firmware against the host reference on the same stream.

Events are matched one-to-one within ±100 ms (:func:`insole.validation.metrics.match_events`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from insole.gait import ImuTracker, ImuTrackerParameters
from insole.hil import FootReplay, replay_recording
from insole.model import FloatArray, FootStream
from insole.protocol import direction_name
from insole.quantise import stream_counts
from insole.sim import SensorModel, Stand, Walk, fpa_sweep_plan, simulate_session
from insole.sim.plan import Segment
from insole.validation.gaitmap import GaitmapWalk, load_gaitmap_walk, mocap_fpa_deg
from insole.validation.metrics import EventPool, match_events, reversed_times_s, time_reversed
from insole.validation.references import ReferenceSteps, moticon_reference, moticon_walk_files, reversed_reference

Engine = Literal["firmware", "host"]
Arithmetic = Literal["fixed", "float"]
IntArray = npt.NDArray[np.int64]

SIM_RATE_HZ = 104.0  # the ESP32 board's IMU rate
FPA_SWEEP_DEG = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
AGREEMENT_FPA_DEG = 0.5


def imu_only(stream: FootStream) -> FootStream:
    """The stream without its pressure cells: steps then come from the IMU alone."""
    return dataclasses.replace(stream, pressure=None, layout="", pressure_unit="")


NO_INDEX = -1  # an event index that is n/a: the stance is partial (docs/protocol.md)


@dataclass
class FootSteps:
    """One foot's steps as the device reports them (sample indices of its stream).

    An IMU-only insole may report a stance in two partial records, one without its
    initial contact, one without its toe-off: that index is :data:`NO_INDEX` here.
    Scores use each step's valid events only."""

    ic_index: IntArray  # NO_INDEX where n/a
    to_index: IntArray  # NO_INDEX where n/a
    fpa_deg: FloatArray  # NaN where n/a
    direction: list[str]
    stride_length_m: FloatArray
    speed_ms: FloatArray
    host: ImuTracker | None = None  # the host twin's full result (engine="host")

    @property
    def has_ic(self) -> npt.NDArray[np.bool_]:
        return self.ic_index >= 0  # NO_INDEX is the one negative index

    @property
    def has_to(self) -> npt.NDArray[np.bool_]:
        return self.to_index >= 0

    def containing(self, index: int) -> int | None:
        """The step whose stance [ic, to] contains the sample, or None. A stance the foot
        came to rest in (toe-off n/a) reaches to the toe-off of the record that completes
        it (the next one, contact n/a), or on without end; a record without its contact
        contains nothing (its stance's first half does)."""
        following_to = np.append(self.to_index[1:], NO_INDEX)
        following_has_ic = np.append(self.has_ic[1:], True)
        rested = self.has_ic & ~self.has_to
        end = np.where(rested & ~following_has_ic & (following_to >= 0), following_to,
                       np.where(rested, np.iinfo(np.int64).max, self.to_index))
        hits = np.flatnonzero(self.has_ic & (self.ic_index <= index) & (index <= end))
        return int(hits[0]) if len(hits) else None


def _na(value: int | None, scale: float) -> float:
    return math.nan if value is None else value / scale


def _index(value: int | None) -> int:
    """A decoded index, NO_INDEX where n/a."""
    return NO_INDEX if value is None else value


def firmware_steps(replay: FootReplay) -> FootSteps:
    s = replay.steps
    return FootSteps(
        np.array([_index(x.ic_index) for x in s], dtype=np.int64),
        np.array([_index(x.to_index) for x in s], dtype=np.int64),
        np.array([_na(x.fpa_cdeg, 100.0) for x in s]),
        [direction_name(x.direction) for x in s],
        np.array([_na(x.stride_mm, 1000.0) for x in s]),
        np.array([_na(x.speed_mms, 1000.0) for x in s]),
    )


def host_steps(
    stream: FootStream,
    arithmetic: Arithmetic = "fixed",
    dtype: type = float,
    parameters: ImuTrackerParameters | None = None,
) -> FootSteps:
    """The host reference's steps; ``arithmetic="float"`` (with ``dtype``) integrates
    in floating point instead of the device's integers; ``parameters`` other than the
    firmware's constants (None)."""
    g = ImuTracker(parameters, arithmetic=arithmetic, dtype=dtype).detect(stream_counts(stream), stream.rate_hz)
    s = g.steps_
    return FootSteps(
        np.array([x.ic_index for x in s], dtype=np.int64),
        np.array([x.to_index for x in s], dtype=np.int64),
        np.array([x.fpa_deg for x in s]),
        [x.direction for x in s],
        np.array([x.stride_length_m for x in s]),
        np.array([x.speed_ms for x in s]),
        host=g,
    )


def run(
    streams: Sequence[FootStream], engine: Engine, parameters: ImuTrackerParameters | None = None
) -> tuple[list[FootSteps], list[FootReplay] | None]:
    """Steps of every (IMU-only) stream from the chosen engine; the replays too for the
    firmware. ``parameters`` (host engine only) replace the firmware's constants."""
    streams = [imu_only(s) for s in streams]
    if engine == "firmware":
        if parameters is not None:
            raise ValueError("the firmware runs its own constants; other parameters need engine='host'")
        replays = replay_recording(streams, [1.0] * len(streams))
        return [firmware_steps(r) for r in replays], replays
    return [host_steps(s, parameters=parameters) for s in streams], None


def _score_foot(
    pool: EventPool,
    stream: FootStream,
    steps: FootSteps,
    reference: ReferenceSteps,
    excluded: Sequence[tuple[float, float]] = (),
) -> None:
    """Each valid event inside the reference's scored span is matched (an IC and a TO
    are scored on their own times: the stance around a span's edge is half annotated);
    directions of the steps whose IC is valid and in the span and whose stance does not
    overlap an excluded span (turns). A stance reported in two partial records thus
    counts once: its direction goes with its contact."""
    ic_s = stream.t0_s + steps.ic_index / stream.rate_hz
    to_s = stream.t0_s + steps.to_index / stream.rate_hz

    def inside(t: FloatArray) -> npt.NDArray[np.bool_]:
        return (t >= reference.score_from_s) & (t <= reference.score_to_s)

    scored_ic = steps.has_ic & inside(ic_s)
    scored_to = steps.has_to & inside(to_s)
    straight = scored_ic.copy()
    stance_end_s = np.where(steps.has_to, to_s, np.inf)  # a stance without its toe-off lasts on
    for lo, hi in excluded:
        straight &= ~((ic_s <= hi) & (stance_end_s >= lo))
    directions = [d for d, keep in zip(steps.direction, straight, strict=True) if keep]
    pool.add(match_events(ic_s[scored_ic], reference.ic_s), match_events(to_s[scored_to], reference.to_s), directions)


# --------------------------------------------------------------------------- gaitmap


def score_gaitmap_events(
    walk: GaitmapWalk | None = None, *, reversed: bool = False, engine: Engine = "firmware"
) -> dict[str, Any]:
    """IC/TC of both feet against motion capture. ``direction_pct``: steps read as the
    expected direction (forward; backward when reversed), of the scored steps outside
    the strides flagged as turning."""
    walk = walk or load_gaitmap_walk()
    streams = [time_reversed(s) if reversed else s for s in walk.streams]
    feet, replays = run(streams, engine)
    pool = EventPool()
    per_foot = []
    for original, stream, steps in zip(walk.streams, streams, feet, strict=True):
        reference = walk.reference_steps(original.side)
        turns = [(a / original.rate_hz, b / original.rate_hz) for a, b in walk.turning_spans(original.side)]
        if reversed:
            reference = reversed_reference(original, reference)
            turns = [tuple(sorted(reversed_times_s(original, [a, b]))) for a, b in turns]
        single = EventPool()
        _score_foot(single, stream, steps, reference, turns)
        _score_foot(pool, stream, steps, reference, turns)
        per_foot.append({"side": original.side, **single.summary("backward" if reversed else "forward")})
    return {**pool.summary("backward" if reversed else "forward"), "per_foot": per_foot, "replays": replays}


def _calibrated(errors: FloatArray, feet: npt.NDArray[np.str_], folds: IntArray) -> FloatArray:
    """Errors after removing a per-foot constant (the sensor's mounting yaw) learnt on
    the same foot's other fold: a calibration walk with a known angle, never the
    scored strides themselves."""
    out = np.full(len(errors), np.nan)
    for foot in np.unique(feet):
        for fold in np.unique(folds[feet == foot]):
            test = (feet == foot) & (folds == fold)
            train = (feet == foot) & (folds != fold) & np.isfinite(errors)
            if train.any():
                out[test] = errors[test] - float(np.mean(errors[train]))
    return out


def score_gaitmap_fpa(walk: GaitmapWalk | None = None, *, engine: Engine = "firmware") -> dict[str, Any]:
    """Foot progression angle of the straight (not turning) strides against motion capture.

    The reference stride runs from mid-stance ``s`` to mid-stance ``e`` and measures its
    displacement from the foot axis at ``s``; the device gives each stance the angle of
    the displacement *into* it. Scored pairings (each as ``*_mae_deg`` raw and
    ``*_cal_mae_deg`` after a yaw calibration, plus ``*_bias_deg``):

    * ``start``: the reference against the step whose stance contains ``s`` (same
      footprint and foot axis, the displacement into it rather than out of it);
    * ``end``: against the step whose stance contains ``e`` (same displacement, the
      foot axis at ``e``);
    * ``project``: the step containing ``e`` against the markers' angle in the
      project's own definition (axis at ``e``, displacement ``s`` → ``e``);
    * ``out`` (host engine only): the reference's own definition from the same stride
      integration (axis at ``s``, displacement out of it).

    The yaw calibration removes one constant per foot (the sensor's mounting yaw, which
    adds to the angle directly), learnt on the walk's other 20 m bout (two folds split
    at the turn). Also: ``stride_mae_m`` (step containing ``e`` against the reference
    stride length), ``n`` (strides scored), ``offset_deg`` (per foot, project pairing).
    """
    walk = walk or load_gaitmap_walk()
    feet, _ = run(walk.streams, engine)
    ref_start = mocap_fpa_deg(walk.strides, walk.markers, axis_at="start")
    ref_end = mocap_fpa_deg(walk.strides, walk.markers, axis_at="end")
    columns: dict[str, list[float]] = {k: [] for k in ("ref", "project", "start", "end", "out", "length", "ref_length")}
    folds: list[int] = []
    sides: list[str] = []
    for stream, steps in zip(walk.streams, feet, strict=True):
        turn_at = min((s.start for s in walk.side_strides(stream.side) if s.turning), default=10**9)
        for k, stride in enumerate(walk.strides):
            if stride.side != stream.side or stride.turning or math.isnan(stride.fpa_deg):
                continue
            at_s = steps.containing(stride.start)
            at_e = steps.containing(stride.end)
            columns["ref"].append(stride.fpa_deg)
            columns["project"].append(float(ref_end[k]))
            columns["start"].append(steps.fpa_deg[at_s] if at_s is not None else math.nan)
            columns["end"].append(steps.fpa_deg[at_e] if at_e is not None else math.nan)
            columns["length"].append(steps.stride_length_m[at_e] if at_e is not None else math.nan)
            columns["ref_length"].append(stride.stride_length_m)
            columns["out"].append(_host_fpa_out(steps, at_e))
            folds.append(0 if stride.start < turn_at else 1)
            sides.append(stream.side)
            if not abs(ref_start[k] - stride.fpa_deg) < 0.5:
                raise ValueError(f"stride {k}: the markers give {ref_start[k]:.2f}°, the reference file {stride.fpa_deg:.2f}°")
    fold = np.array(folds)
    feet_of = np.array(sides)
    ref = np.array(columns["ref"])
    out: dict[str, Any] = {"n": len(ref)}
    for name, target in (("start", ref), ("end", ref), ("project", np.array(columns["project"])), ("out", ref)):
        estimate = np.array(columns["end" if name == "project" else name])
        errors = estimate - target
        out[f"{name}_mae_deg"] = _mae(errors)
        out[f"{name}_bias_deg"] = float(np.nanmean(errors)) if np.isfinite(errors).any() else math.nan
        out[f"{name}_cal_mae_deg"] = _mae(_calibrated(errors, feet_of, fold))
        out[f"{name}_n"] = int(np.isfinite(errors).sum())
        if name == "project":
            out["offset_deg"] = {side: float(np.nanmean(errors[feet_of == side])) for side in ("left", "right")}
    out["stride_mae_m"] = _mae(np.array(columns["length"]) - np.array(columns["ref_length"]))
    return out


def _host_fpa_out(steps: FootSteps, at_e: int | None) -> float:
    # The host stride that ended in the stance containing e: its angle seen from its start.
    if steps.host is None or at_e is None:
        return math.nan
    g = steps.host
    inside = np.flatnonzero((g.stride_end_index_ >= steps.ic_index[at_e]) & (g.stride_end_index_ <= steps.to_index[at_e]))
    return float(g.fpa_out_deg_[inside[0]]) if len(inside) else math.nan


def _mae(errors: FloatArray) -> float:
    ok = np.isfinite(errors)
    return float(np.mean(np.abs(errors[ok]))) if ok.any() else math.nan


# --------------------------------------------------------------------------- Moticon


def score_moticon_imu(files: Sequence[Path], *, reversed: bool = False, engine: Engine = "firmware") -> dict[str, Any]:
    """The exports' IMU alone against the vendor's (pressure-based) steps, within the
    span the vendor scored; ``reversed`` plays each foot backwards."""
    pool = EventPool()
    per_file = []
    for path in files:
        recording = moticon_reference(Path(path))
        streams = [time_reversed(s) if reversed else s for s in recording.streams]
        feet, _ = run(streams, engine)
        for original, stream, reference, steps in zip(recording.streams, streams, recording.references, feet, strict=True):
            if reversed:
                reference = reversed_reference(original, reference)
            single = EventPool()
            _score_foot(single, stream, steps, reference)
            _score_foot(pool, stream, steps, reference)
            per_file.append({"recording": recording.name, "side": original.side, **single.summary(
                "backward" if reversed else "forward")})
    return {**pool.summary("backward" if reversed else "forward"), "per_file": per_file}


# --------------------------------------------------------------------------- simulated


def tilted(stream: FootStream, angle_deg: float, azimuth_deg: float) -> FootStream:
    """The stream as a sensor tilted ``angle_deg`` about the horizontal axis at
    ``azimuth_deg`` from the toes would read it (a mounting tilt, no yaw)."""
    a = math.radians(azimuth_deg)
    k = np.array([math.cos(a), math.sin(a), 0.0])
    th = math.radians(angle_deg)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rotation = np.eye(3) + math.sin(th) * kx + (1.0 - math.cos(th)) * kx @ kx  # sensor axes in the foot frame
    assert stream.acc_ms2 is not None and stream.gyro_dps is not None
    return dataclasses.replace(stream, acc_ms2=stream.acc_ms2 @ rotation, gyro_dps=stream.gyro_dps @ rotation)


def simulated_plan(kind: str, steps_per_value: int = 12) -> list[Segment]:
    """``"sweep"`` (forward, FPA −15…+25°), ``"backward"`` or ``"turns"`` (180° and 90°)."""
    if kind == "sweep":
        return list(fpa_sweep_plan(FPA_SWEEP_DEG, steps_per_value=steps_per_value).segments)
    if kind == "backward":
        return [
            Stand(duration_s=2.0),
            Walk(n_steps=2 * steps_per_value, direction="backward", cadence_spm=96.0, stride_length_m=0.7, fpa_deg=5.0),
            Stand(duration_s=2.0),
            Walk(n_steps=steps_per_value, direction="backward", cadence_spm=90.0, stride_length_m=0.5, fpa_deg=15.0),
            Stand(duration_s=2.0),
        ]
    if kind == "turns":
        return [
            Stand(duration_s=2.0),
            Walk(n_steps=4),
            Walk(n_steps=10, turn_deg=180.0, stride_length_m=0.7, cadence_spm=100.0),
            Walk(n_steps=4),
            Walk(n_steps=6, turn_deg=-90.0, stride_length_m=0.8),
            Stand(duration_s=2.0),
            Walk(n_steps=8, turn_deg=180.0, stride_length_m=0.5, cadence_spm=90.0, direction="forward"),
            Stand(duration_s=2.0),
        ]
    raise ValueError(f"unknown simulated plan {kind!r}")


def score_simulated(
    kind: str,
    *,
    engine: Engine = "firmware",
    seed: int = 7,
    rate_hz: float = SIM_RATE_HZ,
    tilt: tuple[float, float] | None = None,
    steps_per_value: int = 12,
    sensors: SensorModel | None = None,
) -> dict[str, Any]:
    """A simulated walk (realistic sensors by default) against its exact truth. Each
    true step is paired with the detected step whose stance contains its mid-stance.
    Returns ``fpa_mae_deg``/``fpa_bias_deg``/``fpa_n`` over straight steps with an
    angle, ``direction_pct`` (true steps read as their true direction, missing ones
    counting as misses), ``turning_backward`` (steps in turning bouts read as backward),
    ``turning_n``, ``n``, ``missing``, ``stride_mae_m`` and ``speed_mae_ms``."""
    sim = simulate_session(simulated_plan(kind, steps_per_value), rate_hz=rate_hz, seed=seed, sensors=sensors)
    streams = sim.streams if tilt is None else [tilted(s, *tilt) for s in sim.streams]
    feet, _ = run(streams, engine)
    turning_segments = {k for k, seg in enumerate(sim.plan.segments) if isinstance(seg, Walk) and seg.turn_deg}
    errors: list[float] = []
    stride_errors: list[float] = []
    speed_errors: list[float] = []
    hits = missing = turning_n = turning_backward = total = 0
    for stream, steps in zip(streams, feet, strict=True):
        for t in sim.step_truth:
            if t.side != stream.side:
                continue
            mid = round((t.ic_s + t.to_s) / 2.0 * rate_hz)
            j = steps.containing(mid)
            turning = t.segment_index in turning_segments
            if turning:
                turning_n += 1
                turning_backward += j is not None and steps.direction[j] == "backward"
                continue
            total += 1
            if j is None:
                missing += 1
                continue
            hits += steps.direction[j] == t.direction
            if np.isfinite(steps.fpa_deg[j]):
                errors.append(float(steps.fpa_deg[j] - t.fpa_deg))
            if np.isfinite(steps.stride_length_m[j]):
                stride_errors.append(float(steps.stride_length_m[j] - t.stride_length_m))
            if np.isfinite(steps.speed_ms[j]) and np.isfinite(t.speed_ms):
                speed_errors.append(float(steps.speed_ms[j] - t.speed_ms))
    e = np.array(errors)
    return {
        "n": total,
        "missing": missing,
        "fpa_n": len(e),
        "fpa_mae_deg": _mae(e),
        "fpa_bias_deg": float(np.mean(e)) if len(e) else math.nan,
        "fpa_p95_deg": float(np.percentile(np.abs(e), 95)) if len(e) else math.nan,
        "direction_pct": 100.0 * hits / total if total else math.nan,
        "turning_n": turning_n,
        "turning_backward": turning_backward,
        "stride_mae_m": _mae(np.array(stride_errors)),
        "speed_mae_ms": _mae(np.array(speed_errors)),
    }


# --------------------------------------------------------------------------- agreement


@dataclass
class Agreement:
    """Firmware against the host reference on one foot's stream."""

    n_firmware: int
    n_host: int
    same_events: int  # steps with IC and TO both within ±1 sample
    fpa_pairs: int  # of those, steps where both give an angle
    fpa_close: int  # ... within AGREEMENT_FPA_DEG
    fpa_max_diff_deg: float

    @property
    def event_share(self) -> float:
        return self.same_events / max(self.n_firmware, self.n_host, 1)

    @property
    def fpa_share(self) -> float:
        return self.fpa_close / self.fpa_pairs if self.fpa_pairs else math.nan


def agreement(
    stream: FootStream, replay: FootReplay, arithmetic: Arithmetic = "fixed", dtype: type = float
) -> Agreement:
    """Steps paired when IC and TO both lie within ±1 sample; their angles compared."""
    fw = firmware_steps(replay)
    host = host_steps(imu_only(stream), arithmetic, dtype)
    used: set[int] = set()
    same = pairs = close = 0
    worst = 0.0
    for k in range(len(fw.ic_index)):
        both_near = (np.abs(host.ic_index - fw.ic_index[k]) <= 1) & (np.abs(host.to_index - fw.to_index[k]) <= 1)
        near = [int(j) for j in np.flatnonzero(both_near) if int(j) not in used]
        if not near:
            continue
        j = near[0]
        used.add(j)
        same += 1
        if np.isfinite(fw.fpa_deg[k]) and np.isfinite(host.fpa_deg[j]):
            pairs += 1
            diff = abs(float(fw.fpa_deg[k] - host.fpa_deg[j]))
            worst = max(worst, diff)
            close += diff <= AGREEMENT_FPA_DEG
    return Agreement(len(fw.ic_index), len(host.ic_index), same, pairs, close, worst)


# --------------------------------------------------------------------------- all rows


def benchmark(engine: Engine = "firmware") -> dict[str, dict[str, Any]]:
    """Every IMU row, keyed by name (about 15 s with the firmware)."""
    walk = load_gaitmap_walk()
    rows: dict[str, dict[str, Any]] = {
        "gaitmap events": score_gaitmap_events(walk, engine=engine),
        "gaitmap events reversed": score_gaitmap_events(walk, engine=engine, reversed=True),
        "gaitmap fpa": score_gaitmap_fpa(walk, engine=engine),
        "moticon imu": score_moticon_imu(moticon_walk_files(), engine=engine),
        "moticon imu reversed": score_moticon_imu(moticon_walk_files(), engine=engine, reversed=True),
        "sim sweep": score_simulated("sweep", engine=engine),
        "sim backward": score_simulated("backward", engine=engine),
        "sim turns": score_simulated("turns", engine=engine),
    }
    for angle, azimuth in ((45.0, 0.0), (45.0, 90.0), (-45.0, 45.0), (30.0, 210.0)):
        rows[f"sim sweep tilt {angle:+.0f} at {azimuth:.0f}"] = score_simulated(
            "sweep", engine=engine, tilt=(angle, azimuth)
        )
    return rows


def main() -> None:
    """``python -m insole.validation.imu_cases [host]``: print every row."""
    import sys

    engine: Engine = "host" if sys.argv[1:] == ["host"] else "firmware"
    for name, row in benchmark(engine).items():
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        print(f"{engine:8} {name:28} " + " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))


if __name__ == "__main__":
    main()
