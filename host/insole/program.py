"""Exercise program files: a prescription in TOML, with units in its key names.

A program file holds ``program_id`` and 1–8 ``[[block]]`` tables, run in order each
session (docs/programs.md)::

    program_id = 7

    [[block]]
    kind = "fpa_baseline"   # fpa_feedback, fpa_probe, backward_walk, heel_raises, walk
    steps = 60
    change_deg = -5.0       # target = baseline + change (+ toe-out)
    half_width_deg = 2.0

Every key is checked, unknown keys are refused, and a refusal names the block and the
key in the file's own words and units. The values become a
:class:`~insole.protocol.Program` whose ranges are the protocol's
(:meth:`ProgramBlock.first_bad_field`, the device's own check): the file and the wire
agree by construction. :func:`program_to_toml` writes a program back in the same
form, so ``insole program show > file.toml`` gives a file ``set`` takes again.

:func:`sessions_from_events` turns an insole's PROGRAM_EVENTs into what was done, per
session and block, beside what was prescribed (``insole program log``, reports).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from insole.errors import UserError
from insole.protocol import (
    PROGRAM_FLAG_GOAL_SECONDS,
    PROGRAM_FLAG_METRONOME,
    PROGRAM_MAX_BLOCKS,
    PROGRAM_MAX_ID,
    BlockEnd,
    BlockKind,
    Program,
    ProgramBlock,
    ProgramEvent,
    ProgramEventKind,
    block_kind_name,
)

# --------------------------------------------------------------------------- the file's keys


@dataclass(frozen=True)
class _Key:
    """One value of a block in the file: its key, the block field it sets, and how
    many wire units one file unit is (degrees → 0.01°: 100)."""

    name: str
    field: str  # ProgramBlock field: goal, spm, a, b, rest_s, limit_s
    scale: int = 1
    fraction: bool = False  # written with a decimal point (degrees, seconds of a hold)


@dataclass(frozen=True)
class _Quantity:
    """A block value given by exactly one of its keys (``duration_min`` or ``duration_s``)."""

    keys: tuple[_Key, ...]
    required: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)


def _one(name: str, field_name: str, scale: int = 1, *, required: bool = True, fraction: bool = False) -> _Quantity:
    return _Quantity((_Key(name, field_name, scale, fraction),), required)


_STEPS = _one("steps", "goal")
_DURATION = _Quantity((_Key("duration_min", "goal", 60), _Key("duration_s", "goal")))
_METRONOME = _one("metronome_spm", "spm", required=False)
_LIMIT = _Quantity((_Key("limit_min", "limit_s", 60), _Key("limit_s", "limit_s")), required=False)

# What each kind's block says in the file, in the order `show` writes it.
KIND_KEYS: dict[int, tuple[_Quantity, ...]] = {
    BlockKind.FPA_BASELINE: (
        _STEPS, _one("change_deg", "a", 100, fraction=True), _one("half_width_deg", "b", 100, fraction=True), _LIMIT,
    ),
    BlockKind.FPA_FEEDBACK: (_STEPS, _one("feedback_start_pct", "a"), _one("feedback_end_pct", "b"), _LIMIT),
    BlockKind.FPA_PROBE: (_STEPS, _LIMIT),
    BlockKind.BACKWARD_WALK: (_DURATION, _METRONOME, _LIMIT),
    BlockKind.HEEL_RAISES: (
        _one("repetitions", "goal"), _one("sets", "a"), _one("hold_s", "b", 1000, fraction=True), _one("rest_s", "rest_s"),
        _LIMIT,
    ),
    BlockKind.WALK: (
        _Quantity((_Key("steps", "goal"), _Key("duration_min", "goal", 60), _Key("duration_s", "goal"))),
        _METRONOME,
        _one("progress_pct", "a", required=False),
        _one("progress_after_sessions", "b", required=False),
        _LIMIT,
    ),
}  # fmt: skip
KIND_BY_NAME: dict[str, int] = {block_kind_name(kind): kind for kind in KIND_KEYS}
_TOP_KEYS = ("program_id", "block")


def _where(index: int, kind_name: str | None = None) -> str:
    return f"block {index + 1}" + ("" if kind_name is None else f" ({kind_name})")


# --------------------------------------------------------------------------- loading


def load_program(path: Path) -> Program:
    """A program file as a :class:`Program`; a :class:`UserError` names the file and
    what is wrong in it (the block, the key, the allowed values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read program file {path}: {exc.strerror or exc}") from exc
    try:
        return program_from_toml(text)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def program_from_toml(text: str) -> Program:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not a TOML file: {exc}") from exc
    return program_from_mapping(document)


def program_from_mapping(document: Mapping[str, Any]) -> Program:
    unknown = [key for key in document if key not in _TOP_KEYS]
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r}; a program file has program_id and [[block]] tables")
    if "program_id" not in document:
        raise UserError("missing program_id (the prescription's label, 0..65534)")
    program_id = document["program_id"]
    if not _is_integer(program_id) or not 0 <= program_id <= PROGRAM_MAX_ID:
        raise UserError(f"program_id = {program_id!r}; expected a whole number 0..{PROGRAM_MAX_ID}")
    blocks = document.get("block")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise UserError("no [[block]] tables; a program has 1 to 8 blocks")
    if not 1 <= len(blocks) <= PROGRAM_MAX_BLOCKS:
        raise UserError(f"{len(blocks)} [[block]] tables; a program has 1 to {PROGRAM_MAX_BLOCKS}")
    program = Program(program_id, tuple(_block(k, table) for k, table in enumerate(blocks)))
    fault = program.first_fault()
    if fault is not None:  # each block was checked alone; this is the device's whole check
        raise UserError(f"the insole would refuse {fault.describe()}")
    return program


