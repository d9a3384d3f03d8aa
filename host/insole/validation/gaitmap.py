"""gaitmap example data as the reference for the IMU algorithms (motion capture, both feet).

``../shared/data/gaitmap_example/`` (MIT, the gaitmap project; MaD Lab "sensor
position comparison 2019") holds a healthy subject walking 2 × 20 m with one 180° turn,
a foot-mounted IMU per foot at 204.8 Hz (``imu_sample.csv``, already in the foot frame)
and, synchronised with it, motion capture at 100 Hz:

* ``stride_events_sample.csv``: per stride ``start``/``end`` (mid-stance, the foot's
  minimum velocity), ``ic`` (initial contact at the end of the stride) and ``tc``
  (toe-off at its start), all as IMU sample indices, from motion capture.
* ``DERIVED_fpa_reference_from_mocap.csv``: per stride the foot progression angle as
  the horizontal angle between the heel→toe axis at ``start`` and the heel's
  displacement to ``end`` (positive toe-out), its length, and a ``turning`` flag.
* ``mocap_sample.csv``: the markers (heel ``FCC``, ``TOE``, 5th metatarsal ``FM5``).

Note the two definitions of the foot progression angle. The reference file takes the
foot axis of the stance a stride *starts* from and the displacement *out of* it; this
project (docs/gait-imu.md) takes a stance's foot axis and the displacement *into* it.
:func:`mocap_fpa_into_footprint` recomputes the project's definition from the markers,
so that an estimate can be scored against either.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insole.importers.gaitmap import RATE_HZ, import_gaitmap
from insole.model import FloatArray, FootStream, Side, as_side
from insole.resources import shared_data_dir
from insole.validation.references import ReferenceRecording, ReferenceSteps

MOCAP_RATE_HZ = 100.0
SCORE_MARGIN_S = 0.1  # detections this far outside the annotated events are scored


def gaitmap_dir() -> Path:
    """gaitmap's example data in the shared data folder."""
    return shared_data_dir() / "gaitmap_example"


@dataclass(frozen=True)
class MocapStride:
    """One stride of the motion-capture reference (IMU sample indices)."""

    side: Side
    start: int  # mid-stance the stride starts from
    end: int  # mid-stance it ends in
    ic: int  # initial contact of the stance it ends in
    tc: int  # toe-off of the stance it starts from
    fpa_deg: float  # reference definition: axis at start, displacement start -> end; NaN if not listed
    turning: bool
    stride_length_m: float
    start_mocap: int  # the same mid-stances as motion-capture frames (-1 if not listed)
    end_mocap: int


def read_strides(folder: Path | None = None) -> list[MocapStride]:
    """Both files of stride references, joined on (foot, start, end)."""
    folder = folder or gaitmap_dir()
    angles: dict[tuple[str, int, int], dict[str, str]] = {}
    with open(folder / "DERIVED_fpa_reference_from_mocap.csv", newline="") as f:
        for row in csv.DictReader(f):
            angles[(row["foot"], int(row["start_imu"]), int(row["end_imu"]))] = row
    strides = []
    with open(folder / "stride_events_sample.csv", newline="") as f:
        for row in csv.DictReader(f):
            try:
                side = as_side(row["foot"])
            except ValueError as exc:
                raise ValueError(f"{folder}: {exc}") from None
            start, end = int(float(row["start"])), int(float(row["end"]))
            extra = angles.get((side, start, end))
            strides.append(
                MocapStride(
                    side=side,
                    start=start,
                    end=end,
                    ic=int(float(row["ic"])),
                    tc=int(float(row["tc"])),
                    fpa_deg=float(extra["fpa_deg"]) if extra else math.nan,
                    turning=extra["turning"] == "True" if extra else False,
                    stride_length_m=float(extra["stride_length_m"]) if extra else math.nan,
                    start_mocap=int(extra["start_mocap"]) if extra else -1,
                    end_mocap=int(extra["end_mocap"]) if extra else -1,
                )
            )
    return strides


