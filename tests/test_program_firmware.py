"""Exercise programs run by the firmware on simulated insoles (issue 13, docs/programs.md).

Each program kind end to end: a simulated session (insole.sim, exact ground truth) is
replayed through the firmware on the unix port with a program stored, and the insole's
PROGRAM_EVENTs are held against what the ground truth and the program's rules give:
repetitions and holds, backward seconds, baseline and in-band shares, fading cues, the
foot-strike pattern, and a session that survives a reboot. The firmware's own unit
tests of the runner are firmware/tests/fwtest_program_*.py (test_firmware_unix runs them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from insole.emulation.board import SimulatedBoard
from insole.hil import FootReplay, replay_foot
from insole.link import PendingRequest, SerialLink
from insole.model import FloatArray, FootStream
from insole.protocol import (
    Command,
    CommandCode,
    PacketType,
    Program,
    ProgramBlock,
    ProgramEvent,
    encode_sample_payloads,
)
from insole.quantise import choose_pressure_scale, rate_hz_to_chz, stream_counts
from insole.sim import HeelRaises, SimulatedSession, Stand, StepTruth, Walk, simulate_session

pytestmark = pytest.mark.micropython

SESSION_START, SESSION_RESUME, BLOCK_START, BLOCK_END, SIGNAL, SESSION_END = 1, 2, 3, 4, 5, 6
GOAL, INTERRUPTED = 1, 3
HOLD_REACHED, SET_DONE, REST_OVER, BLOCK_DONE, SESSION_DONE = 5, 6, 7, 8, 9
HEEL, FOREFOOT = 1, 3
MAX_GAP_S = 2.5  # a longer pause between two contacts is no walking time


def _replay(session: SimulatedSession, program: Program | None, settings_dir: Path) -> FootReplay:
    stream = session.streams[0]  # the left foot
    with SimulatedBoard(side="left", settings_dir=settings_dir) as board, SerialLink(board.port) as link:
        return replay_foot(link, stream, choose_pressure_scale(stream.pressure), program=program)


def _shape(events: Sequence[ProgramEvent]) -> list[tuple[int, int | None, int]]:
    return [(e.event, e.block, e.detail) for e in events]


def _left_truth(session: SimulatedSession) -> list[StepTruth]:
    return [t for t in session.step_truth if t.side == "left"]


def _ends(events: Sequence[ProgramEvent]) -> list[ProgramEvent]:
    return [e for e in events if e.event == BLOCK_END]


def test_heel_raise_program_counts_the_simulated_repetitions(tmp_path: Path) -> None:
    # 3 repetitions x 2 sets, held 2 s, 10 s rest. The walker: a full raise, a short
    # one (held 1 s), two full ones (set 1 done), 12 s standing, three full ones.
    session = simulate_session(
        [Stand(2.0), HeelRaises(reps=1, hold_s=3.0, sets=1), Stand(1.0), HeelRaises(reps=1, hold_s=1.0, sets=1),
         Stand(1.0), HeelRaises(reps=2, hold_s=3.0, sets=1), Stand(12.0), HeelRaises(reps=3, hold_s=3.0, sets=1),
         Stand(2.0)],
        seed=3,
    )  # fmt: skip
    program = Program(1, (ProgramBlock.heel_raises(3, 2, 2000, 10),))
    replay = _replay(session, program, tmp_path)
    events = replay.program_events
    truth = [r for r in session.raise_truth if r.side == "left"]
    full = [r.hold_s >= 2.0 for r in truth]
    assert full == [True, False, True, True, True, True, True] and len(replay.raises) == len(truth)
    signals = [e.detail for e in events if e.event == SIGNAL]
    # a hold tick for each full repetition only, the set's end, the rest's end, the session's
    assert signals == [HOLD_REACHED] * 3 + [SET_DONE, REST_OVER] + [HOLD_REACHED] * 3 + [SESSION_DONE], signals
    ticks = [e.sample_index for e in events if e.event == SIGNAL and e.detail == HOLD_REACHED]
    held = [r for r, is_full in zip(replay.raises, full, strict=True) if is_full]
    # each tick while the heel is up, in the raise it belongs to
    assert all(r.start_index < t < r.end_index for r, t in zip(held, ticks, strict=True)), (held, ticks)
    end = _ends(events)[0]
    assert (end.detail, end.goal, end.done, end.value, end.value2) == (GOAL, 3, 6, 1, 2)
    assert end.sample_index == replay.raises[-1].end_index
    # the rest: 10 s after the set's last raise came down
    set_done, rest_over = (e.sample_index for e in events if e.event == SIGNAL and e.detail in (SET_DONE, REST_OVER))
    assert set_done == replay.raises[3].end_index and rest_over - set_done == 10 * round(session.rate_hz)


def _backward_seconds(steps: Sequence[StepTruth], goal_s: int) -> tuple[int, int, int]:
    """The spec's rule on the ground truth: (backward seconds, forward steps, backward
    steps) when the goal is reached."""
    total = 0.0
    forward = backward = 0
    last_ic: float | None = None
    for step in steps:
        if step.direction == "backward":
            backward += 1
            if last_ic is not None and step.ic_s - last_ic <= MAX_GAP_S:
                total += step.ic_s - last_ic
        else:
            forward += 1
        last_ic = step.ic_s
        if math.floor(total) >= goal_s:
            return math.floor(total), forward, backward
    raise AssertionError("the walk never reaches the goal")


def test_backward_walking_program_counts_backward_seconds_and_forefoot_strikes(tmp_path: Path) -> None:
    session = simulate_session(
        [Stand(2.0), Walk(n_steps=10, cadence_spm=100.0, step_time_cv=0.0), Stand(3.0),
         Walk(n_steps=20, direction="backward", cadence_spm=100.0, step_time_cv=0.0), Stand(2.0)],
        seed=3,
    )  # fmt: skip
    program = Program(2, (ProgramBlock.backward_walk(5, spm=100),))
    replay = _replay(session, program, tmp_path)
    truth = _left_truth(session)
    assert len(replay.steps) == len(truth)
    expected = _backward_seconds(truth, 5)
    end = _ends(replay.program_events)[0]
    assert (end.detail, end.goal, end.done, end.value, end.value2) == (GOAL, 5, *expected), (end, expected)
    # it ends at the toe-off of the step that reached the goal
    assert end.sample_index == replay.steps[expected[1] + expected[2] - 1].to_index
    # Foot strike from the pressure cells: heel first forward, forefoot first backward.
    strikes = {(s.direction, s.strike) for s in replay.steps}
    assert strikes == {(1, HEEL), (2, FOREFOOT)}, strikes


def _fading_cued(goal: int, start_pct: int, end_pct: int, out_of_band: int) -> int:
    """How many of a feedback block's out-of-band steps the fading rule cues (exact)."""
    den = max(goal - 1, 1)
    acc = cued = 0
    for k in range(1, out_of_band + 1):
        acc += start_pct * den + (end_pct - start_pct) * min(k - 1, den)
        if acc >= 100 * den:
            acc -= 100 * den
            cued += 1
    return cued


