# Exercise programs on the insole (docs/programs.md): the stored program, the state that
# outlives a reboot, and the runner that guides the walker through a session's blocks
# on this foot's own events.
#
# app.py imports this module only when a program is stored or written: its code costs
# heap. The runner's hooks allocate nothing (the sampling path is tested under
# micropython.heap_lock()): STEP and HEEL_RAISE records are read byte by byte, events
# packed into one buffer. The state is written to flash at block starts and ends, after
# the samples at hand (app.Device.drain_source calls save), never between them.
from micropython import const
import os
import struct
from array import array

import board
from insolefw import fast
from insolefw.protocol import (HEADER_LEN, NA_U8, NA_U16, NA_I16, T_COMMAND, T_STEP, T_HEEL_RAISE, T_PROGRAM,
                               T_PROGRAM_EVENT, PROGRAM_EVENT_LEN, CMD_GET_PROGRAM, E_BAD_LENGTH, E_BAD_VALUE,
                               E_BAD_STATE)
from insolefw.settings import Settings
from insolefw.units import ms_for_samples, samples_for_ms

PROGRAM_FILE = "program.bin"
STATE_FILE = "program_state.bin"
_WRONG_LENGTH = const(-2)  # first_bad_field(): the payload's length does not fit its n_blocks

_VERSION = const(1)
_MAX_BLOCKS = const(8)
_HEAD_LEN = const(4)
_BLOCK_LEN = const(16)
_MAX_PAYLOAD = const(132)  # 4 + 16 x 8
_BLOCK_FMT = "<BBHHhhHHH"
_GOAL_MAX = const(65534)

# Block kinds
_BASELINE = const(1)
_FEEDBACK = const(2)
_PROBE = const(3)
_BACKWARD = const(4)
_RAISES = const(5)
_WALK = const(6)

_FLAG_METRONOME = const(1)
_FLAG_SECONDS = const(2)

# a and b per kind: (a_min, a_max, b_min, b_max); 0..0 is "must be 0".
_AB_RANGES = ((-3000, 3000, 50, 2000), (0, 100, 0, 100), (0, 0, 0, 0), (0, 0, 0, 0),
              (1, 20, 500, 10000), (0, 100, 1, 10))

# PROGRAM_EVENT
_SESSION_START = const(1)
_SESSION_RESUME = const(2)
_BLOCK_START = const(3)
_BLOCK_END = const(4)
_SIGNAL = const(5)
_SESSION_END = const(6)
_END_GOAL = const(1)
_END_LIMIT = const(2)
_END_INTERRUPTED = const(3)
_EVENT_FMT = "<BBBBIHHHHhhhH"

# Signal patterns (insolefw/cue.py SIGNAL_PATTERNS)
_HOLD_REACHED = const(5)
_SET_DONE = const(6)
_REST_OVER = const(7)
_BLOCK_DONE = const(8)
_SESSION_DONE = const(9)

_CUED = const(0)  # cue.CUED
_FADED = const(1)  # cue.FADED_EVERY_KTH: the fading held this cue back
_DIR_FORWARD = const(1)  # imu.DIR_FORWARD
_DIR_BACKWARD = const(2)  # imu.DIR_BACKWARD
_HEEL_UP = const(2)  # contact.HeelRaises.state with the heel up
_NEVER = const(0x3FFFFFFF)  # a due index no stream reaches (and a small int on the ESP32)
_MAX_GAP_MS = const(2500)  # a longer pause between two contacts is no walking time
_I16_MAX = const(32767)

