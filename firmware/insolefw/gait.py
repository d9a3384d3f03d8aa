# Gait events on the device, one sample at a time, integers only in the sampling path.
#
# GaitCore.process() is the sampling path: it must not allocate (tested under
# micropython.heap_lock()). Step and heel-raise records are packed into preallocated
# buffers and pushed onto the EventQueue; the link task sends them. Host twin of the
# pressure path and the layout regions: host/insole/gait/gait.py (tests check both agree).
from micropython import const
import struct
from array import array

from insolefw import fast
from insolefw.contact import PressureContact, HeelRaises
from insolefw.imu import ImuTracker, IMU_IC, IMU_TO, IMU_STRIDE, DIR_UNKNOWN, DIR_FORWARD, DIR_BACKWARD
from insolefw.units import ms_for_samples
from insolefw.protocol import (
    T_STEP, T_HEEL_RAISE, STEP_LEN, HEEL_RAISE_LEN, NA_U8, NA_U16, NA_I16,
)

MAX_CHANNELS = const(16)

FLAG_PRESSURE = const(1)
FLAG_IMU = const(2)
_IMU_REST = const(8)  # imu._IMU_REST (private, so that it costs no interned name)
# STEP strike: which third of the foot touched down first
_STRIKE_HEEL = const(1)
_STRIKE_MIDFOOT = const(2)
_STRIKE_FOREFOOT = const(3)

_STEP_FMT = const("<IIHHhBBHBBHHI")


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

    # Events wait here only until the sampling loop's next flush: at most a few strides
    # even after the IMU FIFO's 2.5 s backlog; the event log keeps the history.
    def __init__(self, capacity=16, record_len=STEP_LEN):
        self._cap = capacity
        self._rec = record_len
        self._buf = bytearray(capacity * record_len)
        self._types = bytearray(capacity)
        self._lens = bytearray(capacity)
        self._head = 0
        self.count = 0  # records waiting (the runner of a program flushes them at once)
        self.overwritten = 0

    def push(self, ptype, record, length):
        if self.count == self._cap:
            self._head = (self._head + 1) % self._cap
            self.count -= 1
            self.overwritten += 1
        slot = (self._head + self.count) % self._cap
        fast.copy_bytes(self._buf, slot * self._rec, record, 0, length)
        self._types[slot] = ptype
        self._lens[slot] = length
        self.count += 1

    def __len__(self):
        return self.count

    def pop_into(self, dst):
        # Copies the oldest record into dst; returns (type << 8) | length, or 0 if empty.
        if not self.count:
            return 0
        slot = self._head
        length = self._lens[slot]
        fast.copy_bytes(dst, 0, self._buf, slot * self._rec, length)
        self._head = (slot + 1) % self._cap
        self.count -= 1
        return (self._types[slot] << 8) | length

    def clear(self):
        self._head = 0
        self.count = 0


