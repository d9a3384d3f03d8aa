"""Voisard walkers: the loader (foot frame, packet-counter grid), step categories, partial
steps in the scoring, leave-one-subject-out folds, and the firmware against its host twin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared_data
from insole.gait import ImuTrackerParameters
from insole.model import FootStream
from insole.validation import imu_cases, voisard_cases
from insole.validation.imu_cases import NO_INDEX, FootSteps, run
from insole.validation.metrics import EventPool, time_reversed
from insole.validation.references import ReferenceSteps
from insole.validation.voisard import (
    VoisardTrial,
    foot_frame_rotation,
    load_voisard_trial,
    read_foot_file,
    voisard_trial_names,
)
from insole.validation.voisard_cases import (
    EventTally,
    LabelledSwings,
    VoisardPool,
    choose_folds,
    labelled_swings,
    swing_categories,
)

HEADER = "PacketCounter\tAcc_X\tAcc_Y\tAcc_Z\tGyr_X\tGyr_Y\tGyr_Z\tMag_X\tMag_Y\tMag_Z"


@pytest.fixture(scope="module")
def trials() -> list[VoisardTrial]:
    folder = require_shared_data("voisard_dev")
    return [load_voisard_trial(name, folder) for name in voisard_trial_names(folder)]


# --------------------------------------------------------------------------- loader


def _write_foot_file(path: Path, counters: list[int], values: np.ndarray) -> None:
    rows = ["\t".join([str(c), *(f"{v:.6f}" for v in row), "0\t0\t0"]) for c, row in zip(counters, values, strict=True)]
    path.write_text("Acquisition frequency: 100 Hz\n" + HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_lost_packets_are_filled_in_on_the_counter_grid(tmp_path: Path) -> None:
    # Counters 3 and 4 lost: sample k stays at counter k (the labels' index), the gap interpolated.
    counters = [0, 1, 2, 5, 6]
    values = np.array([[c, 2.0 * c, 9.81, math.pi * c, 0.0, -math.pi] for c in counters], dtype=float)
    path = tmp_path / "1-1_lf.txt"
    _write_foot_file(path, counters, values)
    acc, gyro, lost = read_foot_file(path)
    assert lost == 2
    assert acc.shape == gyro.shape == (7, 3)
    np.testing.assert_allclose(acc[:, 0], np.arange(7.0))
    np.testing.assert_allclose(acc[:, 1], 2.0 * np.arange(7.0))
    np.testing.assert_allclose(gyro[:, 0], 180.0 * np.arange(7.0), atol=1e-3)  # rad/s -> deg/s
    np.testing.assert_allclose(gyro[:, 2], -180.0, atol=1e-3)


@pytest.mark.parametrize("counters", [[0, 1, 1, 2], [0, 2, 1, 3]], ids=["repeated", "backwards"])
def test_a_counter_that_does_not_increase_is_refused(tmp_path: Path, counters: list[int]) -> None:
    path = tmp_path / "1-1_rf.txt"
    _write_foot_file(path, counters, np.zeros((len(counters), 6)))
    with pytest.raises(ValueError, match="PacketCounter does not increase"):
        read_foot_file(path)


def test_a_file_of_another_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "1-1_rf.txt"
    path.write_text("Acquisition frequency: 60 Hz\n" + HEADER + "\n0\t0\t0\t0\t0\t0\t0\t0\t0\t0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="100 Hz"):
        read_foot_file(path)


def _foot_frame_walk(rate_hz: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Acc [m/s²] and gyro [deg/s] of a foot standing 3 s, then 8 strides: push-off
    (toes down, positive pitch rate), swing (toes up before contact: negative), heel strike."""
    t = np.arange(int(3 * rate_hz) + 8 * int(1.1 * rate_hz)) / rate_hz
    acc = np.tile([0.0, 0.0, 9.81], (len(t), 1))
    gyro = np.zeros((len(t), 3))
    for k in range(8):
        start = 3.0 + 1.1 * k
        for lo, duration, peak in ((0.0, 0.1, 120.0), (0.1, 0.4, -350.0), (0.5, 0.1, 150.0)):
            inside = (t >= start + lo) & (t < start + lo + duration)
            gyro[inside, 1] = peak * np.sin(np.pi * (t[inside] - start - lo) / duration)
        gyro[(t >= start + 0.1) & (t < start + 0.5), 2] = 30.0  # some yaw in the swing
        acc[(t >= start) & (t < start + 0.6), 0] += 4.0
    return acc, gyro


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    a = math.radians(angle_deg)
    return np.eye(3) + math.sin(a) * kx + (1.0 - math.cos(a)) * kx @ kx


