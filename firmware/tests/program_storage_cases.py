# Exercise programs through the whole Device (docs/programs.md): PROGRAM, GET_PROGRAM and
# CLEAR_PROGRAM (storage, refusals naming the field's offset, while streaming) and the
# backfill of PROGRAM_EVENTs. Run by fwtest_program_storage; helpers in program_harness.py.
import struct

from insolefw import protocol as P
from program_script import ScriptCore
from program_harness import (device, FORWARD, ack, block, command, error_detail, program_events, replay,
                             send, stored_files, write_program)

_NA_I16 = -32768
_HEAD = "<BBH"


def test_program_is_stored_read_back_and_cleared():
    blocks = [block(1, 60, a=-500, b=200, limit_s=600), block(2, 200, a=100, b=20), block(3, 60),
              block(4, 300, flags=1, spm=80), block(5, 10, a=3, b=3000, rest_s=60), block(6, 3000, a=10, b=3)]
    ack(write_program(blocks, program_id=42))
    answer = command(P.CMD_GET_PROGRAM)
    assert answer[-1][1] == P.T_PROGRAM
    assert answer[-1][P.HEADER_LEN:] == struct.pack(_HEAD, 1, 6, 42) + b"".join(blocks)
    assert stored_files() == ["program.bin", "program_state.bin"]
    ack(command(P.CMD_CLEAR_PROGRAM))
    assert device().program is None and stored_files() == []
    assert command(P.CMD_GET_PROGRAM)[-1][P.HEADER_LEN:] == b"\x01\x00\x00\x00"
    ack(command(P.CMD_CLEAR_PROGRAM))  # none stored: nothing to do
    # without a program a stream sends no PROGRAM_EVENT
    assert program_events(replay(300, ScriptCore(device().events, [(_NA_I16, FORWARD)] * 2))) == []


# (payload, the offset the refusal names)
_REFUSED = (
    (struct.pack(_HEAD, 2, 1, 5) + block(6, 100), 0),  # program_version
    (struct.pack(_HEAD, 1, 0, 5), 1),  # no blocks
    (struct.pack(_HEAD, 1, 9, 5) + block(6, 100) * 9, 1),
    (struct.pack(_HEAD, 1, 1, 0xFFFF) + block(6, 100), 2),
    (struct.pack(_HEAD, 1, 2, 5) + block(6, 100) + block(7, 1), 20),  # the second block's kind
    (struct.pack(_HEAD, 1, 1, 5) + block(4, 10, flags=2), 5),  # seconds: walking only
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, flags=4), 5),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 0), 6),  # goal
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 0xFFFF), 6),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, flags=1, spm=39), 8),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, spm=100), 8),  # spm without the metronome
    (struct.pack(_HEAD, 1, 1, 5) + block(1, 10, a=3001, b=200), 10),
    (struct.pack(_HEAD, 1, 1, 5) + block(1, 10, a=0, b=49), 12),
    (struct.pack(_HEAD, 1, 1, 5) + block(2, 10, a=101), 10),
    (struct.pack(_HEAD, 1, 1, 5) + block(3, 10, b=1), 12),
    (struct.pack(_HEAD, 1, 1, 5) + block(5, 10, a=0, b=1000), 10),
    (struct.pack(_HEAD, 1, 1, 5) + block(5, 10, a=3, b=10001), 12),
    (struct.pack(_HEAD, 1, 1, 5) + block(5, 10, a=3, b=1000, rest_s=601), 14),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, rest_s=1), 14),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, a=0, b=1), 12),  # progress_after without progress
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, a=10, b=0), 12),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, a=10, b=11), 12),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10, limit_s=9), 16),
    (struct.pack(_HEAD, 1, 1, 5) + block(6, 10)[:14] + b"\x00\x01", 19),  # reserved
)


def test_refused_programs_name_the_field_and_change_nothing():
    good = struct.pack(_HEAD, 1, 1, 5) + block(6, 100)
    ack(send(P.T_PROGRAM, good))
    for payload, detail in _REFUSED:
        assert error_detail(send(P.T_PROGRAM, payload)) == (P.E_BAD_VALUE, detail), payload
    for payload in (b"\x01\x01", struct.pack(_HEAD, 1, 2, 5) + block(6, 100)):
        assert error_detail(send(P.T_PROGRAM, payload)) == (P.E_BAD_LENGTH, 0)
    assert command(P.CMD_GET_PROGRAM)[-1][P.HEADER_LEN:] == good
    # while a stream runs: refused, stop first
    replay(100, ScriptCore(device().events, []), during=_refused_while_streaming)
    assert command(P.CMD_GET_PROGRAM)[-1][P.HEADER_LEN:] == good


def _refused_while_streaming():
    assert error_detail(send(P.T_PROGRAM, struct.pack(_HEAD, 1, 1, 6) + block(6, 10))) == (P.E_BAD_STATE, 0)
    assert error_detail(command(P.CMD_CLEAR_PROGRAM)) == (P.E_BAD_STATE, 0)


def test_a_refused_first_program_leaves_none():
    ack(command(P.CMD_CLEAR_PROGRAM))
    error_detail(send(P.T_PROGRAM, struct.pack(_HEAD, 1, 1, 5) + block(9, 1)))
    assert device().program is None and stored_files() == []


def test_program_events_are_logged_and_backfilled():
    ack(write_program([block(6, 2)]))
    d = device()
    sent = program_events(replay(400, ScriptCore(d.events, [(_NA_I16, FORWARD)] * 3)))
    assert len(sent) == 5  # start, block start, block end, session done, end
    first = d.builder.next_seq(P.T_PROGRAM_EVENT) - 5
    answer = command(P.CMD_GET_EVENTS, struct.pack("<BBHH", P.T_PROGRAM_EVENT, 0, first, 5))
    assert program_events(answer) == sent
    assert answer[-1][1] == P.T_BACKFILL_END
