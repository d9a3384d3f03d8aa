# The metronome and cue paths of the whole Device under micropython.heap_lock() over
# 3-hour simulated sessions whose clocks cross their wraps: the board's ticks_ms and
# ticks_us (every 17.9 min on the ESP32) and the device time's 2**30 ms. On the ESP32
# (and the 32-bit unix build, scripts/build-micropython-esp32.sh) a value beyond
# +-2**30 is a big int: allocated, MemoryError under heap_lock. Beat times must stay
# exact: beat n due (n - 1) * 60000 // spm ms after the first, however long it runs.
#
# The clocks are simulated and moved on by the test only (the board's ticks_ms and
# ticks_us hooks), and the Device's tasks are driven by hand: asyncio.sleep_ms yields
# to the test, which advances the clocks by the time asked plus a little lateness.
import micropython
import time
from array import array

import board

_MINUTE_MS = 60000
_SESSION_MS = 3 * 3600 * 1000
_TIME_MASK = 0x3FFFFFFF  # the protocol's device time wraps at 2**30 ms
_LATENESS_MS = (0, 1, 3, 0, 2)  # how late the simulated scheduler resumes a task


class _SimClock:
    """The board's ticks_ms and ticks_us, in this interpreter's own ticks period (2**30
    on the ESP32), starting a few minutes before each wraps; counts their wraps."""

    def __init__(self):
        self.restart()

    def restart(self):
        self.ms = time.ticks_add(0, -7 * _MINUTE_MS)
        self.us = time.ticks_add(0, -3 * _MINUTE_MS * 1000)
        self.ms_wraps = 0
        self.us_wraps = 0

    def ticks_ms(self):
        return self.ms

    def ticks_us(self):
        return self.us

    def advance(self, ms):
        ms_before = self.ms
        us_before = self.us
        self.ms = time.ticks_add(self.ms, ms)
        self.us = time.ticks_add(self.us, ms * 1000)
        if self.ms < ms_before:
            self.ms_wraps += 1
        if self.us < us_before:
            self.us_wraps += 1


_SIM = _SimClock()
board.ticks_ms = _SIM.ticks_ms
board.ticks_us = _SIM.ticks_us

import device_fixture  # noqa: E402,F401  (makes the Device, on the simulated clocks)
from cue_device_harness import StubCore, device  # noqa: E402
from insolefw import app  # noqa: E402
from insolefw import protocol as P  # noqa: E402
from insolefw.cue import Metronome  # noqa: E402
from insolefw.settings import CUE_FPA_BAND, CUE_METRONOME, Settings  # noqa: E402


# --------------------------------------------------------------------------- the schedule alone