# The runner's numbers: slots of one array('i'), as slot names cost no interned names.
_OPENING = const(0)  # a stream began: the session opens at its first sample
_DIRTY = const(1)  # the state changed since it was written
# The running block's progress, reset at its start:
_N = const(2)  # steps (with a foot angle in FPA blocks), each stance counted once
_SUM = const(3)  # baseline: the sum of their angles
_HITS = const(4)  # in the band
_K = const(5)  # out-of-band steps the band cue saw
_ACC = const(6)  # the fading accumulator, in % x _FADE_DEN
_CUES = const(7)
_FORWARD_STEPS = const(8)
_BACKWARD_STEPS = const(9)
_SPAN = const(10)  # walking (or backward) samples between contacts
_LAST_IC = const(11)  # -1: none yet in this block
_LAST_STEP = const(12)  # the step number counted last
_REPS = const(13)  # full repetitions
_IN_SET = const(14)
_SHORT = const(15)
_SETS = const(16)
_REST_UNTIL = const(17)  # resting until this sample (0: not resting)
_COUNTED_FROM = const(18)  # raises that start before this sample (in a rest) do not count
_TICKED_RISE = const(19)  # the raise whose hold was signalled
_BAND_KNOWN = const(20)  # the band fields of this block's events apply
# ... and its parameters:
_FLAGS = const(21)
_GOAL = const(22)  # this session's
_A = const(23)
_B = const(24)
_FADE_DEN = const(25)  # max(goal - 1, 1): the fading's denominator
_REST_SAMPLES = const(26)
_HOLD_SAMPLES = const(27)
_MAX_GAP = const(28)  # samples: a longer pause between contacts is no walking time
_LIMIT_INDEX = const(29)
_TARGET = const(30)  # the band in force
_HALF = const(31)
_SLOTS = const(32)

_STATE_VERSION = const(1)
_STATE_FMT = "<BBBBHHhH"  # version, open, block, band set, session, program crc, target, half width
_STATE_HEAD = const(12)
_STATE_LEN = const(36)  # head, 8 goals (u16), 8 streaks (u8)


def first_bad_field(buf, off, length):
    """Checks a PROGRAM payload of `length` bytes at buf[off:]: -1 if valid, _WRONG_LENGTH,
    or the payload offset of the first bad field (the ERROR detail)."""
    if length < _HEAD_LEN:
        return _WRONG_LENGTH
    if buf[off] != _VERSION:
        return 0
    n = buf[off + 1]
    if not 1 <= n <= _MAX_BLOCKS:
        return 1
    if length != _HEAD_LEN + _BLOCK_LEN * n:
        return _WRONG_LENGTH
    if buf[off + 2] == 0xFF and buf[off + 3] == 0xFF:
        return 2  # program_id 65535 is not a label
    for k in range(n):
        at = _HEAD_LEN + _BLOCK_LEN * k
        bad = _block_fault(buf, off + at)
        if bad >= 0:
            return at + bad
    return -1


def _block_fault(buf, off):
    # The offset within the block of its first bad field, or -1.
    kind, flags, goal, spm, a, b, rest_s, limit_s, reserved = struct.unpack_from(_BLOCK_FMT, buf, off)
    if not _BASELINE <= kind <= _WALK:
        return 0
    if flags & ~(_FLAG_METRONOME | _FLAG_SECONDS) or (flags & _FLAG_SECONDS and kind != _WALK):
        return 1
    if not 1 <= goal <= _GOAL_MAX:
        return 2
    if (not 40 <= spm <= 200) if flags & _FLAG_METRONOME else spm:
        return 4
    a_min, a_max, b_min, b_max = _AB_RANGES[kind - 1]
    if not a_min <= a <= a_max:
        return 6
    if kind == _WALK and not a:
        b_min = b_max = 0  # no progression: progress_after 0
    if not b_min <= b <= b_max:
        return 8
    if rest_s > (600 if kind == _RAISES else 0):
        return 10
    if (limit_s and limit_s < 10) or limit_s > _GOAL_MAX:
        return 12
    if reserved:
        return 14 if buf[off + 14] else 15
    return -1


def erase(directory):
    """Removes the stored program and its state (and temporary files a power cut left);
    False if a file is there but would not go."""
    return Settings.erase(directory, PROGRAM_FILE) & Settings.erase(directory, STATE_FILE)


