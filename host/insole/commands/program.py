"""`insole program set|show|clear|log`: an exercise program on the insoles.

A program file (TOML, docs/programs.md; examples in docs/examples/programs) is written
to each insole given, which validates and stores it whole, then read back and compared.
Both feet take the same program: give --port twice (or --ble left --ble right) to write
both in one call. `show` prints each insole's program as a program file, `clear`
removes it, `log` reads what was done (the insole's program events) and prints it per
session and block beside what was prescribed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from insole.commands.cue import DEFAULT_SIM_SETTINGS_DIR
from insole.commands.options import link_advice, open_ble_insoles_of, open_serial_insole
from insole.errors import DeviceError, LinkError, UserError
from insole.link import InsoleLink
from insole.link.backfill import read_logged_events
from insole.program import BlockRun, SessionLog, describe_block, load_program, program_to_toml, sessions_from_events
from insole.protocol import BlockEnd, BlockKind, ErrorCode, PacketType, Program, ProgramBlock, ProgramEvent


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "program",
        help="set, show or clear the exercise program the insoles run, and read what was done",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    actions = p.add_subparsers(dest="program_action", required=True, metavar="ACTION")
    s = actions.add_parser("set", help="write a program file to the insoles (each validates and stores it)")
    s.add_argument("file", type=Path, metavar="FILE", help="program file (TOML), e.g. docs/examples/programs/heel_raises.toml")
    _add_targets(s)
    s.set_defaults(func=run_set)
    show = actions.add_parser("show", help="print each insole's program, as a program file")
    _add_targets(show)
    show.set_defaults(func=run_show)
    clear = actions.add_parser("clear", help="remove the program (and its sessions' state) from the insoles")
    _add_targets(clear)
    clear.set_defaults(func=run_clear)
    log = actions.add_parser("log", help="what was done: each session and block, prescribed against done")
    _add_targets(log)
    log.set_defaults(func=run_log)


def _add_targets(p: argparse.ArgumentParser) -> None:
    # cue's link options, each repeatable: one call reaches both feet.
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", action="append", help="serial port of an insole, e.g. /dev/ttyACM0 (repeatable)")
    target.add_argument("--simulate", action="store_true", help="a simulated insole (unix-port firmware)")
    target.add_argument(
        "--ble", action="append", choices=("left", "right"), help="the insole of this side, found over BLE (repeatable)"
    )
    p.add_argument(
        "--settings-dir",
        type=Path,
        default=DEFAULT_SIM_SETTINGS_DIR,
        help=f"with --simulate: where the simulated insole keeps its settings (default {DEFAULT_SIM_SETTINGS_DIR})",
    )


@dataclass
class _Insole:
    name: str  # "the left insole (/dev/ttyACM0)"
    link: InsoleLink


def _open_all(stack: ExitStack, args: argparse.Namespace) -> list[_Insole]:
    if args.ble:
        return [_Insole(f"the {side} insole ({link.port})", link) for side, link in open_ble_insoles_of(stack, args.ble)]
    if args.simulate:
        from insole.emulation.board import SimulatedBoard

        ports = [stack.enter_context(SimulatedBoard(settings_dir=args.settings_dir)).port]
    else:
        ports = list(dict.fromkeys(args.port))  # a port given twice is one insole
    return [_open_serial(stack, port) for port in ports]


def _open_serial(stack: ExitStack, port: str) -> _Insole:
    link = open_serial_insole(stack, port)
    try:
        side = link.get_status().side
    except LinkError as exc:
        raise UserError(f"cannot reach an insole on {port}: {exc}", advice=link_advice(exc)) from exc
    foot = {0: "left ", 1: "right "}.get(side if side is not None else -1, "")
    return _Insole(f"the {foot}insole on {port}", link)


def _on_each(args: argparse.Namespace, action: Callable[[_Insole], None]) -> int:
    with ExitStack() as stack:
        for insole in _open_all(stack, args):
            try:
                action(insole)
            except DeviceError as exc:
                raise UserError(f"{insole.name} refused it: {exc}", advice=_refusal_advice(exc)) from exc
    return 0


def _refusal_advice(exc: DeviceError) -> str | None:
    if exc.code == ErrorCode.BAD_STATE:
        return "the insole is measuring; stop its stream first (a program changes only while it is idle)"
    if exc.code in (ErrorCode.UNKNOWN_TYPE, ErrorCode.UNKNOWN_COMMAND):
        return "its firmware has no exercise programs; update it with insole flash"
    return exc.advice


# --------------------------------------------------------------------------- set, show, clear


def run_set(args: argparse.Namespace) -> int:
    program = load_program(args.file)  # the file's errors before any insole is touched
    return _on_each(args, lambda insole: _store(insole, program))


def store_program(link: InsoleLink, program: Program, insole: str = "the insole") -> Program:
    """Writes ``program`` and reads it back; a refusal names the block and field (in the
    words of the block's kind), a different read-back is a :class:`UserError` too."""
    try:
        link.set_program(program)
    except DeviceError as exc:
        if exc.code == ErrorCode.BAD_VALUE:
            raise UserError(
                f"{insole} refused {program.field_at(exc.detail)} (BAD_VALUE, detail {exc.detail}); its program is unchanged"
            ) from exc
        raise
    stored = link.get_program()
    if stored != program:
        raise UserError(f"{insole} reports another program than was written; check its firmware version")
    return stored


def _store(insole: _Insole, program: Program) -> None:
    stored = store_program(insole.link, program, insole.name)
    print(f"{insole.name}: program {stored.program_id} stored ({stored.n_blocks} blocks)")
    for k, block in enumerate(stored.blocks):
        print(f"  {k + 1}. {describe_block(block)}")


def run_show(args: argparse.Namespace) -> int:
    def show(insole: _Insole) -> None:
        program = insole.link.get_program()
        if not program.stored:
            print(f"# {insole.name}: no program stored")
            return
        print(program_to_toml(program, comment=f"program of {insole.name}"))

    return _on_each(args, show)


def run_clear(args: argparse.Namespace) -> int:
    def clear(insole: _Insole) -> None:
        insole.link.clear_program()
        print(f"{insole.name}: program cleared")

    return _on_each(args, clear)


# --------------------------------------------------------------------------- log


def run_log(args: argparse.Namespace) -> int:
    def log(insole: _Insole) -> None:
        program = insole.link.get_program()
        logged = read_logged_events(insole.link, PacketType.PROGRAM_EVENT)
        events = [packet.body for packet in logged.packets if isinstance(packet.body, ProgramEvent)]
        for line in adherence_lines(insole.name, sessions_from_events(events), program, logged.lost):
            print(line)

    return _on_each(args, log)


_END_WORDS: dict[int, str] = {
    BlockEnd.GOAL: "goal reached", BlockEnd.LIMIT: "time limit", BlockEnd.INTERRUPTED: "interrupted",
}  # fmt: skip


def adherence_lines(name: str, sessions: list[SessionLog], program: Program, lost: int = 0) -> list[str]:
    """What an insole's program log says, as lines: per session, each block run with
    its prescription, what was done (and the share of the goal) and its results."""
    lines = [f"{name}: {len(sessions)} session{'s' if len(sessions) != 1 else ''} in its log"]
    if lost:
        lines.append(f"  {lost} older program events are no longer in the insole's log")
    for session in sessions:
        state = "ended" if session.ended else "open"
        resumed = f", resumed {session.resumes}×" if session.resumes else ""
        lines.append(f"session {session.session} (program {session.program_id}): {state}{resumed}")
        same_program = program.stored and program.program_id == session.program_id
        for run in session.runs:
            lines.append("  " + run_line(run, _prescription(program, run) if same_program else None))
    return lines


def _prescription(program: Program, run: BlockRun) -> ProgramBlock | None:
    """The stored program's block a run ran, if it is still that block."""
    if 0 <= run.block < program.n_blocks and program.blocks[run.block].kind == run.kind:
        return program.blocks[run.block]
    return None


def run_line(run: BlockRun, block: ProgramBlock | None = None) -> str:
    """One block run: "5. heel_raises: 30 of 3 × 10 repetitions (100 %), goal reached; 3 sets done, 1 short hold".
    ``block``, the prescription it ran, tells what the log alone does not: heel raises'
    sets, whether a walk's goal is steps or seconds."""
    prescribed, goal, unit = _prescribed(run, block)
    done = "—" if run.done is None else f"{run.done}"
    share = "" if run.done is None or not prescribed else f" ({100 * run.done / prescribed:.0f} %)"
    if run.end is None:
        end = "not ended (running, or the insole was off)"
    else:
        end = _END_WORDS.get(run.end, f"ended ({run.end})")
    results = _results(run)
    return f"{run.block + 1}. {run.kind_name}: {done} of {goal} {unit}{share}, {end}" + (f"; {results}" if results else "")


def _prescribed(run: BlockRun, block: ProgramBlock | None) -> tuple[int, str, str]:
    """(the goal in done's unit, the goal as written, its unit)."""
    if run.kind in (BlockKind.FPA_BASELINE, BlockKind.FPA_FEEDBACK, BlockKind.FPA_PROBE):
        return run.goal, f"{run.goal}", "steps"
    if run.kind == BlockKind.HEEL_RAISES:
        if block is None or block.sets is None:
            return run.goal, f"{run.goal}", "repetitions per set"
        return run.goal * block.sets, f"{block.sets} × {run.goal}", "repetitions"
    if run.kind == BlockKind.BACKWARD_WALK:
        return run.goal, f"{run.goal}", "s backward"
    if block is None:
        return run.goal, f"{run.goal}", "steps or s"
    return run.goal, f"{run.goal}", "s walking" if block.goal_in_seconds else "steps"


def _results(run: BlockRun) -> str:
    if run.value is None and run.value2 is None:
        return ""
    value, value2 = run.value or 0, run.value2 or 0
    if run.kind == BlockKind.FPA_BASELINE:
        return f"baseline {value / 100:+.2f}°, {value2} steps with an angle"
    if run.kind == BlockKind.FPA_FEEDBACK:
        return f"{value / 10:.1f} % in band, {value2} cues" + _band(run)
    if run.kind == BlockKind.FPA_PROBE:
        return f"{value / 10:.1f} % in band of {value2} steps" + _band(run)
    if run.kind == BlockKind.BACKWARD_WALK:
        return f"{value2} backward steps, {value} forward"
    if run.kind == BlockKind.HEEL_RAISES:
        return f"{value2} sets done, {value} short hold{'s' if value != 1 else ''}"
    if run.kind == BlockKind.WALK:
        return f"{value} steps, {value2} s walking"
    return f"value {value}, value2 {value2}"


def _band(run: BlockRun) -> str:
    if run.target_cdeg is None or run.half_width_cdeg is None:
        return ""
    return f" (band {run.target_cdeg / 100:+.1f} ± {run.half_width_cdeg / 100:g}°)"
