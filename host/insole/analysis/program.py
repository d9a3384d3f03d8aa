"""Exercise programs: what was prescribed against what was done (docs/programs.md).

Each insole runs its own copy of the program on its own foot's events and logs
PROGRAM_EVENT records: session starts, resumes and ends, block starts and ends (with
the block's result), signals. From the decoded records of one or more recordings
(:class:`~insole.analysis.results.FootRecords`, one per insole and recording) this
module puts together, per program session and block:

* the prescription: kind, the session's goal, the band in force, the metronome, the
  kind's parameters (when the recording holds the PROGRAM itself);
* what was done: the device's progress towards the goal and its result (BLOCK_END),
  how the block ended (goal, limit, interrupted, or not at all: the insole went off),
  how often it ran (a resumed session starts its interrupted block again);
* what the host measures from the same foot's STEP, HEEL_RAISE and CUE records while
  the block ran, by the device's rules: steps, walking and backward seconds, steps
  with a foot angle and in the band, cues, full and short repetitions, stance times,
  loads (peak pressure) and foot-strike patterns;
* symmetry between the feet (stance time, step count, load) as a limb symmetry index,
  the smaller foot's value over the larger's, beside the 0.8 and 0.9 marks;
* adherence over sessions and a trend (backward minutes, in-band shares, repetitions).

A block's record belongs to it when the device handled it while the block ran: a STEP
at its record's index (the toe-off; the contact for the first half of a stance split
by a rest), a HEEL_RAISE at its end, a CUE at its decision, between the block's start
(exclusive) and its end (inclusive: the step that reached the goal ended it). A block
that ran more than once (a resumed session) is represented by its last run.
Measurements only: no grade, no verdict (docs/report.md).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insole.analysis.measures import LSI_MARKS, LSI_MARKS_NOTE
from insole.analysis.results import Band, FootRecords, SessionResults
from insole.model import SIDES, Side
from insole.protocol import (
    BlockEnd,
    BlockKind,
    CueOutcome,
    CueReason,
    Direction,
    HeelRaise,
    Program,
    ProgramBlock,
    ProgramEvent,
    ProgramEventKind,
    ProgramSignal,
    Step,
    Strike,
    block_kind_name,
    whole_stances,
)
from insole.session.live import symmetry_index

MAX_GAP_S = 2.5  # as the device: a longer pause between two contacts is no walking time
NOT_ENDED = "not_ended"  # no BLOCK_END: the insole went off, or the recording stops during the block
ENDINGS: dict[int, str] = {BlockEnd.GOAL: "goal", BlockEnd.LIMIT: "limit", BlockEnd.INTERRUPTED: "interrupted"}
STRIKES: tuple[str, ...] = tuple(s.name.lower() for s in Strike)  # heel, midfoot, forefoot
FPA_KINDS = (BlockKind.FPA_BASELINE, BlockKind.FPA_FEEDBACK, BlockKind.FPA_PROBE)
# The symmetry measures of a block: (name, what the LSI is taken of).
SYMMETRY_MEASURES = (("stance_s", "median stance time"), ("steps", "steps"), ("load", "median peak pressure"))


@dataclass(frozen=True)
class RecordingRecords:
    """The insoles' decoded records of one recording."""

    name: str
    start_time_utc: str | None
    feet: tuple[FootRecords, ...]


def recording_records(results: SessionResults) -> RecordingRecords:
    """A session's records for the program analysis (none for a replayed recording)."""
    return RecordingRecords(results.path.name, results.start_time_utc, tuple(results.foot_records))