def test_foot_angle_retraining_program_on_a_simulated_walk(tmp_path: Path) -> None:
    # Baseline 5 steps (the walker's 10 deg), then a band 6 deg more toe-in (4 +- 2 deg);
    # feedback over 8 steps fading from 100 % to 0 %, a probe of 4 steps. The walk
    # alternates 10 deg (out of the band) and 4 deg (in it).
    session = simulate_session(
        [Stand(2.0), Walk(n_steps=14, fpa_deg=10.0, fpa_sd_deg=0.0), Walk(n_steps=8, fpa_deg=4.0, fpa_sd_deg=0.0),
         Walk(n_steps=8, fpa_deg=10.0, fpa_sd_deg=0.0), Walk(n_steps=12, fpa_deg=4.0, fpa_sd_deg=0.0), Stand(2.0)],
        seed=3,
    )  # fmt: skip
    program = Program(3, (ProgramBlock.fpa_baseline(5, -600, 200), ProgramBlock.fpa_feedback(8, 100, 0),
                          ProgramBlock.fpa_probe(4)))  # fmt: skip
    replay = _replay(session, program, tmp_path)
    events = replay.program_events
    assert _shape(events) == [
        (SESSION_START, None, 0), (BLOCK_START, 0, 0), (BLOCK_END, 0, GOAL), (SIGNAL, 0, BLOCK_DONE),
        (BLOCK_START, 1, 0), (BLOCK_END, 1, GOAL), (SIGNAL, 1, BLOCK_DONE),
        (BLOCK_START, 2, 0), (BLOCK_END, 2, GOAL), (SIGNAL, 2, SESSION_DONE), (SESSION_END, None, 0)]  # fmt: skip
    truth = _left_truth(session)
    angles = [s.fpa_cdeg for s in replay.steps]
    assert len(replay.steps) == len(truth) and None not in angles
    assert all(abs(a - 100 * t.fpa_deg) <= 20 for a, t in zip(angles, truth, strict=True))  # type: ignore[operator]
    baseline, feedback, probe = _ends(events)
    device_mean = sum(angles[:5]) / 5  # type: ignore[arg-type]
    assert baseline.value == math.floor(device_mean + 0.5) and abs(baseline.value - 1000) <= 10
    target = baseline.value + -600
    assert (baseline.target_cdeg, baseline.half_width_cdeg) == (target, 200)
    in_band = [abs(100 * t.fpa_deg - target) <= 200 for t in truth]
    # feedback: steps 6..13; probe: steps 14..17 (every step forward, with an angle)
    share = round(1000 * sum(in_band[5:13]) / 8)
    cued = _fading_cued(8, 100, 0, in_band[5:13].count(False))
    assert (feedback.done, feedback.value, feedback.value2) == (8, share, cued), (feedback, share, cued)
    assert (probe.done, probe.value, probe.value2) == (4, round(1000 * sum(in_band[13:17]) / 4), 4), probe


