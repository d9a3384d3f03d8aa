# Haptic cueing on the device: the per-step decision (foot-angle band and schedule),
# the pulse patterns and the CUE record (docs/protocol.md).
#
# Everything here runs once per step or per beat, never per sample; the cadence
# metronome's schedule is Metronome, its task in app.py. Host twin of the decision:
# host/insole/gait/cue.py.
from micropython import const
import struct
from array import array

from insolefw.protocol import CUE_LEN, NA_U16, TIME_MASK, time_add_ms, time_diff_ms
from insolefw.settings import SCHEDULE_EVERY_KTH, SCHEDULE_PROBABILITY

# CUE reason codes
REASON_TOE_IN = const(1)  # FPA above the band: toes out too far, turn them in
REASON_TOE_OUT = const(2)  # FPA below the band: turn the toes out
REASON_METRONOME = const(3)
REASON_TEST = const(4)

# CUE outcome codes
CUED = const(0)
FADED_EVERY_KTH = const(1)  # out of band, but not the k-th out-of-band step
FADED_PROBABILITY = const(2)  # out of band, but the draw said no
NO_FEEDBACK_BLOCK = const(3)  # out of band inside a no-feedback block

NA_U32 = 0xFFFFFFFF
_CUE_FMT = const("<IIIIHhhHBBBBHH")
_SEED_ZERO = const(0xACE1)  # xorshift needs a non-zero state; seed 0 starts here

# Pulse patterns: motor on/off segments as weights of the cue's whole duration, on
# first, alternating. 1 long, 2 short-short, 3 triple, 4 long-short.
PATTERNS = ((1,), (1, 1, 1), (1, 1, 1, 1, 1), (2, 1, 1))
# An exercise program's signals (docs/programs.md, "Haptic vocabulary"), patterns 5..9:
# fixed on/off segments in ms, whatever duration is asked for. 5 hold reached, 6 set
# done, 7 rest over, 8 block done, 9 session done.
_SIGNAL_PATTERNS = const(((60,), (250, 150, 250), (60, 90, 60, 90, 60), (300, 150, 300, 150, 300), (1200,)))
_FIRST_SIGNAL = const(5)
_MAX_SEGMENTS = const(5)
_MINUTE_MS = const(60000)


def xorshift16(x):
    """The schedule's PRNG step (xorshift 7/9/8 on 16 bits, period 65535)."""
    x ^= (x << 7) & 0xFFFF
    x ^= x >> 9
    return x ^ ((x << 8) & 0xFFFF)


