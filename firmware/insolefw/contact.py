# Contact events and heel raises from pressure, one sample at a time, integers only.
#
# update() methods are on the sampling path: they must not allocate. The host keeps a
# twin of the same state machines (host/insole/gait/contact.py, defaults in its
# *Parameters classes); change both together (tests/test_gait_pressure.py checks that
# they agree).
from micropython import const
import struct
from array import array

from insolefw.protocol import HEEL_RAISE_LEN, NA_I16
from insolefw.units import samples_for_ms, ms_for_samples

_HISTORY = const(64)  # samples kept to backtrack onsets and to average windows (power of 2)
_HISTORY_MASK = const(63)
_MAX_WINDOW = const(32)  # direction windows: 32 moments of <= 16 * 4095 * 440 stay below 2**30
_MAX_CHANNELS = const(16)

# Contact states
_UNKNOWN = const(0)  # no trusted unloaded level yet
_SWING = const(1)
_STANCE = const(2)
_UNLOADING = const(3)  # below the toe-off level, not yet for long enough

_RAISE_FMT = const("<IIHHHH")


class PressureContact:
    """Initial contact and toe-off from the summed pressure, with adaptive levels.

    Two levels adapt to the wearer and the sensors, so nothing is tuned per person:
    `floor` is the unloaded foot (it drops at once to any lower reading and creeps up
    with baseline drift while the foot is in the air), `load` the typical stance peak
    (the highest reading until a first stance is accepted, then a running average of
    stance peaks, quick to rise and slow to fall). Within their range:

    * the foot is on the ground above 1.2 % (CONTACT, as low as sensor noise allows):
      a stance starts once the load exceeds 30 % (light touches, a foot resting while
      seated and sensor noise stay below), and its initial contact is backtracked to
      where the sum rose above 1.2 %; a foot that rested on the ground before (above
      1.2 % for all of the 64-sample history, e.g. seated, then standing up) is
      loaded, not stepping: that stance gets no IC and makes no step;
    * toe-off is the first sample at or below 10 % (OFF) after which the sum stays at
      or below 10 % for 30 ms and gets back under 1.2 %: compliant sensors relax for
      tens of ms after the foot has left (10 % matches the vendor's toe-off on Moticon
      data; on the gaitpdb force insoles it is ~24 ms before force reaches 2 %), a dip
      inside a stance is not a toe-off, and a foot that pivots or slides on the ground
      without unloading takes no step;
    * until a first stance has been learned the floor is trusted only below 1/8 of
      the load, so a stream that starts with the weight swaying between the feet
      never takes that for a swing; later, swaying never gets back near the floor.

    Per stance it also keeps the load-weighted centre of pressure over the first and
    the last 80 ms (roll-over, for the walking direction): sum(moment) / sum(total >> 4)
    over the window, from the per-sample `moment` = sum((p >> 4) * x_mm) given by the
    caller.
    """

    CONTACT_PERMILLE = 12
    CONFIRM_PERMILLE = 300
    OFF_PERMILLE = 100
    FLOOR_TRUST_SHIFT = 3  # floor * 8 <= load
    MIN_RANGE = 64  # counts between floor and load before anything counts
    OFF_CONFIRM_MS = 30
    MIN_STANCE_MS = 100
    WINDOW_MS = 80

    def __init__(self):
        self._total = array("i", bytes(4 * _HISTORY))  # 256 B
        self._moment = array("i", bytes(4 * _HISTORY))  # 256 B
        self.last_p = array("H", bytes(2 * _MAX_CHANNELS))  # 32 B: last valid reading per channel
        self.reset(10000)

    def reset(self, rate_chz):
        self.rate_chz = rate_chz
        self.floor = -1
        self.load = 0
        self.learned = 0  # 1 once a stance has set `load`
        self.state = _UNKNOWN
        self.peak = 0
        self.ic_index = -1
        self.to_index = -1
        self._unload_start = 0
        self._left_ground = 0
        self._off_confirm = samples_for_ms(self.OFF_CONFIRM_MS, rate_chz) or 1
        self.min_stance = samples_for_ms(self.MIN_STANCE_MS, rate_chz)
        self._window = min(max(samples_for_ms(self.WINDOW_MS, rate_chz), 1), _MAX_WINDOW)
        self._early_end = 0
        self.early_weight = 0
        self.early_moment = 0
        self.late_weight = 0
        self.late_moment = 0
        for i in range(_HISTORY):
            self._total[i] = 0
            self._moment[i] = 0
        for k in range(_MAX_CHANNELS):
            self.last_p[k] = 0

    def update(self, index, total, moment):
        """Returns 1 at a confirmed initial contact (self.ic_index), 2 at a toe-off
        (self.to_index; the stance's windows are then in early_*/late_*), else 0."""
        h = index & _HISTORY_MASK
        self._total[h] = total
        self._moment[h] = moment
        floor = self.floor
        if floor < 0:
            self.floor = total
            self.load = total
            return 0
        if total < floor:
            self.floor = floor = total
        if not self.learned and total > self.load:
            self.load = total
        span = self.load - floor
        state = self.state
        if state < _STANCE:
            if span < self.MIN_RANGE or (not self.learned and (floor << self.FLOOR_TRUST_SHIFT) > self.load):
                self.state = _UNKNOWN
                return 0
            if total > floor + span * self.CONFIRM_PERMILLE // 1000:
                level = floor + span * self.CONTACT_PERMILLE // 1000
                ic = self._onset_before(index, level)
                if not (ic > 0 and ic > index - _HISTORY + 1 and self._total[(ic - 1) & _HISTORY_MASK] <= level):
                    # The foot has been on the ground for longer than the history (or
                    # since before the stream): loading a resting foot, as in standing
                    # up, is no step. A stance without IC.
                    ic = -1
                self._begin_stance(index, ic, total)
                return 1 if ic >= 0 else 0
            off = floor + span * self.OFF_PERMILLE // 1000
            if state == _UNKNOWN:
                if total <= off:
                    self.state = _SWING
            elif floor < total <= off:
                self.floor = floor + ((total - floor) >> 6)  # creep up with baseline drift
            return 0
        # In contact (stance or unloading).
        if total > self.peak:
            self.peak = total
        if index < self._early_end:
            self.early_weight += total >> 4
            self.early_moment += moment
        if total > floor + span * self.OFF_PERMILLE // 1000:
            self.state = _STANCE  # also ends a dip
            return 0
        if state == _STANCE:
            self.state = _UNLOADING
            self._unload_start = index
            self._left_ground = 0
        if total <= floor + span * self.CONTACT_PERMILLE // 1000:
            self._left_ground = 1
        if not self._left_ground or index - self._unload_start + 1 < self._off_confirm:
            return 0
        to = self._unload_start
        self.state = _SWING
        self.to_index = to
        ic = self.ic_index
        if ic < 0:
            return 0  # the stance the stream began in
        w = 0
        m = 0
        i = to - self._window
        if i < ic:
            i = ic
        while i < to:
            j = i & _HISTORY_MASK
            w += self._total[j] >> 4
            m += self._moment[j]
            i += 1
        self.late_weight = w
        self.late_moment = m
        self._learn(self.peak)
        return 2

    def _begin_stance(self, index, ic, total):
        self.state = _STANCE
        self.peak = total
        self.ic_index = ic
        # Early window: what the history holds now, the rest as it arrives.
        self._early_end = ic + self._window if ic >= 0 else 0
        w = 0
        m = 0
        i = ic
        while 0 <= i <= index and i < self._early_end:
            j = i & _HISTORY_MASK
            w += self._total[j] >> 4
            m += self._moment[j]
            i += 1
        self.early_weight = w
        self.early_moment = m

    def _learn(self, peak):
        # The typical stance load: quick to follow heavier stances, slow to give way.
        load = self.load
        if not self.learned:
            self.learned = 1
            self.load = peak
        elif peak > load:
            self.load = load + ((peak - load) >> 1)
        else:
            self.load = load - ((load - peak) >> 3)

    def _onset_before(self, index, level):
        # The first sample of the rise: walk back while the sum stays above `level`,
        # not past the history nor into the previous stance.
        i = index
        oldest = index - _HISTORY + 1
        first = self.to_index + 1
        while i > oldest and i > first and i > 0 and self._total[(i - 1) & _HISTORY_MASK] > level:
            i -= 1
        return i


