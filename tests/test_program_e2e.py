"""Exercise programs end to end: simulated walks through the firmware on the unix port,
each insole running its program, its PROGRAM_EVENTs checked against the simulator's
exact truth (docs/programs.md).

Every expected number comes from the simulator's truth by the rules of docs/programs.md,
not from the insole's own records: the steps a block counted are the true steps whose
stance holds a step the insole reported in the block (it must report every one of them,
with the true direction), their angles the true angles, the raises the true raises. Where
a true angle sits within 0.15° of the band's edge the insole's reading may fall on either
side (its angle is within ~0.05° of the truth), and such steps are counted as either.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from insole.hil import FootReplay, replay_recording
from insole.protocol import (
    BlockEnd,
    BlockKind,
    Program,
    ProgramBlock,
    ProgramEvent,
    ProgramEventKind,
    ProgramSignal,
    Step,
    direction_name,
    whole_stances,
)
from insole.quantise import choose_pressure_scale
from insole.sim import HeelRaises, Stand, Walk, simulate_session
from insole.sim.plan import Segment
from insole.sim.session import SimulatedSession
from insole.sim.timeline import StepTruth

pytestmark = pytest.mark.micropython

RATE_HZ = 104.0
EDGE_DEG = 0.15  # a true angle this close to the band's edge may be read on either side
MAX_GAP_S = 2.5  # docs/programs.md: contact-to-contact time counted only up to this


def _run(
    plan: Sequence[Segment], program: Program | None, seed: int, settings: dict[str, Path] | None = None
) -> tuple[SimulatedSession, dict[str, FootReplay]]:
    sim = simulate_session(list(plan), rate_hz=RATE_HZ, seed=seed)
    replays = replay_recording(
        sim.streams, [choose_pressure_scale(s.pressure) for s in sim.streams], program=program, settings_dirs=settings
    )
    return sim, {r.side: r for r in replays}


def _events(replay: FootReplay, event: ProgramEventKind) -> list[ProgramEvent]:
    return [e for e in replay.program_events if e.event == event]


def _block_ends(replay: FootReplay) -> list[ProgramEvent]:
    return _events(replay, ProgramEventKind.BLOCK_END)


def _steps_in(replay: FootReplay, start: int, end: int) -> list[Step]:
    """The stances the insole reported while the block ran: emitted at toe-off, so their
    toe-off lies in (start, end] (a stance in two records counts once, at its toe-off)."""
    return [s for s in whole_stances(replay.steps) if s.to_index is not None and start < s.to_index <= end]


def _truth_of(step: Step, truth: Sequence[StepTruth]) -> StepTruth:
    assert step.ic_index is not None and step.to_index is not None
    mid = (step.ic_index + step.to_index) / 2.0 / RATE_HZ
    found = [t for t in truth if t.ic_s <= mid <= t.to_s]
    assert len(found) == 1, (step, found)
    return found[0]


def _in_band_range(angles_deg: Sequence[float], target_deg: float, half_deg: float) -> tuple[int, int]:
    """The least and most steps in band the insole may count: borderline angles either way."""
    sure = sum(abs(a - target_deg) <= half_deg - EDGE_DEG for a in angles_deg)
    maybe = sum(abs(abs(a - target_deg) - half_deg) < EDGE_DEG for a in angles_deg)
    return sure, sure + maybe


def test_foot_angle_retraining_baseline_fading_feedback_and_probe() -> None:
    # Natural angle ~10° (the simulator varies it by ~1° per step), prescribed 5° toe-in:
    # the band is the baseline − 5°, ± 2°. Then the walker turns the toes in to ~5°.
    program = Program(11, (
        ProgramBlock.fpa_baseline(12, -500, 200),
        ProgramBlock.fpa_feedback(16, 100, 40),
        ProgramBlock.fpa_probe(10),
    ))
    plan: list[Segment] = [
        Stand(duration_s=2.0), Walk(n_steps=34, fpa_deg=10.0), Walk(n_steps=50, fpa_deg=6.5), Stand(duration_s=2.0),
    ]
    sim, replays = _run(plan, program, seed=5)
    for side, replay in replays.items():
        truth = [t for t in sim.step_truth if t.side == side]
        ends = _block_ends(replay)
        assert [(e.block, e.kind, e.detail) for e in ends] == [
            (0, BlockKind.FPA_BASELINE, BlockEnd.GOAL), (1, BlockKind.FPA_FEEDBACK, BlockEnd.GOAL),
            (2, BlockKind.FPA_PROBE, BlockEnd.GOAL),
        ], side
        assert len(_events(replay, ProgramEventKind.SESSION_END)) == 1
        starts = [0] + [e.sample_index for e in ends[:-1]]
        blocks = [_steps_in(replay, a, e.sample_index) for a, e in zip(starts, ends, strict=True)]
        for steps, goal in zip(blocks, (12, 16, 10), strict=True):
            # Every step counted is a true forward step with an angle; the block ends at its goal.
            assert [direction_name(s.direction) for s in steps] == ["forward"] * len(steps)
            assert sum(s.fpa_cdeg is not None for s in steps) == goal, side
        angles = [[_truth_of(s, truth).fpa_deg for s in steps if s.fpa_cdeg is not None] for steps in blocks]
        baseline = ends[0]
        assert baseline.value2 == 12 and baseline.value is not None
        assert abs(baseline.value / 100.0 - sum(angles[0]) / 12) <= 0.1, (side, baseline.value, angles[0])
        target_deg = (baseline.value - 500) / 100.0
        assert (ends[1].target_cdeg, ends[1].half_width_cdeg) == (baseline.value - 500, 200)
        for end, block_angles in zip(ends[1:], angles[1:], strict=True):
            least, most = _in_band_range(block_angles, target_deg, 2.0)
            n = len(block_angles)
            assert end.value is not None and round(1000 * least / n) <= end.value <= round(1000 * most / n), (
                side, end, least, most)
        # Fading, 100 % down to 40 % over the block: the k-th out-of-band step adds
        # p_k = 100 + (40 - 100) (k - 1) / 15 % and is cued when the sum reaches 100 %.
        assert ends[1].value is not None
        out_of_band = 16 - round(ends[1].value * 16 / 1000)  # steps the insole found out of band
        acc = cues = 0.0
        for k in range(1, out_of_band + 1):
            acc += 100.0 + (40.0 - 100.0) * min(k - 1, 15) / 15
            if acc >= 100.0 - 1e-9:
                acc -= 100.0
                cues += 1
        assert ends[1].value2 == cues, (side, ends[1], out_of_band)
        signals = [e.detail for e in _events(replay, ProgramEventKind.SIGNAL)]
        assert signals == [ProgramSignal.BLOCK_DONE, ProgramSignal.BLOCK_DONE, ProgramSignal.SESSION_DONE]


def _backward_seconds(truth: Sequence[StepTruth], until_s: float) -> float:
    """Contact-to-contact time of backward steps (each from the previous contact, at most
    MAX_GAP_S apart) up to ``until_s``."""
    total = 0.0
    for before, step in itertools.pairwise(truth):
        if step.ic_s > until_s:
            break
        if step.direction == "backward" and step.ic_s - before.ic_s <= MAX_GAP_S:
            total += step.ic_s - before.ic_s
    return total


def test_backward_walking_minutes_count_only_backward_steps_and_end_at_the_goal() -> None:
    program = Program(12, (ProgramBlock.backward_walk(20), ProgramBlock.walk(16)))
    plan: list[Segment] = [
        Stand(duration_s=2.0), Walk(n_steps=12), Stand(duration_s=1.5),
        Walk(n_steps=60, direction="backward", cadence_spm=90.0, stride_length_m=0.6), Stand(duration_s=1.5),
        Walk(n_steps=24), Stand(duration_s=2.0),
    ]
    sim, replays = _run(plan, program, seed=8)
    for side, replay in replays.items():
        truth = [t for t in sim.step_truth if t.side == side]
        backward_end, walk_end = _block_ends(replay)
        assert (backward_end.kind, backward_end.detail, walk_end.detail) == (BlockKind.BACKWARD_WALK, BlockEnd.GOAL,
                                                                           BlockEnd.GOAL)
        # The goal is reached at the first backward step whose contact brings the true
        # backward time to 20 s; the forward steps before it were counted as forward.
        end_s = backward_end.sample_index / RATE_HZ
        reached = next(t for t in truth if t.direction == "backward" and _backward_seconds(truth, t.ic_s) >= 20.0)
        assert reached.ic_s <= end_s <= reached.to_s + 0.2, (side, end_s, reached)
        # Its progress then: whole seconds, the true time at that contact (the insole's
        # contacts are within a few samples of the true ones; their sum telescopes).
        true_s = _backward_seconds(truth, reached.ic_s)
        assert backward_end.done in {math.floor(true_s - 0.05), math.floor(true_s + 0.05)}, (side, backward_end, true_s)
        counted = _steps_in(replay, 0, backward_end.sample_index)
        true_directions = [_truth_of(s, truth).direction for s in counted]
        assert backward_end.value == true_directions.count("forward")  # forward steps
        assert backward_end.value2 == true_directions.count("backward")
        # The walking block takes the 16 steps after it, whatever their direction.
        assert walk_end.value == 16 == walk_end.done


def test_heel_raises_sets_holds_short_holds_and_the_rest() -> None:
    # 2 sets of 3 raises held 2.5 s. The first set has a short hold among its raises: held
    # 1.8 s at the top (up 2.8 s with the 1 s rise: the hold tick must time the top, not
    # the heel-off); one raise falls in the set's 6 s rest (not counted); then set two.
    program = Program(13, (ProgramBlock.heel_raises(3, 2, 2500, 6),))
    plan: list[Segment] = [
        Stand(duration_s=2.0),
        HeelRaises(reps=2, hold_s=3.5, sets=1, rest_s=1.5),
        HeelRaises(reps=1, hold_s=1.8, sets=1, rest_s=1.5),
        HeelRaises(reps=1, hold_s=3.5, sets=1, rest_s=1.5),
        HeelRaises(reps=1, hold_s=3.5, sets=1, rest_s=1.0),  # inside the rest
        Stand(duration_s=3.0),
        HeelRaises(reps=3, hold_s=3.5, sets=1, rest_s=1.5),
        Stand(duration_s=2.0),
    ]
    sim, replays = _run(plan, program, seed=4)
    for side, replay in replays.items():
        raises = [r for r in sim.raise_truth if r.side == side]
        assert [round(r.hold_s, 1) for r in raises] == [3.5, 3.5, 1.8, 3.5, 3.5, 3.5, 3.5, 3.5]
        assert len(replay.raises) == len(raises), side
        (end,) = _block_ends(replay)
        assert (end.kind, end.detail) == (BlockKind.HEEL_RAISES, BlockEnd.GOAL), side
        assert (end.done, end.value, end.value2) == (6, 1, 2), (side, end)  # full reps, short holds, sets
        signals = [ProgramSignal(e.detail) for e in _events(replay, ProgramEventKind.SIGNAL)]
        # A tick per raise held 2.5 s (none for the short one, none in the rest), the set
        # done, the rest over, and the session done after the second set.
        hold = ProgramSignal.HOLD_REACHED
        assert signals == [hold, hold, hold, ProgramSignal.SET_DONE, ProgramSignal.REST_OVER, hold, hold, hold,
                           ProgramSignal.SESSION_DONE], side


def test_graded_walking_rises_after_the_sessions_that_reached_it_and_a_reboot_resumes(tmp_path: Path) -> None:
    # Session 1 reaches 20 steps: the goal rises 25 % to 25. Session 2 stops during its
    # second block (the insole is switched off: a new board on the same flash); the next
    # stream resumes session 2 at that block, from zero.
    settings = {side: tmp_path / side for side in ("left", "right")}
    program = Program(14, (ProgramBlock.walk(20, progress_pct=25, progress_after=1), ProgramBlock.walk(30)))
    long_walk: list[Segment] = [Stand(duration_s=2.0), Walk(n_steps=120), Stand(duration_s=2.0)]
    _, first = _run(long_walk, program, seed=2, settings=settings)
    for replay in first.values():
        assert [(e.done, e.detail) for e in _block_ends(replay)] == [(20, BlockEnd.GOAL), (30, BlockEnd.GOAL)]
        assert [e.session for e in _events(replay, ProgramEventKind.SESSION_END)] == [1]
    short_walk: list[Segment] = [Stand(duration_s=2.0), Walk(n_steps=70), Stand(duration_s=2.0)]  # ~34 steps a foot
    _, second = _run(short_walk, None, seed=3, settings=settings)
    for replay in second.values():
        ends = _block_ends(replay)
        assert [(e.goal, e.done, e.detail) for e in ends[:1]] == [(25, 25, BlockEnd.GOAL)]
        assert ends[1].detail == BlockEnd.INTERRUPTED and ends[1].done is not None and ends[1].done < 30
        assert not _events(replay, ProgramEventKind.SESSION_END)
    _, third = _run(short_walk, None, seed=6, settings=settings)
    for replay in third.values():
        resumed = _events(replay, ProgramEventKind.SESSION_RESUME)
        assert [e.session for e in resumed] == [2]
        starts = _events(replay, ProgramEventKind.BLOCK_START)
        assert [(e.block, e.goal, e.done) for e in starts[:1]] == [(1, 30, 0)]
        assert [e.detail for e in _block_ends(replay)][:1] == [BlockEnd.GOAL]
        assert not math.isnan(float(replay.free_heap or math.nan))


def test_hil_runs_a_program_file_on_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from insole.cli import main

    recording, program_file = tmp_path / "walk.insole", tmp_path / "walk.toml"
    assert main(["simulate", "-o", str(recording), "--plan", "walk", "--duration-s", "40", "--seed", "3"]) == 0
    program_file.write_text('program_id = 5\n[[block]]\nkind = "walk"\nsteps = 12\n', encoding="utf-8")
    capsys.readouterr()
    args = ["hil", str(recording), "--steps", str(tmp_path / "STEPS.csv"), "--program", str(program_file)]
    assert main(args) == 0
    out = capsys.readouterr().out
    for side in ("left", "right"):
        assert f"the {side} insole: 1 session in its log" in out
    assert out.count("goal reached") == 2, out