class CueEngine:
    """The per-step decision. decide() returns a reason (0: in band, nothing to log)
    and leaves outcome, pattern and duration_ms for the caller."""

    def __init__(self):
        self.record = bytearray(CUE_LEN)  # the CUE payload being built: 32 bytes
        self.reset(1)

    def reset(self, seed):
        """At the start of each stream and after a settings write."""
        self._rng = (seed & 0xFFFF) or _SEED_ZERO
        self.out_of_band = 0  # out-of-band steps since the stream began
        self.eligible = 0  # of those, inside feedback blocks (the k-th counter)
        self.outcome = CUED
        self.pattern = 0
        self.duration_ms = 0

    def decide(self, s, step_number, fpa_cdeg):
        error = fpa_cdeg - s.fpa_target_cdeg
        excess = (error if error > 0 else -error) - s.fpa_half_width_cdeg
        if excess <= 0:
            return 0
        reason = REASON_TOE_IN if error > 0 else REASON_TOE_OUT
        self.pattern = s.toe_in_pattern if error > 0 else s.toe_out_pattern
        # Fixed length, or growing by cue_ms_per_deg per degree beyond the band, capped.
        duration = s.cue_duration_ms
        if s.cue_ms_per_deg:
            duration = min(duration + (s.cue_ms_per_deg * excess + 50) // 100, s.cue_max_ms)
        self.duration_ms = duration
        if self.out_of_band < 65534:
            self.out_of_band += 1
        cycle = s.block_on_steps + s.block_off_steps
        if s.block_off_steps and (step_number - 1) % cycle >= s.block_on_steps:
            self.outcome = NO_FEEDBACK_BLOCK
            return reason
        self.eligible += 1
        self.outcome = CUED
        if s.schedule == SCHEDULE_EVERY_KTH:
            if self.eligible % s.fade_every:
                self.outcome = FADED_EVERY_KTH
        elif s.schedule == SCHEDULE_PROBABILITY:
            self._rng = xorshift16(self._rng)
            if self._rng % 100 >= s.fade_probability_pct:
                self.outcome = FADED_PROBABILITY
        return reason

    def pack(self, step_number, index, decision_ms, start_ms, latency_us, fpa_cdeg,
             target_cdeg, half_width_cdeg, reason, outcome, pattern, duty_pct, duration_ms,
             out_of_band):
        """Fills self.record and returns its length; -1 marks a field not available."""
        struct.pack_into(
            _CUE_FMT, self.record, 0,
            NA_U32 if step_number < 0 else step_number,
            NA_U32 if index < 0 else index,
            decision_ms & TIME_MASK,
            NA_U32 if start_ms < 0 else start_ms & TIME_MASK,
            NA_U16 if latency_us < 0 else min(latency_us, 65534),
            fpa_cdeg, target_cdeg, half_width_cdeg, reason, outcome, pattern, duty_pct,
            duration_ms, NA_U16 if out_of_band < 0 else out_of_band)
        return CUE_LEN


class CuePlayer:
    """Plays one pattern on the motor. start() switches the motor on at once (so the
    cue's latency is the decision's, not a task switch's); service() switches the
    following edges and says how long until the next one (-1: done). A new start()
    replaces a pattern still playing."""

    def __init__(self, motor):
        self.motor = motor
        self._edges = array("H", bytes(2 * _MAX_SEGMENTS))  # ms from start: 10 bytes
        self._n = 0
        self._next = 0
        self._start_ms = 0
        self._duty = 0
        self.active = False

    def start(self, pattern, duration_ms, duty_pct, now_ms):
        signal = pattern >= _FIRST_SIGNAL
        weights = _SIGNAL_PATTERNS[pattern - _FIRST_SIGNAL] if signal else PATTERNS[pattern - 1]
        total = 0
        for w in weights:
            total += w
        if signal:
            duration_ms = total  # the weights are ms
        acc = 0
        for i in range(len(weights)):
            acc += weights[i]
            self._edges[i] = duration_ms * acc // total
        self._n = len(weights)
        self._next = 0
        self._start_ms = now_ms
        self._duty = duty_pct
        self.active = True
        self.motor.on(duty_pct)

    def service(self, now_ms):
        if not self.active:
            return -1
        elapsed = (now_ms - self._start_ms) & TIME_MASK
        while self._next < self._n and elapsed >= self._edges[self._next]:
            self._next += 1
            if self._next & 1:
                self.motor.off()
            else:
                self.motor.on(self._duty)
        if self._next >= self._n:
            self.active = False
            return -1
        return self._edges[self._next] - elapsed


class Metronome:
    """The cadence metronome's beat schedule, in device time, free of hardware and clocks.

    Beat n (1-based) is due (n - 1) * 60000 // spm ms after the first: no rounding
    accumulates. The schedule is re-anchored at every full minute (spm beats are exactly
    60000 ms), so products stay below 60000 * spm and sums within the clock's 2**30
    wrap: small ints on the ESP32, nothing allocated per beat, however long the session.
    A beat due when the one after it is due as well (the task was held up for a whole
    beat) is skipped, not played in a burst with it; its number is not reused.
    """

    def __init__(self):
        self.beat = 0  # number of the next beat, 1-based; 0: not armed
        self._spm = 1
        self._anchor_ms = 0  # device time of the current minute's first beat
        self._in_minute = 0  # beats of the current minute before the next one: 0..spm-1

    def arm(self, now_ms, spm):
        """Starts the schedule: the first beat is due at now_ms."""
        self.beat = 1
        self._spm = spm
        self._anchor_ms = now_ms
        self._in_minute = 0

    def disarm(self):
        self.beat = 0

    def due_ms(self):
        """Device time at which the next beat is due."""
        return time_add_ms(self._anchor_ms, self._in_minute * _MINUTE_MS // self._spm)

    def due_in_ms(self, now_ms):
        """ms until the next beat is due; 0 or less: it is due, late by minus that."""
        wait = time_diff_ms(self.due_ms(), now_ms)
        while True:
            k = self._in_minute
            interval = (k + 1) * _MINUTE_MS // self._spm - k * _MINUTE_MS // self._spm
            if wait + interval > 0:
                return wait
            wait += interval  # the one after is due too: skip this one
            self.advance()

    def advance(self):
        """The next beat was given (or skipped): the one after it is next."""
        self.beat += 1
        self._in_minute += 1
        if self._in_minute == self._spm:
            self._anchor_ms = time_add_ms(self._anchor_ms, _MINUTE_MS)
            self._in_minute = 0
