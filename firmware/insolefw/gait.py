# Gait events on the device, one sample at a time, integers only in the sampling path.
#
# GaitCore.process() is the sampling path: it must not allocate (tested under
# micropython.heap_lock()). Step and heel-raise records are packed into preallocated
# buffers and pushed onto the EventQueue; the link task sends them.
from micropython import const
import struct
from array import array

from insolefw import fast
from insolefw.protocol import (
    T_STEP, T_HEEL_RAISE, STEP_LEN, HEEL_RAISE_LEN, NA_U8, NA_U16, NA_I16,
)

MAX_CHANNELS = const(16)
_HISTORY = const(32)  # samples of summed pressure kept to backtrack onsets (power of 2)
_HISTORY_MASK = const(31)

DIR_UNKNOWN = const(0)
DIR_FORWARD = const(1)
DIR_BACKWARD = const(2)

FLAG_PRESSURE = const(1)
FLAG_IMU = const(2)

_STEP_FMT = "<IIHHhBBHBBHHI"
_RAISE_FMT = "<IIHHHH"


def samples_for_ms(ms, rate_chz):
    # rate_chz is in 0.01 Hz: samples = ms * rate_hz / 1000
    return (ms * rate_chz + 50000) // 100000


def ms_for_samples(n, rate_chz):
    return (n * 100000 + rate_chz // 2) // rate_chz


class Layout:
    """Sensor positions (mm, foot frame, y to the left) and the regions derived from them."""

    def __init__(self):
        self.n = 0
        self.x_mm = array("h", bytes(2 * MAX_CHANNELS))
        self.y_mm = array("h", bytes(2 * MAX_CHANNELS))
        self.heel = bytearray(MAX_CHANNELS)  # 1 where the channel is under the heel
        self.fore = bytearray(MAX_CHANNELS)  # 1 under the forefoot and toes
        self.medial = bytearray(MAX_CHANNELS)  # 1 medial, 0 lateral or on the midline
        self.lateral = bytearray(MAX_CHANNELS)
        self.span_mm = 0

    def set(self, positions, side):
        # positions: flat sequence x0, y0, x1, y1, ...
        n = len(positions) // 2
        if n > MAX_CHANNELS:
            raise ValueError("too many channels")
        self.n = n
        for k in range(n):
            self.x_mm[k] = positions[2 * k]
            self.y_mm[k] = positions[2 * k + 1]
        self._derive(side)

    def _derive(self, side):
        n = self.n
        if not n:
            self.span_mm = 0
            return
        lo = min(self.x_mm[k] for k in range(n))
        hi = max(self.x_mm[k] for k in range(n))
        self.span_mm = hi - lo
        # Medial is -y on the left foot (side 0) and +y on the right foot.
        medial_sign = -1 if side == 0 else 1
        for k in range(n):
            rel = self.x_mm[k] - lo
            self.heel[k] = 1 if rel * 10 < self.span_mm * 3 else 0
            self.fore[k] = 1 if rel * 10 > self.span_mm * 6 else 0
            my = self.y_mm[k] * medial_sign
            self.medial[k] = 1 if my > 0 and side != NA_U8 else 0
            self.lateral[k] = 1 if my < 0 and side != NA_U8 else 0


class EventQueue:
    """Bounded ring of outgoing event records; the oldest is overwritten when full."""

    def __init__(self, capacity=64, record_len=STEP_LEN):
        self._cap = capacity
        self._rec = record_len
        self._buf = bytearray(capacity * record_len)
        self._types = bytearray(capacity)
        self._lens = bytearray(capacity)
        self._head = 0
        self._count = 0
        self.overwritten = 0

    def push(self, ptype, record, length):
        if self._count == self._cap:
            self._head = (self._head + 1) % self._cap
            self._count -= 1
            self.overwritten += 1
        slot = (self._head + self._count) % self._cap
        fast.copy_bytes(self._buf, slot * self._rec, record, 0, length)
        self._types[slot] = ptype
        self._lens[slot] = length
        self._count += 1

    def __len__(self):
        return self._count

    def pop_into(self, dst):
        # Copies the oldest record into dst; returns (type << 8) | length, or 0 if empty.
        if not self._count:
            return 0
        slot = self._head
        length = self._lens[slot]
        fast.copy_bytes(dst, 0, self._buf, slot * self._rec, length)
        self._head = (slot + 1) % self._cap
        self._count -= 1
        return (self._types[slot] << 8) | length

    def clear(self):
        self._head = 0
        self._count = 0


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


class ImuContact:
    """Contact events from angular rate alone: stance is where the foot is nearly still.

    Deliberately simple; a later iteration fuses it with pressure.
    """

    SWING_CDPS = 1500  # 150 deg/s in 0.1 deg/s units: the foot is swinging
    STILL_CDPS = 600  # |gx|+|gy|+|gz| below 60 deg/s: the foot is loaded and still

    def __init__(self):
        self.reset(10000)

    def reset(self, rate_chz):
        self.state = 0  # 0 unknown, 1 swing, 2 stance
        self._run = 0
        self.ic_index = -1
        self.to_index = -1
        self._confirm = samples_for_ms(30, rate_chz) or 1
        self._last_still = -1

    def update(self, index, gx, gy, gz):
        mag = abs(gx) + abs(gy) + abs(gz)
        if self.state != 1:
            if abs(gy) > self.SWING_CDPS:
                self._run += 1
                if self._run >= self._confirm:
                    self._run = 0
                    was = self.state
                    self.state = 1
                    if was == 2 and self.ic_index >= 0:
                        self.to_index = self._last_still + 1
                        return 2
            else:
                self._run = 0
                if mag < self.STILL_CDPS:
                    self._last_still = index
            return 0
        if mag < self.STILL_CDPS:
            self._run += 1
            if self._run >= self._confirm:
                self._run = 0
                self.state = 2
                self.ic_index = index - self._confirm + 1
                self._last_still = index
                return 1
        else:
            self._run = 0
        return 0


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


class GaitCore:
    """Everything after the sample source: contact events, step records, heel raises."""

    def __init__(self, events):
        self.events = events
        self.layout = Layout()
        self.pressure_contact = PressureContact()
        self.imu_contact = ImuContact()
        self.raises = HeelRaises()
        self._step = bytearray(STEP_LEN)
        self.configure(10000, 0, 0, NA_U8)

    def configure(self, rate_chz, n_pressure, imu, side):
        self.rate_chz = rate_chz
        self.n_pressure = n_pressure
        self.imu = imu
        self.side = side
        self.pressure_contact.reset(rate_chz)
        self.imu_contact.reset(rate_chz)
        self.raises.reset(rate_chz)
        self.sample_index = 0
        self.steps = 0
        self._last_to = -1
        self._reset_stance()

    def set_layout(self, positions, side):
        self.layout.set(positions, side)

    def _reset_stance(self):
        self._peak = 0
        self._medial = 0
        self._lateral = 0
        self._early_px = 0
        self._early_p = 0
        self._early_left = 0
        self._late_px = 0
        self._late_p = 0

    def process(self, pressure, imu):
        """One sample: pressure is array('H') of n_pressure counts, imu array('h') of 6."""
        index = self.sample_index
        self.sample_index = index + 1
        if self.n_pressure:
            self._process_pressure(index, pressure)
        elif self.imu:
            event = self.imu_contact.update(index, imu[3], imu[4], imu[5])
            if event == 1:
                self._reset_stance()
            elif event == 2:
                self._emit_step(self.imu_contact.ic_index, self.imu_contact.to_index, FLAG_IMU)

    def _process_pressure(self, index, pressure):
        layout = self.layout
        n = self.n_pressure
        total = 0
        heel = 0
        fore = 0
        medial = 0
        lateral = 0
        moment = 0  # sum of p * x, x in mm: bounded by 16 * 65535 * 400 < 2**30
        use_layout = layout.n == n
        for k in range(n):
            p = pressure[k]
            if p == NA_U16:
                continue
            total += p
            if use_layout:
                if layout.heel[k]:
                    heel += p
                elif layout.fore[k]:
                    fore += p
                if layout.medial[k]:
                    medial += p
                elif layout.lateral[k]:
                    lateral += p
                moment += (p >> 4) * layout.x_mm[k]
        contact = self.pressure_contact
        event = contact.update(index, total)
        if event == 1:
            self._reset_stance()
            self._early_left = 3
        if contact.state >= 2:
            if total > self._peak:
                self._peak = total
            self._medial += medial >> 4
            self._lateral += lateral >> 4
            if self._medial > 0x10000000 or self._lateral > 0x10000000:
                # Long stances (standing): halve both so the ratio survives and the
                # sums stay small ints on the ESP32 (no allocation).
                self._medial >>= 1
                self._lateral >>= 1
            if self._early_left:
                self._early_left -= 1
                self._early_px += moment
                self._early_p += total >> 4
            self._late_px = moment
            self._late_p = total >> 4
        elif event == 2:
            self._emit_step(contact.ic_index, contact.to_index, FLAG_PRESSURE)
        if use_layout and self.raises.update(index, total, heel, fore, contact.state >= 2):
            self.events.push(T_HEEL_RAISE, self.raises.record, HEEL_RAISE_LEN)

    def _direction(self):
        # Pressure roll-over: centre of pressure moves heel -> toe walking forward and
        # toe -> heel walking backward. Needs a layout and a clear shift (> 25 % span).
        span = self.layout.span_mm
        if not span or not self._early_p or not self._late_p:
            return DIR_UNKNOWN
        early = self._early_px // self._early_p
        late = self._late_px // self._late_p
        shift = late - early
        if shift * 4 > span:
            return DIR_FORWARD
        if -shift * 4 > span:
            return DIR_BACKWARD
        return DIR_UNKNOWN

    def _emit_step(self, ic, to, flags):
        if ic < 0 or to - ic < self.pressure_contact.min_stance:
            self._last_to = to
            return
        rate = self.rate_chz
        swing = NA_U16
        if self._last_to >= 0 and ic > self._last_to:
            swing = min(ms_for_samples(ic - self._last_to, rate), 65534)
        self._last_to = to
        self.steps += 1
        medial_share = NA_U8
        both = self._medial + self._lateral
        if both:
            medial_share = (self._medial * 200 + both // 2) // both
        peak = min(self._peak, 65534) if flags & FLAG_PRESSURE else NA_U16
        struct.pack_into(_STEP_FMT, self._step, 0, ic, to,
                         min(ms_for_samples(to - ic, rate), 65534), swing, NA_I16,
                         self._direction() if flags & FLAG_PRESSURE else DIR_UNKNOWN,
                         flags, peak, medial_share, 0, NA_U16, NA_U16, self.steps)
        self.events.push(T_STEP, self._step, STEP_LEN)
