"""Exercise programs on the host: program files (TOML) and their refusals, the program
in words and written back, what was done from PROGRAM_EVENTs, storing a program with
a refused field named, and `insole program set|show|clear|log` on simulated insoles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from insole.commands import program as program_command
from insole.commands.program import adherence_lines, run_line, store_program
from insole.errors import DeviceError, UserError
from insole.program import (
    BlockRun,
    describe_block,
    load_program,
    program_from_toml,
    program_to_toml,
    sessions_from_events,
)
from insole.protocol import (
    BlockEnd,
    BlockKind,
    ErrorCode,
    Program,
    ProgramBlock,
    ProgramEvent,
    ProgramEventKind,
    ProgramSignal,
)

EXAMPLES = REPO_ROOT / "docs" / "examples" / "programs"
HEEL_RAISES = """
program_id = 3
[[block]]
kind = "heel_raises"
repetitions = 10
sets = 3
hold_s = 3.0
rest_s = 60
"""

# --------------------------------------------------------------------------- program files


def test_every_example_program_loads_and_is_written_back_equal() -> None:
    paths = sorted(EXAMPLES.glob("*.toml"))
    assert {p.stem for p in paths} == {"foot_angle_retraining", "backward_walking", "heel_raises", "graded_walking"}
    kinds: set[int] = set()
    for path in paths:
        program = load_program(path)
        assert program.first_fault() is None
        assert program_from_toml(program_to_toml(program, comment=path.name)) == program
        kinds |= {block.kind for block in program.blocks}
    assert kinds == set(BlockKind)


def test_the_example_programs_prescribe_what_docs_programs_md_describes() -> None:
    retraining = load_program(EXAMPLES / "foot_angle_retraining.toml").blocks
    assert [b.kind for b in retraining] == [BlockKind.FPA_BASELINE, BlockKind.FPA_FEEDBACK, BlockKind.FPA_FEEDBACK,
                                            BlockKind.FPA_PROBE]  # fmt: skip
    assert (retraining[0].change_cdeg, retraining[0].half_width_cdeg, retraining[0].limit_s) == (-500, 200, 300)
    assert [(b.feedback_start_pct, b.feedback_end_pct) for b in retraining[1:3]] == [(100, 50), (50, 0)]
    (backward,) = load_program(EXAMPLES / "backward_walking.toml").blocks
    assert (backward.goal, backward.metronome, backward.spm, backward.limit_s) == (300, True, 80, 900)
    (heel,) = load_program(EXAMPLES / "heel_raises.toml").blocks
    assert (heel.goal, heel.sets, heel.hold_ms, heel.rest_s) == (10, 3, 3000, 60)
    (walk,) = load_program(EXAMPLES / "graded_walking.toml").blocks
    assert (walk.goal, walk.goal_in_seconds, walk.spm, walk.progress_pct, walk.progress_after) == (1200, True, 110, 10, 3)


def test_values_in_file_units_become_wire_units() -> None:
    program = program_from_toml("""
