# A stream with an exercise program running allocates nothing per sample: the Device's
# drain path with the real gait core and the runner's hooks (update, append, decide, the
# hold tick and the signals) under micropython.heap_lock(). A block's start and end may
# allocate (they write the state to flash): the locked stretches run inside one block.
import gc
import micropython
import struct

import board

board.EVENT_LOG_RECORDS = 12  # small: the heap is for the core, the runner and the test

from insolefw import protocol as P  # noqa: E402
from insolefw.app import Device  # noqa: E402


class _Sink:
    # A link writer that accepts everything and keeps nothing (allocates nothing).
    def __init__(self):
        self.bytes = 0

    def write(self, buf, off, n):
        self.bytes += n
        return n


class _Motor:
    # Counts switches (the unix board's Motor logs each to stderr: that allocates).
    def __init__(self):
        self.ons = 0

    def on(self, duty_pct):
        self.ons += 1

    def off(self):
        pass


gc.collect()
_DEVICE = Device(None, _Sink(), lambda: None)
_DEVICE.motor = _DEVICE.player.motor = _Motor()
gc.collect()

from fwtest_alloc import _positions, _walk_samples  # noqa: E402
from serial_sink import SerialSink  # noqa: E402

_N_PRESSURE = const(8)
_BATCH = const(20)
_packet = bytearray(P.MAX_PACKET + P.CRC_LEN)


def _send(ptype, payload):
    n = P.HEADER_LEN + len(payload)
    struct.pack_into("<BBHI", _packet, 0, 1, ptype, 1, 0)
    _packet[P.HEADER_LEN:n] = payload
    _DEVICE.on_packet(_packet, n)


def _begin(blocks, n_pressure, imu):
    # A stored program of `blocks` (16-byte blocks), then a replay of that shape.
    _send(P.T_PROGRAM, struct.pack("<BBH", 1, len(blocks), 3) + b"".join(blocks))
    assert _DEVICE.program is not None
    if n_pressure:
        positions = _positions(n_pressure)
        _send(P.T_LAYOUT, struct.pack("<BB", n_pressure, 0)
              + b"".join(struct.pack("<h", v) for v in positions))
    _send(P.T_COMMAND, struct.pack("<BBHBBBB", P.CMD_REPLAY_BEGIN, 0, 10000, n_pressure, imu, 0, 0))
    assert _DEVICE.mode == 2, _DEVICE.mode  # replaying


def _end():
    """Ends the replay and clears the program; returns (done, value, value2) of the
    interrupted block's BLOCK_END."""
    gc.collect()
    keep = SerialSink()
    _DEVICE.serial._writer = keep
    _send(P.T_COMMAND, struct.pack("<BB", P.CMD_REPLAY_END, 0))
    _DEVICE.serial._writer = _Sink()
    _send(P.T_COMMAND, struct.pack("<BB", P.CMD_CLEAR_PROGRAM, 0))
    found = []
    _DEVICE.frames.feed(keep.data, len(keep.data), lambda b, n: found.append(bytes(b[:n])), lambda: None)
    ends = [struct.unpack_from("<BBBBIHHHHhh", p, P.HEADER_LEN)[8:] for p in found
            if p[1] == P.T_PROGRAM_EVENT and p[P.HEADER_LEN] == 4 and p[P.HEADER_LEN + 3] == 3]
    assert len(ends) == 1, found
    return ends[0]


def _block(kind, goal, a=0, b=0):
    return struct.pack("<BBHHhhHHH", kind, 0, goal, 0, a, b, 0, 0, 0)


def test_walking_block_counts_steps_without_allocating():
    _begin([_block(6, 65534)], _N_PRESSURE, 0)
    source = _DEVICE.replay
    sent = _DEVICE.builder.next_seq(P.T_PROGRAM_EVENT)
    for start in range(0, 1200, _BATCH):
        data = _walk_samples(_N_PRESSURE, 0, start, _BATCH)
        assert source.push(data, 0, _BATCH)
        if not start:  # the first batch opens the session and starts the block: that may allocate
            _DEVICE.drain_source()
            continue
        micropython.heap_lock()
        try:
            _DEVICE.drain_source()
            _DEVICE.flush_events()
        finally:
            micropython.heap_unlock()
    steps = _DEVICE.core.steps
    assert steps >= 8, steps
    # session start and block start, nothing since; the stop: each step counted
    assert _DEVICE.builder.next_seq(P.T_PROGRAM_EVENT) == sent + 2
    done, value, _ = _end()
    assert done == value == steps, (done, value, steps)


def test_feedback_cues_and_hold_ticks_without_allocating():
    # The band cue of a feedback block, decided after a stride analysis.
    _begin([_block(2, 65534, a=50, b=50)], 0, 1)
    source = _DEVICE.replay
    source.push(bytes(12 * _BATCH), 0, _BATCH)
    _DEVICE.drain_source()  # opens the session
    runner = _DEVICE.program
    tracker = _DEVICE.core.imu_tracker
    tracker.fpa_cdeg = 2500  # far out of the settings' band
    tracker.direction = 1  # forward
    cues = _DEVICE.builder.next_seq(P.T_CUE)
    micropython.heap_lock()
    try:
        for _ in range(10):
            runner.decide()
    finally:
        micropython.heap_unlock()
    assert _DEVICE.builder.next_seq(P.T_CUE) == cues + 10  # every other one cued (50 %), all logged
    assert _end()[2] == 5  # value2: cues given
    # Heel raises: the hold tick while the heel is up, then the raise's record.
    _begin([_block(5, 65534, a=20, b=500)], 0, 1)
    source.push(bytes(12 * _BATCH), 0, _BATCH)
    _DEVICE.drain_source()
    raises = _DEVICE.core.raises
    raises.state = 2
    raises._start = raises._top_start = 0  # risen, at the top
    signals = _DEVICE.builder.next_seq(P.T_PROGRAM_EVENT)
    record = bytearray(P.HEEL_RAISE_LEN)
    struct.pack_into("<IIHHHH", record, 0, 0, 200, 800, 1, 1, 0)
    source.push(bytes(12 * _BATCH * 2), 0, 2 * _BATCH)
    micropython.heap_lock()
    try:
        _DEVICE.drain_source()  # 50 samples after the rise: the hold tick
        raises.state = 1
        _DEVICE.events.push(P.T_HEEL_RAISE, record, P.HEEL_RAISE_LEN)
        _DEVICE.flush_events()
    finally:
        micropython.heap_unlock()
    assert _DEVICE.builder.next_seq(P.T_PROGRAM_EVENT) == signals + 1  # one SIGNAL (hold reached)
    assert _end() == (1, 0, 0)  # done: 1 full repetition, no short one, no set done