@dataclass(frozen=True)
class BlockMeasures:
    """What the host measures of one foot's block from its STEP, HEEL_RAISE and CUE records."""

    steps: int  # stances (each once)
    forward_steps: int
    backward_steps: int
    walking_s: float  # contact to contact of this foot, at most MAX_GAP_S apart, within the block
    backward_s: float  # the same, for the gaps that end in a backward step
    steps_with_angle: int  # forward steps with a foot angle
    steps_in_band: int | None  # of those, in the block's band (None: no band)
    baseline_cdeg: int | None  # mean angle of the steps with an angle, rounded half away from zero
    cues_delivered: int
    cues_faded: int
    full_reps: int | None  # HEEL_RAISEs held hold_ms (None: the hold is not known)
    short_holds: int | None
    stance_s: float | None  # median
    load: float | None  # median peak pressure (summed, the stream's pressure unit)
    strikes: dict[str, int]  # heel / midfoot / forefoot first: steps

    @property
    def in_band_pct(self) -> float | None:
        if self.steps_in_band is None or not self.steps_with_angle:
            return None
        return 100.0 * self.steps_in_band / self.steps_with_angle


@dataclass(frozen=True)
class BlockRun:
    """One foot's run of one block, from its BLOCK_START to its BLOCK_END (or the end of its records)."""

    side: Side
    recording: str
    program_id: int
    session: int
    block: int
    kind: int  # BlockKind
    goal: int | None  # this session's goal, in the kind's unit
    done: int | None  # progress towards it at the end
    ended: str  # goal, limit, interrupted, not_ended
    start_index: int
    end_index: int | None
    start_s: float
    end_s: float | None
    band: Band | None  # in force (feedback, probe), or set by the baseline
    value: int | None  # BLOCK_END's results, as on the wire
    value2: int | None
    signals: dict[str, int]  # SIGNAL patterns given during the block, by name
    measured: BlockMeasures

    @property
    def kind_name(self) -> str:
        return block_kind_name(self.kind)

    def results(self) -> dict[str, Any]:
        """The device's result of the block in the kind's words and units (docs/programs.md)."""
        return device_results(self.kind, self.done, self.value, self.value2)


@dataclass(frozen=True)
class BlockOutcome:
    """One block of one session: prescription, each foot's last run, symmetry, foot strike."""

    block: int
    kind: int
    prescribed: ProgramBlock | None  # None when the recordings hold no PROGRAM of this id
    feet: dict[Side, BlockRun]
    runs: dict[Side, int]  # how often the block ran on each foot (a resumed session runs it again)

    @property
    def reached_goal(self) -> bool:
        return bool(self.feet) and all(run.ended == "goal" for run in self.feet.values())

    @property
    def goal(self) -> int | None:
        return next((run.goal for run in self.feet.values() if run.goal is not None), None)


@dataclass(frozen=True)
class SessionOutcome:
    """One program session on the insoles (possibly over several recordings)."""

    program_id: int
    session: int
    recordings: tuple[str, ...]
    start_time_utc: str | None
    started: bool  # a SESSION_START is among the records
    resumes: int  # SESSION_RESUMEs (the most of one foot)
    completed: bool  # a SESSION_END on every foot that ran it
    blocks: list[BlockOutcome] = field(default_factory=list)

    @property
    def week(self) -> str | None:
        return iso_week(self.start_time_utc)


# --------------------------------------------------------------------------- small pure functions


def iso_week(start_time_utc: str | None) -> str | None:
    """"2025-W14" of an ISO 8601 time, None when it is missing or unreadable."""
    if not start_time_utc:
        return None
    try:
        when = datetime.datetime.fromisoformat(start_time_utc.replace("Z", "+00:00"))
    except ValueError:
        return None
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def round_half_away_cdeg(total_cdeg: int, n: int) -> int:
    """The mean of n angles summing to total (0.01°), rounded half away from zero, as the device."""
    mean = (2 * abs(total_cdeg) + n) // (2 * n)
    return mean if total_cdeg >= 0 else -mean


def ending_name(detail: int) -> str:
    """How a block ended, from its BLOCK_END's detail: goal, limit, interrupted."""
    return ENDINGS.get(detail, f"detail {detail}")


def goal_unit(kind: int, block: ProgramBlock | None) -> str:
    """The unit of a block's goal: steps (with a foot angle, in FPA blocks), s, or reps per set."""
    if kind == BlockKind.HEEL_RAISES:
        return "reps per set"
    if kind == BlockKind.BACKWARD_WALK or (block is not None and block.goal_in_seconds):
        return "s"
    return "steps"


