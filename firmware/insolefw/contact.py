# Contact events and heel raises from pressure, one sample at a time, integers only.
#
# update() methods are on the sampling path: they must not allocate.
from micropython import const
import struct
from array import array

from insolefw.protocol import HEEL_RAISE_LEN
from insolefw.units import samples_for_ms, ms_for_samples

_HISTORY = const(32)  # samples of summed pressure kept to backtrack onsets (power of 2)
_HISTORY_MASK = const(31)

_RAISE_FMT = "<IIHHHH"


class PressureContact:
    """Initial contact and toe-off from the summed pressure, with adaptive thresholds.

    The unloaded floor `lo` follows the swing baseline (sensor drift) and the loaded
    level `hi` is a peak envelope that decays slowly, so thresholds scale with the
    wearer's load without per-person tuning. Onsets are backtracked to where the sum
    left the floor, so events are not late by the rise time.
    """

    ON_PERMILLE = 120  # contact once the sum exceeds lo + 12 % of the range
    OFF_PERMILLE = 80  # unloading below lo + 8 % ...
    FLOOR_PERMILLE = 25  # ... toe-off where it reaches lo + 2.5 %
    CONFIRM_SAMPLES = 2

    def __init__(self):
        self._history = array("i", bytes(4 * _HISTORY))
        self.reset(10000)

    def reset(self, rate_chz):
        self.rate_chz = rate_chz
        self.lo = -1
        self.hi = 0
        self.state = 0  # 0 unknown, 1 swing, 2 stance, 3 unloading
        self._above = 0
        self._unload_start = 0
        self.ic_index = -1
        self.to_index = -1
        self._max_unload = samples_for_ms(150, rate_chz)
        self.min_stance = samples_for_ms(100, rate_chz)
        for i in range(_HISTORY):
            self._history[i] = 0

    def update(self, index, total):
        """Returns 1 at a confirmed initial contact, 2 at a toe-off, else 0."""
        self._history[index & _HISTORY_MASK] = total
        if self.lo < 0:
            self.lo = total
            self.hi = total
            return 0
        lo = self.lo
        # Peak envelope: jumps up, decays ~0.1 % of the range per sample.
        if total > self.hi:
            self.hi = total
        else:
            self.hi -= (self.hi - lo) >> 10
        if total < lo:
            self.lo = lo = total
        span = self.hi - lo
        min_span = (self.hi >> 3) + 8  # a real step unloads the foot well below its load
        if span < min_span:
            return 0
        on = lo + span * self.ON_PERMILLE // 1000
        off = lo + span * self.OFF_PERMILLE // 1000
        floor = lo + span * self.FLOOR_PERMILLE // 1000
        state = self.state
        if state <= 1:
            if state == 1 or total < off:
                # Follow the swing baseline upward slowly (drift), never above `off`.
                if total > lo and state == 1:
                    self.lo = lo + ((total - lo) >> 6)
                if total > on:
                    self._above += 1
                    if self._above >= self.CONFIRM_SAMPLES and state == 1:
                        self._above = 0
                        self.state = 2
                        self.ic_index = self._onset_before(index, floor)
                        return 1
                else:
                    self._above = 0
                if state == 0 and total < off:
                    self.state = 1
            elif total > on:
                self.state = 2  # started in stance: no IC for this partial step
                self.ic_index = -1
            return 0
        if state == 2:
            if total < off:
                self.state = 3
                self._unload_start = index
            return 0
        # state 3: unloading toward the floor
        if total > on:
            self.state = 2  # a dip within stance, not a toe-off
            return 0
        if total <= floor or index - self._unload_start >= self._max_unload:
            self.state = 1
            self.to_index = index
            return 2
        return 0

    def _onset_before(self, index, floor):
        # The first sample of the rise: walk back while the sum is above the floor.
        i = index
        oldest = index - _HISTORY + 1
        while i > oldest and i > 0 and self._history[(i - 1) & _HISTORY_MASK] > floor:
            i -= 1
        return i


class HeelRaises:
    """Heel-raise repetitions: the forefoot stays loaded while the heel unloads and holds.

    A raise must start from standing (the heel loaded for a while) and hold at least
    MIN_HOLD_MS, which separates it from the heel-off of walking (about 150 ms).
    """

    MIN_HOLD_MS = 400
    MIN_STAND_MS = 500
    SET_GAP_MS = 15000

    def __init__(self):
        self.record = bytearray(HEEL_RAISE_LEN)
        self.reset(10000)

    def reset(self, rate_chz):
        self.rate_chz = rate_chz
        self._min_hold = samples_for_ms(self.MIN_HOLD_MS, rate_chz)
        self._min_stand = samples_for_ms(self.MIN_STAND_MS, rate_chz)
        self._set_gap = samples_for_ms(self.SET_GAP_MS, rate_chz)
        self.state = 0  # 0 not standing, 1 standing flat, 2 heel up
        self._since = 0
        self._start = 0
        self._last_end = -1
        self.rep = 0
        self.set = 0

    def update(self, index, total, heel, fore, loaded):
        """Returns True when a repetition ended; its record is in self.record."""
        state = self.state
        if not loaded:
            self.state = 0
            return False
        heel_up = heel * 10 < total and fore * 2 > total  # heel < 10 %, forefoot > 50 %
        heel_down = heel * 4 > total  # heel carries > 25 %
        if state == 0:
            if heel_down:
                self.state = 1
                self._since = index
            return False
        if state == 1:
            if heel_up and index - self._since >= self._min_stand:
                self.state = 2
                self._start = index
            elif not heel_down and not heel_up:
                self._since = index  # rolling over, as in walking: not standing flat
            return False
        if heel_down:
            self.state = 1
            self._since = index
            hold = index - self._start
            if hold < self._min_hold:
                return False
            if self._last_end < 0 or self._start - self._last_end > self._set_gap:
                self.set += 1
                self.rep = 0
            self.rep += 1
            self._last_end = index
            struct.pack_into(_RAISE_FMT, self.record, 0, self._start, index,
                             min(ms_for_samples(hold, self.rate_chz), 65534), self.rep, self.set, 0)
            return True
        return False