@pytest.mark.parametrize(("axis", "angle_deg"), [((0.3, -0.5, 0.8), 70.0), ((1.0, 0.2, 0.1), 160.0), ((0, 0, 1), 0.0)])
def test_the_foot_frame_is_found_from_the_data_alone(axis: tuple[float, float, float], angle_deg: float) -> None:
    acc, gyro = _foot_frame_walk()
    mounting = _rotation(np.array(axis), angle_deg)  # foot vectors to sensor axes
    rotation = foot_frame_rotation(acc @ mounting.T, gyro @ mounting.T)
    np.testing.assert_allclose(rotation @ mounting, np.eye(3), atol=1e-6)


def test_real_walks_come_out_with_gravity_up_at_rest_and_swing_lobes_negative(trials: list[VoisardTrial]) -> None:
    assert len(trials) == 28 and sorted({t.subject for t in trials}) == [1, 2, 3, 4, 5]
    for trial in trials:
        for stream, reference in zip(trial.streams, trial.references, strict=True):
            assert stream.acc_ms2 is not None and stream.gyro_dps is not None
            standing = stream.acc_ms2[: round((trial.trial_s[0] - 0.5) * stream.rate_hz)].mean(axis=0)
            assert standing[2] > 9.6, (trial.name, stream.side)
            assert math.hypot(standing[0], standing[1]) < 1.0, (trial.name, stream.side)  # the foot level within 6°
            pitch_dps = stream.gyro_dps[:, 1]
            swings = [pitch_dps[round(to * 100): round(ic * 100) + 1].mean()
                      for to, ic in zip(reference.to_s, reference.ic_s, strict=True)]
            # Toes up through the swing (measured: at least 15 of every 16 swings per foot).
            assert np.mean(np.array(swings) < 0) >= 0.9, (trial.name, stream.side)


# --------------------------------------------------------------------------- categories


def _reference(swings: list[tuple[float, float]], score_s: tuple[float, float] = (-np.inf, np.inf)) -> ReferenceSteps:
    to, ic = np.array(swings, dtype=float).T
    return ReferenceSteps("left", ic_s=ic, to_s=to, source="hand-made", score_from_s=score_s[0], score_to_s=score_s[1])


# Bout 1: three swings; the turn [4.2, 5.0]: one swing inside, one across each end; bout 2: two swings.
SWINGS = [(1.0, 1.4), (2.0, 2.4), (3.0, 3.4), (4.0, 4.3), (4.4, 4.8), (4.9, 5.3), (6.0, 6.4), (7.0, 7.4)]
CATEGORIES = ["edge", "straight", "edge", "turn", "turn", "turn", "edge", "edge"]


def test_swings_are_straight_bout_edge_or_turn() -> None:
    reference = _reference(SWINGS)
    assert swing_categories(reference.ic_s, reference.to_s, (4.2, 5.0)).tolist() == CATEGORIES
    # A bout of one swing: its edge both ways; no swing after the turn: no second bout.
    assert swing_categories(np.array([1.4, 4.5]), np.array([1.0, 4.1]), (4.2, 5.0)).tolist() == ["edge", "turn"]


def _stream(n_samples: int = 1000) -> FootStream:
    return FootStream(side="left", rate_hz=100.0, t0_s=0.0, layout="", pressure=None, pressure_unit="",
                      acc_ms2=np.zeros((n_samples, 3)), gyro_dps=np.zeros((n_samples, 3)))


def test_labelled_swings_leave_out_the_walk_after_the_scored_span_and_mirror_when_reversed() -> None:
    # A swing after the walk (8.5 s) is not scored and leaves the last swing of the walk an edge.
    reference = _reference([*SWINGS, (8.5, 8.9)], score_s=(0.5, 7.9))
    forward = labelled_swings(_stream(), reference, (4.2, 5.0))
    assert forward.category.tolist() == CATEGORIES
    np.testing.assert_allclose(forward.ic_s, [ic for _, ic in SWINGS])
    backward = labelled_swings(_stream(), reference, (4.2, 5.0), reversed=True)
    last_s = 9.99
    assert backward.category.tolist() == CATEGORIES  # per swing, as walked forward
    np.testing.assert_allclose(backward.ic_s, [last_s - to for to, _ in SWINGS])  # a toe-off becomes a contact
    np.testing.assert_allclose(backward.to_s, [last_s - ic for _, ic in SWINGS])
    assert (backward.score_from_s, backward.score_to_s) == pytest.approx((last_s - 7.9, last_s - 0.5))