def _block(index: int, table: Mapping[str, Any]) -> ProgramBlock:
    kind_name = table.get("kind")
    if kind_name not in KIND_BY_NAME:
        choices = ", ".join(KIND_BY_NAME)
        stated = "no kind" if kind_name is None else f"kind = {kind_name!r}"
        raise UserError(f"{_where(index)}: {stated}; expected one of {choices}")
    kind = KIND_BY_NAME[kind_name]
    where = _where(index, kind_name)
    quantities = KIND_KEYS[kind]
    allowed = ("kind", *(name for quantity in quantities for name in quantity.names))
    unknown = [name for name in table if name not in allowed]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; a {kind_name} block takes {', '.join(allowed)}")
    block = ProgramBlock(kind)
    used: dict[str, tuple[_Key, Any]] = {}  # block field → the key that set it, and its value in the file
    for quantity in quantities:
        given = [key for key in quantity.keys if key.name in table]
        if len(given) > 1:
            raise UserError(f"{where}: give one of {' or '.join(quantity.names)}, not both")
        if not given:
            if quantity.required:
                raise UserError(f"{where}: missing {' or '.join(quantity.names)}")
            continue
        key = given[0]
        value = table[key.name]
        block = replace(block, **{key.field: _wire_value(where, key, value)})
        used[key.field] = (key, value)
    block = _with_flags(block, used)
    bad = block.first_bad_field()
    if bad is not None:
        wire_field, why = bad
        if wire_field in used:
            key, value = used[wire_field]
            raise UserError(f"{where}: {key.name} = {value!r} is refused ({block.field_name(wire_field)} {why})")
        raise UserError(f"{where}: {block.field_name(wire_field)} {why}")
    return block


