# Gait from the foot IMU: still phases, toe-off and initial contact, and per stride the
# foot progression angle, stride length, speed and walking direction.
#
# ImuTracker.update() is on the sampling path (integers, no allocation): it keeps the
# raw samples in a ring, finds still phases and follows the stride's pitch-rate lobes.
# ImuTracker.analyse() is the per-stride work (levelling, gyro integration in fixed
# point, displacement, angle; in insolefw/stride.py); the caller runs it outside the
# sampling path when update() reports IMU_STRIDE. The host keeps a twin of the same
# algorithms (host/insole/gait/imu.py, constants in ImuTrackerParameters; method in
# docs/gait-imu.md): change both together, the tests check that they agree on real data.
from micropython import const
from array import array

from insolefw.protocol import NA_I16, NA_U16
from insolefw.units import samples_for_ms

# update() result bits
IMU_IC = const(1)  # initial contact at self.ic_index
IMU_TO = const(2)  # toe-off at self.to_index
IMU_STRIDE = const(4)  # a swing ended in a still phase: call analyse()
_IMU_REST = const(8)  # the foot came to rest (_REST_MS still) in the stance of the last initial contact

DIR_UNKNOWN = const(0)
DIR_FORWARD = const(1)
DIR_BACKWARD = const(2)

# The ring holds 256 slots of ax ay az gx gy gz: one sample each up to 130 Hz, the
# average of two above (the integration does not need more than ~100 Hz), so it spans
# 2 s at any rate. Strides that do not fit get no analysis.
_RING = const(256)
_RING_MASK = const(255)
_DECIMATE_ABOVE_CHZ = const(13000)
_AXIS_ONE = const(4096)  # the pitch axis in Q12
_REST_MAX = const(4096)  # at most this many samples averaged for the gyroscope bias

# Stance test per sample: |gx|+|gy|+|gz| below 100 deg/s, |gy| (the mount's pitch axis)
# below 25 deg/s and |a| within 0.8..1.2 g; the foot is still once this held for 50 ms.
# A sensor on a shoe's dorsum rattles on its strap through some walkers' stances (roll
# and yaw at +-200 deg/s, pitch within a few deg/s): a loose sum, a tight pitch. The
# integration starts at slots that pass the stricter calm test (insolefw/stride.py).
_STANCE_GYR = const(1000)  # 0.1 deg/s
_STANCE_PITCH = const(250)
_ACC_LIMIT = const(2000)  # mg per axis: beyond it not still (and a^2 stays a small int)
_ACC2_LO = const(640000)  # (800 mg)^2
_ACC2_HI = const(1440000)  # (1200 mg)^2
_STILL_MS = const(50)
_REPORT_MS = const(130)  # a stride is analysed once its still phase lasted this long (or ended)
_SWING_RATE = const(1000)  # a stride's pitch rate peaks above 100 deg/s ...
_SWING_DEG = const(20)  # ... and its swing lobe sweeps at least 20 deg of pitch
_SEARCH_MS = const(100)  # the stride starts at the calmest sample of this much stillness
_REST_MS = const(1000)  # a still phase this long teaches the gyroscope bias
# Per-rate sample counts in ImuTracker._n
_N_STILL = const(0)
_N_REPORT = const(1)
_N_SEARCH = const(2)
_N_REST = const(3)
_N_SWING_AREA = const(4)  # swing lobe area: sum of |pitch rate| [0.1 deg/s]
# ImuTracker._stride: the reported stride
_S_M0 = const(0)  # motion start
_S_STILL = const(1)  # first sample of the still phase after it
_S_LAST = const(2)  # last quiet sample when reported
_S_IC = const(3)  # its initial contact
_S_PUBLISH = const(4)  # an initial contact for the next update() to report, or -1
_S_PREV_IC = const(5)  # the previous stride's initial contact
_S_OPEN = const(6)  # 1: the last initial contact's stance has had no toe-off and no rest yet
_PUSH_LEAD_MS = const(17)  # toe-off precedes the swing lobe's opening crossing (forward)
_CONTACT_LAG_MS = const(0)  # initial contact follows its closing crossing (forward)
# Levelling, direction and angle thresholds: insolefw/stride.py.