# --------------------------------------------------------------------------- scoring with partial steps


def _steps(ic: list[int], to: list[int], directions: list[str]) -> FootSteps:
    n = len(ic)
    return FootSteps(np.array(ic, dtype=np.int64), np.array(to, dtype=np.int64), np.full(n, np.nan), directions,
                     np.full(n, np.nan), np.full(n, np.nan))


def test_partial_steps_are_scored_by_their_valid_events() -> None:
    swings = LabelledSwings(ic_s=np.array([1.4, 2.4, 3.4]), to_s=np.array([1.0, 2.0, 3.0]),
                            category=np.array(["edge", "straight", "edge"]), score_from_s=-0.5, score_to_s=3.9)
    # Starting from standing: the first record has no contact; stopping: the last has no toe-off.
    steps = _steps([NO_INDEX, 138, 240, 345], [103, 199, 302, NO_INDEX], ["unknown", "forward", "forward", "backward"])
    pool = VoisardPool()
    pool.add_foot(_stream(), steps, swings)
    scores = pool.summary("forward")
    assert (scores["ic_f1"], scores["to_f1"]) == (1.0, 1.0)
    assert pool.ic.n_detected == 3 and pool.to.n_detected == 3
    assert sorted(1000 * e for e in pool.ic.errors_s) == pytest.approx([-20.0, 0.0, 50.0])
    assert scores["ic_offset_ms"] == pytest.approx(0.0) and scores["ic_scatter_ms"] == pytest.approx(70.0 / 3)
    # Directions go with the contacts: the first record (no contact) gives none.
    assert scores["directions"]["edge"] == {"forward": 1, "backward": 1, "unknown": 0}
    assert scores["directions"]["straight"] == {"forward": 1, "backward": 0, "unknown": 0}
    assert steps.containing(50) is None  # inside the first record's stance, which has no contact
    assert steps.containing(150) == 1
    assert steps.containing(400) == 3  # the foot came to rest in the last stance: it goes on


def test_a_stance_in_two_records_contains_the_samples_up_to_its_toe_off() -> None:
    # Walk, stop (the contact at 240 goes out at the rest, toe-off n/a), walk on: the
    # toe-off at 520 completes it (contact n/a); then a whole stance.
    steps = _steps([138, 240, NO_INDEX, 600], [199, NO_INDEX, 520, 660], ["forward"] * 4)
    assert [steps.containing(k) for k in (150, 240, 400, 520, 521, 630)] == [0, 1, 1, 1, None, 3]


def test_category_recall_counts_only_that_categorys_swings() -> None:
    swings = LabelledSwings(ic_s=np.array([1.4, 2.4, 3.4]), to_s=np.array([1.0, 2.0, 3.0]),
                            category=np.array(["edge", "straight", "edge"]), score_from_s=0.5, score_to_s=3.9)
    pool = VoisardPool()
    pool.add_foot(_stream(), _steps([240], [302], ["forward"]), swings)  # outside the span: nothing else
    scores = pool.summary()
    assert (scores["ic_recall_straight"], scores["ic_recall_edge"]) == (1.0, 0.0)
    assert (scores["to_recall_straight"], scores["to_recall_edge"]) == (0.0, 0.5)
    assert math.isnan(scores["ic_recall_turn"])
    assert scores["ic_f1"] == pytest.approx(2 * 1 / (1 + 3))


# --------------------------------------------------------------------------- leave-one-subject-out


def _pool(f1_hits: int, errors_ms: list[float]) -> VoisardPool:
    """A pool of 10 labelled straight ICs and TOs, ``f1_hits`` found with 10 detections each."""
    tallies = []
    for _ in range(2):
        tally = EventTally(n_detected=10, errors_s=[e / 1000 for e in errors_ms], centres_s=[math.nan] * len(errors_ms))
        tally.n_reference["straight"] = 10
        tally.hits["straight"] = f1_hits
        tallies.append(tally)
    return VoisardPool(tallies[0], tallies[1])


A = ImuTrackerParameters(stance_gyr_threshold_dps=50.0)
B = ImuTrackerParameters(stance_gyr_threshold_dps=125.0)


def _grid(subject_1_at_a: int, subject_1_errors_ms: float) -> dict[ImuTrackerParameters, dict[int, VoisardPool]]:
    return {
        A: {1: _pool(subject_1_at_a, [subject_1_errors_ms]), 2: _pool(7, [0.0]), 3: _pool(7, [0.0])},
        B: {1: _pool(2, [subject_1_errors_ms]), 2: _pool(8, [10.0]), 3: _pool(8, [10.0])},
    }