def read_markers(folder: Path | None = None) -> dict[str, FloatArray]:
    """``mocap_sample.csv``: marker name → (n, 3) positions [mm], z up, 100 Hz."""
    path = (folder or gaitmap_dir()) / "mocap_sample.csv"
    with open(path) as f:
        names = f.readline().rstrip("\n").split(",")
        axes = f.readline().rstrip("\n").split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=2)
    markers: dict[str, FloatArray] = {}
    for name in dict.fromkeys(n for n in names[1:] if n):
        cols = [names.index(name) + k for k in range(3)]
        if [axes[c] for c in cols] != ["x", "y", "z"]:
            raise ValueError(f"{path}: marker {name} columns are not x, y, z")
        markers[name] = values[:, cols]
    return markers


def _heading_deg(v: FloatArray) -> float:
    return math.degrees(math.atan2(float(v[1]), float(v[0])))


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def mocap_fpa_deg(strides: list[MocapStride], markers: dict[str, FloatArray], *, axis_at: str) -> FloatArray:
    """Foot progression angle of each stride from the markers, positive toe-out: the
    heel's displacement start → end seen from the heel→toe axis at ``axis_at``
    (``"start"``: the reference file's definition; ``"end"``: the project's, the stance
    the displacement leads into). NaN where the stride has no motion-capture frames."""
    out = np.full(len(strides), np.nan)
    for k, s in enumerate(strides):
        if s.start_mocap < 0:
            continue
        p = "L" if s.side == "left" else "R"
        heel, toe = markers[f"{p}_FCC"], markers[f"{p}_TOE"]
        frame = s.start_mocap if axis_at == "start" else s.end_mocap
        d = heel[s.end_mocap, :2] - heel[s.start_mocap, :2]
        angle = _wrap_deg(_heading_deg(d) - _heading_deg(toe[frame, :2] - heel[frame, :2]))
        out[k] = -angle if s.side == "left" else angle
    return out


def mocap_fpa_into_footprint(strides: list[MocapStride], markers: dict[str, FloatArray]) -> FloatArray:
    """The project's definition from the markers (axis of the stance the stride ends in)."""
    return mocap_fpa_deg(strides, markers, axis_at="end")


@dataclass
class GaitmapWalk:
    """The 2 × 20 m walk: IMU-only streams, motion-capture strides and markers."""

    streams: list[FootStream]  # [left, right]
    strides: list[MocapStride]
    markers: dict[str, FloatArray]

    def side_strides(self, side: Side) -> list[MocapStride]:
        return [s for s in self.strides if s.side == side]

    def reference_steps(self, side: Side) -> ReferenceSteps:
        """Initial contacts and toe-offs of one foot; detections are scored from
        ``SCORE_MARGIN_S`` before the first annotated event to as much after the last
        (the stance before the first stride and after the last one are not annotated)."""
        strides = self.side_strides(side)
        ic = np.array([s.ic for s in strides], dtype=np.float64) / RATE_HZ
        to = np.array([s.tc for s in strides], dtype=np.float64) / RATE_HZ
        both = np.concatenate([ic, to])
        return ReferenceSteps(
            side,
            np.sort(ic),
            np.sort(to),
            "motion capture (gaitmap stride_events_sample.csv)",
            score_from_s=float(both.min()) - SCORE_MARGIN_S,
            score_to_s=float(both.max()) + SCORE_MARGIN_S,
        )

    def recording(self) -> ReferenceRecording:
        return ReferenceRecording(
            "gaitmap imu_sample", self.streams, [self.reference_steps(s.side) for s in self.streams]
        )

    def turning_spans(self, side: Side) -> list[tuple[int, int]]:
        """(start, end) IMU samples of the strides flagged as turning."""
        return [(s.start, s.end) for s in self.side_strides(side) if s.turning]


def load_gaitmap_walk(folder: Path | None = None) -> GaitmapWalk:
    folder = folder or gaitmap_dir()
    return GaitmapWalk(import_gaitmap(folder / "imu_sample.csv"), read_strides(folder), read_markers(folder))