class HeelRaises:
    """Heel-raise repetitions: the heel unloads onto the forefoot while the foot stays
    loaded, then comes back down.

    A raise starts from standing flat (the heel carried > 25 % for MIN_STAND_MS, at
    most MAX_LEAN_MS before it left) and keeps the heel up (< 10 %, forefoot > 50 %)
    for MIN_HOLD_MS until it carries > 12.5 % again. The heel-off of walking ends in a
    toe-off instead, and the toes-first contact of walking backward does not follow
    a flat stance. hold_ms is the time at the top: with the IMU, from the end of the
    rising rotation to the start of the lowering one (pitch rate within 1/16 of the
    rise's peak rate); without it, the whole time the heel was up.
    """

    MIN_HOLD_MS = 400
    MIN_STAND_MS = 250
    MAX_LEAN_MS = 1000
    SET_GAP_MS = 15000
    MIN_RISE_CDPS = 50  # 5 deg/s: slower pitching is no rising rotation

    def __init__(self):
        self.record = bytearray(HEEL_RAISE_LEN)
        self.reset(10000)

    def reset(self, rate_chz):
        self.rate_chz = rate_chz
        self._min_hold = samples_for_ms(self.MIN_HOLD_MS, rate_chz)
        self._min_stand = samples_for_ms(self.MIN_STAND_MS, rate_chz)
        self._max_lean = samples_for_ms(self.MAX_LEAN_MS, rate_chz)
        self._set_gap = samples_for_ms(self.SET_GAP_MS, rate_chz)
        self.state = 0  # 0 not loaded, 1 loaded (standing or rolling over), 2 heel up
        self._flat_since = -2
        self._flat_until = -2
        self._start = 0
        self._last_end = -1
        self.rep = 0
        self.set = 0
        self._rise_peak = 0
        self._top_start = -1
        self._calm_last = -1
        self._top_end = -1

    def update(self, index, total, heel, fore, loaded, pitch_rate):
        """pitch_rate: gyro y in 0.1 deg/s (heel up is positive), or NA_I16 without IMU.
        Returns True when a repetition ended; its record is in self.record."""
        if not loaded:
            self.state = 0
            self._flat_until = -2  # a raise starts from standing on this foot
            return False
        if self.state != 2:
            self.state = 1
            if heel * 4 > total:  # heel down: extend or restart the flat run
                if self._flat_until != index - 1:
                    self._flat_since = index
                self._flat_until = index
            elif (heel * 10 < total and fore * 2 > total
                  and self._flat_until - self._flat_since >= self._min_stand
                  and index - self._flat_until <= self._max_lean):
                self.state = 2
                self._start = index
                self._rise_peak = 0
                self._top_start = -1
                self._calm_last = -1
                self._top_end = -1
            return False
        # Heel up.
        if pitch_rate != NA_I16 and self._top_end < 0:
            self._track_rotation(index, pitch_rate)
        if heel * 8 <= total:
            return False
        self.state = 1
        self._flat_since = -2
        self._flat_until = -2
        start = self._start
        if index - start < self._min_hold:
            return False
        if self._top_start >= 0 and self._top_end > self._top_start:
            hold = self._top_end - self._top_start
        else:
            hold = index - start
        if self._last_end < 0 or start - self._last_end > self._set_gap:
            self.set += 1
            self.rep = 0
        self.rep += 1
        self._last_end = index
        struct.pack_into(_RAISE_FMT, self.record, 0, start, index,
                         min(ms_for_samples(hold, self.rate_chz), 65534), self.rep, self.set, 0)
        return True

    def _track_rotation(self, index, rate):
        peak = self._rise_peak
        if self._top_start < 0:
            if rate > peak:
                self._rise_peak = rate
            elif peak >= self.MIN_RISE_CDPS and rate * 16 < peak:
                self._top_start = index  # the rising rotation has ended
                self._calm_last = index
            return
        if rate * 16 > -peak:
            self._calm_last = index
        elif rate * 4 < -peak:
            self._top_end = self._calm_last + 1  # lowering has begun
