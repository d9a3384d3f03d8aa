"""Pressure-based contact events and walking direction on the real recordings, scored.

What the validation table calls for its gaitpdb and Moticon rows:
:func:`score_gaitpdb` and :func:`score_moticon` replay each recording through the
firmware (``engine="firmware"``: the MicroPython unix port, one simulated board per
foot, as ``insole hil`` does, with the IMU channels left out so that contacts and
direction come from pressure alone) or run the host reference (``engine="host"``,
:class:`insole.gait.PressureStepDetection`), match the steps to the reference events of
:mod:`insole.validation.references` (one-to-one within ±100 ms) and return the pooled
scores as a dict:

``ic_f1``, ``to_f1``, ``f1`` (= ``ic_f1``), ``ic_mae_ms``, ``to_mae_ms``,
``ic_bias_ms``, ``to_bias_ms``, ``n_reference``, ``n_detected``, ``direction_pct``
(scored steps whose pressure direction is the expected one: "forward", or
"backward" with ``reversed=True``), ``unknown_pct``, ``wrong_direction_pct``,
``per_file`` (the same keys per recording and foot) and ``replays`` (the firmware's
:class:`~insole.hil.FootReplay` per foot, or ``None`` for the host engine).

``reversed=True`` plays every foot backwards in time (``time_reversed``: backward
walking by construction); the reference events map with ``reversed_times_s`` and
swap roles (the reversed walk's initial contacts are the original toe-offs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from insole.gait import PressureStepDetection
from insole.hil import FootReplay, replay_recording
from insole.model import FloatArray, FootStream
from insole.protocol import direction_name
from insole.quantise import choose_pressure_scale, stream_counts
from insole.validation.metrics import EventPool, match_events, time_reversed
from insole.validation.references import (
    ReferenceRecording,
    ReferenceSteps,
    gaitpdb_reference,
    gaitpdb_walk_files,
    moticon_reference,
    moticon_walk_files,
    reversed_reference,
)

Engine = Literal["firmware", "host"]


@dataclass
class FootEvents:
    """Steps of one foot in the stream's time base."""

    ic_s: FloatArray
    to_s: FloatArray
    directions: Sequence[str]


def replay_events(stream: FootStream, replay: FootReplay) -> FootEvents:
    """The firmware's STEP records of one foot, as times and direction names."""
    def time_s(index: int | None) -> float:  # an IMU-only stance's missing end: NaN, never matched
        return math.nan if index is None else stream.t0_s + index / stream.rate_hz

    ic = np.array([time_s(s.ic_index) for s in replay.steps])
    to = np.array([time_s(s.to_index) for s in replay.steps])
    return FootEvents(ic, to, [direction_name(s.direction) for s in replay.steps])


def host_events(stream: FootStream) -> FootEvents:
    """The host twin's steps of one foot (the same counts as a replay: ``stream_counts``
    chooses the pressure scale that ``replay_recording`` is given)."""
    d = PressureStepDetection().detect(stream_counts(stream), stream.rate_hz)
    return FootEvents(stream.t0_s + d.ic_index_ / stream.rate_hz, stream.t0_s + d.to_index_ / stream.rate_hz, d.direction_)


def pressure_only(stream: FootStream) -> FootStream:
    """The stream without its IMU, so that contacts and direction come from pressure alone."""
    return dataclasses.replace(stream, acc_ms2=None, gyro_dps=None)


# Recordings replayed at once. A replay mostly waits on its pty (all 23 gaitpdb walks:
# 17 s of CPU in 60 s one at a time, 33 s two at a time, on a loaded 2-core machine,
# with identical steps); two keep the CPU it adds beside the rest of the suite modest.
REPLAY_WORKERS = 2


@dataclass
class _RecordingEvents:
    """One recording as played (reversed and without its IMU as asked), its references and steps."""

    name: str
    streams: list[FootStream]
    references: list[ReferenceSteps]
    events: list[FootEvents]
    replays: list[FootReplay] | None


def _recording_events(recording: ReferenceRecording, reversed: bool, engine: Engine, with_imu: bool) -> _RecordingEvents:
    streams = [time_reversed(s) if reversed else s for s in recording.streams]
    if not with_imu:
        streams = [pressure_only(s) for s in streams]
    references = [
        reversed_reference(s, r) if reversed else r
        for s, r in zip(recording.streams, recording.references, strict=True)
    ]
    if engine == "host":
        return _RecordingEvents(recording.name, streams, references, [host_events(s) for s in streams], None)
    # The scales stream_counts chooses, so that host_events sees the same counts.
    scales = [1.0 if s.pressure is None else choose_pressure_scale(s.pressure) for s in streams]
    replays = replay_recording(streams, scales)
    events = [replay_events(s, r) for s, r in zip(streams, replays, strict=True)]
    return _RecordingEvents(recording.name, streams, references, events, replays)


