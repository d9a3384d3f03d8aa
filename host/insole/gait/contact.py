"""Host twin of firmware/insolefw/contact.py: contact events and heel raises from summed pressure.

The same state machines as the firmware, line by line, on the same integer counts, so
that host and device agree sample for sample (tests/test_gait_pressure.py replays
recordings through both and compares). Integer arithmetic follows MicroPython's (floor
division, arithmetic shifts). The machines take one sample per ``update()``; the
stream-level wrappers that feed them are in :mod:`insole.gait.gait`.

Levels (see :class:`PressureContact`): ``floor`` is the unloaded foot, ``load`` the
typical stance peak. A stance starts once the sum exceeds floor + 30 % of that range;
its initial contact is backtracked to the first sample above floor + 1.2 %; toe-off is
the first sample at or below floor + 10 % after which the sum stays there for 30 ms
and gets back under 1.2 %.

Each machine's defaults are the firmware's class constants, stated once here in
:class:`PressureContactParameters` and :class:`HeelRaiseParameters`; change them only
to explore, since the firmware will not follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from insole.gait.units import ms_for_samples, samples_for_ms
from insole.protocol import NA_I16

HISTORY_SAMPLES = 64  # the firmware's _HISTORY: samples kept to backtrack onsets and sum windows
MAX_WINDOW_SAMPLES = 32  # the firmware's _MAX_WINDOW: direction windows stay small ints

# Contact states, as the firmware's _UNKNOWN, _SWING, _STANCE, _UNLOADING.
UNKNOWN = 0  # no trusted unloaded level yet
SWING = 1
STANCE = 2
UNLOADING = 3  # below the toe-off level, not yet for long enough

HeelRaiseRecord = tuple[int, int, int, int, int]  # start index, end index, hold ms, rep, set


@dataclass(frozen=True)
class PressureContactParameters:
    """The firmware's ``PressureContact`` constants.

    Parameters
    ----------
    contact_permille
        The foot is on the ground above floor + this share of the floor-to-load range;
        initial contact is backtracked to where the sum rose above it.
    confirm_permille
        A stance starts once the sum exceeds floor + this share.
    off_permille
        Toe-off is the first sample at or below floor + this share.
    floor_trust_shift
        Until a first stance is learned the floor counts only below load >> this.
    min_range_counts
        Counts between floor and load before anything counts.
    off_confirm_ms
        The sum stays at or below the toe-off level this long before a toe-off counts.
    min_stance_ms
        Shorter stances make no step (``GaitCore._emit_step``, for pressure and IMU
        contacts alike).
    window_ms
        The roll-over windows at the start and the end of a stance.
    """

    contact_permille: int = 12
    confirm_permille: int = 300
    off_permille: int = 100
    floor_trust_shift: int = 3
    min_range_counts: int = 64
    off_confirm_ms: int = 30
    min_stance_ms: int = 100
    window_ms: int = 80


@dataclass(frozen=True)
class HeelRaiseParameters:
    """The firmware's ``HeelRaises`` constants.

    Parameters
    ----------
    min_hold_ms
        The heel stays up at least this long for a repetition.
    min_stand_ms
        A raise starts from standing flat (heel carrying > 25 %) for at least this long ...
    max_lean_ms
        ... at most this long before the heel left.
    set_gap_ms
        Repetitions further apart start a new set.
    min_rise_cdps
        Slower pitching (0.1 deg/s) is no rising rotation (the hold is then the heel-up time).
    """

    min_hold_ms: int = 400
    min_stand_ms: int = 250
    max_lean_ms: int = 1000
    set_gap_ms: int = 15000
    min_rise_cdps: int = 50


class PressureContact:
    """Initial contact and toe-off from the summed pressure, with adaptive levels.

    ``insolefw.contact.PressureContact`` line by line (its docstring has the method).
    One ``update(index, total, moment)`` per sample; per stance it also keeps the
    load-weighted centre of pressure over the first and the last ``window_ms``
    (``early_*``, ``late_*``: sum(moment) / sum(total >> 4) is the centre).

    Parameters
    ----------
    rate_chz
        Sampling rate in 0.01 Hz.
    parameters
        The machine's constants; None for the firmware's.

    Attributes
    ----------
    floor
        The unloaded foot's summed counts (-1 before the first sample).
    load
        The typical stance peak's summed counts.
    learned
        1 once a stance has set ``load``.
    state
        ``UNKNOWN``, ``SWING``, ``STANCE`` or ``UNLOADING``.
    peak
        The current stance's highest sum.
    ic_index
        Initial contact of the current or last stance (-1: none, a stance without IC).
    to_index
        The last toe-off (-1: none yet).
    min_stance
        ``min_stance_ms`` in samples.
    early_weight, early_moment, late_weight, late_moment
        The roll-over windows of the last stance, complete at its toe-off.
    """

    def __init__(self, rate_chz: int, parameters: PressureContactParameters | None = None) -> None:
        self.parameters = parameters or PressureContactParameters()
        p = self.parameters
        self._total = [0] * HISTORY_SAMPLES
        self._moment = [0] * HISTORY_SAMPLES
        self.floor = -1
        self.load = 0
        self.learned = 0
        self.state = UNKNOWN
        self.peak = 0
        self.ic_index = -1
        self.to_index = -1
        self._unload_start = 0
        self._left_ground = 0
        self._off_confirm = samples_for_ms(p.off_confirm_ms, rate_chz) or 1
        self.min_stance = samples_for_ms(p.min_stance_ms, rate_chz)
        self._window = min(max(samples_for_ms(p.window_ms, rate_chz), 1), MAX_WINDOW_SAMPLES)
        self._early_end = 0
        self.early_weight = 0
        self.early_moment = 0
        self.late_weight = 0
        self.late_moment = 0

    def update(self, index: int, total: int, moment: int) -> int:
        """1 at a confirmed initial contact, 2 at a toe-off, else 0."""
        p = self.parameters
        h = index % HISTORY_SAMPLES
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
        if state < STANCE:
            if span < p.min_range_counts or (not self.learned and (floor << p.floor_trust_shift) > self.load):
                self.state = UNKNOWN
                return 0
            if total > floor + span * p.confirm_permille // 1000:
                level = floor + span * p.contact_permille // 1000
                ic = self._onset_before(index, level)
                if not (
                    ic > 0 and ic > index - HISTORY_SAMPLES + 1 and self._total[(ic - 1) % HISTORY_SAMPLES] <= level
                ):
                    ic = -1  # the foot rested on the ground before: loading it is no step
                self._begin_stance(index, ic, total)
                return 1 if ic >= 0 else 0
            off = floor + span * p.off_permille // 1000
            if state == UNKNOWN:
                if total <= off:
                    self.state = SWING
            elif floor < total <= off:
                self.floor = floor + ((total - floor) >> 6)  # creep up with baseline drift
            return 0
        # In contact (stance or unloading).
        if total > self.peak:
            self.peak = total
        if index < self._early_end:
            self.early_weight += total >> 4
            self.early_moment += moment
        if total > floor + span * p.off_permille // 1000:
            self.state = STANCE  # also ends a dip
            return 0
        if state == STANCE:
            self.state = UNLOADING
            self._unload_start = index
            self._left_ground = 0
        if total <= floor + span * p.contact_permille // 1000:
            self._left_ground = 1
        if not self._left_ground or index - self._unload_start + 1 < self._off_confirm:
            return 0
        to = self._unload_start
        self.state = SWING
        self.to_index = to
        ic = self.ic_index
        if ic < 0:
            return 0  # the stance the stream began in
        w = m = 0
        i = max(to - self._window, ic)
        while i < to:
            w += self._total[i % HISTORY_SAMPLES] >> 4
            m += self._moment[i % HISTORY_SAMPLES]
            i += 1
        self.late_weight = w
        self.late_moment = m
        self._learn(self.peak)
        return 2

    def _begin_stance(self, index: int, ic: int, total: int) -> None:
        self.state = STANCE
        self.peak = total
        self.ic_index = ic
        # Early window: what the history holds now, the rest as it arrives.
        self._early_end = ic + self._window if ic >= 0 else 0
        w = m = 0
        i = ic
        while 0 <= i <= index and i < self._early_end:
            w += self._total[i % HISTORY_SAMPLES] >> 4
            m += self._moment[i % HISTORY_SAMPLES]
            i += 1
        self.early_weight = w
        self.early_moment = m

    def _learn(self, peak: int) -> None:
        # The typical stance load: quick to follow heavier stances, slow to give way.
        load = self.load
        if not self.learned:
            self.learned = 1
            self.load = peak
        elif peak > load:
            self.load = load + ((peak - load) >> 1)
        else:
            self.load = load - ((load - peak) >> 3)

    def _onset_before(self, index: int, level: int) -> int:
        # The first sample of the rise: walk back while the sum stays above `level`,
        # not past the history nor into the previous stance.
        i = index
        oldest = index - HISTORY_SAMPLES + 1
        first = self.to_index + 1
        while i > oldest and i > first and i > 0 and self._total[(i - 1) % HISTORY_SAMPLES] > level:
            i -= 1
        return i


class HeelRaises:
    """Heel-raise repetitions: the heel unloads onto the forefoot while the foot stays
    loaded, then comes back down.

    ``insolefw.contact.HeelRaises`` line by line (its docstring has the method). One
    ``update(index, total, heel, fore, loaded, pitch_rate)`` per sample; it returns
    True when a repetition ended, whose record is then in ``record``.

    Parameters
    ----------
    rate_chz
        Sampling rate in 0.01 Hz.
    parameters
        The machine's constants; None for the firmware's.

    Attributes
    ----------
    state
        0 not loaded, 1 loaded (standing or rolling over), 2 heel up.
    rep
        Repetitions in the current set.
    set
        Sets since the stream began.
    record
        The last repetition: (start index, end index, hold ms, rep, set); None before one.
    """

    def __init__(self, rate_chz: int, parameters: HeelRaiseParameters | None = None) -> None:
        self.parameters = parameters or HeelRaiseParameters()
        p = self.parameters
        self.rate_chz = rate_chz
        self._min_hold = samples_for_ms(p.min_hold_ms, rate_chz)
        self._min_stand = samples_for_ms(p.min_stand_ms, rate_chz)
        self._max_lean = samples_for_ms(p.max_lean_ms, rate_chz)
        self._set_gap = samples_for_ms(p.set_gap_ms, rate_chz)
        self.state = 0
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
        self.record: HeelRaiseRecord | None = None

    def update(self, index: int, total: int, heel: int, fore: int, loaded: bool, pitch_rate: int) -> bool:
        """``pitch_rate``: gyro y in 0.1 deg/s (heel up is positive), or NA_I16 without IMU."""
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
            elif (
                heel * 10 < total
                and fore * 2 > total
                and self._flat_until - self._flat_since >= self._min_stand
                and index - self._flat_until <= self._max_lean
            ):
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
        self.record = (start, index, min(ms_for_samples(hold, self.rate_chz), 65534), self.rep, self.set)
        return True

    def _track_rotation(self, index: int, rate: int) -> None:
        peak = self._rise_peak
        if self._top_start < 0:
            if rate > peak:
                self._rise_peak = rate
            elif peak >= self.parameters.min_rise_cdps and rate * 16 < peak:
                self._top_start = index  # the rising rotation has ended
                self._calm_last = index
            return
        if rate * 16 > -peak:
            self._calm_last = index
        elif rate * 4 < -peak:
            self._top_end = self._calm_last + 1  # lowering has begun