def _with_flags(block: ProgramBlock, used: Mapping[str, tuple[_Key, Any]]) -> ProgramBlock:
    flags = PROGRAM_FLAG_METRONOME if "spm" in used else 0
    if block.kind == BlockKind.WALK and used["goal"][0].name != "steps":
        flags |= PROGRAM_FLAG_GOAL_SECONDS
    return replace(block, flags=flags)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wire_value(where: str, key: _Key, value: object) -> int:
    """A file value in wire units: a whole number of them, or a UserError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{where}: {key.name} = {value!r} is not a number")
    scaled = value * key.scale
    wire = round(scaled)
    if abs(scaled - wire) > 1e-6:
        step = "a whole number" if key.scale == 1 else f"a multiple of {1 / key.scale:g}"
        raise UserError(f"{where}: {key.name} = {value!r}; expected {step}")
    return wire


# --------------------------------------------------------------------------- writing


def program_to_toml(program: Program, *, comment: str | None = None) -> str:
    """A program as a program file (``program_from_toml`` reads it back equal). Each
    block is preceded by a comment saying what it prescribes in words."""
    lines = [] if comment is None else [f"# {line}" for line in comment.splitlines()]
    lines.append(f"program_id = {program.program_id}")
    for block in program.blocks:
        lines += ["", f"# {describe_block(block)}", "[[block]]", f'kind = "{block.kind_name}"']
        for quantity in KIND_KEYS.get(block.kind, ()):
            written = _key_and_value(block, quantity)
            if written is not None:
                lines.append(f"{written[0]} = {written[1]}")
    return "\n".join(lines) + "\n"


def _key_and_value(block: ProgramBlock, quantity: _Quantity) -> tuple[str, str] | None:
    wire_field = quantity.keys[0].field
    wire = int(getattr(block, wire_field))
    if not quantity.required and not wire:
        return None  # an optional value at its default: no metronome, no limit, no progression
    keys = quantity.keys
    if block.kind == BlockKind.WALK and wire_field == "goal":
        keys = keys[1:] if block.goal_in_seconds else keys[:1]
    # The largest unit that says it exactly: 20 minutes, not 1200 s.
    key = next((k for k in keys if wire % k.scale == 0 and k.scale > 1), keys[-1])
    value = wire / key.scale
    text = repr(value) if key.fraction else str(int(value)) if value.is_integer() else repr(value)
    return key.name, text


# --------------------------------------------------------------------------- in words


def describe_block(block: ProgramBlock) -> str:
    """What a block prescribes, for people: "heel raises: 3 sets of 10, hold 3 s, rest 60 s"."""
    kind = block.kind
    text: str
    if kind == BlockKind.FPA_BASELINE:
        text = (
            f"foot-angle baseline: {block.goal} steps; then the band is the baseline "
            f"{_signed_deg(block.a)} ± {block.b / 100:g}°"
        )
    elif kind == BlockKind.FPA_FEEDBACK:
        text = f"foot-angle feedback: {block.goal} steps, cues fading from {block.a} % to {block.b} % of the steps off the band"
    elif kind == BlockKind.FPA_PROBE:
        text = f"foot-angle probe: {block.goal} steps without feedback"
    elif kind == BlockKind.BACKWARD_WALK:
        text = f"backward walking: {_duration(block.goal)}"
    elif kind == BlockKind.HEEL_RAISES:
        text = f"heel raises: {block.a} sets of {block.goal}, hold {block.b / 1000:g} s, rest {block.rest_s} s"
    elif kind == BlockKind.WALK:
        text = "walking: " + (_duration(block.goal) if block.goal_in_seconds else f"{block.goal} steps")
        if block.a:
            text += f", +{block.a} % after {block.b} sessions at the goal"
    else:
        text = f"{block.kind_name}: goal {block.goal}"
    if block.metronome:
        text += f", metronome {block.spm} steps/min"
    if block.limit_s:
        text += f", at most {_duration(block.limit_s)}"
    return text


def _signed_deg(cdeg: int) -> str:
    direction = "toe-out" if cdeg > 0 else "toe-in" if cdeg < 0 else "unchanged"
    return f"{cdeg / 100:+g}° ({direction})"


def _duration(seconds: int) -> str:
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


# --------------------------------------------------------------------------- what was done


@dataclass
class BlockRun:
    """One run of a block in a session, from its BLOCK_START to its BLOCK_END.

    ``end`` is None when no BLOCK_END came: the block is running, or the insole was
    switched off in it (a reboot; the session resumes with the block from zero)."""

    block: int
    kind: int
    goal: int
    start_index: int
    done: int | None = None  # in the goal's unit, at the end
    end: int | None = None  # BlockEnd
    value: int | None = None
    value2: int | None = None
    end_index: int | None = None
    target_cdeg: int | None = None  # the foot-angle band in force (FPA blocks)
    half_width_cdeg: int | None = None
    signals: dict[int, int] = field(default_factory=dict)  # ProgramSignal → how many

    @property
    def kind_name(self) -> str:
        return block_kind_name(self.kind)

    @property
    def reached(self) -> bool:
        return self.end == BlockEnd.GOAL


@dataclass
class SessionLog:
    """One session of a program: its block runs in order (an interrupted block and its
    rerun after a resume are two runs), how often it was resumed, and whether it ended."""

    session: int
    program_id: int
    runs: list[BlockRun] = field(default_factory=list)
    resumes: int = 0
    ended: bool = False


def sessions_from_events(events: Iterable[ProgramEvent]) -> list[SessionLog]:
    """One insole's PROGRAM_EVENTs, in the order it sent them, as sessions.

    Events of a session whose start was lost (the log wrapped) still open it; a
    BLOCK_END without its BLOCK_START (lost too) starts its run at the end."""
    sessions: dict[tuple[int, int], SessionLog] = {}
    for event in events:
        key = (event.program_id, event.session)
        log = sessions.get(key)
        if log is None:
            log = sessions[key] = SessionLog(event.session, event.program_id)
        _take(log, event)
    return list(sessions.values())


def _take(log: SessionLog, event: ProgramEvent) -> None:
    kind = event.event
    if kind == ProgramEventKind.SESSION_RESUME:
        log.resumes += 1
    elif kind == ProgramEventKind.SESSION_END:
        log.ended = True
    elif kind == ProgramEventKind.BLOCK_START:
        log.runs.append(_run_from(event))
    elif kind == ProgramEventKind.SIGNAL:
        # The block-done and session-done signals follow the BLOCK_END: still its run.
        run = _run_of(log, event, ended_too=True)
        run.signals[event.detail] = run.signals.get(event.detail, 0) + 1
    elif kind == ProgramEventKind.BLOCK_END:
        run = _run_of(log, event, ended_too=False)
        run.done, run.end, run.value, run.value2 = event.done, event.detail, event.value, event.value2
        run.end_index = event.sample_index


def _run_from(event: ProgramEvent) -> BlockRun:
    return BlockRun(
        block=event.block if event.block is not None else -1,
        kind=event.kind if event.kind is not None else 0,
        goal=event.goal if event.goal is not None else 0,
        start_index=event.sample_index,
        target_cdeg=event.target_cdeg,
        half_width_cdeg=event.half_width_cdeg,
    )


def _run_of(log: SessionLog, event: ProgramEvent, *, ended_too: bool) -> BlockRun:
    """The run this event belongs to: the last one, if it is this block's (and still
    open, unless ``ended_too``); else a new run (its BLOCK_START was lost)."""
    last = log.runs[-1] if log.runs else None
    if last is not None and last.block == event.block and (ended_too or last.end is None):
        if last.target_cdeg is None:
            last.target_cdeg, last.half_width_cdeg = event.target_cdeg, event.half_width_cdeg
        return last
    run = _run_from(event)
    log.runs.append(run)
    return run