def score_recordings(
    recordings: Sequence[ReferenceRecording],
    *,
    reversed: bool = False,
    engine: Engine = "firmware",
    with_imu: bool = False,
) -> dict[str, Any]:
    """Pooled and per-foot scores of pressure steps against each recording's reference.

    ``with_imu`` keeps a recording's IMU channels (the whole firmware, as worn: the IMU's
    stride direction then takes precedence over the roll-over); by default pressure alone.
    """
    expected = "backward" if reversed else "forward"
    pool = EventPool()
    per_file: list[dict[str, Any]] = []
    replays: list[FootReplay] | None = [] if engine == "firmware" else None
    with ThreadPoolExecutor(max_workers=REPLAY_WORKERS) as workers:
        played = list(workers.map(lambda r: _recording_events(r, reversed, engine, with_imu), recordings))
    for recording in played:
        if replays is not None and recording.replays is not None:
            replays.extend(recording.replays)
        for stream, reference, foot in zip(recording.streams, recording.references, recording.events, strict=True):
            scored = (foot.ic_s >= reference.score_from_s) & (foot.ic_s <= reference.score_to_s)
            ic = match_events(foot.ic_s[scored], reference.ic_s)
            to = match_events(foot.to_s[scored], reference.to_s)
            directions = [d for d, keep in zip(foot.directions, scored, strict=True) if keep]
            pool.add(ic, to, directions)
            single = EventPool()
            single.add(ic, to, directions)
            per_file.append({"recording": recording.name, "side": stream.side, **single.summary(expected)})
    return {**pool.summary(expected), "per_file": per_file, "replays": replays}


def score_gaitpdb(
    files: Sequence[Path], *, reversed: bool = False, engine: Engine = "firmware", debounce: bool = True
) -> dict[str, Any]:
    """gaitpdb walks against their force-threshold contacts (see ``gaitpdb_reference``)."""
    return score_recordings([gaitpdb_reference(f, debounce=debounce) for f in files], reversed=reversed, engine=engine)


def score_moticon(
    files: Sequence[Path], *, reversed: bool = False, engine: Engine = "firmware", with_imu: bool = False
) -> dict[str, Any]:
    """Moticon exports against the vendor's steps (export columns), within the span the vendor scored."""
    return score_recordings([moticon_reference(f) for f in files], reversed=reversed, engine=engine, with_imu=with_imu)


@dataclass
class Agreement:
    """Firmware vs host reference on one foot: steps paired by initial contact (±1 sample)."""

    n_firmware: int
    n_host: int
    paired: int  # IC within ±1 sample
    same_to: int  # of those, TO within ±1 sample
    same_direction: int  # of those, identical direction

    @property
    def share(self) -> float:
        """Paired steps with the same TO, of all steps either side found."""
        return self.same_to / max(self.n_firmware, self.n_host, 1)


def agreement(stream: FootStream, replay: FootReplay) -> Agreement:
    """How closely the firmware's STEP records match the host reference on the same stream."""
    host = PressureStepDetection().detect(stream_counts(stream), stream.rate_hz)
    fw_ic = np.array([s.ic_index for s in replay.steps], dtype=np.int64)
    used: set[int] = set()
    paired = same_to = same_direction = 0
    for k, step in enumerate(replay.steps):
        ic_near = np.flatnonzero(np.abs(host.ic_index_ - fw_ic[k]) <= 1)
        candidates = [int(c) for c in ic_near if int(c) not in used]
        if not candidates:
            continue
        j = candidates[0]
        used.add(j)
        paired += 1
        if step.to_index is not None and abs(int(host.to_index_[j]) - step.to_index) <= 1:
            same_to += 1
        if direction_name(step.direction) == host.direction_[j]:
            same_direction += 1
    return Agreement(len(replay.steps), len(host.ic_index_), paired, same_to, same_direction)


def benchmark(engine: Engine = "firmware") -> dict[str, dict[str, Any]]:
    """Every real-data row (all 23 gaitpdb walks, both Moticon walks; forward and
    time-reversed), keyed ``"gaitpdb"``, ``"gaitpdb reversed"``, ``"moticon"``,
    ``"moticon reversed"``. About 35 s with the firmware, 4 s with the host reference."""
    gaitpdb, moticon = gaitpdb_walk_files(), moticon_walk_files()
    rows: dict[str, dict[str, Any]] = {}
    for reversed_ in (False, True):
        suffix = " reversed" if reversed_ else ""
        rows["gaitpdb" + suffix] = score_gaitpdb(gaitpdb, reversed=reversed_, engine=engine)
        rows["moticon" + suffix] = score_moticon(moticon, reversed=reversed_, engine=engine)
    return rows


def main() -> None:
    """``python -m insole.validation.pressure_cases [host]``: print the pooled rows."""
    import sys

    engine: Engine = "host" if sys.argv[1:] == ["host"] else "firmware"
    keys = ("ic_f1", "to_f1", "ic_mae_ms", "to_mae_ms", "n_reference", "n_detected", "direction_pct", "unknown_pct")
    for name, row in benchmark(engine).items():
        print(f"{engine:8} {name:17} " + " ".join(f"{k}={row[k]:.4g}" for k in keys))


if __name__ == "__main__":
    main()
