# Exercise programs through the whole Device (docs/programs.md): each program kind's
# session end to end on scripted strides and raises, with exact counts (foot-angle
# retraining, backward walking, heel raises). Run by fwtest_program_sessions; helpers
# in program_harness.py.
import struct

from insolefw import protocol as P
from program_script import ScriptCore
from program_harness import (device, BACKWARD, BLOCK_END, BLOCK_START, END, FORWARD, SIGNAL, START, ack,
                             block, command, cues, fading_cues, program_events, replay,
                             send, summary, write_program)

_NA_I16 = -32768


def test_foot_angle_retraining_session_baseline_feedback_probe():
    ack(write_program([block(1, 4, a=-500, b=200), block(2, 6, a=100, b=0), block(3, 3)]))
    strides = [(1000, FORWARD), (1500, BACKWARD), (1010, FORWARD), (990, FORWARD), (1003, FORWARD),
               # feedback: band 501 +- 200 (baseline 1000.75 -> 1001, change -5 deg)
               (900, FORWARD), (500, FORWARD), (1000, FORWARD), (200, FORWARD), (800, FORWARD),
               (600, FORWARD),
               # probe
               (500, FORWARD), (750, FORWARD), (700, FORWARD)]
    packets = replay(1600, ScriptCore(device().events, strides))
    events = program_events(packets)
    assert summary(events) == [
        (START, 0xFF, 0xFF, 0), (BLOCK_START, 0, 1, 0), (BLOCK_END, 0, 1, 1), (SIGNAL, 0, 1, 8),
        (BLOCK_START, 1, 2, 0), (BLOCK_END, 1, 2, 1), (SIGNAL, 1, 2, 8),
        (BLOCK_START, 2, 3, 0), (BLOCK_END, 2, 3, 1), (SIGNAL, 2, 3, 9), (END, 0xFF, 0xFF, 0)], summary(events)
    baseline_end, feedback_end, probe_end = events[2], events[5], events[8]
    # goal, done, value (baseline), value2 (steps with an angle), the band it set
    assert baseline_end[7:] == (4, 4, 1001, 4, 501, 200), baseline_end
    assert baseline_end[4] == 460  # the toe-off of the 4th forward step
    assert events[1][11:] == (_NA_I16, 0xFFFF)  # no band in force during the baseline
    # in-band share 2 of 6 = 333 per mille; the cues the fading rule gives
    expected_cued = fading_cues(6, 100, 0, 4)
    assert expected_cued == [1, 3]
    assert feedback_end[7:] == (6, 6, 333, len(expected_cued), 501, 200), feedback_end
    assert probe_end[7:] == (3, 3, 667, 3, 501, 200), probe_end
    assert all(e[5] == 1 and e[6] == 7 for e in events)  # session 1, program 7
    c = cues(packets)
    assert [x[5] for x in c] == [900, 1000, 200, 800]  # every out-of-band step of the feedback block
    assert [x[9] for x in c] == [0, 1, 0, 1]  # cued, faded, cued, faded
    assert [x[8] for x in c] == [1, 1, 2, 1]  # toe-in, toe-in, toe-out, toe-in
    assert [(x[6], x[7], x[13]) for x in c] == [(501, 200, k) for k in (1, 2, 3, 4)]


def test_backward_walking_counts_backward_seconds_with_the_metronome():
    ack(write_program([block(4, 3, flags=1, spm=90)]))
    seen = []
    d = device()
    strides = [(_NA_I16, BACKWARD), (_NA_I16, BACKWARD), (_NA_I16, FORWARD), (_NA_I16, BACKWARD),
               (_NA_I16, BACKWARD), (_NA_I16, BACKWARD)]
    packets = replay(300, ScriptCore(d.events, strides),
                     during=lambda: seen.append((d.program.active, d.program.metronome_spm)), end=False)
    assert seen == [(4, 90)]  # the block runs, with its cadence
    packets += replay(300, None, first=300)
    events = program_events(packets)
    assert summary(events)[-3:] == [(BLOCK_END, 0, 4, 1), (SIGNAL, 0, 4, 9), (END, 0xFF, 0xFF, 0)]
    # contacts 1 s apart: backward steps 2, 4, 5 add a second each (4 after a forward one)
    end = events[-3]
    assert end[4] == 460 and end[7:11] == (3, 3, 1, 4), end  # goal 3 s, done 3 s, 1 forward, 4 backward
    assert (d.program.active, d.program.metronome_spm) == (0, 0)


def test_heel_raises_hold_ticks_sets_and_rest():
    # 2 sets of 2, hold 1 s, 5 s rest
    ack(write_program([block(5, 2, a=2, b=1000, rest_s=5)]))
    raises = [(100, 250, 1200), (300, 360, 500), (400, 520, 1100),
              (600, 800, 1500),  # in the rest: not counted, no tick
              (1100, 1250, 1000), (1300, 1420, 1000)]
    packets = replay(1500, ScriptCore(device().events, raises=raises))
    events = program_events(packets)
    signals = [(e[3], e[4]) for e in events if e[0] == SIGNAL]
    # hold reached 1 s after the heel rose, while it is up; set done; rest over 5 s later
    assert signals == [(5, 200), (5, 500), (6, 520), (7, 1020), (5, 1200), (5, 1400), (9, 1420)], signals
    end = [e for e in events if e[0] == BLOCK_END][0]
    assert end[3] == 1 and end[7:11] == (2, 4, 1, 2), end  # goal 2 per set, 4 full, 1 short, 2 sets
