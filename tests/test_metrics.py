"""insole.validation.metrics on hand-made events: the matching, F1, errors and direction
shares every validation row is scored with (tests/test_validation.py holds the rows)."""

from __future__ import annotations

import pytest

from insole.validation.metrics import EventPool, ScoreSums, match_events


def test_events_offset_by_20_ms_match_with_that_error() -> None:
    reference = [1.0, 2.0, 3.0]
    match = match_events([t + 0.020 for t in reference], reference)
    assert match.true_positives == 3 and match.f1 == 1.0
    assert match.bias_ms == pytest.approx(20.0) and match.mae_ms == pytest.approx(20.0)
    late_and_early = match_events([1.030, 1.990], [1.0, 2.0])
    assert late_and_early.bias_ms == pytest.approx(10.0) and late_and_early.mae_ms == pytest.approx(20.0)


def test_a_detection_whose_nearest_reference_is_taken_does_not_stop_the_matching() -> None:
    # Pairs closest first: (0.00, 0.01) is matched, then (0.03, 0.01) finds the
    # reference taken and 0.03 stays unmatched, then (1.00, 1.05) is matched.
    match = match_events([0.0, 0.03, 1.0], [0.01, 1.05])
    assert list(zip(match.detected_index, match.reference_index, strict=True)) == [(0, 0), (2, 1)]
    assert match.errors_s == pytest.approx([-0.01, -0.05])
    # One false positive (0.03) of 3 detections, 2 references: F1 = 2 * 2 / (3 + 2).
    assert match.f1 == pytest.approx(0.8)


def test_nothing_matches_beyond_the_tolerance() -> None:
    match = match_events([1.0, 2.0], [1.101, 1.9])
    assert match.true_positives == 1 and match.errors_s == pytest.approx([0.1])
    assert match_events([], [1.0]).f1 == 0.0


def test_pooled_f1_counts_every_detection_and_reference() -> None:
    # 3 detected, 3 reference, 2 matched: F1 = 2 * 2 / 6.
    match = match_events([1.0, 2.0, 5.0], [1.01, 2.01, 3.0])
    sums = ScoreSums()
    sums.add(match)
    assert match.f1 == pytest.approx(2 / 3) and sums.f1 == pytest.approx(2 / 3)
    sums.add(match_events([7.0], [7.02]))
    assert (sums.true_positives, sums.n_detected, sums.n_reference) == (3, 4, 4)
    assert sums.f1 == pytest.approx(0.75) and sums.mae_ms == pytest.approx(40 / 3)


def test_direction_shares_of_a_row() -> None:
    pool = EventPool()
    match = match_events([1.0], [1.0])
    pool.add(match, match, ["forward", "forward", "forward", "backward"])
    pool.add(match, match, ["forward", "unknown", "forward", "forward", "forward", "forward"])
    forward = pool.summary("forward")
    assert forward["n_direction"] == 10
    assert forward["direction_pct"] == pytest.approx(80.0)
    assert forward["wrong_direction_pct"] == pytest.approx(10.0)
    assert forward["unknown_pct"] == pytest.approx(10.0)
    backward = pool.summary("backward")
    assert backward["direction_pct"] == pytest.approx(10.0) and backward["wrong_direction_pct"] == pytest.approx(80.0)