def device_results(kind: int, done: int | None, value: int | None, value2: int | None) -> dict[str, Any]:
    """A BLOCK_END's ``done``, ``value`` and ``value2`` in the kind's words and units."""
    if kind == BlockKind.FPA_BASELINE:
        return {"baseline_deg": _scaled(value, 0.01), "steps_with_angle": value2}
    if kind == BlockKind.FPA_FEEDBACK:
        return {"in_band_pct": _scaled(value, 0.1), "cues": value2, "steps_with_angle": done}
    if kind == BlockKind.FPA_PROBE:
        return {"in_band_pct": _scaled(value, 0.1), "steps_with_angle": value2}
    if kind == BlockKind.BACKWARD_WALK:
        return {"backward_s": done, "forward_steps": value, "backward_steps": value2}
    if kind == BlockKind.HEEL_RAISES:
        return {"full_reps": done, "short_holds": value, "sets": value2}
    if kind == BlockKind.WALK:
        return {"done": done, "steps": value, "walking_s": value2}
    return {"done": done, "value": value, "value2": value2}


def _scaled(value: int | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 6)


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(present)) if present else None


def _in(index: int | None, start: int, end: int | None) -> bool:
    return index is not None and start < index and (end is None or index <= end)


def _record_index(step: Step) -> int:
    index = step.to_index if step.to_index is not None else step.ic_index
    assert index is not None, "a STEP has at least one of its events"
    return index


# --------------------------------------------------------------------------- one foot's block


def block_steps(steps: Sequence[Step], start: int, end: int | None) -> list[Step]:
    """The stances the device counted in a block, each once, in order: a stance split by a
    rest counts at its first record (as on the device), and is returned joined."""
    first_seen: dict[int, int] = {}
    for step in sorted(steps, key=_record_index):
        first_seen.setdefault(step.step_number, _record_index(step))
    counted = {number for number, index in first_seen.items() if _in(index, start, end)}
    joined = whole_stances(sorted(steps, key=_record_index))
    return [s for s in joined if s.step_number in counted]


def walking_seconds(steps: Sequence[Step], rate_hz: float, *, backward_only: bool) -> float:
    """Contact-to-contact time of one foot's steps, gaps above MAX_GAP_S left out; only the
    gaps ending in a backward step with ``backward_only`` (the device's backward seconds)."""
    max_gap = MAX_GAP_S * rate_hz
    total, last = 0, None
    for step in steps:
        if step.ic_index is None:
            continue
        if last is not None and 0 <= step.ic_index - last <= max_gap:
            if not backward_only or step.direction == Direction.BACKWARD:
                total += step.ic_index - last
        last = step.ic_index
    return total / rate_hz


def heel_raise_counts(
    raises: Sequence[HeelRaise], block: ProgramBlock, rate_hz: float
) -> tuple[int, int]:
    """(full repetitions, short holds) of a heel-raise block, by the device's rules: a raise
    held ``hold_ms`` is full, one short of it short; raises during a set's rest count not."""
    hold_ms, reps_per_set, rest_samples = block.hold_ms or 0, block.goal, round(block.rest_s * rate_hz)
    full = short = in_set = 0
    rest_until = -1
    for heel_raise in sorted(raises, key=lambda r: r.end_index):
        if heel_raise.start_index < rest_until:
            continue
        if heel_raise.hold_ms is None or heel_raise.hold_ms < hold_ms:
            short += 1
            continue
        full += 1
        in_set += 1
        if in_set == reps_per_set:
            in_set = 0
            rest_until = heel_raise.end_index + rest_samples
    return full, short