def test_each_fold_chooses_on_the_other_subjects_only() -> None:
    folds, held_out = choose_folds(_grid(subject_1_at_a=10, subject_1_errors_ms=50.0))
    by_subject = {f.subject: f for f in folds}
    assert by_subject[1].parameters == B  # subjects 2 and 3 prefer B
    assert by_subject[2].parameters == A  # subject 1's strong preference for A outweighs 3's for B
    assert by_subject[1].ic_offset_s == pytest.approx(0.010)  # learnt on 2 and 3 at B
    # The held-out scores: subject 1 at B (2 of 10), subjects 2 and 3 at A (7 of 10 each).
    assert held_out.ic.f1 == pytest.approx(2 * 16 / 60)
    # Scatter around the learnt offsets: subject 1's 50 ms error against 10 ms learnt, and so on.
    fold_2_offset_ms = 1000 * by_subject[2].ic_offset_s
    fold_3_offset_ms = 1000 * by_subject[3].ic_offset_s
    expected = (40.0 + abs(0.0 - fold_2_offset_ms) + abs(0.0 - fold_3_offset_ms)) / 3
    assert 1000 * held_out.ic.scatter_s == pytest.approx(expected)
    # Whatever subject 1 does, its own fold chooses and learns the same.
    for at_a, errors_ms in ((0, -80.0), (5, 0.0)):
        again = {f.subject: f for f in choose_folds(_grid(at_a, errors_ms))[0]}
        assert again[1] == by_subject[1]


def test_the_grid_holds_every_pair_of_stance_thresholds() -> None:
    pairs = {(p.stance_gyr_threshold_dps, p.stance_pitch_threshold_dps) for p in voisard_cases.STANCE_GRID}
    assert pairs == {(g, p) for g in (50.0, 75.0, 100.0, 125.0) for p in (15.0, 25.0, 35.0)}
    shipped = ImuTrackerParameters()
    assert all(dataclass_equal_but_stance(p, shipped) for p in voisard_cases.STANCE_GRID)


def dataclass_equal_but_stance(p: ImuTrackerParameters, q: ImuTrackerParameters) -> bool:
    import dataclasses

    return dataclasses.replace(p, stance_gyr_threshold_dps=0.0, stance_pitch_threshold_dps=0.0) == dataclasses.replace(
        q, stance_gyr_threshold_dps=0.0, stance_pitch_threshold_dps=0.0)


# --------------------------------------------------------------------------- firmware and host twin


@pytest.mark.micropython
@pytest.mark.realdata
@pytest.mark.parametrize("name", ["3-3", "4-4"])  # most packets lost; the rattling strap, a stop and walking off
def test_firmware_and_host_twin_give_the_same_steps(name: str) -> None:
    trial = load_voisard_trial(name, require_shared_data("voisard_dev"))
    streams = trial.streams + [time_reversed(s) for s in trial.streams]
    firmware, _ = run(streams, "firmware")
    host, _ = run(streams, "host")
    partial = 0
    for fw, tw in zip(firmware, host, strict=True):
        assert len(fw.ic_index) > 10
        np.testing.assert_array_equal(fw.ic_index, tw.ic_index)
        np.testing.assert_array_equal(fw.to_index, tw.to_index)
        assert fw.direction == tw.direction
        partial += int(np.sum(~fw.has_ic | ~fw.has_to))
    assert partial > 0  # the trials hold partial stances, and they agree too


def test_the_other_imu_rows_score_partial_steps_by_their_valid_events_too() -> None:
    reference = ReferenceSteps("left", ic_s=np.array([1.4, 2.4]), to_s=np.array([1.0, 2.0]), source="hand-made",
                               score_from_s=-0.5, score_to_s=3.0)
    steps = _steps([NO_INDEX, 140, 240], [100, 200, NO_INDEX], ["unknown", "forward", "backward"])
    pool = EventPool()
    imu_cases._score_foot(pool, _stream(), steps, reference, excluded=[(2.6, 2.8)])
    summary = pool.summary("forward")
    assert (pool.ic.n_detected, pool.to.n_detected) == (2, 2)
    assert (summary["ic_f1"], summary["to_f1"]) == (1.0, 1.0)
    # Only steps with a contact have a direction; the last one's stance (no toe-off) lasts
    # into the excluded turn.
    assert pool.directions == {"forward": 1, "backward": 0, "unknown": 0}
