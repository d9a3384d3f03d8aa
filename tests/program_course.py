"""A synthetic exercise-program course as two insoles would log it (docs/programs.md):
decoded PROGRAM_EVENT, STEP, HEEL_RAISE and CUE records with hand-checked numbers, for
the program analysis and the report's Program section.

Program 7 (5 blocks), 100 Hz, sample indices per foot:

session 1 (recording "week1", 2025-03-03, both feet alike but for stance time and load):
  b0 foot-angle baseline, goal 4 steps, change +5°, ± 3°: steps 1-4 at contacts 100..400
     (stride 1 s, toe-off 60 samples later), angles 10.00 11.00 12.00 12.50° -> mean
     11.375 -> 11.38° (half away from zero); the band 16.38 ± 3°; ends at 460 (goal)
  b1 feedback, goal 4, fading 100 -> 0 %: steps 5-8 at 17.00 (in) 12.00 (out) 19.00 (in)
     20.00° (out): in band 500 ‰; step 6 cued, step 8 faded; ends at 860
  b2 backward walking, goal 3 s: backward steps 9-12 at contacts 900..1200, forefoot
     first: 3 s (three 1-s gaps); ends at 1260
  b3 heel raises, 2 reps x 2 sets, hold 2 s, rest 5 s: holds 2.5 (full) 1.5 (short) 2.2
     (full: set 1 done at 2400, rest to 2900) 2.6 (in the rest: not counted) 2.1 2.0
     (full, full: set 2 done) -> 4 full, 1 short, 2 sets; ends at 3700
  b4 walking, goal 5 steps (+10 % after 2 sessions at goal): steps 13-17 at 3800..4200,
     4 s walking (4 gaps); ends at 4260, session end
  left stance 0.6 s, right 0.5 s (LSI 0.833); left peak 1000, right 900 counts (LSI 0.9)

session 2 (recording "week2a", 2025-03-12): b0 starts at 0, 2 steps, the stream stops:
  BLOCK_END interrupted (done 2) at 300. Recording "week2b" (2025-03-12, later):
  SESSION_RESUME, b0 starts again at 0, 1 step, then the records end (the insole went
  off: no BLOCK_END).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insole.analysis.program import RecordingRecords
from insole.analysis.results import FootRecords
from insole.model import FootStream, Side
from insole.protocol import (
    BlockEnd,
    BlockKind,
    Cue,
    CueOutcome,
    CuePattern,
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
)
from insole.recording import RecordingWriter, write_recording

RATE_HZ = 100.0
PROGRAM_ID = 7
PROGRAM = Program(
    PROGRAM_ID,
    (
        ProgramBlock.fpa_baseline(4, 500, 300),
        ProgramBlock.fpa_feedback(4, 100, 0),
        ProgramBlock.backward_walk(3, spm=80),
        ProgramBlock.heel_raises(2, 2, 2000, 5),
        ProgramBlock.walk(5, progress_pct=10, progress_after=2),
    ),
)
STANCE_MS: dict[Side, int] = {"left": 600, "right": 500}
PEAK: dict[Side, int] = {"left": 1000, "right": 900}
BAND_CDEG = (1638, 300)
START_TIMES = {"week1": "2025-03-03T08:00:00Z", "week2a": "2025-03-12T08:00:00Z", "week2b": "2025-03-12T08:30:00Z"}


def event(
    kind_of_event: ProgramEventKind, index: int, session: int, *, block: int | None = None,
    kind: BlockKind | None = None, detail: int = 0, goal: int | None = None, done: int | None = None,
    value: int | None = None, value2: int | None = None, band: tuple[int, int] | None = None,
) -> ProgramEvent:  # fmt: skip
    return ProgramEvent(
        event=kind_of_event, block=block, kind=kind, detail=detail, sample_index=index, session=session,
        program_id=PROGRAM_ID, goal=goal, done=done, value=value, value2=value2,
        target_cdeg=None if band is None else band[0], half_width_cdeg=None if band is None else band[1],
    )  # fmt: skip


def step(side: Side, number: int, ic: int, fpa_cdeg: int | None, direction: Direction, strike: Strike) -> Step:
    return Step(ic, ic + 60, STANCE_MS[side], 400, fpa_cdeg, direction, 1, PEAK[side], 100, 1300, 1200, number,
                strike)  # fmt: skip


def _block(
    index: int, block: int, kind: BlockKind, goal: int, *, band: tuple[int, int] | None = None
) -> ProgramEvent:
    return event(ProgramEventKind.BLOCK_START, index, 1, block=block, kind=kind, goal=goal, done=0, band=band)


def _end(
    index: int, block: int, kind: BlockKind, goal: int, done: int, value: int | None, value2: int | None,
    band: tuple[int, int] | None = None,
) -> ProgramEvent:  # fmt: skip
    return event(ProgramEventKind.BLOCK_END, index, 1, block=block, kind=kind, detail=BlockEnd.GOAL, goal=goal,
                 done=done, value=value, value2=value2, band=band)  # fmt: skip


def _signal(index: int, block: int, kind: BlockKind, pattern: ProgramSignal, goal: int) -> ProgramEvent:
    return event(ProgramEventKind.SIGNAL, index, 1, block=block, kind=kind, detail=pattern, goal=goal, done=0)


def session_one(side: Side) -> FootRecords:
    fwd, back = Direction.FORWARD, Direction.BACKWARD
    angles = (1000, 1100, 1200, 1250, 1700, 1200, 1900, 2000)
    steps = [step(side, k + 1, 100 * (k + 1), angles[k], fwd, Strike.HEEL) for k in range(8)]
    steps += [step(side, 9 + k, 900 + 100 * k, None, back, Strike.FOREFOOT) for k in range(4)]
    steps += [step(side, 13 + k, 3800 + 100 * k, 800, fwd, Strike.MIDFOOT) for k in range(5)]
    raises = [
        HeelRaise(1400, 1700, 2500, 1, 1), HeelRaise(1800, 2000, 1500, 2, 1), HeelRaise(2100, 2400, 2200, 3, 1),
        HeelRaise(2500, 2800, 2600, 1, 2), HeelRaise(3000, 3300, 2100, 2, 2), HeelRaise(3400, 3700, 2000, 3, 2),
    ]  # fmt: skip
    cues = [
        Cue(6, 660, 0, 0, 800, 1200, *BAND_CDEG, CueReason.TOE_OUT, CueOutcome.CUED, CuePattern.SHORT_SHORT, 60, 300, 1),
        Cue(8, 860, 0, None, None, 2000, *BAND_CDEG, CueReason.TOE_IN, CueOutcome.FADED_EVERY_KTH, CuePattern.LONG, 60,
            300, 2),
    ]  # fmt: skip
    k = BlockKind
    events = [
        event(ProgramEventKind.SESSION_START, 0, 1),
        _block(0, 0, k.FPA_BASELINE, 4),
        _end(460, 0, k.FPA_BASELINE, 4, 4, 1138, 4, BAND_CDEG),
        _signal(460, 0, k.FPA_BASELINE, ProgramSignal.BLOCK_DONE, 4),
        _block(460, 1, k.FPA_FEEDBACK, 4, band=BAND_CDEG),
        _end(860, 1, k.FPA_FEEDBACK, 4, 4, 500, 1, BAND_CDEG),
        _block(860, 2, k.BACKWARD_WALK, 3),
        _end(1260, 2, k.BACKWARD_WALK, 3, 3, 0, 4),
        _block(1260, 3, k.HEEL_RAISES, 2),
        _signal(1900, 3, k.HEEL_RAISES, ProgramSignal.HOLD_REACHED, 2),
        _signal(2400, 3, k.HEEL_RAISES, ProgramSignal.SET_DONE, 2),
        _signal(2900, 3, k.HEEL_RAISES, ProgramSignal.REST_OVER, 2),
        _end(3700, 3, k.HEEL_RAISES, 2, 4, 1, 2),
        _block(3700, 4, k.WALK, 5),
        _end(4260, 4, k.WALK, 5, 5, 5, 4),
        event(ProgramEventKind.SESSION_END, 4260, 1),
    ]
    # Backfilled records come late in a file: the analysis must not depend on their order.
    events = events[8:] + events[:8]
    return FootRecords(side, RATE_HZ, tuple(events), tuple(steps), tuple(raises), tuple(cues), (PROGRAM,))


def session_two_interrupted(side: Side) -> FootRecords:
    k = BlockKind.FPA_BASELINE
    events = (
        event(ProgramEventKind.SESSION_START, 0, 2),
        event(ProgramEventKind.BLOCK_START, 0, 2, block=0, kind=k, goal=4, done=0),
        event(ProgramEventKind.BLOCK_END, 300, 2, block=0, kind=k, detail=BlockEnd.INTERRUPTED, goal=4, done=2,
              value=1050, value2=2),
    )  # fmt: skip
    steps = (step(side, 1, 100, 1000, Direction.FORWARD, Strike.HEEL), step(side, 2, 200, 1100, Direction.FORWARD,
             Strike.HEEL))  # fmt: skip
    return FootRecords(side, RATE_HZ, events, steps)


def session_two_resumed(side: Side) -> FootRecords:
    k = BlockKind.FPA_BASELINE
    events = (
        event(ProgramEventKind.SESSION_RESUME, 0, 2),
        event(ProgramEventKind.BLOCK_START, 0, 2, block=0, kind=k, goal=4, done=0),
    )
    return FootRecords(side, RATE_HZ, events, (step(side, 1, 100, 900, Direction.FORWARD, Strike.HEEL),))


def course() -> list[RecordingRecords]:
    makers = {"week1": session_one, "week2a": session_two_interrupted, "week2b": session_two_resumed}
    return [
        RecordingRecords(name, START_TIMES[name], (make("left"), make("right"))) for name, make in makers.items()
    ]


def write_course_recording(path: Path, records: RecordingRecords, n_samples: int = 4400) -> None:
    """A recording of two standing insoles carrying the records as the insoles' packets."""
    streams = [
        FootStream(side, RATE_HZ, 0.0, "", None, "", np.tile([0.0, 0.0, 9.81], (n_samples, 1)),
                   np.zeros((n_samples, 3)))
        for side in ("left", "right")
    ]  # fmt: skip
    write_recording(path, streams, source="device", start_time_utc=records.start_time_utc)
    with RecordingWriter(path, {}, append=True) as writer:
        for stream_id, foot in enumerate(records.feet):
            bodies: list[Program | Step | HeelRaise | Cue | ProgramEvent] = [
                *foot.programs, *foot.steps, *foot.raises, *foot.cues, *foot.program_events,
            ]  # fmt: skip
            for seq, body in enumerate(bodies):
                writer.append(stream_id, body.encode(seq=seq), 0)