def block_measures(
    records: FootRecords, start: int, end: int | None, kind: int, band: Band | None, prescribed: ProgramBlock | None
) -> BlockMeasures:
    steps = block_steps(records.steps, start, end)
    angled = [s for s in steps if s.fpa_cdeg is not None and s.direction == Direction.FORWARD]
    in_band = None
    if band is not None:
        target, half = round(band.target_deg * 100), round(band.half_width_deg * 100)
        in_band = sum(1 for s in angled if abs((s.fpa_cdeg or 0) - target) <= half)
    band_cues = [
        c for c in records.cues
        if c.reason in (CueReason.TOE_IN, CueReason.TOE_OUT) and _in(c.decision_index, start, end)
    ]  # fmt: skip
    raises = [r for r in records.raises if _in(r.end_index, start, end)]
    full = short = None
    if kind == BlockKind.HEEL_RAISES and prescribed is not None:
        full, short = heel_raise_counts(raises, prescribed, records.rate_hz)
    strikes = {name: sum(1 for s in steps if s.strike == code) for name, code in zip(STRIKES, Strike, strict=True)}
    return BlockMeasures(
        steps=len(steps),
        forward_steps=sum(1 for s in steps if s.direction == Direction.FORWARD),
        backward_steps=sum(1 for s in steps if s.direction == Direction.BACKWARD),
        walking_s=walking_seconds(steps, records.rate_hz, backward_only=False),
        backward_s=walking_seconds(steps, records.rate_hz, backward_only=True),
        steps_with_angle=len(angled),
        steps_in_band=in_band,
        baseline_cdeg=round_half_away_cdeg(sum(s.fpa_cdeg or 0 for s in angled), len(angled)) if angled else None,
        cues_delivered=sum(1 for c in band_cues if c.outcome == CueOutcome.CUED),
        cues_faded=sum(1 for c in band_cues if c.outcome != CueOutcome.CUED),
        full_reps=full,
        short_holds=short,
        stance_s=_median(None if s.stance_ms is None else s.stance_ms / 1000.0 for s in steps),
        load=_median(None if s.peak_pressure is None else s.peak_pressure * records.pressure_scale for s in steps),
        strikes=strikes,
    )


def _band(event: ProgramEvent) -> Band | None:
    if event.target_cdeg is None or event.half_width_cdeg is None:
        return None
    return Band.from_cdeg(event.target_cdeg, event.half_width_cdeg)


def _signal_name(pattern: int) -> str:
    try:
        return ProgramSignal(pattern).name.lower()
    except ValueError:
        return f"pattern {pattern}"


# Events at one sample index, in the order the device sends them: a block's end, its
# signal, the session's end; a session's start, then its first block's start.
_SAME_INDEX_ORDER: dict[int, int] = {
    ProgramEventKind.BLOCK_END: 0, ProgramEventKind.SIGNAL: 1, ProgramEventKind.SESSION_END: 2,
    ProgramEventKind.SESSION_START: 3, ProgramEventKind.SESSION_RESUME: 3, ProgramEventKind.BLOCK_START: 4,
}  # fmt: skip


def _event_order(event: ProgramEvent) -> tuple[int, int]:
    return event.sample_index, _SAME_INDEX_ORDER.get(event.event, 1)


def program_blocks(records: Iterable[FootRecords]) -> dict[int, Program]:
    """The programs the recordings hold (PROGRAM reports), by program id (the last of each id)."""
    return {p.program_id: p for r in records for p in r.programs if p.blocks}