def test_schedule_is_exact_across_minutes_and_the_device_time_wrap():
    for spm in (40, 117, 200):
        t1 = _TIME_MASK - 90000  # the device time wraps during the second minute
        m = Metronome()
        m.arm(t1, spm)
        for n in range(1, 3 * spm + 5):
            assert m.beat == n
            assert m.due_ms() == (t1 + (n - 1) * _MINUTE_MS // spm) % (_TIME_MASK + 1), (spm, n)
            m.advance()


def test_due_in_ms_counts_down_and_a_held_up_task_skips_what_it_missed():
    m = Metronome()
    m.arm(1000, 120)  # a beat every 500 ms
    assert m.due_in_ms(1000) == 0 and m.beat == 1
    m.advance()
    assert m.due_in_ms(1100) == 400
    assert m.due_in_ms(1503) == -3  # 3 ms late: still this beat
    # Held up until 2700: beats 2, 3 and 4 (due 1500, 2000, 2500) are over; beat 5
    # (3000) is not yet, so beat 4 is given, 200 ms late, and 2 and 3 are skipped.
    assert m.due_in_ms(2700) == -200
    assert (m.beat, m.due_ms()) == (4, 2500)
    m.advance()
    assert m.due_in_ms(2700) == 300
    m.disarm()
    assert m.beat == 0


# --------------------------------------------------------------------------- the Device's paths


class _SimAsyncio:
    """Stands in for asyncio in insolefw.app: sleep_ms() yields once to the test, which
    then moves the clocks on (preallocated, like asyncio's own SingletonGenerator)."""

    def __init__(self):
        self.asked_ms = 0
        self._yielded = True
        self._stop = StopIteration()

    def sleep_ms(self, ms):
        self.asked_ms = ms
        self._yielded = False
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if not self._yielded:
            self._yielded = True
            return None
        self._stop.__traceback__ = None
        raise self._stop


class _Motor:
    def __init__(self):
        self.ons = 0
        self.offs = 0

    def on(self, duty):
        self.ons += 1

    def off(self):
        self.offs += 1


def _u32(buf, off):
    if buf[off + 3] >= 0x40:  # beyond device time: would be a big int here
        return -1
    return buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 | buf[off + 3] << 24


class _CueChecker:
    """The Device's event link: checks each CUE event as it is sent, allocating nothing.
    The first failure is kept (code, at which cue) and asserted after the heap is free."""

    def __init__(self):
        self.cues = 0
        self.failure = 0
        self.failed_at = 0

    def fail(self, code):
        if not self.failure:
            self.failure = code
            self.failed_at = self.cues

    def send(self, buf, n):
        if buf[1] != P.T_CUE:
            self.fail(1)
            return True
        o = P.HEADER_LEN
        self.check(_u32(buf, o), _u32(buf, o + 8), _u32(buf, o + 12), buf[o + 16] | buf[o + 17] << 8,
                   buf[o + 24])
        self.cues += 1
        return True


class _BeatChecker(_CueChecker):
    """Beat k (0-based) due k * 60000 // spm ms after the first in its first minute, and
    exactly 60000 ms after beat k - spm from then on: together, the exact schedule."""

    def __init__(self, spm, first_due_ms):
        super().__init__()
        self.spm = spm
        self.first_due_ms = first_due_ms
        self.ring = array("i", bytes(4 * spm))  # the last minute's due times

    def check(self, number, due, start, latency_us, reason):
        k = self.cues
        if reason != 3 or number != k + 1:
            self.fail(2)
        elif due < 0 or start < 0:
            self.fail(3)
        elif k < self.spm and (due - self.first_due_ms) & _TIME_MASK != k * _MINUTE_MS // self.spm:
            self.fail(4)
        elif k >= self.spm and (due - self.ring[k % self.spm]) & _TIME_MASK != _MINUTE_MS:
            self.fail(5)
        elif not 0 <= (start - due) & _TIME_MASK <= 3:  # the motor starts when the task resumes
            self.fail(6)
        elif latency_us != ((start - due) & _TIME_MASK) * 1000:  # from the due time, on ticks_us
            self.fail(7)
        self.ring[k % self.spm] = due


def _drive(task, sim_asyncio, duration_ms, between=None):
    """Runs the task under heap_lock for duration_ms of simulated time."""
    send = task.send
    elapsed = 0
    n = 0
    micropython.heap_lock()
    try:
        while elapsed < duration_ms:
            send(None)  # the task runs to its next sleep_ms
            step = sim_asyncio.asked_ms + _LATENESS_MS[n % 5]
            _SIM.advance(step)
            elapsed += step
            n += 1
    finally:
        micropython.heap_unlock()
    return elapsed


def _session(spm, duration_ms):
    d = device()
    s = Settings()
    s.cue_mode = CUE_METRONOME
    s.metronome_spm = spm
    s.metronome_pulse_ms = 40
    d.settings = s
    d.motor = d.player.motor = _Motor()
    d.mode = app.MODE_REPLAY
    d.running = True
    d._restart_cueing()
    first_due = _start_clocks()
    checker = _BeatChecker(spm, first_due)
    d.out = checker
    sim_asyncio = _SimAsyncio()
    real_asyncio = app.asyncio
    app.asyncio = sim_asyncio
    task = d.metronome_task()
    try:
        elapsed = _drive(task, sim_asyncio, duration_ms)
        d.running = False
        try:
            task.send(None)
        except StopIteration:
            pass
    finally:
        app.asyncio = real_asyncio
        d.mode = app.MODE_IDLE
        d.running = True
    assert not checker.failure, ("failure", checker.failure, "at beat", checker.failed_at + 1,
                                 "spm", spm, "of", checker.cues)
    expected = elapsed * spm // _MINUTE_MS
    assert expected - 1 <= checker.cues <= expected + 1, (checker.cues, expected)
    assert d.motor.ons == checker.cues
    return first_due


def _start_clocks():
    """Fresh simulated clocks before their wraps, and the device time 30 min before its
    own 2**30 ms wrap (as 12.4 days after power-on). Returns the device time."""
    _SIM.restart()
    d = device()
    d.clock = app.Clock(board.ticks_ms)
    d.clock._ms = _TIME_MASK - 30 * _MINUTE_MS
    return d.clock.now_ms()


def _crossed_the_wraps(first_ms):
    return _SIM.ms_wraps >= 1, _SIM.us_wraps >= 1, device().clock.now_ms() < first_ms


def test_metronome_at_200_spm_for_three_hours_is_exact_and_allocates_nothing():
    # 200 steps/min: beat * 60000 passes 2**30 after 89 minutes.
    first_due = _session(200, _SESSION_MS)
    assert _crossed_the_wraps(first_due) == (True, True, True)


def test_metronome_at_an_uneven_rate_for_three_hours_is_exact():
    # 60000 / 117 is not whole: the beats are 512 or 513 ms apart, a minute exactly 60000.
    first_due = _session(117, _SESSION_MS)
    assert _crossed_the_wraps(first_due) == (True, True, True)


class _StrideChecker(_CueChecker):
    """Per-step cues: decided when the stride's foot angle is known (now, on the
    simulated clock), the motor started in the same instant (latency 0 on ticks_us)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def check(self, number, decided, start, latency_us, reason):
        now = self.clock.now_ms()
        if reason != 1 or number != self.cues + 1:
            self.fail(2)
        elif decided != now or start != now:
            self.fail(3)
        elif latency_us != 0:
            self.fail(4)


def test_step_cues_for_three_hours_across_the_wraps_allocate_nothing():
    d = device()
    s = Settings()
    s.cue_mode = CUE_FPA_BAND
    s.fpa_target_cdeg = 500
    s.fpa_half_width_cdeg = 200
    s.cue_duration_ms = 300
    d.settings = s
    d.motor = d.player.motor = motor = _Motor()
    d.core = core = StubCore(d.events, [])
    core.imu_tracker.fpa_cdeg = 2000  # 15° beyond the band: toe in, every step
    d._restart_cueing()
    first = _start_clocks()
    checker = _StrideChecker(d.clock)
    d.out = checker
    player = d.player
    elapsed = 0
    micropython.heap_lock()
    try:
        while elapsed < _SESSION_MS:
            core.sample_index += 114  # a 1.1 s stride at 104 Hz
            d._cue_step()
            core.steps += 1
            # The motor task's part: the pulse's edges, on device time across the wrap.
            wait = player.service(d.clock.now_ms())
            while wait >= 0:
                _SIM.advance(wait if wait < 10 else 10)
                elapsed += wait if wait < 10 else 10
                wait = player.service(d.clock.now_ms())
            _SIM.advance(800)
            elapsed += 800
    finally:
        micropython.heap_unlock()
    assert not checker.failure, ("failure", checker.failure, "at step", checker.failed_at + 1)
    assert checker.cues == core.steps and checker.cues > 9000, checker.cues
    assert motor.ons == motor.offs == checker.cues, (motor.ons, motor.offs, checker.cues)
    assert _crossed_the_wraps(first) == (True, True, True)
