# Exercise programs through the whole Device (docs/programs.md): walking blocks over
# sessions (progression, seconds, time limits), stops and reboots. Run by
# fwtest_program_walking; helpers in program_harness.py.
from program_script import ScriptCore
from program_harness import (device, BACKWARD, BLOCK_END, BLOCK_START, END, FORWARD, RESUME, SIGNAL, START,
                             ack, block, program_events, reboot, replay, summary,
                             write_program)

_NA_I16 = -32768


def test_walking_progression_over_sessions():
    ack(write_program([block(6, 3, a=50, b=2)], program_id=9))
    goals = []
    for session in (1, 2, 3):
        events = program_events(replay(500, ScriptCore(device().events, [(_NA_I16, FORWARD)] * 4)))
        assert summary(events)[0] == (START, 0xFF, 0xFF, 0), events
        assert all(e[5] == session and e[6] == 9 for e in events), events
        goals.append(events[1][7])
        end = [e for e in events if e[0] == BLOCK_END][0]
        assert end[3] == 1 and end[8] == events[1][7], end
    # reached twice in a row: +50 % (3 -> 4) from the third session on
    assert goals == [3, 3, 4], goals
    ack(write_program([block(6, 3, a=50, b=2)], program_id=9))  # written again: the goal as written
    events = program_events(replay(200, ScriptCore(device().events, [(_NA_I16, FORWARD)])))
    assert events[1][7] == 3 and events[0][5] == 1, events


def test_walking_seconds_and_time_limit():
    # goal 2 s of walking (contacts 1 s apart), then a block that only its 10 s limit ends
    ack(write_program([block(6, 2, flags=2), block(6, 1000, limit_s=10)]))
    strides = [(_NA_I16, BACKWARD)] + [(_NA_I16, FORWARD)] * 13
    events = program_events(replay(1500, ScriptCore(device().events, strides)))
    ends = [e for e in events if e[0] == BLOCK_END]
    assert ends[0][3] == 1 and ends[0][4] == 260 and ends[0][8:11] == (2, 3, 2), ends[0]
    # the limit: 10 s after the second block started at sample 260; 10 steps by then
    assert ends[1][3] == 2 and ends[1][4] == 1260 and ends[1][9] == 10, ends[1]
    assert summary(events)[-2:] == [(SIGNAL, 1, 6, 9), (END, 0xFF, 0xFF, 0)]


def test_a_stop_interrupts_the_block_and_the_next_stream_resumes_it():
    ack(write_program([block(6, 3), block(6, 5)]))
    events = program_events(replay(600, ScriptCore(device().events, [(_NA_I16, FORWARD)] * 5)))
    assert summary(events)[-1] == (BLOCK_END, 1, 6, 3), summary(events)
    assert events[-1][8] == 2  # its partial progress: 2 of 5 steps
    reboot()  # power-on with the same files
    events = program_events(replay(800, ScriptCore(device().events, [(_NA_I16, FORWARD)] * 6)))
    assert summary(events) == [(RESUME, 0xFF, 0xFF, 0), (BLOCK_START, 1, 6, 0), (BLOCK_END, 1, 6, 1),
                               (SIGNAL, 1, 6, 9), (END, 0xFF, 0xFF, 0)], summary(events)
    assert events[1][7:9] == (5, 0) and events[2][4] == 460  # from zero: the 5th step ends it
    assert all(e[5] == 1 for e in events)
    # the next stream opens session 2
    events = program_events(replay(200, ScriptCore(device().events, [])))
    assert summary(events)[:2] == [(START, 0xFF, 0xFF, 0), (BLOCK_START, 0, 6, 0)] and events[0][5] == 2


def test_a_reboot_mid_block_resumes_without_a_block_end():
    ack(write_program([block(6, 10)]))
    d = device()
    events = program_events(replay(300, ScriptCore(d.events, [(_NA_I16, FORWARD)] * 3), during=reboot))
    assert summary(events) == [(START, 0xFF, 0xFF, 0), (BLOCK_START, 0, 6, 0)], summary(events)  # then off
    events = program_events(replay(200, ScriptCore(d.events, [(_NA_I16, FORWARD)])))
    assert summary(events)[:2] == [(RESUME, 0xFF, 0xFF, 0), (BLOCK_START, 0, 6, 0)], summary(events)
    assert events[0][5] == 1