def _write_atomically(directory, name, buf, length):
    # buf[0:length] plus its CRC-16, to a temporary file renamed over the old one: a power
    # cut leaves the old or the new file, never half of each (as insolefw/settings.py).
    crc = fast.crc16(buf, 0, length)
    buf[length] = crc & 0xFF
    buf[length + 1] = crc >> 8
    try:
        os.stat(directory)
    except OSError:
        os.mkdir(directory)
    path = directory + "/" + name
    with open(path + ".tmp", "wb") as f:
        f.write(memoryview(buf)[:length + 2])
    os.rename(path + ".tmp", path)


def _read_checked(directory, name, buf):
    # The file's length without its CRC if it fits buf and its CRC holds, else -1.
    try:
        with open(directory + "/" + name, "rb") as f:
            n = f.readinto(buf)
    except OSError:
        return -1
    if not n or n < 3 or n == len(buf):
        return -1  # empty, or longer than anything this version writes
    n -= 2
    return n if fast.crc16(buf, 0, n) == buf[n] | (buf[n + 1] << 8) else -1


class Program:
    """The stored PROGRAM payload, as written (docs/programs.md, wire format)."""

    def __init__(self):
        self.payload = bytearray(_MAX_PAYLOAD + 3)  # + CRC + one byte to tell a longer file
        self.length = 0  # 0: none

    def set(self, buf, off, length):
        """Takes a payload first_bad_field() accepted."""
        fast.copy_bytes(self.payload, 0, buf, off, length)
        self.length = length

    @property
    def n_blocks(self):
        return self.payload[1] if self.length else 0

    @property
    def program_id(self):
        return self.payload[2] | (self.payload[3] << 8)

    def block(self, k):
        """(kind, flags, goal, spm, a, b, rest_s, limit_s, reserved) of block k."""
        return struct.unpack_from(_BLOCK_FMT, self.payload, _HEAD_LEN + _BLOCK_LEN * k)

    def crc(self):
        return fast.crc16(self.payload, 0, self.length)

    def save(self, directory):
        _write_atomically(directory, PROGRAM_FILE, self.payload, self.length)

    def load(self, directory):
        """False (and no program) if the file is missing, corrupt or not a valid program."""
        n = _read_checked(directory, PROGRAM_FILE, self.payload)
        self.length = n if n > 0 and first_bad_field(self.payload, 0, n) < 0 else 0
        return self.length > 0


class ProgramState:
    """What outlives a session and a reboot: the session number, the block to run (and
    whether a session is open), the band the last baseline set, and per walking block
    its current goal and streak of sessions that reached it."""

    def __init__(self):
        self._buf = bytearray(_STATE_LEN + 3)
        self.goals = array("H", bytes(2 * _MAX_BLOCKS))
        self.streaks = bytearray(_MAX_BLOCKS)
        self.reset(None)

    def reset(self, program):
        """The state of a program just written: session 1 not begun, no band, the walking
        blocks' goals as written."""
        self.open = 0
        self.block = 0
        self.band_set = 0
        self.session = 1
        self.program_crc = 0
        self.target_cdeg = 0
        self.half_width_cdeg = 0
        for k in range(_MAX_BLOCKS):
            self.goals[k] = 0
            self.streaks[k] = 0
        if program is not None:
            self.program_crc = program.crc()
            for k in range(program.n_blocks):
                self.goals[k] = program.block(k)[2]

    def save(self, directory):
        buf = self._buf
        struct.pack_into(_STATE_FMT, buf, 0, _STATE_VERSION, self.open, self.block, self.band_set,
                         self.session, self.program_crc, self.target_cdeg, self.half_width_cdeg)
        for k in range(_MAX_BLOCKS):
            struct.pack_into("<H", buf, _STATE_HEAD + 2 * k, self.goals[k])
            buf[_STATE_HEAD + 2 * _MAX_BLOCKS + k] = self.streaks[k]
        _write_atomically(directory, STATE_FILE, buf, _STATE_LEN)

    def load(self, directory, program):
        """The saved state if it belongs to this program, else the state of a program just
        written (returns False then)."""
        buf = self._buf
        if _read_checked(directory, STATE_FILE, buf) == _STATE_LEN:
            (version, is_open, block, band_set, session, crc, target,
             half_width) = struct.unpack_from(_STATE_FMT, buf, 0)
            if version == _STATE_VERSION and crc == program.crc() and block < program.n_blocks and session:
                self.open = is_open
                self.block = block
                self.band_set = band_set
                self.session = session
                self.program_crc = crc
                self.target_cdeg = target
                self.half_width_cdeg = half_width
                for k in range(_MAX_BLOCKS):
                    self.goals[k] = buf[_STATE_HEAD + 2 * k] | (buf[_STATE_HEAD + 2 * k + 1] << 8)
                    self.streaks[k] = buf[_STATE_HEAD + 2 * _MAX_BLOCKS + k]
                return True
        self.reset(program)
        return False