def block_runs(
    records: FootRecords, recording: str = "", programs: dict[int, Program] | None = None
) -> list[BlockRun]:
    """One foot's block runs, in order: each BLOCK_START with the BLOCK_END that follows it
    (a run without one ended when the records do: ``not_ended``)."""
    programs = programs or {}
    events = sorted(records.program_events, key=_event_order)  # backfilled events arrive late
    runs: list[BlockRun] = []
    open_start: ProgramEvent | None = None
    signals: dict[str, int] = {}

    def close(start: ProgramEvent, end: ProgramEvent | None) -> None:
        kind = start.kind or 0
        program = programs.get(start.program_id)
        block = start.block or 0
        prescribed = program.blocks[block] if program is not None and block < len(program.blocks) else None
        band = _band(end) if end is not None and kind == BlockKind.FPA_BASELINE else _band(start)
        end_index = None if end is None else end.sample_index
        runs.append(
            BlockRun(
                side=records.side,
                recording=recording,
                program_id=start.program_id,
                session=start.session,
                block=block,
                kind=kind,
                goal=start.goal,
                done=None if end is None else end.done,
                ended=NOT_ENDED if end is None else ending_name(end.detail),
                start_index=start.sample_index,
                end_index=end_index,
                start_s=records.time_s(start.sample_index),
                end_s=None if end_index is None else records.time_s(end_index),
                band=band,
                value=None if end is None else end.value,
                value2=None if end is None else end.value2,
                signals=dict(signals),
                measured=block_measures(records, start.sample_index, end_index, kind, _band(start), prescribed),
            )
        )

    for event in events:
        if event.event == ProgramEventKind.BLOCK_START:
            if open_start is not None:
                close(open_start, None)  # the insole went off during it (no BLOCK_END)
            open_start, signals = event, {}
        elif event.event == ProgramEventKind.BLOCK_END and open_start is not None:
            close(open_start, event)
            open_start = None
        elif event.event == ProgramEventKind.SIGNAL and open_start is not None:
            name = _signal_name(event.detail)
            signals[name] = signals.get(name, 0) + 1
        elif event.event in (ProgramEventKind.SESSION_START, ProgramEventKind.SESSION_RESUME) and open_start:
            close(open_start, None)
            open_start = None
    if open_start is not None:
        close(open_start, None)
    return runs


# --------------------------------------------------------------------------- both feet, sessions


def lsi(left: float | None, right: float | None) -> float | None:
    """Limb symmetry index: the smaller foot's value over the larger's (0..1; 1 = equal)."""
    return symmetry_index(left, right)


def block_symmetry(outcome: BlockOutcome) -> dict[str, dict[str, float | None]]:
    """LSI of the block's stance time, step count and load between the feet (empty with one foot)."""
    if set(outcome.feet) != set(SIDES):
        return {}
    left, right = outcome.feet["left"].measured, outcome.feet["right"].measured
    values = {
        "stance_s": (left.stance_s, right.stance_s),
        "steps": (float(left.steps), float(right.steps)),
        "load": (left.load, right.load),
    }
    return {name: {"left": a, "right": b, "lsi": lsi(a, b)} for name, (a, b) in values.items()}


def strike_shares(outcome: BlockOutcome) -> dict[str, Any]:
    """Shares (%) of the block's steps landing heel, midfoot or forefoot first (both feet),
    of the steps with a strike measured."""
    counts = {name: sum(run.measured.strikes[name] for run in outcome.feet.values()) for name in STRIKES}
    measured = sum(counts.values())
    return {
        "measured_steps": measured,
        **{f"{name}_pct": (100.0 * n / measured if measured else None) for name, n in counts.items()},
    }


def _session_key(event: ProgramEvent) -> tuple[int, int]:
    return event.program_id, event.session


