"""Exercise programs on the host: prescription against what was done, from decoded
records (tests/program_course.py: a synthetic course with hand-checked numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from insole.analysis import session_results
from insole.analysis.program import (
    NOT_ENDED,
    ProgramAnalysis,
    block_runs,
    block_steps,
    heel_raise_counts,
    iso_week,
    program_json,
    recording_records,
    round_half_away_cdeg,
    walking_seconds,
)
from insole.protocol import Direction, HeelRaise, ProgramBlock, Step, Strike
from program_course import PROGRAM, START_TIMES, course, session_one, step, write_course_recording


@pytest.fixture(scope="module")
def analysis() -> ProgramAnalysis:
    return ProgramAnalysis().analyse(course())


def test_block_runs_of_one_foot_give_the_devices_results_and_the_same_measured() -> None:
    runs = block_runs(session_one("left"), "week1", {PROGRAM.program_id: PROGRAM})
    assert [(r.kind_name, r.ended, r.start_index, r.end_index) for r in runs] == [
        ("fpa_baseline", "goal", 0, 460), ("fpa_feedback", "goal", 460, 860), ("backward_walk", "goal", 860, 1260),
        ("heel_raises", "goal", 1260, 3700), ("walk", "goal", 3700, 4260),
    ]  # fmt: skip
    baseline, feedback, backward, raises, walk = runs
    assert baseline.results() == {"baseline_deg": 11.38, "steps_with_angle": 4}
    assert baseline.measured.baseline_cdeg == 1138 and baseline.measured.steps_with_angle == 4
    assert baseline.band is not None and (baseline.band.target_deg, baseline.band.half_width_deg) == (16.38, 3.0)
    assert feedback.results() == {"in_band_pct": 50.0, "cues": 1, "steps_with_angle": 4}
    assert (feedback.measured.steps_in_band, feedback.measured.in_band_pct) == (2, 50.0)
    assert (feedback.measured.cues_delivered, feedback.measured.cues_faded) == (1, 1)
    assert backward.results() == {"backward_s": 3, "forward_steps": 0, "backward_steps": 4}
    assert (backward.measured.backward_s, backward.measured.backward_steps) == (3.0, 4)
    assert backward.measured.strikes == {"heel": 0, "midfoot": 0, "forefoot": 4}
    assert raises.results() == {"full_reps": 4, "short_holds": 1, "sets": 2}
    assert (raises.measured.full_reps, raises.measured.short_holds) == (4, 1)  # the raise in the rest left out
    assert raises.signals == {"hold_reached": 1, "set_done": 1, "rest_over": 1}
    assert walk.results() == {"done": 5, "steps": 5, "walking_s": 4}
    assert (walk.measured.steps, walk.measured.walking_s, walk.measured.backward_s) == (5, 4.0, 0.0)
    assert (walk.start_s, walk.end_s) == (37.0, 42.6)


def test_sessions_blocks_and_symmetry(analysis: ProgramAnalysis) -> None:
    first, second = analysis.sessions_
    assert (first.program_id, first.session, first.recordings, first.week) == (7, 1, ("week1",), "2025-W10")
    assert (first.started, first.completed, first.resumes) == (True, True, 0)
    assert [b.reached_goal for b in first.blocks] == [True] * 5
    walk = program_json(analysis)["sessions"][0]["blocks"][4]
    assert walk["symmetry"]["stance_s"] == {"left": 0.6, "right": 0.5, "lsi": pytest.approx(0.5 / 0.6)}
    assert walk["symmetry"]["steps"] == {"left": 5.0, "right": 5.0, "lsi": 1.0}
    assert walk["symmetry"]["load"] == {"left": 1000.0, "right": 900.0, "lsi": pytest.approx(0.9)}
    assert walk["strike"] == {"measured_steps": 10, "heel_pct": 0.0, "midfoot_pct": 100.0, "forefoot_pct": 0.0}
    assert walk["prescription"] == {
        "kind": "walk", "goal": 5, "goal_unit": "steps", "band": None, "metronome_spm": None, "limit_s": None,
        "progress_pct": 10, "progress_after": 2,
    }  # fmt: skip
    backward = program_json(analysis)["sessions"][0]["blocks"][2]
    assert backward["prescription"]["metronome_spm"] == 80 and backward["prescription"]["goal_unit"] == "s"
    assert backward["strike"]["forefoot_pct"] == 100.0
    # Session 2: interrupted in one recording, resumed in the next, where the insoles went off.
    assert (second.session, second.recordings, second.resumes, second.completed) == (2, ("week2a", "week2b"), 1, False)
    (baseline,) = second.blocks
    assert baseline.runs == {"left": 2, "right": 2} and not baseline.reached_goal
    assert baseline.feet["left"].ended == NOT_ENDED and baseline.feet["left"].measured.steps == 1


def test_adherence_and_trend(analysis: ProgramAnalysis) -> None:
    assert analysis.adherence_ == {
        "sessions": 2, "sessions_started": 2, "sessions_completed": 1, "sessions_resumed": 1,
        "blocks_prescribed": 10, "blocks_run": 6, "blocks_reached_goal": 5,
        "per_week": {
            "2025-W10": {"sessions": 1, "completed": 1, "blocks_at_goal": 5},
            "2025-W11": {"sessions": 1, "completed": 0, "blocks_at_goal": 0},
        },
    }  # fmt: skip
    trend = analysis.trend_
    assert trend["sessions"] == ["7/1", "7/2"] and trend["week"] == ["2025-W10", "2025-W11"]
    measures = trend["measures"]
    assert measures["backward_min"] == [pytest.approx(3 / 60), None]
    assert measures["walking_min"] == [pytest.approx(4 / 60), None]
    assert measures["walking_steps"] == [10, None] and measures["walk_goal"] == [5, None]
    assert measures["feedback_in_band_pct"] == [50.0, None]
    assert measures["full_reps"] == [4, None] and measures["short_holds"] == [1, None]
    assert measures["baseline_deg"] == [11.38, None]  # the resumed run's baseline never ended
    assert measures["blocks_reached_goal"] == [5, 0] and measures["walk_lsi_stance"][0] == pytest.approx(0.5 / 0.6)


def test_counting_rules() -> None:
    assert [round_half_away_cdeg(t, 2) for t in (3, -3, 5, -5, 4)] == [2, -2, 3, -3, 2]
    # A stance split by a rest counts once, in the block where its first record went out.
    halves = [
        Step(100, None, None, None, 500, Direction.FORWARD, 2, None, None, None, None, 1),
        Step(None, 900, None, None, None, Direction.UNKNOWN, 2, None, None, None, None, 1),
    ]
    assert [(s.ic_index, s.to_index) for s in block_steps(halves, 0, 200)] == [(100, 900)]
    assert block_steps(halves, 200, 1000) == []
    # Walking time: contact to contact, a pause over 2.5 s left out; backward only its own gaps.
    steps = [step("left", k, ic, None, d, Strike.HEEL) for k, (ic, d) in enumerate(
        [(0, Direction.FORWARD), (100, Direction.BACKWARD), (200, Direction.FORWARD), (600, Direction.BACKWARD)])]
    assert walking_seconds(steps, 100.0, backward_only=False) == 2.0
    assert walking_seconds(steps, 100.0, backward_only=True) == 1.0
    block = ProgramBlock.heel_raises(1, 3, 1000, 2)  # one rep per set: every full raise starts a 2-s rest
    raises = [HeelRaise(0, 100, 1000, 1, 1), HeelRaise(150, 250, 1200, 1, 1), HeelRaise(400, 500, 999, 1, 1)]
    assert heel_raise_counts(raises, block, 100.0) == (1, 1)  # the second in the rest, the third short
    assert iso_week("2025-01-01T00:00:00Z") == "2025-W01" and iso_week(None) is None and iso_week("soon") is None


def test_from_recordings_gives_the_same(tmp_path: Path, analysis: ProgramAnalysis) -> None:
    records = []
    for recording in course():
        path = tmp_path / f"{recording.name}.insole"
        write_course_recording(path, recording)
        results = session_results(path)
        assert results.has_program and results.start_time_utc == START_TIMES[recording.name]
        records.append(recording_records(results))
    from_files = ProgramAnalysis().analyse(records)
    expected = program_json(analysis)
    for session in expected["sessions"]:
        session["recordings"] = [f"{name}.insole" for name in session["recordings"]]
        for block in session["blocks"]:
            for foot in block["feet"].values():
                foot["recording"] += ".insole"
    assert program_json(from_files) == expected