class ImuTracker:
    """Per-foot IMU tracking: events, still phases, strides.

    A stride is known once the foot is still again after a swing (50 ms of stillness,
    reported at 130 ms or when the foot moves first). update() then returns
    IMU_TO | IMU_STRIDE: to_index is the toe-off of the stance the stride left, and
    the caller runs analyse(), which sets the stride's results; the next update()
    returns IMU_IC with ic_index, the contact of the stance it ended in. So a stance's
    toe-off goes out while the previous results still describe the stride into it.
    _IMU_REST: the foot has stood still for _REST_MS since that contact (the walker
    stopped); the stance's toe-off comes with the next stride, if any.

    Results of analyse(): fpa_cdeg (0.01 deg, + toe-out, NA_I16 if unknown),
    stride_mm and speed_mms (NA_U16 if unknown), direction (DIR_*), and
    stride_end_index (a sample inside the still phase the stride ended in).
    yaw_offset_cdeg: the sensor's mounting yaw (its x axis turned counter-clockwise
    from the foot's long axis), from a calibration (docs/gait-imu.md); 0 until set.
    """

    def __init__(self):
        # The per-stride work lives in its own module, compiled only now: after the
        # firmware's large buffers (on the unix port every import compiles and its
        # leftovers break up the free heap).
        global _analyse
        from insolefw.stride import analyse as _analyse
        self._ring = array("h", bytes(12 * _RING))  # 3072 B
        self._last = array("h", bytes(12))  # 12 B: the last complete sample
        self.yaw_offset_cdeg = 0
        self.reset(10000, 0)

    def reset(self, rate_chz, side):
        self.rate_chz = rate_chz
        self.side = side
        self.ic_index = -1
        self.to_index = -1
        self._shift = 1 if rate_chz > _DECIMATE_ABOVE_CHZ else 0  # samples per slot: 1 << shift
        self._n = [samples_for_ms(_STILL_MS, rate_chz) or 1, samples_for_ms(_REPORT_MS, rate_chz) or 1,
                   samples_for_ms(_SEARCH_MS, rate_chz) or 1, samples_for_ms(_REST_MS, rate_chz),
                   _SWING_DEG * 10 * rate_chz // 100]
        # The foot's medio-lateral axis in sensor axes (Q12), from the last analysed
        # stance's gravity: mounting tilt does not turn pitch into roll. Sensor y until then.
        self._axis = [0, _AXIS_ONE, 0]
        self._h = 0  # pitch rate of the previous sample [0.1 deg/s]
        for k in range(6):
            self._last[k] = 0
        self._sums = [0, 0, 0, 0]  # gyro x, y, z and count over the current still phase
        self._rest = [0, 0, 0, 0]  # the same over the last rest: the bias is their mean
        self._moving = 1
        self._run = 0  # quiet samples in a row
        self._m0 = -1  # first sample of the motion after a still phase (-1: none seen yet)
        self._still = 0  # first sample of the still phase that ended the motion
        self._pending = 0  # a stride waits for its report
        self._stride = [0, 0, 0, -1, -1, -1, 0]  # _S_*
        self._new_motion()
        self._clear_result()

    def _new_motion(self):
        self._peak = 0
        self._area = 0  # of the current lobe
        self._best = 0  # largest lobe area so far
        self._best_neg = 0
        self._in_best = 0  # the current lobe is the largest
        # Zero crossings in 1/16 samples from the motion's start.
        self._cross = -16
        self._before = -16
        self._after = -1

    def _clear_result(self):
        self.fpa_cdeg = NA_I16
        self.stride_mm = NA_U16
        self.speed_mms = NA_U16
        self.direction = DIR_UNKNOWN
        self.stride_end_index = -1

    def update(self, index, imu):
        """imu: array('h') ax, ay, az [mg], gx, gy, gz [0.1 deg/s]. Returns IMU_* bits."""
        last = self._last
        if imu[0] != NA_I16 and imu[3] != NA_I16:
            for k in range(6):
                last[k] = imu[k]
        # else: a missing sample repeats the last one
        ax = last[0]
        ay = last[1]
        az = last[2]
        gx = last[3]
        gy = last[4]
        gz = last[5]
        ring = self._ring
        shift = self._shift
        p = ((index >> shift) & _RING_MASK) * 6
        if index & shift:  # the second sample of a slot: keep the pair's average
            ring[p] = (ring[p] + ax) >> 1
            ring[p + 1] = (ring[p + 1] + ay) >> 1
            ring[p + 2] = (ring[p + 2] + az) >> 1
            ring[p + 3] = (ring[p + 3] + gx) >> 1
            ring[p + 4] = (ring[p + 4] + gy) >> 1
            ring[p + 5] = (ring[p + 5] + gz) >> 1
        else:
            for k in range(6):
                ring[p + k] = last[k]
        quiet = 0
        if abs(gx) + abs(gy) + abs(gz) < _STANCE_GYR and -_STANCE_PITCH < gy < _STANCE_PITCH \
                and -_ACC_LIMIT < ax < _ACC_LIMIT \
                and -_ACC_LIMIT < ay < _ACC_LIMIT and -_ACC_LIMIT < az < _ACC_LIMIT:
            quiet = _ACC2_LO <= ax * ax + ay * ay + az * az <= _ACC2_HI
        u = self._axis
        h = (gx * u[0] + gy * u[1] + gz * u[2]) >> 12
        h_prev = self._h
        self._h = h
        bits = 0
        stride = self._stride
        if stride[_S_PUBLISH] >= 0:
            # The initial contact the last analysis found: after its stance's toe-off,
            # which went out with the previous sample.
            self.ic_index = stride[_S_PUBLISH]
            stride[_S_PUBLISH] = -1
            stride[_S_OPEN] = 1
            bits = IMU_IC
        sums = self._sums
        if not self._moving:
            if quiet:
                run = self._run + 1
                self._run = run
                if sums[3] < _REST_MAX:
                    sums[0] += gx
                    sums[1] += gy
                    sums[2] += gz
                    sums[3] += 1
                if self._pending and run >= self._n[_N_REPORT]:
                    bits |= self._report(index, index)
                if run == self._n[_N_REST] and stride[_S_OPEN]:
                    stride[_S_OPEN] = 0
                    bits |= _IMU_REST
                return bits
            # The foot moves again: report a stride still waiting, keep the bias sums
            # of a long rest, follow the new motion.
            if self._pending:
                bits |= self._report(index, index - 1)
            if self._run >= self._n[_N_REST]:
                rest = self._rest
                for k in range(4):
                    rest[k] = sums[k]
            self._run = 0
            self._moving = 1
            self._m0 = index
            self._new_motion()
        m0 = self._m0
        span = _RING << shift
        if m0 >= 0 and index - m0 < span:
            # Lobes of the pitch rate between its zero crossings; the swing is the lobe
            # of largest area (pitch swept), whichever lobe peaks highest.
            if (h < 0) != (h_prev < 0):
                cross = 16 * (index - 1 - m0) + (16 * h_prev) // (h_prev - h)
                if self._in_best:
                    self._after = cross
                    self._in_best = 0
                self._cross = cross
                self._area = 0
            mag = abs(h)
            area = self._area + mag
            self._area = area
            if area > self._best:
                self._best = area
                self._best_neg = h < 0
                self._before = self._cross
                self._after = -1
                self._in_best = 1
            if mag > self._peak:
                self._peak = mag
        if quiet:
            run = self._run + 1
            self._run = run
            if run == self._n[_N_STILL]:
                # Still again: a stride if the motion had a swing.
                self._moving = 0
                self._still = index - run + 1
                self._pending = m0 >= 0 and index - m0 < span and self._peak >= _SWING_RATE \
                    and self._best >= self._n[_N_SWING_AREA]
                sums[0] = gx
                sums[1] = gy
                sums[2] = gz
                sums[3] = 1
        else:
            self._run = 0
        return bits

    def _report(self, index, last_quiet):
        # The stride's toe-off goes out now; analyse() does the rest before the next
        # sample, from a snapshot (a new motion may start with this very sample).
        self._pending = 0
        m0 = self._m0
        shift = self._shift
        if (index >> shift) - ((m0 - self._n[_N_SEARCH]) >> shift) >= _RING:
            return 0  # the ring no longer holds the stride
        rate = self.rate_chz
        lead = (_PUSH_LEAD_MS * rate * 16 + 50000) // 100000
        lag = (_CONTACT_LAG_MS * rate * 16 + 50000) // 100000
        # Backward walking is forward walking mirrored in time: the offsets swap ends.
        forward = self._best_neg
        to = self._before - lead if forward else self._before + lag
        after = self._after
        if after < 0:
            after = 16 * (self._still - m0)
        ic = after + lag if forward else after + lead
        self.to_index = m0 + ((to + 8) >> 4)
        stride = self._stride
        stride[_S_OPEN] = 0
        stride[_S_M0] = m0
        stride[_S_STILL] = self._still
        stride[_S_LAST] = last_quiet
        stride[_S_IC] = m0 + ((ic + 8) >> 4)
        return IMU_TO | IMU_STRIDE

    def analyse(self):
        """Per-stride float work (allocates): fills the result attributes."""
        self._clear_result()
        _analyse(self)