def program_sessions(recordings: Sequence[RecordingRecords]) -> list[SessionOutcome]:
    """Every program session in the recordings, in the order they first appear (give the
    recordings in chronological order)."""
    programs = program_blocks(r for rec in recordings for r in rec.feet)
    order: list[tuple[int, int]] = []
    recordings_of: dict[tuple[int, int], list[str]] = {}
    start_of: dict[tuple[int, int], str | None] = {}
    started: set[tuple[int, int]] = set()
    resumes: dict[tuple[int, int, Side], int] = {}
    ends: dict[tuple[int, int], set[Side]] = {}
    feet_of: dict[tuple[int, int], set[Side]] = {}
    runs: list[BlockRun] = []
    for recording in recordings:
        for records in recording.feet:
            for event in records.program_events:
                key = _session_key(event)
                if key not in recordings_of:
                    order.append(key)
                    recordings_of[key] = []
                    start_of[key] = recording.start_time_utc
                if recording.name not in recordings_of[key]:
                    recordings_of[key].append(recording.name)
                feet_of.setdefault(key, set()).add(records.side)
                if event.event == ProgramEventKind.SESSION_START:
                    started.add(key)
                elif event.event == ProgramEventKind.SESSION_RESUME:
                    resumes[(*key, records.side)] = resumes.get((*key, records.side), 0) + 1
                elif event.event == ProgramEventKind.SESSION_END:
                    ends.setdefault(key, set()).add(records.side)
            runs += block_runs(records, recording.name, programs)
    sessions = []
    for key in order:
        program = programs.get(key[0])
        own = [run for run in runs if (run.program_id, run.session) == key]
        blocks = []
        for block in sorted({run.block for run in own}):
            of_block = [run for run in own if run.block == block]
            last = {run.side: run for run in of_block}  # runs are in chronological order per foot
            blocks.append(
                BlockOutcome(
                    block=block,
                    kind=of_block[-1].kind,
                    prescribed=program.blocks[block] if program is not None and block < len(program.blocks) else None,
                    feet={side: last[side] for side in SIDES if side in last},
                    runs={side: sum(1 for run in of_block if run.side == side) for side in SIDES if side in last},
                )
            )
        sessions.append(
            SessionOutcome(
                program_id=key[0],
                session=key[1],
                recordings=tuple(recordings_of[key]),
                start_time_utc=start_of[key],
                started=key in started,
                resumes=max((n for (p, s, _side), n in resumes.items() if (p, s) == key), default=0),
                completed=ends.get(key, set()) >= feet_of.get(key, set()),
                blocks=blocks,
            )
        )
    return sessions


