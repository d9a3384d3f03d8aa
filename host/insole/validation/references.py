"""Reference contact events of the real recordings the pressure algorithms are scored on.

* gaitpdb (PhysioNet "Gait in Parkinson's Disease"): the force insoles read exactly 0
  during swing, so the contacts follow from the per-foot total force itself
  (:class:`ForceThresholdEvents`): threshold = 2 % of the 95th percentile of the
  total, onset = first sample above it after a sample at or below, offset = the last
  sample above it. Only complete stances (onset and offset inside the recording) are
  reference steps, and crossings shorter than 100 ms (chatter at the threshold) are
  dropped. This reference comes from the same sensors as the detections.
* Moticon OpenGo: the vendor's own detections in the export's ``left/right steps[]``
  columns (:func:`moticon_reference`), which ``insole.importers.moticon`` reads as
  ``ReferenceEvents``. The gait report (.xlsx, sheets "Left/Right Steps") lists the
  same 32 steps to the millisecond (:func:`moticon_report_reference`); the export's
  columns are those times snapped to its own 10 ms rows (|difference| ≤ 6 ms on every
  event of both sample files). The export columns are the reference: they are in the
  recording's own file and time base, on the same sample grid as any detection from
  it, and need no second file; the report's finer times are below that grid (scoring
  against either changes the MAE by < 1 ms). The vendor lists the steps of the walk
  itself, not the standing before and after it: :func:`moticon_reference` also
  returns that span (± 0.5 s), and detections outside it are not scored (on both
  sample files no pressure step of ours falls outside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from insole.importers.gaitpdb import read_gaitpdb
from insole.importers.moticon import read_gait_report, read_moticon
from insole.model import FloatArray, FootStream, Side
from insole.resources import shared_data_dir
from insole.validation.metrics import reversed_times_s

IntArray = npt.NDArray[np.int64]

MOTICON_WALKS = ("230927_102114.txt", "230927_102137.txt")  # the two walking exports of the Moticon data


def gaitpdb_walk_files() -> list[Path]:
    """Every gaitpdb walk in the shared data folder."""
    return sorted((shared_data_dir() / "gaitpdb").glob("Ga*_*.txt"))


def moticon_walk_files() -> list[Path]:
    """Both Moticon walking exports in the shared data folder."""
    return [shared_data_dir() / "moticon_opengo" / name for name in MOTICON_WALKS]


GAITPDB_THRESHOLD_SHARE = 0.02  # of the 95th percentile of the foot's total force
GAITPDB_THRESHOLD_PERCENTILE = 95.0


class ForceThresholdEvents:
    """Contacts of one foot from its total force crossing a fixed share of its 95th percentile.

    ``detect(total_force, rate_hz)`` sets ``threshold_``, ``onset_index_`` (first sample
    above the threshold after one at or below) and ``offset_index_`` (last sample above
    before one at or below), one pair per complete stance.

    Debouncing (``min_contact_s=0`` gives the bare crossings): in the Ga walks the
    force often hovers at the threshold for a few samples before the real loading,
    which makes 1–7-sample "contacts" followed by 1–7 samples at or below (up to a
    third of all crossings of some GaPt walks), so crossings shorter than
    ``min_contact_s`` (100 ms, shorter than any stance) are dropped. Optionally,
    contacts separated by less than ``min_gap_s`` are merged (off by default: some
    PD walks have genuine swings shorter than 100 ms while turning).

    Known limit: the threshold is absolute per foot. In GaCo13_10 the right insole
    reads 14–25 N during swing, about its threshold (15.5 N), so most of that foot's
    swings are missed and its steps merge (23 reference steps where the detectors
    find 51).
    """

    def __init__(
        self,
        threshold_share: float = GAITPDB_THRESHOLD_SHARE,
        percentile: float = GAITPDB_THRESHOLD_PERCENTILE,
        *,
        min_contact_s: float = 0.1,
        min_gap_s: float = 0.0,
    ) -> None:
        self.threshold_share = threshold_share
        self.percentile = percentile
        self.min_contact_s = min_contact_s
        self.min_gap_s = min_gap_s
        self.threshold_ = float("nan")
        self.onset_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.offset_index_: IntArray = np.zeros(0, dtype=np.int64)

    def detect(self, total_force: npt.ArrayLike, rate_hz: float = 100.0) -> ForceThresholdEvents:
        force = np.asarray(total_force, dtype=np.float64)
        finite = force[np.isfinite(force)]
        self.threshold_ = float(np.percentile(finite, self.percentile)) * self.threshold_share if finite.size else 0.0
        above = np.where(np.isfinite(force), force > self.threshold_, False)
        change = np.diff(above.astype(np.int8))
        onsets = np.flatnonzero(change == 1) + 1  # first sample above after one at or below
        offsets = np.flatnonzero(change == -1)  # last sample above before one at or below
        # Complete stances only: drop an offset before the first onset, an onset without an offset.
        offsets = offsets[offsets >= onsets[0]] if len(onsets) else offsets[:0]
        onsets = onsets[: len(offsets)]
        long_enough = (offsets - onsets + 1) >= round(self.min_contact_s * rate_hz)
        onsets, offsets = onsets[long_enough], offsets[long_enough]
        if len(onsets) and self.min_gap_s > 0:
            gaps = onsets[1:] - offsets[:-1] - 1
            swing = np.concatenate([[True], gaps >= round(self.min_gap_s * rate_hz)])
            onsets = onsets[swing]
            offsets = offsets[np.concatenate([swing[1:], [True]])]
        self.onset_index_ = onsets.astype(np.int64)
        self.offset_index_ = offsets.astype(np.int64)
        return self


@dataclass
class ReferenceSteps:
    """Reference stances of one foot, times in the stream's time base [s]."""

    side: Side
    ic_s: FloatArray
    to_s: FloatArray
    source: str
    # Detections outside [score_from_s, score_to_s] are not scored (the reference does
    # not cover that part of the recording).
    score_from_s: float = -np.inf
    score_to_s: float = np.inf