def _replay_part(link: SerialLink, stream: FootStream, scale: float) -> None:
    # A replay that the insole's power cut ends: samples, and no REPLAY_END.
    link.command(
        Command(CommandCode.REPLAY_BEGIN, rate_chz=rate_hz_to_chz(stream.rate_hz), n_pressure=stream.n_pressure,
                imu=int(stream.acc_ms2 is not None), side=0)
    )  # fmt: skip
    counts = stream_counts(stream, scale)
    for payload in encode_sample_payloads(0, counts.pressure, counts.imu):
        seq = link.send_payload(PacketType.SAMPLES, payload)
        link.wait_for(PendingRequest(PacketType.SAMPLES, seq))


def _part(stream: FootStream, start: int, stop: int) -> FootStream:
    def cut(a: FloatArray | None) -> FloatArray | None:
        return None if a is None else a[start:stop]

    return dataclasses.replace(
        stream, t0_s=stream.t0_s + start / stream.rate_hz, pressure=cut(stream.pressure),
        acc_ms2=cut(stream.acc_ms2), gyro_dps=cut(stream.gyro_dps),
    )  # fmt: skip


def test_a_session_survives_a_reboot_and_walking_goals_progress(tmp_path: Path) -> None:
    # Two walking blocks of 6 steps; the second raises its goal by 50 % once reached in
    # one session. Session 1: the insole is switched off during the second block and
    # resumes it (from zero) at the next stream; session 2 starts with the goal raised.
    session = simulate_session([Stand(2.0), Walk(n_steps=40, step_time_cv=0.0), Stand(2.0)], seed=5)
    stream = session.streams[0]
    scale = choose_pressure_scale(stream.pressure)
    program = Program(4, (ProgramBlock.walk(6), ProgramBlock.walk(6, progress_pct=50, progress_after=1)))
    cut = int(12.0 * stream.rate_hz)  # about 9 steps of the left foot: inside the second block
    with SimulatedBoard(side="left", settings_dir=tmp_path) as board, SerialLink(board.port) as link:
        link.set_program(program)
        _replay_part(link, _part(stream, 0, cut), scale)
        before = [p.body for p in link.drain_inbox() if isinstance(p.body, ProgramEvent)]
    # switched off: no BLOCK_END for the block running
    assert _shape(before) == [(SESSION_START, None, 0), (BLOCK_START, 0, 0), (BLOCK_END, 0, GOAL),
                              (SIGNAL, 0, BLOCK_DONE), (BLOCK_START, 1, 0)], _shape(before)  # fmt: skip
    with SimulatedBoard(side="left", settings_dir=tmp_path) as board, SerialLink(board.port) as link:
        after = replay_foot(link, _part(stream, cut, stream.n_samples), scale).program_events
        again = replay_foot(link, stream, scale).program_events
    assert _shape(after) == [(SESSION_RESUME, None, 0), (BLOCK_START, 1, 0), (BLOCK_END, 1, GOAL),
                             (SIGNAL, 1, SESSION_DONE), (SESSION_END, None, 0)], _shape(after)  # fmt: skip
    assert after[1].done == 0 and after[2].done == after[2].value == 6 and {e.session for e in after} == {1}
    assert [(e.block, e.goal) for e in again if e.event == BLOCK_START] == [(0, 6), (1, 9)]
    assert {e.session for e in again} == {2}