def adherence(sessions: Sequence[SessionOutcome], programs: dict[int, Program] | None = None) -> dict[str, Any]:
    """Sessions started, completed and resumed; blocks run and at their goal; per ISO week."""
    programs = programs or {}
    prescribed = [len(programs[s.program_id].blocks) if s.program_id in programs else None for s in sessions]
    weeks: dict[str, dict[str, int]] = {}
    for s in sessions:
        week = weeks.setdefault(s.week or "unknown", {"sessions": 0, "completed": 0, "blocks_at_goal": 0})
        week["sessions"] += 1
        week["completed"] += int(s.completed)
        week["blocks_at_goal"] += sum(b.reached_goal for b in s.blocks)
    return {
        "sessions": len(sessions),
        "sessions_started": sum(s.started for s in sessions),
        "sessions_completed": sum(s.completed for s in sessions),
        "sessions_resumed": sum(1 for s in sessions if s.resumes),
        "blocks_prescribed": None if None in prescribed else sum(n or 0 for n in prescribed),
        "blocks_run": sum(len(s.blocks) for s in sessions),
        "blocks_reached_goal": sum(b.reached_goal for s in sessions for b in s.blocks),
        "per_week": dict(sorted(weeks.items())),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _weighted_in_band_pct(blocks: Iterable[BlockOutcome]) -> float | None:
    """The device's in-band shares of the blocks' feet, weighted by their steps with an angle."""
    hits = total = 0.0
    for block in blocks:
        for run in block.feet.values():
            results = run.results()
            share, n = results.get("in_band_pct"), results.get("steps_with_angle")
            if share is not None and n:
                hits += share * n
                total += n
    return hits / total if total else None


def session_trend_row(session: SessionOutcome) -> dict[str, Any]:
    """One session's trend values (device results of each foot's last run of each block)."""

    def of_kind(kind: BlockKind) -> list[BlockOutcome]:
        return [b for b in session.blocks if b.kind == kind]

    def per_foot_sum(kind: BlockKind, name: str) -> dict[Side, float]:
        sums: dict[Side, float] = {}
        for block in of_kind(kind):
            for side, run in block.feet.items():
                value = run.results().get(name)
                if value is not None:
                    sums[side] = sums.get(side, 0.0) + value
        return sums

    backward = per_foot_sum(BlockKind.BACKWARD_WALK, "backward_s")
    walking = per_foot_sum(BlockKind.WALK, "walking_s")
    reps = per_foot_sum(BlockKind.HEEL_RAISES, "full_reps")
    short = per_foot_sum(BlockKind.HEEL_RAISES, "short_holds")
    steps = per_foot_sum(BlockKind.WALK, "steps")
    baseline = [run.results()["baseline_deg"] for b in of_kind(BlockKind.FPA_BASELINE) for run in b.feet.values()]
    walk_goals = [b.goal for b in of_kind(BlockKind.WALK)]
    stance = _walk_stance_lsi(of_kind(BlockKind.WALK))
    mean_backward = _mean(list(backward.values()))
    mean_walking = _mean(list(walking.values()))
    return {
        "backward_min": None if mean_backward is None else mean_backward / 60.0,
        "walking_min": None if mean_walking is None else mean_walking / 60.0,
        "walking_steps": sum(steps.values()) if steps else None,
        "walk_goal": walk_goals[0] if walk_goals else None,
        "feedback_in_band_pct": _weighted_in_band_pct(of_kind(BlockKind.FPA_FEEDBACK)),
        "probe_in_band_pct": _weighted_in_band_pct(of_kind(BlockKind.FPA_PROBE)),
        "baseline_deg": _mean([b for b in baseline if b is not None]),
        "full_reps": max(reps.values()) if reps else None,  # bilateral raises count on both feet
        "short_holds": max(short.values()) if short else None,
        "blocks_reached_goal": sum(b.reached_goal for b in session.blocks),
        "blocks_run": len(session.blocks),
        "walk_lsi_stance": stance,
    }


def _walk_stance_lsi(blocks: Sequence[BlockOutcome]) -> float | None:
    medians = [
        _mean([run.measured.stance_s for b in blocks if (run := b.feet.get(side)) and run.measured.stance_s])
        for side in SIDES
    ]
    return lsi(medians[0], medians[1])


TREND_MEASURES = (
    "backward_min", "walking_min", "walking_steps", "walk_goal", "feedback_in_band_pct", "probe_in_band_pct",
    "baseline_deg", "full_reps", "short_holds", "blocks_reached_goal", "blocks_run", "walk_lsi_stance",
)  # fmt: skip


def program_trend(sessions: Sequence[SessionOutcome]) -> dict[str, Any]:
    rows = [session_trend_row(s) for s in sessions]
    return {
        "sessions": [session_label(s) for s in sessions],
        "start_time_utc": [s.start_time_utc for s in sessions],
        "week": [s.week for s in sessions],
        "measures": {name: [row[name] for row in rows] for name in TREND_MEASURES},
    }


def session_label(session: SessionOutcome) -> str:
    return f"{session.program_id}/{session.session}"


class ProgramAnalysis:
    """Prescription against what was done, over the program sessions of some recordings.

    Parameters
    ----------
    recordings
        Each recording's decoded records (:class:`RecordingRecords`), in chronological order.

    Attributes
    ----------
    sessions_
        One :class:`SessionOutcome` per program session, in order.
    programs_
        The prescriptions (PROGRAM reports) the recordings hold, by program id.
    adherence_, trend_
        As :func:`adherence` and :func:`program_trend`.
    """

    sessions_: list[SessionOutcome]
    programs_: dict[int, Program]
    adherence_: dict[str, Any]
    trend_: dict[str, Any]

    def analyse(self, recordings: Sequence[RecordingRecords]) -> ProgramAnalysis:
        self.programs_ = program_blocks(r for rec in recordings for r in rec.feet)
        self.sessions_ = program_sessions(recordings)
        self.adherence_ = adherence(self.sessions_, self.programs_)
        self.trend_ = program_trend(self.sessions_)
        return self


# --------------------------------------------------------------------------- JSON (docs/report.md)


def _band_json(band: Band | None) -> dict[str, float] | None:
    return None if band is None else {"target_deg": band.target_deg, "half_width_deg": band.half_width_deg}


def prescription_json(kind: int, goal: int | None, block: ProgramBlock | None, band: Band | None) -> dict[str, Any]:
    """The block as prescribed: the session's goal (a walking block's may have progressed),
    the band in force, and the kind's parameters when the PROGRAM is known."""
    out: dict[str, Any] = {
        "kind": block_kind_name(kind),
        "goal": goal,
        "goal_unit": goal_unit(kind, block),
        "band": _band_json(band),
        "metronome_spm": None if block is None or not block.metronome else block.spm,
        "limit_s": None if block is None or not block.limit_s else block.limit_s,
    }
    if block is None:
        return out
    if kind == BlockKind.FPA_BASELINE:
        out["change_deg"] = (block.change_cdeg or 0) / 100.0
        out["half_width_deg"] = (block.half_width_cdeg or 0) / 100.0
    elif kind == BlockKind.FPA_FEEDBACK:
        out["feedback_start_pct"] = block.feedback_start_pct
        out["feedback_end_pct"] = block.feedback_end_pct
    elif kind == BlockKind.HEEL_RAISES:
        out["sets"] = block.sets
        out["hold_s"] = (block.hold_ms or 0) / 1000.0
        out["rest_s"] = block.rest_s
    elif kind == BlockKind.WALK:
        out["progress_pct"] = block.progress_pct
        out["progress_after"] = block.progress_after
    return out


def _measured_json(m: BlockMeasures) -> dict[str, Any]:
    return {
        "steps": m.steps,
        "forward_steps": m.forward_steps,
        "backward_steps": m.backward_steps,
        "walking_s": m.walking_s,
        "backward_s": m.backward_s,
        "steps_with_angle": m.steps_with_angle,
        "in_band_pct": m.in_band_pct,
        "baseline_deg": None if m.baseline_cdeg is None else m.baseline_cdeg / 100.0,
        "cues_delivered": m.cues_delivered,
        "cues_faded": m.cues_faded,
        "full_reps": m.full_reps,
        "short_holds": m.short_holds,
        "stance_s": m.stance_s,
        "load": m.load,
        "strikes": dict(m.strikes),
    }


def _run_json(run: BlockRun, runs: int) -> dict[str, Any]:
    return {
        "recording": run.recording,
        "runs": runs,
        "ended": run.ended,
        "goal": run.goal,
        "done": run.done,
        "start_s": run.start_s,
        "end_s": run.end_s,
        "duration_s": None if run.end_s is None else run.end_s - run.start_s,
        "band": _band_json(run.band),
        "results": run.results(),
        "signals": dict(run.signals),
        "measured": _measured_json(run.measured),
    }


def block_json(outcome: BlockOutcome) -> dict[str, Any]:
    band = next((run.band for run in outcome.feet.values() if run.band is not None), None)
    return {
        "block": outcome.block,
        "prescription": prescription_json(outcome.kind, outcome.goal, outcome.prescribed, band),
        "reached_goal": outcome.reached_goal,
        "feet": {side: _run_json(run, outcome.runs[side]) for side, run in outcome.feet.items()},
        "symmetry": block_symmetry(outcome),
        "strike": strike_shares(outcome),
    }


def program_json(analysis: ProgramAnalysis) -> dict[str, Any]:
    """The report's ``program`` object (docs/report.md)."""
    return {
        "programs": [
            {"program_id": pid, "blocks": [prescription_json(b.kind, b.goal, b, None) for b in p.blocks]}
            for pid, p in sorted(analysis.programs_.items())
        ],
        "sessions": [
            {
                "label": session_label(s),
                "program_id": s.program_id,
                "session": s.session,
                "recordings": list(s.recordings),
                "start_time_utc": s.start_time_utc,
                "week": s.week,
                "started": s.started,
                "resumes": s.resumes,
                "completed": s.completed,
                "blocks": [block_json(b) for b in s.blocks],
            }
            for s in analysis.sessions_
        ],
        "adherence": analysis.adherence_,
        "trend": analysis.trend_,
        "marks": list(LSI_MARKS),
        "marks_note": LSI_MARKS_NOTE,
    }