program_id = 65534
[[block]]
kind = "fpa_baseline"
steps = 40
change_deg = 7.25
half_width_deg = 0.5
limit_s = 75
[[block]]
kind = "walk"
steps = 3000
[[block]]
kind = "walk"
duration_s = 90
[[block]]
kind = "backward_walk"
duration_min = 2.5
""")
    baseline, steps_walk, seconds_walk, backward = program.blocks
    assert (baseline.a, baseline.b, baseline.limit_s) == (725, 50, 75)
    assert (steps_walk.goal, steps_walk.goal_in_seconds, steps_walk.flags) == (3000, False, 0)
    assert (seconds_walk.goal, seconds_walk.goal_in_seconds) == (90, True)
    assert (backward.goal, backward.metronome) == (150, False)
    written = program_to_toml(program)
    assert "duration_s = 90" in written and "duration_s = 150" in written and "limit_s = 75" in written
    assert "change_deg = 7.25" in written and "steps = 3000" in written
    assert program_from_toml(written) == program


def _blocks_of_every_shape() -> list[ProgramBlock]:
    return [
        ProgramBlock.fpa_baseline(1, -3000, 50), ProgramBlock.fpa_baseline(65534, 3000, 2000, limit_s=65534),
        ProgramBlock.fpa_feedback(10, 0, 100, limit_s=10), ProgramBlock.fpa_probe(7),
        ProgramBlock.backward_walk(61, spm=40), ProgramBlock.backward_walk(600),
        ProgramBlock.heel_raises(1, 20, 500, 0), ProgramBlock.heel_raises(12, 1, 10000, 600, limit_s=3600),
        ProgramBlock.walk(1), ProgramBlock.walk(65534, goal_in_seconds=True, spm=200, progress_pct=100, progress_after=10),
    ]  # fmt: skip


def test_any_valid_program_is_written_back_and_read_equal() -> None:
    blocks = _blocks_of_every_shape()
    for start in range(0, len(blocks), 5):
        program = Program(start, tuple(blocks[start : start + 5]))
        assert program.first_fault() is None
        assert program_from_toml(program_to_toml(program)) == program


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("program_id = 1\n[[block]\n", "not a TOML file"),
        ("[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "missing program_id"),
        ("program_id = -1\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "program_id = -1; expected a whole number 0..65534"),
        ("program_id = 65535\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "program_id = 65535"),
        ("program_id = 1.5\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "program_id = 1.5"),
        ("program_id = true\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "program_id = True"),
        ("program_id = 1\n", "no [[block]] tables"),
        ("program_id = 1\nblock = 3\n", "no [[block]] tables"),
        ("program_id = 1\nname = 'x'\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n", "unknown key 'name'"),
        ("program_id = 1\n" + "[[block]]\nkind = 'fpa_probe'\nsteps = 5\n" * 9, "9 [[block]] tables; a program has 1 to 8"),
        ("program_id = 1\n[[block]]\nsteps = 5\n", "block 1: no kind; expected one of fpa_baseline, fpa_feedback"),
        ("program_id = 1\n[[block]]\nkind = 'jogging'\n", "block 1: kind = 'jogging'; expected one of"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\nhold_s = 3\n",
         "block 1 (fpa_probe): unknown key 'hold_s'; a fpa_probe block takes kind, steps, limit_min, limit_s"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\n", "block 1 (fpa_probe): missing steps"),
        ("program_id = 1\n[[block]]\nkind = 'walk'\n", "block 1 (walk): missing steps or duration_min or duration_s"),
        ("program_id = 1\n[[block]]\nkind = 'walk'\nsteps = 10\nduration_min = 5\n",
         "block 1 (walk): give one of steps or duration_min or duration_s, not both"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = '60'\n", "block 1 (fpa_probe): steps = '60' is not a number"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = true\n", "steps = True is not a number"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = nan\n", "steps = nan is not a number"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = 60.5\n", "steps = 60.5; expected a whole number"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_baseline'\nsteps = 60\nchange_deg = -5.001\nhalf_width_deg = 2\n",
         "change_deg = -5.001; expected a multiple of 0.01"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = 0\n", "block 1 (fpa_probe): steps = 0 is refused (goal 0 is outside 1..65534)"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = 60\nlimit_s = 5\n",
         "limit_s = 5 is refused (limit_s 5 is outside 10..65534)"),
        (HEEL_RAISES.replace("hold_s = 3.0", "hold_s = 0.3"),
         "block 1 (heel_raises): hold_s = 0.3 is refused (hold_ms 300 is outside 500..10000)"),
        (HEEL_RAISES.replace("sets = 3", "sets = 21"), "sets = 21 is refused (sets 21 is outside 1..20)"),
        (HEEL_RAISES.replace("rest_s = 60", "rest_s = 601"), "rest_s = 601 is refused"),
        (HEEL_RAISES.replace("rest_s = 60\n", ""), "block 1 (heel_raises): missing rest_s"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_baseline'\nsteps = 60\nchange_deg = 30.01\nhalf_width_deg = 2\n",
         "change_deg = 30.01 is refused (change_cdeg 3001 is outside -3000..3000)"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_feedback'\nsteps = 60\nfeedback_start_pct = 100\nfeedback_end_pct = 101\n",
         "feedback_end_pct = 101 is refused"),
        ("program_id = 1\n[[block]]\nkind = 'backward_walk'\nduration_min = 5\nmetronome_spm = 201\n",
         "block 1 (backward_walk): metronome_spm = 201 is refused (spm 201 is outside 40..200)"),
        ("program_id = 1\n[[block]]\nkind = 'walk'\nsteps = 100\nprogress_after_sessions = 3\n",
         "progress_after_sessions = 3 is refused (progress_after 3 with progress_pct 0 (no progression); must be 0)"),
        ("program_id = 1\n[[block]]\nkind = 'walk'\nsteps = 100\nprogress_pct = 10\n",
         "block 1 (walk): progress_after 0 is outside 1..10"),
        ("program_id = 1\n[[block]]\nkind = 'fpa_probe'\nsteps = 5\n[[block]]\nkind = 'fpa_probe'\nsteps = 70000\n",
         "block 2 (fpa_probe): steps = 70000 is refused"),
    ],
)
def test_a_bad_program_file_is_refused_naming_the_block_and_key(text: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        program_from_toml(text)
    assert message in str(info.value)


def test_load_program_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    with pytest.raises(UserError, match="cannot read program file"):
        load_program(path)
    path.write_text(HEEL_RAISES.replace("sets = 3", "sets = 0"), encoding="utf-8")
    with pytest.raises(UserError, match=r"p\.toml: block 1 \(heel_raises\): sets = 0 is refused"):
        load_program(path)


def test_blocks_in_words() -> None:
    assert describe_block(ProgramBlock.heel_raises(10, 3, 3000, 60)) == "heel raises: 3 sets of 10, hold 3 s, rest 60 s"
    assert describe_block(ProgramBlock.fpa_baseline(60, -500, 200)) == (
        "foot-angle baseline: 60 steps; then the band is the baseline -5° (toe-in) ± 2°"
    )
    assert describe_block(ProgramBlock.backward_walk(330, spm=80, limit_s=900)) == (
        "backward walking: 5 min 30 s, metronome 80 steps/min, at most 15 min"
    )
    assert describe_block(ProgramBlock.walk(3000, progress_pct=10, progress_after=3)) == (
        "walking: 3000 steps, +10 % after 3 sessions at the goal"
    )


# --------------------------------------------------------------------------- what was done


def _event(event: int, block: int | None = None, kind: int | None = None, detail: int = 0, *, index: int = 0,
           session: int = 1, goal: int | None = None, done: int | None = None, value: int | None = None,
           value2: int | None = None, target: int | None = None, half_width: int | None = None) -> ProgramEvent:  # fmt: skip
    return ProgramEvent(event, block, kind, detail, index, session, 3, goal, done, value, value2, target, half_width)


HEEL = BlockKind.HEEL_RAISES
PROBE = BlockKind.FPA_PROBE


def test_sessions_from_events_with_an_interruption_a_resume_and_signals() -> None:
    events = [
        _event(ProgramEventKind.SESSION_START),
        _event(ProgramEventKind.BLOCK_START, 0, HEEL, index=10, goal=10, done=0),
        _event(ProgramEventKind.SIGNAL, 0, HEEL, ProgramSignal.HOLD_REACHED, index=200, goal=10, done=0),
        _event(ProgramEventKind.BLOCK_END, 0, HEEL, BlockEnd.INTERRUPTED, index=900, goal=10, done=4, value=1, value2=0),
        _event(ProgramEventKind.SESSION_RESUME),
        _event(ProgramEventKind.BLOCK_START, 0, HEEL, index=0, goal=10, done=0),
        *[_event(ProgramEventKind.SIGNAL, 0, HEEL, ProgramSignal.HOLD_REACHED, index=k, goal=10, done=k) for k in range(30)],
        *[_event(ProgramEventKind.SIGNAL, 0, HEEL, ProgramSignal.SET_DONE, index=k, goal=10, done=k) for k in range(3)],
        _event(ProgramEventKind.BLOCK_END, 0, HEEL, BlockEnd.GOAL, index=5000, goal=10, done=30, value=2, value2=3),
        _event(ProgramEventKind.BLOCK_START, 1, PROBE, index=5100, goal=60, done=0, target=-350, half_width=200),
        _event(ProgramEventKind.BLOCK_END, 1, PROBE, BlockEnd.LIMIT, index=9000, goal=60, done=41, value=805, value2=41,
               target=-350, half_width=200),
        _event(ProgramEventKind.SIGNAL, 1, PROBE, ProgramSignal.SESSION_DONE, index=9000, goal=60, done=41),
        _event(ProgramEventKind.SESSION_END, index=9001),
        # Session 2: its start and its block's start are gone from the log.
        _event(ProgramEventKind.BLOCK_END, 0, HEEL, BlockEnd.GOAL, session=2, goal=10, done=30, value=0, value2=3),
        _event(ProgramEventKind.BLOCK_START, 1, PROBE, session=2, goal=60, done=0),
    ]
    first, second = sessions_from_events(events)
    assert (first.session, first.program_id, first.resumes, first.ended) == (1, 3, 1, True)
    interrupted, heel, probe = first.runs
    assert (interrupted.end, interrupted.done, interrupted.signals) == (BlockEnd.INTERRUPTED, 4, {ProgramSignal.HOLD_REACHED: 1})
    assert (heel.reached, heel.done, heel.value, heel.value2, heel.start_index, heel.end_index) == (True, 30, 2, 3, 0, 5000)
    assert heel.signals == {ProgramSignal.HOLD_REACHED: 30, ProgramSignal.SET_DONE: 3}
    assert (probe.end, probe.target_cdeg, probe.half_width_cdeg) == (BlockEnd.LIMIT, -350, 200)
    assert probe.signals == {ProgramSignal.SESSION_DONE: 1}
    assert (second.session, second.ended, [r.end for r in second.runs]) == (2, False, [BlockEnd.GOAL, None])

    program = Program(3, (ProgramBlock.heel_raises(10, 3, 3000, 60), ProgramBlock.fpa_probe(60)))
    lines = adherence_lines("the left insole", [first, second], program, lost=5)
    assert lines == [
        "the left insole: 2 sessions in its log",
        "  5 older program events are no longer in the insole's log",
        "session 1 (program 3): ended, resumed 1×",
        "  1. heel_raises: 4 of 3 × 10 repetitions (13 %), interrupted; 0 sets done, 1 short hold",
        "  1. heel_raises: 30 of 3 × 10 repetitions (100 %), goal reached; 3 sets done, 2 short holds",
        "  2. fpa_probe: 41 of 60 steps (68 %), time limit; 80.5 % in band of 41 steps (band -3.5 ± 2°)",
        "session 2 (program 3): open",
        "  1. heel_raises: 30 of 3 × 10 repetitions (100 %), goal reached; 3 sets done, 0 short holds",
        "  2. fpa_probe: — of 60 steps, not ended (running, or the insole was off)",
    ]
    # Another program stored now: the log alone does not know the sets.
    assert "of 10 repetitions per set" in adherence_lines("x", [first], Program(9, (ProgramBlock.fpa_probe(5),)))[2 + 1]


def test_run_lines_of_each_kind() -> None:
    def run(kind: int, goal: int, done: int, value: int, value2: int) -> BlockRun:
        return BlockRun(0, kind, goal, 0, done, BlockEnd.GOAL, value, value2)

    assert run_line(run(BlockKind.FPA_BASELINE, 60, 60, -412, 58)).endswith("baseline -4.12°, 58 steps with an angle")
    assert run_line(run(BlockKind.FPA_FEEDBACK, 200, 200, 655, 37)).endswith("65.5 % in band, 37 cues")
    assert run_line(run(BlockKind.BACKWARD_WALK, 300, 301, 4, 290)) == (
        "1. backward_walk: 301 of 300 s backward (100 %), goal reached; 290 backward steps, 4 forward"
    )
    walk = run(BlockKind.WALK, 1200, 1210, 1630, 1210)
    assert "of 1200 steps or s" in run_line(walk)
    assert "1210 of 1200 s walking (101 %)" in run_line(walk, ProgramBlock.walk(1200, goal_in_seconds=True))
    assert "of 1200 steps" in run_line(walk, ProgramBlock.walk(1200))


# --------------------------------------------------------------------------- storing


class _FakeLink:
    """An insole that stores what it is given, or refuses it as told."""

    def __init__(self, refuse: DeviceError | None = None, report: Program | None = None) -> None:
        self.refuse, self.report, self.stored = refuse, report, Program.none_stored()

    def set_program(self, program: Program) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.stored = program

    def get_program(self) -> Program:
        return self.report or self.stored


def test_store_program_names_a_refused_field_and_checks_the_read_back() -> None:
    program = program_from_toml(HEEL_RAISES)
    link: Any = _FakeLink()
    assert store_program(link, program) == program
    refusing: Any = _FakeLink(DeviceError("refused", ErrorCode.BAD_VALUE, 4 + 8))
    with pytest.raises(UserError, match=r"the left insole refused block 1 \(heel_raises\) hold_ms \(BAD_VALUE, detail 12\)"):
        store_program(refusing, program, "the left insole")
    busy: Any = _FakeLink(DeviceError("refused", ErrorCode.BAD_STATE))
    with pytest.raises(DeviceError):
        store_program(busy, program)
    other: Any = _FakeLink(report=Program(99, program.blocks))
    with pytest.raises(UserError, match="another program than was written"):
        store_program(other, program)


# --------------------------------------------------------------------------- the command on simulated insoles


def _cli(argv: list[str]) -> int:
    """`insole program ...` through the command's own parser (as insole.cli registers it)."""
    parser = argparse.ArgumentParser(prog="insole")
    program_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_set_refuses_a_bad_file_before_reaching_any_insole(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(HEEL_RAISES.replace("hold_s = 3.0", "hold_s = 11"), encoding="utf-8")
    # The port does not exist: the file's error comes first.
    with pytest.raises(UserError, match="hold_s = 11 is refused"):
        _cli(["program", "set", str(path), "--port", str(tmp_path / "no-such-port")])


@pytest.mark.micropython
def test_program_set_show_clear_on_both_feet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from insole.emulation.board import SimulatedBoard

    with SimulatedBoard(side="left", settings_dir=tmp_path / "left") as left, SimulatedBoard(
        side="right", settings_dir=tmp_path / "right"
    ) as right:
        ports = ["--port", left.port, "--port", right.port]
        example = EXAMPLES / "foot_angle_retraining.toml"
        assert _cli(["program", "set", str(example), *ports]) == 0
        out = capsys.readouterr().out
        assert "the left insole on" in out and "the right insole on" in out and "program 1 stored (4 blocks)" in out
        assert _cli(["program", "show", *ports]) == 0
        shown = capsys.readouterr().out
        left_text, right_text = shown.split("\n\n# program of ")  # one program file per insole
        assert program_from_toml(left_text) == program_from_toml("#" + right_text) == load_program(example)
        assert _cli(["program", "clear", *ports]) == 0
        assert capsys.readouterr().out.count("program cleared") == 2
        assert _cli(["program", "show", *ports]) == 0
        assert capsys.readouterr().out.count("no program stored") == 2


@pytest.mark.micropython
def test_the_device_refusal_of_a_program_names_the_block_and_field(tmp_path: Path) -> None:
    from insole.emulation.board import SimulatedBoard
    from insole.link import SerialLink

    bad = Program(5, (ProgramBlock.fpa_probe(60), ProgramBlock.heel_raises(10, 3, 300, 60)))
    with SimulatedBoard(settings_dir=tmp_path) as board, SerialLink(board.port) as link:
        good = Program(4, (ProgramBlock.walk(100),))
        assert store_program(link, good) == good
        with pytest.raises(UserError, match=r"refused block 2 \(heel_raises\) hold_ms \(BAD_VALUE, detail 28\)"):
            store_program(link, bad)
        assert link.get_program() == good


@pytest.mark.micropython
def test_program_log_after_a_replayed_walk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A walk of 20 steps against a walking block of 10 steps: the log shows the session
    and the block reached, as the insole's program events say."""
    from insole.emulation.board import SimulatedBoard
    from insole.hil import replay_foot
    from insole.link import SerialLink
    from insole.quantise import choose_pressure_scale
    from insole.sim import SensorModel, Walk, simulate_session

    session = simulate_session([Walk(n_steps=40)], seed=3, sensors=SensorModel.ideal())
    stream = session.streams[0]
    assert stream.pressure is not None
    program = Program(8, (ProgramBlock.walk(10),))
    with SimulatedBoard(side="left", settings_dir=tmp_path) as board:
        with SerialLink(board.port) as link:
            store_program(link, program)
            replay_foot(link, stream, choose_pressure_scale(stream.pressure))
        assert _cli(["program", "log", "--port", board.port]) == 0
    out = capsys.readouterr().out
    assert "session 1 (program 8): ended" in out
    assert "1. walk: 10 of 10 steps (100 %), goal reached; 10 steps," in out
    assert out.count("1. walk") == 1  # the signals after the block's end are its own


@pytest.mark.ble
@pytest.mark.micropython
def test_a_program_over_a_bonded_ble_link() -> None:
    """A worn insole (measuring since power-on) over the emulated radio: a program is
    refused while it measures, stored once it stopped (a 142-byte control write), read
    back (a PROGRAM notification), its events read in chunks, and cleared."""
    from contextlib import ExitStack

    from insole.emulation.insoles import open_simulated_insoles
    from insole.link.backfill import read_logged_events
    from insole.protocol import PacketType
    from insole.sim import Walk, simulate_session

    sim = simulate_session([Walk(duration_s=20.0)], rate_hz=104.0, seed=3)
    program = Program(6, tuple(ProgramBlock.fpa_probe(60 + k) for k in range(8)))
    with ExitStack() as stack:
        _, link = open_simulated_insoles(stack, sim.streams[:1], ble=True).links[0]
        link.start_stream()
        with pytest.raises(DeviceError) as busy:
            link.set_program(program)
        assert busy.value.code == ErrorCode.BAD_STATE
        link.stop_stream()
        assert store_program(link, program, "the left insole") == program
        logged = read_logged_events(link, PacketType.PROGRAM_EVENT)
        assert all(isinstance(p.body, ProgramEvent) for p in logged.packets) and logged.lost == 0
        link.clear_program()
        assert link.get_program() == Program.none_stored()