@dataclass
class ReferenceRecording:
    """Both feet of one real recording with the reference steps to score them against."""

    name: str
    streams: list[FootStream]
    references: list[ReferenceSteps]  # parallel to ``streams``


def gaitpdb_reference(path: Path, *, debounce: bool = True) -> ReferenceRecording:
    """A gaitpdb walk: both feet and the force-threshold contacts of their total force
    (``debounce=False``: the bare threshold crossings, see :class:`ForceThresholdEvents`)."""
    walk = read_gaitpdb(Path(path))
    references = []
    detector = ForceThresholdEvents() if debounce else ForceThresholdEvents(min_contact_s=0.0, min_gap_s=0.0)
    for stream in walk.streams:
        events = detector.detect(walk.total_force_n[stream.side], stream.rate_hz)
        times = stream.times_s()
        references.append(
            ReferenceSteps(stream.side, times[events.onset_index_], times[events.offset_index_], "force threshold")
        )
    return ReferenceRecording(Path(path).stem, walk.streams, references)


def moticon_reference(path: Path, *, margin_s: float = 0.5) -> ReferenceRecording:
    """A Moticon export: both feet and the vendor's step detections from its own columns.

    The scored span of each foot runs from ``margin_s`` before the vendor's first event
    to ``margin_s`` after its last (the vendor lists the steady steps of the walk only).
    """
    recording = read_moticon(Path(path))
    references = []
    for stream in recording.streams:
        events = recording.reference_events[stream.side]
        first = min(events.ic_s.min(initial=np.inf), events.to_s.min(initial=np.inf))
        last = max(events.ic_s.max(initial=-np.inf), events.to_s.max(initial=-np.inf))
        references.append(
            ReferenceSteps(
                stream.side,
                np.asarray(events.ic_s, dtype=np.float64),
                np.asarray(events.to_s, dtype=np.float64),
                "Moticon vendor (export steps[] columns)",
                score_from_s=first - margin_s,
                score_to_s=last + margin_s,
            )
        )
    return ReferenceRecording(Path(path).stem, recording.streams, references)


def moticon_report_reference(report_path: Path) -> dict[Side, ReferenceSteps]:
    """The vendor's steps from a Moticon gait report (.xlsx), millisecond resolution."""
    report = read_gait_report(Path(report_path))
    return {
        side: ReferenceSteps(side, steps.ic_s, steps.to_s, "Moticon vendor (gait report xlsx)")
        for side, steps in report.items()
    }


MOTICON_REPORTS = {
    "230927_102114": "gait_report_230927_10_21_14.xlsx",
    "230927_102137": "gait_report_230927_10_21_37.xlsx",
}


def reversed_reference(stream: FootStream, reference: ReferenceSteps) -> ReferenceSteps:
    """The reference of ``time_reversed(stream)``: IC and TO swap, the scored span mirrors."""
    lo, hi = reference.score_from_s, reference.score_to_s
    if np.isfinite(lo) and np.isfinite(hi):
        lo, hi = (float(v) for v in reversed_times_s(stream, [hi, lo]))
    return ReferenceSteps(
        reference.side,
        np.sort(reversed_times_s(stream, reference.to_s)),
        np.sort(reversed_times_s(stream, reference.ic_s)),
        reference.source + ", time-reversed",
        score_from_s=lo,
        score_to_s=hi,
    )