class GaitCore:
    """Everything after the sample source: contact events, step records, heel raises."""

    def __init__(self, events):
        self.events = events
        self.layout = Layout()
        self.pressure_contact = PressureContact()
        self.imu_tracker = ImuTracker()
        self.raises = HeelRaises()
        self._step = bytearray(STEP_LEN)
        self.configure(10000, 0, 0, NA_U8)

    def configure(self, rate_chz, n_pressure, imu, side):
        self.rate_chz = rate_chz
        self.n_pressure = n_pressure
        self.imu = imu
        self.side = side
        self.pressure_contact.reset(rate_chz)
        self.imu_tracker.reset(rate_chz, side)
        self.pending = 0  # a stride waits for finish_stride()
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

    def process(self, pressure, imu):
        """One sample: pressure is array('H') of n_pressure counts, imu array('h') of 6.

        When this sets self.pending, the caller runs finish_stride() before the next
        sample, outside the allocation-free sampling path.
        """
        index = self.sample_index
        self.sample_index = index + 1
        imu_event = 0
        if self.imu:
            imu_event = self.imu_tracker.update(index, imu)
            if imu_event & IMU_STRIDE:
                self.pending = 1
        if self.n_pressure:
            self._process_pressure(index, pressure, imu if self.imu else None)
        elif imu_event:
            # IMU-only: the tracker's contact events delimit the stance. A stance open at
            # one end goes out with -1 (n/a) there: the first toe-off of a stream, and a
            # stance the walker stopped in (its contact at the rest, its toe-off, same
            # step number, when walking resumes). docs/protocol.md, STEP.
            tracker = self.imu_tracker
            if imu_event & IMU_IC:
                self._reset_stance()
            if imu_event & _IMU_REST:
                self._emit_step(tracker.ic_index, -1, FLAG_IMU)
                tracker.ic_index = -1  # sent: the stance's toe-off goes out without it
            if imu_event & IMU_TO:
                self._emit_step(tracker.ic_index, tracker.to_index, FLAG_IMU)

    def finish_stride(self):
        """Per-stride float work (foot angle, stride length): allocates, so it runs
        between samples, never inside process()."""
        self.pending = 0
        self.imu_tracker.analyse()

    def _process_pressure(self, index, pressure, imu=None):
        # imu (optional): the same sample's array('h'); its pitch rate times heel raises.
        layout = self.layout
        contact = self.pressure_contact
        last = contact.last_p  # missing channels (n/a) keep their last reading
        n = self.n_pressure
        total = 0
        heel = 0
        fore = 0
        medial = 0
        lateral = 0
        moment = 0  # sum of (p >> 4) * x_mm: < 16 * 4095 * 440 < 2**30
        use_layout = layout.n == n
        if use_layout:
            x_mm = layout.x_mm
            heel_ch = layout.heel
            fore_ch = layout.fore
            medial_ch = layout.medial
            lateral_ch = layout.lateral
            for k in range(n):
                p = pressure[k]
                if p == NA_U16:
                    p = last[k]
                else:
                    last[k] = p
                total += p
                q = p >> 4
                moment += q * x_mm[k]
                if heel_ch[k]:
                    heel += p
                elif fore_ch[k]:
                    fore += p
                if medial_ch[k]:
                    medial += q
                elif lateral_ch[k]:
                    lateral += q
        else:
            for k in range(n):
                p = pressure[k]
                if p == NA_U16:
                    p = last[k]
                else:
                    last[k] = p
                total += p
        event = contact.update(index, total, moment)
        if event == 1:
            self._reset_stance()
        if contact.state >= 2:
            if total > self._peak:
                self._peak = total
            self._medial += medial
            self._lateral += lateral
            if self._medial > 0x400000 or self._lateral > 0x400000:
                # Long stances (standing): halve both so the ratio survives and
                # medial * 200 in _emit_step stays a small int (< 2**30) on the ESP32.
                self._medial >>= 1
                self._lateral >>= 1
        elif event == 2:
            self._emit_step(contact.ic_index, contact.to_index, FLAG_PRESSURE)
        if use_layout:
            rate = imu[4] if imu is not None and self.imu else NA_I16
            # On the ground with weight on it: not in swing, and a quarter of the usual load.
            loaded = contact.state != 1 and total * 4 > contact.load
            if self.raises.update(index, total, heel, fore, loaded, rate):
                self.events.push(T_HEEL_RAISE, self.raises.record, HEEL_RAISE_LEN)

    def _direction(self):
        # Pressure roll-over: the centre of pressure moves heel -> toes over a stance
        # walking forward and toes -> heel walking backward. Compares the load-weighted
        # centre of pressure of the stance's first and last 80 ms; the shift must
        # exceed 1/5 of the sensors' length, else the stance says nothing (shuffling
        # on a flat foot, standing).
        span = self.layout.span_mm
        contact = self.pressure_contact
        if not span or contact.early_weight <= 0 or contact.late_weight <= 0:
            return DIR_UNKNOWN
        shift = contact.late_moment // contact.late_weight - contact.early_moment // contact.early_weight
        if shift * 5 > span:
            return DIR_FORWARD
        if -shift * 5 > span:
            return DIR_BACKWARD
        return DIR_UNKNOWN

    def _emit_step(self, ic, to, flags):
        # ic or to -1: n/a, a stance open at that end (IMU only).
        open_end = ic < 0 or to < 0
        if (ic < 0 and flags & FLAG_PRESSURE) or (not open_end and to - ic < self.pressure_contact.min_stance):
            self._last_to = to
            return
        rate = self.rate_chz
        swing = NA_U16
        if ic >= 0 and self._last_to >= 0 and ic > self._last_to:
            swing = min(ms_for_samples(ic - self._last_to, rate), 65534)
        if to >= 0:
            self._last_to = to
        if ic >= 0 or not self.steps:  # a rested stance's toe-off keeps its step number
            self.steps += 1
        medial_share = NA_U8
        both = self._medial + self._lateral
        if both:
            medial_share = (self._medial * 200 + both // 2) // both
        peak = min(self._peak, 65534) if flags & FLAG_PRESSURE else NA_U16
        # The IMU's stride belongs to this step if it ended (foot still) inside the stance.
        tracker = self.imu_tracker
        fpa = NA_I16
        stride = NA_U16
        speed = NA_U16
        imu_direction = DIR_UNKNOWN
        end = tracker.stride_end_index
        if self.imu and 0 <= ic <= end and (to < 0 or end <= to):
            fpa = tracker.fpa_cdeg
            stride = tracker.stride_mm
            speed = tracker.speed_mms
            imu_direction = tracker.direction
        direction = _fuse_direction(imu_direction,
                                    self._direction() if flags & FLAG_PRESSURE else DIR_UNKNOWN)
        # Foot-strike pattern (docs/programs.md, STEP `strike`): the load-weighted centre of
        # pressure over the stance's first 80 ms (the direction test's early window) in the
        # rear, middle or front third of the sensors' length: heel, midfoot or forefoot
        # first (walking backward lands forefoot first). IMU-only steps: n/a.
        strike = NA_U8
        layout = self.layout
        span = layout.span_mm
        contact = self.pressure_contact
        if flags & FLAG_PRESSURE and span and contact.early_weight > 0:
            rear = layout.x_mm[0]
            for k in range(1, layout.n):
                if layout.x_mm[k] < rear:
                    rear = layout.x_mm[k]
            third = (contact.early_moment // contact.early_weight - rear) * 3
            strike = _STRIKE_HEEL if third < span else _STRIKE_MIDFOOT if third < 2 * span else _STRIKE_FOREFOOT
        struct.pack_into(_STEP_FMT, self._step, 0, ic, to,
                         NA_U16 if open_end else min(ms_for_samples(to - ic, rate), 65534), swing, fpa,
                         direction, flags, peak, medial_share, strike, stride, speed, self.steps)
        self.events.push(T_STEP, self._step, STEP_LEN)


def _fuse_direction(imu, pressure):
    # The IMU's displacement is the stronger evidence (a whole stride); the pressure
    # roll-over decides when the IMU cannot.
    return imu if imu != DIR_UNKNOWN else pressure