def _u32(buf, off):
    # A u32 index of a record, -1 for n/a (0xFFFFFFFF); read bytewise: unpacking would
    # allocate a tuple, and indices of 2**30 and above (12 days at 1 kHz) are not met.
    top = buf[off + 3]
    if top & 0xC0:
        return -1
    return buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (top << 24)


def _u16(buf, off):
    return buf[off] | (buf[off + 1] << 8)


def _i16(buf, off):
    v = buf[off] | (buf[off + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _sat_i16(v):
    return v if v < _I16_MAX else _I16_MAX


def _samples_for_s(seconds, rate_chz):
    # seconds * rate_hz in two parts, so the products stay small ints on the ESP32
    return seconds // 100 * rate_chz + seconds % 100 * rate_chz // 100


def load(device, create):
    """The runner of the program stored in board.SETTINGS_DIR, or None (an unreadable one
    is removed); create: a runner even without one, for a program being written."""
    runner = Runner(device, board.SETTINGS_DIR)
    if runner.program.load(runner.directory):
        runner.state.load(runner.directory, runner.program)
        return runner
    if create:
        return runner
    erase(runner.directory)
    return None


class Runner:
    """Runs the stored program on one insole's stream, and answers PROGRAM, GET_PROGRAM
    and CLEAR_PROGRAM. Its hooks carry names the firmware uses already (an interned name
    costs heap in every firmware, with or without a program):

    * start() / stop(): a stream begins / ends (the session opens or resumes at the
      stream's first sample, in update(); a block running at stop() is interrupted);
    * update(): after a sample when records wait (append() counts them as they are
      sent) or the sample index passed `due`: the session's start, a hold (checked
      every sample of a heel-raise block), a rest's end, a time limit;
    * append(packet, length): each event packet as sent; STEP and HEEL_RAISE count;
    * decide(): after a stride analysis while a block runs: a feedback block's band cue;
    * save(): writes the state if a block started or ended since (not between samples);
    * on_packet(buf, length): PROGRAM, and the commands GET_PROGRAM and CLEAR_PROGRAM.

    `active`: a block runs (then the program decides the band cue and the metronome);
    `metronome_spm`: the running block's cadence, 0 without. Uses of the Device: core,
    events, flush_events, _send_event, _send, _ack, _error, builder, clock, mode, cue,
    settings, player, _motor_flag, metronome, _ticks_us, _cue.
    """

    def __init__(self, device, directory):
        self.device = device
        self.directory = directory
        self.program = Program()
        self.state = ProgramState()
        self.record = bytearray(PROGRAM_EVENT_LEN)
        self.active = 0  # the running block's kind; 0: none runs, the settings decide
        self.metronome_spm = 0
        self._v = array("i", bytes(4 * _SLOTS))
        self.due = _NEVER  # the sample index from which update() has something to do
        self._cue_settings = Settings()  # the settings' cue shapes, the block's band
        self._reset_block()

    # -- PROGRAM, GET_PROGRAM, CLEAR_PROGRAM ---------------------------------------

    def on_packet(self, buf, length):
        d = self.device
        seq = buf[2] | (buf[3] << 8)
        if buf[1] == T_COMMAND:
            cmd = buf[HEADER_LEN]
            if cmd == CMD_GET_PROGRAM:
                d._send(d.builder.event(T_PROGRAM, d.clock.now_ms(), self.program.payload, self.program.length))
            elif d.mode:
                d._error(T_COMMAND, cmd, seq, E_BAD_STATE)  # CLEAR_PROGRAM while streaming
            else:
                d.program = None
                if erase(self.directory):
                    d._ack(T_COMMAND, cmd, seq)
                else:
                    d._error(T_COMMAND, cmd, seq, E_BAD_STATE, 0xFF)
            return
        # PROGRAM: validated whole, stored atomically with a new state (a stream
        # running: refused, stop first).
        bad = first_bad_field(buf, HEADER_LEN, length - HEADER_LEN)
        if bad == _WRONG_LENGTH:
            d._error(T_PROGRAM, 0, seq, E_BAD_LENGTH)
        elif bad >= 0:
            d._error(T_PROGRAM, 0, seq, E_BAD_VALUE, bad)
        elif d.mode:
            d._error(T_PROGRAM, 0, seq, E_BAD_STATE)
        else:
            try:
                self.program.set(buf, HEADER_LEN, length - HEADER_LEN)
                self.state.reset(self.program)
                self.program.save(self.directory)
                self.state.save(self.directory)
            except OSError:
                self.program.length = 0  # not half-stored: neither in RAM nor on flash
                erase(self.directory)
                d._error(T_PROGRAM, 0, seq, E_BAD_STATE, 0xFF)
            else:
                d._ack(T_PROGRAM, 0, seq)
        if not self.program.length:
            # None stored: the device runs as without programs. The module stays imported
            # (loading it again into a fragmented heap could fail; on the ESP32 the heap
            # grows to hold it).
            d.program = None

    def save(self):
        if self._v[_DIRTY]:
            self._v[_DIRTY] = 0
            self.state.save(self.directory)

    # -- the stream ----------------------------------------------------------------

    def start(self):
        self.active = 0
        self.metronome_spm = 0
        self._v[_OPENING] = 1
        self.due = -1

    def stop(self):
        index = self.device.core.sample_index - 1
        if self.active:
            self._end_block(_END_INTERRUPTED, index if index > 0 else 0)
        self._v[_OPENING] = 0
        self.due = _NEVER
        self.save()

    def update(self):
        d = self.device
        if d.events.count:
            d.flush_events()  # a STEP or HEEL_RAISE may end the block first
        index = d.core.sample_index - 1
        if index < self.due:
            return
        if self._v[_OPENING]:
            self._v[_OPENING] = 0
            self._open_session(index)
        kind = self.active
        if not kind or index < self.due:
            return
        if index >= self._v[_LIMIT_INDEX]:
            self._end_block(_END_LIMIT, index)
        elif kind == _RAISES:
            self._update_raises(index)

    def _update_raises(self, index):
        if self._v[_REST_UNTIL]:
            if index < self._v[_REST_UNTIL]:
                return
            self._v[_REST_UNTIL] = 0
            self._signal(_REST_OVER, index)
        # The hold as HEEL_RAISE's hold_ms measures it: with the IMU from the end of the
        # rising rotation (HeelRaises._top_start, -1 until then) to the start of the
        # lowering one (_top_end, -1 until then), else from the heel-off.
        core = self.device.core
        raises = core.raises
        rose = raises._start
        top = (raises._top_start if raises._top_end < 0 else -1) if core.imu else rose
        if (raises.state == _HEEL_UP and top >= 0 and rose != self._v[_TICKED_RISE]
                and rose >= self._v[_COUNTED_FROM] and index - top >= self._v[_HOLD_SAMPLES]):
            self._v[_TICKED_RISE] = rose
            self._signal(_HOLD_REACHED, index)

    # -- records -------------------------------------------------------------------

    def append(self, packet, length):
        kind = self.active
        ptype = packet[1]
        if not kind:
            return
        if ptype == T_STEP:
            if kind != _RAISES:
                self._on_step(kind, packet, HEADER_LEN)
        elif ptype == T_HEEL_RAISE and kind == _RAISES:
            self._on_raise(packet, HEADER_LEN)

    def _on_step(self, kind, rec, off):
        number = _u32(rec, off + 24)
        if number == self._v[_LAST_STEP]:
            return  # the other half of a stance counted already (IMU only: a rest between)
        self._v[_LAST_STEP] = number
        direction = rec[off + 14]
        ic = _u32(rec, off)
        at = _u32(rec, off + 4)
        at = at if at >= 0 else ic
        if kind <= _PROBE:
            fpa = _i16(rec, off + 12)
            if fpa == NA_I16 or direction != _DIR_FORWARD:
                return
            self._v[_N] += 1
            if kind == _BASELINE:
                self._v[_SUM] += fpa
            else:
                error = fpa - self._v[_TARGET]
                if (error if error > 0 else -error) <= self._v[_HALF]:
                    self._v[_HITS] += 1
        else:
            self._v[_N] += 1
            if direction == _DIR_FORWARD:
                self._v[_FORWARD_STEPS] += 1
            elif direction == _DIR_BACKWARD:
                self._v[_BACKWARD_STEPS] += 1
            if ic >= 0:
                last = self._v[_LAST_IC]
                if 0 <= last and ic - last <= self._v[_MAX_GAP] and (kind == _WALK or direction == _DIR_BACKWARD):
                    self._v[_SPAN] += ic - last
                self._v[_LAST_IC] = ic
        if self._done() >= self._v[_GOAL]:
            self._end_block(_END_GOAL, at)

    def _on_raise(self, rec, off):
        start = _u32(rec, off)
        end = _u32(rec, off + 4)
        if start < self._v[_COUNTED_FROM]:
            return  # raised during the rest: not counted
        if _u16(rec, off + 8) < self._v[_B]:
            self._v[_SHORT] += 1
            return
        self._v[_REPS] += 1
        self._v[_IN_SET] += 1
        if self._v[_IN_SET] < self._v[_GOAL]:
            return
        self._v[_IN_SET] = 0
        self._v[_SETS] += 1
        if self._v[_SETS] >= self._v[_A]:
            self._end_block(_END_GOAL, end)
            return
        self._signal(_SET_DONE, end)
        if self._v[_REST_SAMPLES]:
            self._v[_REST_UNTIL] = self._v[_COUNTED_FROM] = end + self._v[_REST_SAMPLES]

    def decide(self):
        # Feedback blocks: the band test (cue.CueEngine.decide, on the block's band),
        # then the fading rule: the k-th out-of-band step adds p_k % to an accumulator,
        # exactly (scaled by the schedule's denominator), and is cued when that reaches
        # 100 %; else its CUE says faded.
        if self.active != _FEEDBACK:
            return
        d = self.device
        core = d.core
        tracker = core.imu_tracker
        fpa = tracker.fpa_cdeg
        direction = tracker.direction
        # Only steps that will count as steps with a foot angle: forward (on a pressure
        # insole the roll-over may still say so at toe-off).
        if fpa == NA_I16 or direction == _DIR_BACKWARD or (direction != _DIR_FORWARD and not core.n_pressure):
            return
        t_known = d._ticks_us()
        known_ms = d.clock.now_ms()
        cue = d.cue
        step = core.steps + 1
        reason = cue.decide(self._cue_settings, step, fpa)
        if not reason:
            return
        self._v[_K] += 1
        den = self._v[_FADE_DEN]
        k1 = self._v[_K] - 1 if self._v[_K] - 1 < den else den
        self._v[_ACC] += self._v[_A] * den + (self._v[_B] - self._v[_A]) * k1
        outcome = _FADED
        if self._v[_ACC] >= 100 * den:
            self._v[_ACC] -= 100 * den
            outcome = _CUED
            self._v[_CUES] += 1
        d._cue(reason, outcome, cue.pattern, cue.duration_ms, step, core.sample_index - 1,
               known_ms, t_known, fpa, self._v[_TARGET], self._v[_HALF], self._v[_K])

    # -- sessions and blocks -------------------------------------------------------

    def _open_session(self, index):
        s = self.state
        if s.open:
            self._emit(_SESSION_RESUME, 0, index, 0)
        else:
            s.open = 1
            s.block = 0
            self._emit(_SESSION_START, 0, index, 0)
        self._start_block(index)

    def _reset_block(self):
        v = self._v
        for i in range(_N, _FLAGS):
            v[i] = 0
        v[_LAST_IC] = v[_LAST_STEP] = v[_TICKED_RISE] = -1

    def _start_block(self, index):
        s = self.state
        k = s.block
        kind, flags, goal, spm, a, b, rest_s, limit_s, _ = self.program.block(k)
        self._reset_block()
        d = self.device
        rate = d.core.rate_chz
        self.active = kind
        self._v[_FLAGS] = flags
        self._v[_GOAL] = s.goals[k] if kind == _WALK else goal
        self._v[_A] = a
        self._v[_B] = b
        self._v[_FADE_DEN] = goal - 1 if goal > 2 else 1  # max(goal - 1, 1)
        self.metronome_spm = spm if flags & _FLAG_METRONOME else 0
        d.metronome.disarm()  # re-armed at this block's cadence, or not at all
        self._v[_REST_SAMPLES] = _samples_for_s(rest_s, rate)
        self._v[_HOLD_SAMPLES] = samples_for_ms(b, rate)
        self._v[_MAX_GAP] = samples_for_ms(_MAX_GAP_MS, rate)
        self._v[_LIMIT_INDEX] = index + _samples_for_s(limit_s, rate) if limit_s else _NEVER
        self.due = -1 if kind == _RAISES else self._v[_LIMIT_INDEX]
        settings = d.settings
        self._v[_TARGET] = s.target_cdeg if s.band_set else settings.fpa_target_cdeg
        self._v[_HALF] = s.half_width_cdeg if s.band_set else settings.fpa_half_width_cdeg
        self._v[_BAND_KNOWN] = kind == _FEEDBACK or kind == _PROBE
        if kind == _FEEDBACK:
            # The cue's shape from the settings, its band from the program; every
            # out-of-band step (the fading is the block's own).
            c = self._cue_settings
            c.fpa_target_cdeg = self._v[_TARGET]
            c.fpa_half_width_cdeg = self._v[_HALF]
            c.toe_in_pattern = settings.toe_in_pattern
            c.toe_out_pattern = settings.toe_out_pattern
            c.cue_duration_ms = settings.cue_duration_ms
            c.cue_ms_per_deg = settings.cue_ms_per_deg
            c.cue_max_ms = settings.cue_max_ms
        self._emit(_BLOCK_START, 0, index, 1)
        self._v[_DIRTY] = 1

    def _done(self):
        # Progress in the goal's unit.
        kind = self.active
        if kind == _RAISES:
            return self._v[_REPS]
        if kind == _BACKWARD or (kind == _WALK and self._v[_FLAGS] & _FLAG_SECONDS):
            return ms_for_samples(self._v[_SPAN], self.device.core.rate_chz) // 1000
        return self._v[_N]

    def _end_block(self, detail, index):
        kind = self.active
        n = self._v[_N]
        value = value2 = NA_I16
        if kind == _BASELINE:
            if n:
                total = self._v[_SUM]
                mean = (2 * (total if total > 0 else -total) + n) // (2 * n)  # half away from zero
                value = mean if total >= 0 else -mean
            value2 = n
        elif kind <= _PROBE:
            if n:
                value = (self._v[_HITS] * 1000 + n // 2) // n
            value2 = self._v[_CUES] if kind == _FEEDBACK else n
        elif kind == _BACKWARD:
            value = self._v[_FORWARD_STEPS]
            value2 = self._v[_BACKWARD_STEPS]
        elif kind == _RAISES:
            value = self._v[_SHORT]
            value2 = self._v[_SETS]
        else:
            value = n
            value2 = ms_for_samples(self._v[_SPAN], self.device.core.rate_chz) // 1000
        s = self.state
        if kind == _BASELINE and n and detail != _END_INTERRUPTED:
            # The band the following blocks use: baseline + change, +- half width.
            target = value + self._v[_A]
            s.band_set = 1
            s.target_cdeg = self._v[_TARGET] = -_I16_MAX if target < -_I16_MAX else min(target, _I16_MAX)
            s.half_width_cdeg = self._v[_HALF] = self._v[_B]
            self._v[_BAND_KNOWN] = 1
        self._emit(_BLOCK_END, detail, index, 1, self._done(), _sat_i16(value), _sat_i16(value2))
        last = s.block + 1 >= self.program.n_blocks
        if detail != _END_INTERRUPTED:
            if kind == _WALK:
                self._progress(s.block, detail == _END_GOAL)
            self._signal(_SESSION_DONE if last else _BLOCK_DONE, index)
        self.active = 0
        self.metronome_spm = 0
        self.due = _NEVER
        self._v[_DIRTY] = 1
        self.device.metronome.disarm()
        if detail == _END_INTERRUPTED:
            return  # the session stays open: the next stream starts this block again
        if not last:
            s.block += 1
            self._start_block(index)
            return
        self._emit(_SESSION_END, 0, index, 0)
        s.open = 0
        s.block = 0
        s.session += 1

    def _progress(self, k, reached):
        # A session that reached the goal lengthens the streak, one that did not ends it;
        # progress_after sessions in a row raise the goal by progress_pct % (at least 1).
        s = self.state
        pct = self._v[_A]
        if not reached or not pct:
            s.streaks[k] = 0
            return
        s.streaks[k] += 1
        if s.streaks[k] >= self._v[_B]:
            goal = s.goals[k]
            step = goal * pct // 100
            goal += step if step > 0 else 1
            s.goals[k] = goal if goal < _GOAL_MAX else _GOAL_MAX
            s.streaks[k] = 0

    def _signal(self, pattern, index):
        d = self.device
        d.player.start(pattern, 0, d.settings.cue_duty_pct, d.clock.now_ms())
        d._motor_flag.set()
        self._emit(_SIGNAL, pattern, index, 1)

    def _emit(self, event, detail, index, of_block, done=-1, value=NA_I16, value2=NA_I16):
        # One PROGRAM_EVENT; of_block: the running block's fields (block, kind, goal, done,
        # band) apply, else n/a (session events). At a block's end they are still set.
        s = self.state
        band = of_block and self._v[_BAND_KNOWN]
        if of_block and done < 0:
            done = self._done() if self.active else 0
        struct.pack_into(
            _EVENT_FMT, self.record, 0, event,
            s.block if of_block else NA_U8, self.active if of_block else NA_U8, detail, index, s.session,
            self.program.program_id, self._v[_GOAL] if of_block else NA_U16,
            (done if done < _GOAL_MAX else _GOAL_MAX) if of_block else NA_U16, value, value2,
            self._v[_TARGET] if band else NA_I16, self._v[_HALF] if band else NA_U16)
        self.device._send_event(T_PROGRAM_EVENT, self.record, PROGRAM_EVENT_LEN)
