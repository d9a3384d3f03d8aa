"""Reference implementation of the firmware's pressure algorithms (``insolefw.contact``).

The same state machines as the firmware, on the same integer counts, so that host and
device agree sample for sample (tests/test_gait_pressure.py replays recordings through
both and compares):

* :class:`PressureStepDetection`: initial contact and toe-off from the summed pressure
  with adaptive levels, the walking direction from the roll-over of the centre of
  pressure, and the STEP fields that come from pressure (peak, medial share).
* :class:`HeelRaiseDetection`: heel-raise repetitions, sets and hold time.

Per-sample sums over the sensor layout are vectorised (:func:`pressure_sums`); the
sequential state machines run as a per-sample Python loop, mirroring the firmware
line by line (:class:`ContactMachine`, :class:`HeelRaiseMachine`). Integer arithmetic
follows MicroPython's (floor division, arithmetic shifts), so results are identical.

Levels (see ``insolefw.contact.PressureContact``): ``floor`` is the unloaded foot,
``load`` the typical stance peak. A stance starts once the sum exceeds floor + 30 % of
that range; its initial contact is backtracked to the first sample above floor +
1.2 %; toe-off is the first sample at or below floor + 10 % after which the sum stays
there for 30 ms and gets back under 1.2 %. Direction: the load-weighted centre of
pressure over a stance's last 80 ms minus that over its first 80 ms, forward beyond
+1/5 of the sensors' length, backward beyond −1/5, unknown in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insole.gait.units import ms_for_samples, samples_for_ms
from insole.layouts import layout_packet
from insole.quantise import stream_counts
from insole.model import FootStream
from insole.protocol import NA_U16
from insole.quantise import choose_pressure_scale, rate_hz_to_chz

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NA_I16 = -32768
HISTORY = 64  # samples of history in the firmware (backtracking, windows)
MAX_WINDOW = 32
DIRECTION_NAMES = ("unknown", "forward", "backward")  # protocol Direction codes 0, 1, 2


@dataclass(frozen=True)
class LayoutRegions:
    """What the firmware derives from a LAYOUT (``insolefw.gait.Layout``): whole-mm
    positions, heel (rear 30 % of the sensors' length), forefoot (front 40 %), medial
    and lateral channels for the foot's side."""

    x_mm: IntArray
    heel: BoolArray
    fore: BoolArray
    medial: BoolArray
    lateral: BoolArray
    span_mm: int

    @classmethod
    def for_stream(cls, stream: FootStream) -> LayoutRegions:
        packet = layout_packet(stream)
        x = np.array(packet.x_mm, dtype=np.int64)
        y = np.array(packet.y_mm, dtype=np.int64)
        span = int(x.max() - x.min())
        rel = x - x.min()
        medial_sign = -1 if stream.side == "left" else 1
        return cls(
            x_mm=x,
            heel=rel * 10 < span * 3,
            fore=rel * 10 > span * 6,
            medial=y * medial_sign > 0,
            lateral=y * medial_sign < 0,
            span_mm=span,
        )


@dataclass(frozen=True)
class PressureSums:
    """Per-sample sums the firmware forms in ``GaitCore._process_pressure`` (int64)."""

    total: IntArray  # all channels, counts
    heel: IntArray
    fore: IntArray  # heel channels excluded
    medial: IntArray  # sum of p >> 4 over medial channels
    lateral: IntArray
    moment: IntArray  # sum of (p >> 4) * x_mm


def hold_missing(counts: npt.ArrayLike) -> IntArray:
    """Counts with each n/a reading (0xFFFF) replaced by the channel's last reading (0 before any)."""
    c = np.asarray(counts, dtype=np.int64)
    missing = c == NA_U16
    rows = np.where(missing, 0, np.arange(len(c))[:, None])
    last_valid = np.maximum.accumulate(rows, axis=0)
    held = np.take_along_axis(c, last_valid, axis=0)
    # Rows before a channel's first reading: the firmware starts from 0.
    never = np.maximum.accumulate(~missing, axis=0) == 0
    held[never] = 0
    return held


def pressure_sums(counts: npt.ArrayLike, regions: LayoutRegions | None) -> PressureSums:
    """The firmware's per-sample sums; without a matching layout only the total."""
    p = hold_missing(counts)
    total = p.sum(axis=1)
    zeros = np.zeros(len(p), dtype=np.int64)
    if regions is None or len(regions.x_mm) != p.shape[1]:
        return PressureSums(total, zeros, zeros, zeros, zeros, zeros)
    q = p >> 4
    fore_only = regions.fore & ~regions.heel
    return PressureSums(
        total=total,
        heel=p[:, regions.heel].sum(axis=1),
        fore=p[:, fore_only].sum(axis=1),
        medial=q[:, regions.medial].sum(axis=1),
        lateral=q[:, regions.lateral & ~regions.medial].sum(axis=1),
        moment=q @ regions.x_mm,
    )


class ContactMachine:
    """``insolefw.contact.PressureContact``, line by line (see its docstring)."""

    def __init__(
        self,
        rate_chz: int,
        *,
        contact_permille: int = 12,
        confirm_permille: int = 300,
        off_permille: int = 100,
        floor_trust_shift: int = 3,
        min_range_counts: int = 64,
        off_confirm_ms: int = 30,
        min_stance_ms: int = 100,
        window_ms: int = 80,
    ) -> None:
        self.contact_permille = contact_permille
        self.confirm_permille = confirm_permille
        self.off_permille = off_permille
        self.floor_trust_shift = floor_trust_shift
        self.min_range_counts = min_range_counts
        self._total = [0] * HISTORY
        self._moment = [0] * HISTORY
        self.floor = -1
        self.load = 0
        self.learned = 0
        self.state = 0  # 0 unknown, 1 swing, 2 stance, 3 unloading
        self.peak = 0
        self.ic_index = -1
        self.to_index = -1
        self._unload_start = 0
        self._left_ground = 0
        self._off_confirm = samples_for_ms(off_confirm_ms, rate_chz) or 1
        self.min_stance = samples_for_ms(min_stance_ms, rate_chz)
        self._window = min(max(samples_for_ms(window_ms, rate_chz), 1), MAX_WINDOW)
        self._early_end = 0
        self.early_weight = 0
        self.early_moment = 0
        self.late_weight = 0
        self.late_moment = 0

    def update(self, index: int, total: int, moment: int) -> int:
        """1 at a confirmed initial contact, 2 at a toe-off, else 0."""
        h = index % HISTORY
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
        if state < 2:
            if span < self.min_range_counts or (not self.learned and (floor << self.floor_trust_shift) > self.load):
                self.state = 0
                return 0
            if total > floor + span * self.confirm_permille // 1000:
                level = floor + span * self.contact_permille // 1000
                ic = self._onset_before(index, level)
                if not (ic > 0 and ic > index - HISTORY + 1 and self._total[(ic - 1) % HISTORY] <= level):
                    ic = -1
                self._begin_stance(index, ic, total)
                return 1 if ic >= 0 else 0
            off = floor + span * self.off_permille // 1000
            if state == 0:
                if total <= off:
                    self.state = 1
            elif floor < total <= off:
                self.floor = floor + ((total - floor) >> 6)
            return 0
        if total > self.peak:
            self.peak = total
        if index < self._early_end:
            self.early_weight += total >> 4
            self.early_moment += moment
        if total > floor + span * self.off_permille // 1000:
            self.state = 2
            return 0
        if state == 2:
            self.state = 3
            self._unload_start = index
            self._left_ground = 0
        if total <= floor + span * self.contact_permille // 1000:
            self._left_ground = 1
        if not self._left_ground or index - self._unload_start + 1 < self._off_confirm:
            return 0
        to = self._unload_start
        self.state = 1
        self.to_index = to
        ic = self.ic_index
        if ic < 0:
            return 0
        w = m = 0
        i = max(to - self._window, ic)
        while i < to:
            w += self._total[i % HISTORY] >> 4
            m += self._moment[i % HISTORY]
            i += 1
        self.late_weight = w
        self.late_moment = m
        self._learn(self.peak)
        return 2

    def _begin_stance(self, index: int, ic: int, total: int) -> None:
        self.state = 2
        self.peak = total
        self.ic_index = ic
        self._early_end = ic + self._window if ic >= 0 else 0
        w = m = 0
        i = ic
        while 0 <= i <= index and i < self._early_end:
            w += self._total[i % HISTORY] >> 4
            m += self._moment[i % HISTORY]
            i += 1
        self.early_weight = w
        self.early_moment = m

    def _learn(self, peak: int) -> None:
        load = self.load
        if not self.learned:
            self.learned = 1
            self.load = peak
        elif peak > load:
            self.load = load + ((peak - load) >> 1)
        else:
            self.load = load - ((load - peak) >> 3)

    def _onset_before(self, index: int, level: int) -> int:
        i = index
        oldest = index - HISTORY + 1
        first = self.to_index + 1
        while i > oldest and i > first and i > 0 and self._total[(i - 1) % HISTORY] > level:
            i -= 1
        return i


class HeelRaiseMachine:
    """``insolefw.contact.HeelRaises``, line by line (see its docstring)."""

    def __init__(
        self,
        rate_chz: int,
        *,
        min_hold_ms: int = 400,
        min_stand_ms: int = 250,
        max_lean_ms: int = 1000,
        set_gap_ms: int = 15000,
        min_rise_cdps: int = 50,
    ) -> None:
        self.rate_chz = rate_chz
        self.min_rise_cdps = min_rise_cdps
        self._min_hold = samples_for_ms(min_hold_ms, rate_chz)
        self._min_stand = samples_for_ms(min_stand_ms, rate_chz)
        self._max_lean = samples_for_ms(max_lean_ms, rate_chz)
        self._set_gap = samples_for_ms(set_gap_ms, rate_chz)
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
        self.record: tuple[int, int, int, int, int] | None = None  # start, end, hold_ms, rep, set

    def update(self, index: int, total: int, heel: int, fore: int, loaded: bool, pitch_rate: int) -> bool:
        if not loaded:
            self.state = 0
            self._flat_until = -2  # a raise starts from standing on this foot
            return False
        if self.state != 2:
            self.state = 1
            if heel * 4 > total:
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
            elif peak >= self.min_rise_cdps and rate * 16 < peak:
                self._top_start = index
                self._calm_last = index
            return
        if rate * 16 > -peak:
            self._calm_last = index
        elif rate * 4 < -peak:
            self._top_end = self._calm_last + 1


def roll_over_mm(early_weight: int, early_moment: int, late_weight: int, late_moment: int) -> int | None:
    """How far the centre of pressure moved toward the toes over a stance (``GaitCore._direction``)."""
    if early_weight <= 0 or late_weight <= 0:
        return None
    return late_moment // late_weight - early_moment // early_weight


def direction_code(early_weight: int, early_moment: int, late_weight: int, late_moment: int, span_mm: int) -> int:
    """``GaitCore._direction``: 1 forward, 2 backward, 0 unknown."""
    shift = roll_over_mm(early_weight, early_moment, late_weight, late_moment)
    if not span_mm or shift is None:
        return 0
    if shift * 5 > span_mm:
        return 1
    if -shift * 5 > span_mm:
        return 2
    return 0


def _counts_and_rate(stream: FootStream, pressure_scale: float | None) -> tuple[IntArray, int, IntArray | None]:
    if stream.pressure is None:
        raise ValueError(f"{stream.side} stream has no pressure channels")
    scale = choose_pressure_scale(stream.pressure) if pressure_scale is None else pressure_scale
    sensed = stream_counts(stream, scale)
    counts, imu = sensed.pressure, sensed.imu
    assert counts is not None
    return counts.astype(np.int64), rate_hz_to_chz(stream.rate_hz), None if imu is None else imu.astype(np.int64)


def _regions(stream: FootStream) -> LayoutRegions | None:
    try:
        return LayoutRegions.for_stream(stream)
    except ValueError:  # the layout does not match the stream's channels
        return None


class PressureStepDetection:
    """Steps from pressure as the firmware finds them (STEP records with the pressure flag).

    Parameters are the firmware's (``insolefw.contact.PressureContact``); change them
    only to explore, since the firmware will not follow. ``detect(stream,
    pressure_scale=None)`` quantises the stream as ``insole hil`` does
    (``choose_pressure_scale`` unless given) and sets, one entry per step:
    ``ic_index_``, ``to_index_`` (sample indices), ``direction_`` ("forward",
    "backward", "unknown" from the roll-over), ``roll_over_mm_`` (centre-of-pressure
    shift from the first to the last 80 ms of the stance, + toward the toes; None
    without load in a window), ``peak_`` (summed counts, saturating at 65534),
    ``medial_share_`` (0..1, NaN without medial/lateral channels) and
    ``medial_share_code_`` (the STEP field: 0.5 % units, None for n/a).
    """

    def __init__(
        self,
        *,
        contact_permille: int = 12,
        confirm_permille: int = 300,
        off_permille: int = 100,
        off_confirm_ms: int = 30,
        min_stance_ms: int = 100,
        window_ms: int = 80,
    ) -> None:
        self.contact_permille = contact_permille
        self.confirm_permille = confirm_permille
        self.off_permille = off_permille
        self.off_confirm_ms = off_confirm_ms
        self.min_stance_ms = min_stance_ms
        self.window_ms = window_ms
        self.ic_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.to_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.direction_: list[str] = []
        self.roll_over_mm_: list[int | None] = []
        self.peak_: IntArray = np.zeros(0, dtype=np.int64)
        self.medial_share_: npt.NDArray[np.float64] = np.zeros(0)
        self.medial_share_code_: list[int | None] = []

    def detect(self, stream: FootStream, pressure_scale: float | None = None) -> PressureStepDetection:
        counts, rate_chz, _ = _counts_and_rate(stream, pressure_scale)
        regions = _regions(stream)
        sums = pressure_sums(counts, regions)
        span = regions.span_mm if regions is not None else 0
        machine = ContactMachine(
            rate_chz,
            contact_permille=self.contact_permille,
            confirm_permille=self.confirm_permille,
            off_permille=self.off_permille,
            off_confirm_ms=self.off_confirm_ms,
            min_stance_ms=self.min_stance_ms,
            window_ms=self.window_ms,
        )
        ics: list[int] = []
        tos: list[int] = []
        directions: list[str] = []
        peaks: list[int] = []
        shares: list[int | None] = []
        roll_overs: list[int | None] = []
        peak = medial = lateral = 0
        total_l = sums.total.tolist()
        moment_l = sums.moment.tolist()
        medial_l = sums.medial.tolist()
        lateral_l = sums.lateral.tolist()
        for index in range(len(total_l)):
            total = total_l[index]
            event = machine.update(index, total, moment_l[index])
            if event == 1:
                peak = medial = lateral = 0
            if machine.state >= 2:
                peak = max(peak, total)
                medial += medial_l[index]
                lateral += lateral_l[index]
                if medial > 0x400000 or lateral > 0x400000:
                    medial >>= 1
                    lateral >>= 1
            elif event == 2:
                ic, to = machine.ic_index, machine.to_index
                if ic < 0 or to - ic < machine.min_stance:
                    continue
                both = medial + lateral
                ics.append(ic)
                tos.append(to)
                peaks.append(min(peak, 65534))
                shares.append((medial * 200 + both // 2) // both if both else None)
                windows = (machine.early_weight, machine.early_moment, machine.late_weight, machine.late_moment)
                directions.append(DIRECTION_NAMES[direction_code(*windows, span)])
                roll_overs.append(roll_over_mm(*windows))
        self.ic_index_ = np.array(ics, dtype=np.int64)
        self.to_index_ = np.array(tos, dtype=np.int64)
        self.direction_ = directions
        self.peak_ = np.array(peaks, dtype=np.int64)
        self.medial_share_code_ = shares
        self.roll_over_mm_ = roll_overs
        self.medial_share_ = np.array([np.nan if s is None else s / 200.0 for s in shares])
        return self


class HeelRaiseDetection:
    """Heel-raise repetitions as the firmware finds them (HEEL_RAISE records).

    ``detect(stream, pressure_scale=None)`` sets ``start_index_`` (heel leaves),
    ``end_index_`` (heel back down), ``hold_s_`` (time at the top: from the pitch rate
    when ``use_pitch_rate`` and the stream has an IMU, else the time the heel was up),
    ``rep_`` and ``set_``. ``use_pitch_rate=False`` matches firmware whose pressure
    path is not given the IMU sample.
    """

    def __init__(self, *, use_pitch_rate: bool = True, min_hold_ms: int = 400, set_gap_ms: int = 15000) -> None:
        self.use_pitch_rate = use_pitch_rate
        self.min_hold_ms = min_hold_ms
        self.set_gap_ms = set_gap_ms
        self.start_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.end_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.hold_s_: npt.NDArray[np.float64] = np.zeros(0)
        self.rep_: IntArray = np.zeros(0, dtype=np.int64)
        self.set_: IntArray = np.zeros(0, dtype=np.int64)

    def detect(self, stream: FootStream, pressure_scale: float | None = None) -> HeelRaiseDetection:
        counts, rate_chz, imu = _counts_and_rate(stream, pressure_scale)
        regions = _regions(stream)
        records: list[tuple[int, int, int, int, int]] = []
        if regions is not None:
            sums = pressure_sums(counts, regions)
            contact = ContactMachine(rate_chz)
            raises = HeelRaiseMachine(rate_chz, min_hold_ms=self.min_hold_ms, set_gap_ms=self.set_gap_ms)
            rates = imu[:, 4].tolist() if (imu is not None and self.use_pitch_rate) else [NA_I16] * len(counts)
            total_l, heel_l, fore_l = sums.total.tolist(), sums.heel.tolist(), sums.fore.tolist()
            moment_l = sums.moment.tolist()
            for index in range(len(total_l)):
                total = total_l[index]
                contact.update(index, total, moment_l[index])
                loaded = contact.state != 1 and total * 4 > contact.load
                if raises.update(index, total, heel_l[index], fore_l[index], loaded, rates[index]):
                    assert raises.record is not None
                    records.append(raises.record)
        table = np.array(records, dtype=np.int64).reshape(-1, 5)
        self.start_index_ = table[:, 0]
        self.end_index_ = table[:, 1]
        self.hold_s_ = table[:, 2] / 1000.0
        self.rep_ = table[:, 3]
        self.set_ = table[:, 4]
        return self
