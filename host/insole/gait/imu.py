"""IMU gait, host reference of the firmware's ``insolefw/imu.py``: the same algorithms in numpy.

One foot-mounted 6-axis IMU (foot frame: x toes, y left, z up; any mounting tilt)
gives, per stride (docs/gait-imu.md has the method and its validation):

1. **Still phases** (:class:`ZeroVelocityDetection`): a sample is *quiet* when the
   gyroscope's L1 norm is below ``gyr_threshold_dps`` and ``|a|`` within
   ``1 ± acc_threshold_g``; the foot is *still* after ``window_length_s`` of quiet
   samples in a row. A stride is the motion between two still phases if its pitch
   rate peaks above ``swing_threshold_dps`` and its swing lobe sweeps at least
   ``swing_min_deg``.
2. **Toe-off and initial contact** (:class:`ImuEventDetection`) from the pitch rate
   (about the foot's medio-lateral axis, levelled with the stance's gravity so a tilted
   mount does not matter). Its zero crossings split a stride into lobes; the foot lies
   flat at both ends, so the swing lobe sweeps as much pitch as all others together and
   is the one of largest area. Toe-off is at the crossing that opens it, initial contact
   at the one that closes it. Walking forward the swing lobe is negative (toes rotate
   up) and toe-off precedes its crossing by ``push_lead_s`` (the last of the push-off);
   backward walking is forward walking mirrored in time, so the offsets swap ends.
3. **Trajectory** (:class:`StrideTrajectory`), from the calmest sample of the still
   phase before the stride to the calmest of the one after it: start attitude = the
   smallest rotation that turns the measured gravity to vertical (mounting tilt removed,
   heading 0 = the foot's axis); gyroscope minus the bias learnt at rest integrated
   through the stride; gravity removed; velocity integrated, its drift removed as a
   ramp (zero at both still ends); position integrated. Result: the horizontal
   displacement ``d`` in the start stance's levelled frame and the heading ``psi`` of
   the foot in the end stance (the attitude's twist about the vertical).
4. **Direction and foot progression angle** (:class:`FootProgressionAngle`).

The firmware works on the protocol's integer counts (mg, 0.1 deg/s) and so does this
reference (:func:`imu_counts`), so still phases and events are the firmware's sample
for sample. The firmware keeps raw samples in a ring of :data:`RING_SLOTS` slots, one
sample per slot up to 130 Hz and the floor-average of two above; the stride work reads
those slots, and so does this reference (:func:`ring_slots`). The device integrates in
fixed-point integers (no allocation per slot, no single-precision rounding); so does
this reference by default, bit for bit, and ``arithmetic="float"`` runs the same method
in float64 or float32 to measure what the integers cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from insole.gait.units import samples_for_ms
from insole.model import STANDARD_GRAVITY_MS2, FootStream, Side
from insole.protocol import NA_I16
from insole.quantise import acc_ms2_to_raw, gyro_dps_to_raw, rate_hz_to_chz

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Direction = Literal["forward", "backward", "unknown"]
FloatType = type[np.float32] | type[np.float64] | type[float]

# The firmware's parameters (firmware/insolefw/imu.py): change both together.
STILL_GYR_THRESHOLD_DPS = 50.0
STILL_ACC_THRESHOLD_G = 0.2
STILL_WINDOW_S = 0.050
REPORT_S = 0.100  # a stride is analysed once its still phase lasted this long (or ended)
SWING_THRESHOLD_DPS = 100.0
SWING_MIN_DEG = 20.0
ZUPT_SEARCH_S = 0.100  # the stride starts at the calmest of this much stillness before it
GRAVITY_HALF_WINDOW_S = 0.020
REST_S = 1.0  # a still phase this long teaches the gyroscope bias ...
REST_MAX_SAMPLES = 4096  # ... averaged over at most this many samples
RING_SLOTS = 256
DECIMATE_ABOVE_HZ = 130.0
PUSH_LEAD_S = 0.017
CONTACT_LAG_S = 0.0
TURN_DEG = 25.0
CONE_DEG = 60.0
MIN_STRIDE_M = 0.100
MAX_STRIDE_TIME_S = 2.5
MIN_STANCE_S = 0.100  # GaitCore drops shorter stances
IMU_FROM_HEEL_M = 0.100  # the IMU (PCB under the arch) lies this far ahead of the heel centre
AXIS_ONE = 4096  # the pitch axis in Q12

MG_PER_G = 1000.0
COUNTS_PER_DPS = 10.0


def samples_for_s(seconds: float, rate_hz: float) -> int:
    """The firmware's ``units.samples_for_ms`` of a time in seconds."""
    return samples_for_ms(int(round(seconds * 1000.0)), rate_hz_to_chz(rate_hz))


def sixteenths_for_s(seconds: float, rate_hz: float) -> int:
    """Samples in 1/16 units, as the firmware keeps event offsets."""
    return (int(round(seconds * 1000.0)) * rate_hz_to_chz(rate_hz) * 16 + 50000) // 100000


def ring_shift(rate_hz: float) -> int:
    """log2 of the samples per ring slot: 1 above 130 Hz."""
    return 1 if rate_hz_to_chz(rate_hz) > round(DECIMATE_ABOVE_HZ * 100) else 0


def imu_counts(stream: FootStream) -> IntArray:
    """(n, 6) ``ax ay az`` [mg], ``gx gy gz`` [0.1 deg/s] as the firmware receives them;
    a missing sample (n/a) repeats the last complete one, as on the device."""
    if stream.acc_ms2 is None or stream.gyro_dps is None:
        raise ValueError(f"{stream.side} stream has no IMU")
    raw = np.hstack([acc_ms2_to_raw(stream.acc_ms2), gyro_dps_to_raw(stream.gyro_dps)]).astype(np.int64)
    complete = (raw[:, 0] != NA_I16) & (raw[:, 3] != NA_I16)
    if not complete.all():
        source = np.maximum.accumulate(np.where(complete, np.arange(len(raw)), -1))
        filled = np.zeros_like(raw)  # before the first complete sample: zeros, as the device's buffer
        filled[source >= 0] = raw[source[source >= 0]]
        raw = filled
    return raw


def ring_slots(counts: IntArray, shift: int) -> IntArray:
    """What the firmware's ring holds: each sample, or the floor-average of each pair."""
    if not shift:
        return counts
    n = len(counts) // 2 * 2
    slots = (counts[0:n:2] + counts[1:n:2]) >> 1
    if len(counts) % 2:
        slots = np.vstack([slots, counts[-1:]])
    return slots


def quiet_samples(counts: IntArray, gyr_threshold_dps: float, acc_threshold_g: float) -> npt.NDArray[np.bool_]:
    """The firmware's per-sample still test, on counts."""
    gyr = int(round(gyr_threshold_dps * COUNTS_PER_DPS))
    lo = int(round((1.0 - acc_threshold_g) * MG_PER_G)) ** 2
    hi = int(round((1.0 + acc_threshold_g) * MG_PER_G)) ** 2
    acc = counts[:, :3]
    a2 = (acc * acc).sum(axis=1)
    return (np.abs(counts[:, 3:]).sum(axis=1) < gyr) & (a2 >= lo) & (a2 <= hi)


# --------------------------------------------------------------------------- still phases


class ZeroVelocityDetection:
    """Still phases: runs of at least ``window_length_s`` quiet samples.

    ``detect(counts, rate_hz)`` sets ``quiet_`` (bool per sample) and
    ``run_start_index_``/``run_end_index_`` (inclusive) of each still phase.
    """

    def __init__(
        self,
        window_length_s: float = STILL_WINDOW_S,
        gyr_threshold_dps: float = STILL_GYR_THRESHOLD_DPS,
        acc_threshold_g: float = STILL_ACC_THRESHOLD_G,
    ) -> None:
        self.window_length_s = window_length_s
        self.gyr_threshold_dps = gyr_threshold_dps
        self.acc_threshold_g = acc_threshold_g
        self.quiet_: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self.run_start_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.run_end_index_: IntArray = np.zeros(0, dtype=np.int64)
        self.window_samples_ = 0

    def detect(self, counts: IntArray, rate_hz: float) -> ZeroVelocityDetection:
        quiet = quiet_samples(counts, self.gyr_threshold_dps, self.acc_threshold_g)
        n = samples_for_s(self.window_length_s, rate_hz) or 1
        edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1) - 1
        long_enough = ends - starts + 1 >= n
        self.quiet_ = quiet
        self.window_samples_ = n
        self.run_start_index_ = starts[long_enough].astype(np.int64)
        self.run_end_index_ = ends[long_enough].astype(np.int64)
        return self


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SwingEvents:
    """What the firmware follows online through one stride's motion."""

    swing_deg: float  # pitch swept by the swing lobe, signed (negative: toes up, forward)
    swing_area: int  # the same as the device keeps it: sum of |pitch rate| [0.1 deg/s]
    peak_dps: float  # largest |pitch rate| of the motion
    before16: int  # zero crossing that opens the swing lobe, 1/16 samples
    after16: int  # zero crossing that closes it
    to_index: int
    ic_index: int


class ImuEventDetection:
    """Toe-off and initial contact of one stride from the zero crossings of its swing lobe.

    ``detect(pitch, motion_start, scan_end, still_start, rate_hz)`` scans the motion
    ``[motion_start, scan_end]`` of ``pitch`` (the stream's pitch rate, 0.1 deg/s) as
    the device does sample by sample, and sets ``events_`` (:class:`SwingEvents`).
    """

    def __init__(self, push_lead_s: float = PUSH_LEAD_S, contact_lag_s: float = CONTACT_LAG_S) -> None:
        self.push_lead_s = push_lead_s
        self.contact_lag_s = contact_lag_s
        self.events_: SwingEvents | None = None

    def detect(
        self, pitch: IntArray, motion_start: int, scan_end: int, still_start: int, rate_hz: float
    ) -> ImuEventDetection:
        h = pitch[motion_start - 1 : scan_end + 1]
        negative = h < 0
        flips = negative[1:] != negative[:-1]  # per scanned sample: a crossing since the one before
        crossing = np.flatnonzero(flips)  # between h[c] and h[c + 1]
        h0 = h[crossing]
        h1 = h[crossing + 1]
        opening16 = np.concatenate([[-16], 16 * (crossing - 1) + (16 * h0) // (h0 - h1)])  # from motion_start
        lobe = np.cumsum(flips)
        scanned = h[1:]
        area = np.bincount(lobe, weights=np.abs(scanned))
        best = int(np.argmax(area))  # the first largest, as the device's strict '>'
        before16 = int(opening16[best])
        after16 = int(opening16[best + 1]) if best + 1 < len(opening16) else 16 * (still_start - motion_start)
        forward = bool(negative[1:][lobe == best][0])
        lead16 = sixteenths_for_s(self.push_lead_s, rate_hz)
        lag16 = sixteenths_for_s(self.contact_lag_s, rate_hz)
        # Backward walking is forward walking mirrored in time: the offsets swap ends.
        to16 = before16 - lead16 if forward else before16 + lag16
        ic16 = after16 + lag16 if forward else after16 + lead16
        swept = float(area[best]) / COUNTS_PER_DPS / rate_hz
        self.events_ = SwingEvents(
            swing_deg=-swept if forward else swept,
            swing_area=int(area[best]),
            peak_dps=float(np.abs(scanned).max()) / COUNTS_PER_DPS,
            before16=before16,
            after16=after16,
            to_index=motion_start + ((to16 + 8) >> 4),
            ic_index=motion_start + ((ic16 + 8) >> 4),
        )
        return self


# --------------------------------------------------------------------------- trajectory


def _unit(g: tuple[float, float, float]) -> tuple[float, float, float]:
    n = math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
    return g[0] / n, g[1] / n, g[2] / n


def levelling_quaternion(g: tuple[float, float, float]) -> tuple[float, float, float, float]:
    """The smallest rotation (w, x, y, z) that turns the measured gravity ``g`` (sensor
    axes, any length) to +z: it removes tilt and adds no twist about the vertical."""
    ux, uy, uz = _unit(g)
    n = math.sqrt(2.0 + 2.0 * uz)
    return ((1.0 + uz) / n, uy / n, -ux / n, 0.0)


def pitch_axis_q12(g: tuple[float, float, float]) -> tuple[int, int, int] | None:
    """The foot's medio-lateral axis in sensor axes (Q12) from the stance's gravity: the
    levelled frame's +y seen from the sensor. None for a sensor upside down (the device
    then keeps the axis it had)."""
    gx, gy, gz = _unit(g)
    if gz <= -0.9:
        return None
    c = 1.0 + gz
    return (round(-gx * gy / c * AXIS_ONE), round((1.0 - gy * gy / c) * AXIS_ONE), round(-gy * AXIS_ONE))


class StrideTrajectory:
    """Displacement and end heading of one stride, integrated between two still slots.

    ``estimate(slots, start, end, gravity_mg, rest_sums, dt_s)`` sets
    ``displacement_m_`` (x, y, z in the start stance's levelled frame, x = the foot's
    axis), ``heading_rad_`` (the foot's heading in
    the end stance) and ``duration_s_``. ``rest_sums`` are the gyroscope sums (x, y, z
    [0.1 deg/s]) and sample count of the last rest, whose mean is the bias (count 0: no
    bias known).

    ``arithmetic="fixed"`` (default) is the firmware's integer arithmetic, bit for bit:
    quaternion and rotation matrix in Q14, half-angle increments in Q14 with their
    rounding remainder carried, acceleration in mg, velocity and position as running
    sums. ``"float"`` is the same method in floating point (``dtype`` float64, or
    float32 as an ESP32 would compute it), to measure what the integers cost.
    """

    def __init__(self, arithmetic: Literal["fixed", "float"] = "fixed", dtype: FloatType = float) -> None:
        self.arithmetic = arithmetic
        self.dtype = dtype
        self.displacement_m_ = (math.nan, math.nan, math.nan)
        self.heading_rad_ = math.nan
        self.duration_s_ = math.nan

    def estimate(
        self,
        slots: IntArray,
        start: int,
        end: int,
        gravity_mg: tuple[float, float, float],
        rest_sums: tuple[int, int, int, int],
        dt_s: float,
    ) -> StrideTrajectory:
        if self.arithmetic == "fixed":
            return self._fixed(slots, start, end, gravity_mg, rest_sums, dt_s)
        n = rest_sums[3]
        bias = (rest_sums[0] / n, rest_sums[1] / n, rest_sums[2] / n) if n else (0.0, 0.0, 0.0)
        return self._float(slots, start, end, gravity_mg, bias, dt_s)

    def _fixed(
        self,
        slots: IntArray,
        start: int,
        end: int,
        gravity_mg: tuple[float, float, float],
        rest_sums: tuple[int, int, int, int],
        dt_s: float,
    ) -> StrideTrajectory:
        one = 1 << 14
        ux, uy, uz = _unit(gravity_mg)
        gnorm = math.sqrt(sum(v * v for v in gravity_mg))
        n = math.sqrt(2 + 2 * uz)
        qw, qx, qy, qz = round((1 + uz) / n * one), round(uy / n * one), round(-ux / n * one), 0
        g0 = round(gnorm)
        kfix = round(math.pi / 1800 * dt_s / 4 * (1 << 30))
        cnt = rest_sums[3]
        b = [round(2 * rest_sums[k] * kfix / cnt) if cnt else 0 for k in range(3)]
        carry = [0, 0, 0]
        v = [0, 0, 0]
        pos = [0, 0, 0]
        rows = np.clip(slots[start : end + 1], -32768, 32767).tolist()
        w = rows[0][3:6]
        e = [0, 0, 0]
        for k, row in enumerate(rows):
            if k:
                h = [0, 0, 0]
                for i in range(3):
                    hi = (w[i] + row[3 + i]) * kfix - b[i] + carry[i]
                    carry[i] = hi & 0xFFFF
                    h[i] = hi >> 16
                w = row[3:6]
                t = (h[0] * h[0] + h[1] * h[1] + h[2] * h[2]) >> 14
                c = one - (t >> 1) + t * t // 393216
                f = one - t // 6 + t * t // 1966080
                hx, hy, hz = ((x * f + 8192) >> 14 for x in h)
                nw = (qw * c - qx * hx - qy * hy - qz * hz + 8192) >> 14
                nx = (qw * hx + qx * c + qy * hz - qz * hy + 8192) >> 14
                ny = (qw * hy - qx * hz + qy * c + qz * hx + 8192) >> 14
                nz = (qw * hz + qx * hy - qy * hx + qz * c + 8192) >> 14
                f = (805306368 - nw * nw - nx * nx - ny * ny - nz * nz) >> 15
                qw, qx, qy, qz = ((x * f + 8192) >> 14 for x in (nw, nx, ny, nz))
            ax, ay, az = (max(-16000, min(16000, x)) for x in row[:3])
            ww, xx, yy, zz = qw * qw, qx * qx, qy * qy, qz * qz
            xy, xz, yz, wx, wy, wz = qx * qy, qx * qz, qy * qz, qw * qx, qw * qy, qw * qz
            level = [
                (((ww + xx - yy - zz) >> 14) * ax + ((xy - wz) >> 13) * ay + ((xz + wy) >> 13) * az + 8192) >> 14,
                (((xy + wz) >> 13) * ax + ((ww - xx + yy - zz) >> 14) * ay + ((yz - wx) >> 13) * az + 8192) >> 14,
                ((((xz - wy) >> 13) * ax + ((yz + wx) >> 13) * ay + ((ww - xx - yy + zz) >> 14) * az + 8192) >> 14) - g0,
            ]
            if k:
                for i in range(3):
                    nv = v[i] + e[i] + level[i]
                    pos[i] += v[i] + nv
                    v[i] = nv
            e = level
        m = end - start
        scale = 9.80665e-3 * dt_s * dt_s / 4
        self.displacement_m_ = ((pos[0] - v[0] * m) * scale, (pos[1] - v[1] * m) * scale, (pos[2] - v[2] * m) * scale)
        self.heading_rad_ = 2 * math.atan2(qz, qw)
        self.duration_s_ = dt_s * m
        return self

    def _float(
        self,
        slots: IntArray,
        start: int,
        end: int,
        gravity_mg: tuple[float, float, float],
        gyro_bias_counts: tuple[float, float, float],
        dt_s: float,
    ) -> StrideTrajectory:
        f = self.dtype
        single = f is np.float32
        sqrt, sin, cos, atan2 = (np.sqrt, np.sin, np.cos, np.arctan2) if single else (
            math.sqrt, math.sin, math.cos, math.atan2)
        one_half = f(0.5)
        thousandth = f(1000.0)
        dt = f(dt_s)
        half_angle = dt * f(math.pi / 3600.0)  # 0.1 deg/s -> rad, halved
        g = tuple(f(v) for v in gravity_mg)
        g0 = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]) / thousandth
        qw, qx, qy, qz = (f(v) for v in levelling_quaternion(gravity_mg))
        bias = [f(b) for b in gyro_bias_counts]
        rows = [[f(v) for v in row] for row in slots[start : end + 1].tolist()]

        def level(row: list[object]) -> list[object]:
            # Acceleration [mg, sensor axes] in the levelled frame [g], gravity removed.
            ax, ay, az = row[0] / thousandth, row[1] / thousandth, row[2] / thousandth  # type: ignore[operator]
            return [
                (qw * qw + qx * qx - qy * qy - qz * qz) * ax + 2 * (qx * qy - qw * qz) * ay + 2 * (qx * qz + qw * qy) * az,
                2 * (qx * qy + qw * qz) * ax + (qw * qw - qx * qx + qy * qy - qz * qz) * ay + 2 * (qy * qz - qw * qx) * az,
                2 * (qx * qz - qw * qy) * ax + 2 * (qy * qz + qw * qx) * ay + (qw * qw - qx * qx - qy * qy + qz * qz) * az
                - g0,
            ]

        v = [f(0.0)] * 3
        pos = [f(0.0)] * 3
        e = level(rows[0])
        for k in range(1, len(rows)):
            # Rate at the middle of the interval, bias removed.
            rx = (rows[k - 1][3] + rows[k][3]) * one_half - bias[0]
            ry = (rows[k - 1][4] + rows[k][4]) * one_half - bias[1]
            rz = (rows[k - 1][5] + rows[k][5]) * one_half - bias[2]
            rate = sqrt(rx * rx + ry * ry + rz * rz)
            if rate > 0:
                angle = rate * half_angle
                sa = sin(angle) / rate
                cw, cx, cy, cz = cos(angle), rx * sa, ry * sa, rz * sa
                qw, qx, qy, qz = (
                    qw * cw - qx * cx - qy * cy - qz * cz,
                    qw * cx + qx * cw + qy * cz - qz * cy,
                    qw * cy - qx * cz + qy * cw + qz * cx,
                    qw * cz + qx * cy - qy * cx + qz * cw,
                )
                n = sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
                qw, qx, qy, qz = qw / n, qx / n, qy / n, qz / n
            a = level(rows[k])
            for i in range(3):
                nv = v[i] + (e[i] + a[i]) * one_half * dt  # type: ignore[operator]
                pos[i] = pos[i] + (v[i] + nv) * one_half * dt
                v[i] = nv
            e = a
        duration = dt * (len(rows) - 1)
        # Velocity must be zero at the end: its drift, removed as a ramp over the stride,
        # integrates to half the end velocity times the duration.
        scale = f(STANDARD_GRAVITY_MS2)
        self.displacement_m_ = tuple(float((pos[i] - v[i] * duration * one_half) * scale) for i in range(3))  # type: ignore[assignment]
        self.heading_rad_ = float(2 * atan2(qz, qw))
        self.duration_s_ = float(duration)
        return self


# --------------------------------------------------------------------------- direction, FPA


def wrap_rad(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class FootProgressionAngle:
    """Walking direction, foot progression angle and stride length of one stride.

    ``estimate(displacement_m, heading_rad, side)`` sets ``direction_`` (forward when
    the displacement lies within ``cone_deg`` of the mean foot axis of the two stances,
    backward within ``cone_deg`` of its reverse; unknown otherwise, for strides shorter
    than ``min_stride_m`` and in turns: ``|heading| > turn_deg``), ``fpa_deg_`` (the end
    stance's FPA, the project's definition: the displacement *into* that footprint,
    reversed walking backward, seen from its foot axis; positive toe-out on both feet;
    NaN when the direction or side is unknown), ``fpa_out_deg_`` (the same angle seen from
    the *start* stance's foot axis: the displacement *out of* that footprint, as
    motion-capture references often define it) and ``stride_length_m_``.
    ``yaw_offset_deg`` is the sensor's mounting yaw (its x axis turned that much
    counter-clockwise from the foot's axis): it adds to the left foot's angle and
    subtracts from the right's unless removed here.
    """

    def __init__(
        self,
        turn_deg: float = TURN_DEG,
        cone_deg: float = CONE_DEG,
        min_stride_m: float = MIN_STRIDE_M,
        yaw_offset_deg: float = 0.0,
        imu_from_heel_m: float = IMU_FROM_HEEL_M,
    ) -> None:
        self.turn_deg = turn_deg
        self.cone_deg = cone_deg
        self.min_stride_m = min_stride_m
        self.yaw_offset_deg = yaw_offset_deg
        self.imu_from_heel_m = imu_from_heel_m
        self.direction_: Direction = "unknown"
        self.fpa_deg_ = math.nan
        self.fpa_out_deg_ = math.nan
        self.stride_length_m_ = math.nan

    def estimate(
        self, displacement_m: tuple[float, float, float], heading_rad: float, side: Side | None
    ) -> FootProgressionAngle:
        # The heel's displacement: the IMU's, minus what the foot's turn between the two
        # stances moved the IMU about the heel.
        r = self.imu_from_heel_m
        dx = displacement_m[0] - r * (math.cos(heading_rad) - 1.0)
        dy = displacement_m[1] - r * math.sin(heading_rad)
        length = math.hypot(dx, dy)
        theta = math.atan2(dy, dx)
        off_axis = abs(math.degrees(wrap_rad(theta - heading_rad / 2.0)))
        turning = abs(math.degrees(wrap_rad(heading_rad))) > self.turn_deg
        direction: Direction = "unknown"
        if length >= self.min_stride_m and not turning:
            if off_axis <= self.cone_deg:
                direction = "forward"
            elif off_axis >= 180.0 - self.cone_deg:
                direction = "backward"
        self.direction_ = direction
        self.stride_length_m_ = length
        self.fpa_deg_ = self.fpa_out_deg_ = math.nan
        if direction != "unknown" and side is not None:
            progression = theta if direction == "forward" else theta + math.pi
            self.fpa_deg_ = self._signed(side, math.degrees(wrap_rad(progression - heading_rad)))
            self.fpa_out_deg_ = self._signed(side, math.degrees(wrap_rad(progression)))
        return self

    def _signed(self, side: Side, angle_deg: float) -> float:
        # angle_deg: the progression line seen from the foot axis, counter-clockwise.
        return (angle_deg + self.yaw_offset_deg) if side == "right" else (-angle_deg - self.yaw_offset_deg)


def mounting_yaw_from_roll_deg(gravity_flat: tuple[float, float, float], gravity_rolled: tuple[float, float, float]) -> float:
    """The sensor's mounting yaw (its x axis turned counter-clockwise from the foot's long
    axis, degrees; ``yaw_offset_deg`` above, ``ImuTracker.yaw_offset_cdeg`` / 100 on the
    device) from a static roll test: the shoe stands flat, then is rolled onto its edge
    about its long axis (heel and toe kept against a straight edge). Gravity turns about
    that axis, so the axis is the cross product of the two readings (sensor axes); seen
    in the flat pose's levelled frame its heading is minus the mounting yaw."""
    axis = np.cross(np.asarray(gravity_flat, dtype=np.float64), np.asarray(gravity_rolled, dtype=np.float64))
    norm = float(np.linalg.norm(axis))
    if norm < 1e-6 * float(np.linalg.norm(gravity_flat)) ** 2:
        raise ValueError("the two poses read the same gravity: roll the shoe further")
    w, x, y, z = levelling_quaternion(gravity_flat)
    rotation = np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )
    levelled = rotation @ (axis / norm)
    heading = math.degrees(math.atan2(levelled[1], levelled[0]))
    if abs(heading) > 90.0:  # the axis either way: take the toes' end
        heading = heading - 180.0 if heading > 0 else heading + 180.0
    return -heading


# --------------------------------------------------------------------------- pipeline


@dataclass(frozen=True)
class ImuStep:
    """A stance as the firmware reports it from the IMU alone (one STEP record)."""

    ic_index: int
    to_index: int
    fpa_deg: float
    direction: Direction
    stride_length_m: float
    speed_ms: float


class ImuGait:
    """The firmware's IMU pipeline on one foot's stream, stride by stride.

    ``detect(stream)`` sets, per stride (a motion between two still phases with a
    swing): ``to_index_`` (toe-off of the stance before it), ``ic_index_`` (initial
    contact of the stance after it), ``stride_end_index_`` (the last still sample when
    the device analysed it: inside the stance the stride ended in),
    ``start_index_``/``end_index_`` (its calmest still samples, where the integration
    starts and ends), ``fpa_deg_``, ``fpa_out_deg_``, ``stride_length_m_``,
    ``speed_ms_``, ``direction_``, ``heading_change_deg_``, ``swing_deg_``; and
    ``steps_``: the stances as the firmware emits them from IMU data alone.
    """

    def __init__(
        self,
        zero_velocity: ZeroVelocityDetection | None = None,
        events: ImuEventDetection | None = None,
        angle: FootProgressionAngle | None = None,
        *,
        report_s: float = REPORT_S,
        swing_threshold_dps: float = SWING_THRESHOLD_DPS,
        swing_min_deg: float = SWING_MIN_DEG,
        zupt_search_s: float = ZUPT_SEARCH_S,
        gravity_half_window_s: float = GRAVITY_HALF_WINDOW_S,
        rest_s: float = REST_S,
        ring_slots: int = RING_SLOTS,
        max_stride_time_s: float = MAX_STRIDE_TIME_S,
        min_stance_s: float = MIN_STANCE_S,
        arithmetic: Literal["fixed", "float"] = "fixed",
        dtype: FloatType = float,
    ) -> None:
        self.zero_velocity = zero_velocity or ZeroVelocityDetection()
        self.events = events or ImuEventDetection()
        self.angle = angle or FootProgressionAngle()
        self.report_s = report_s
        self.swing_threshold_dps = swing_threshold_dps
        self.swing_min_deg = swing_min_deg
        self.zupt_search_s = zupt_search_s
        self.gravity_half_window_s = gravity_half_window_s
        self.rest_s = rest_s
        self.ring_slots = ring_slots
        self.max_stride_time_s = max_stride_time_s
        self.min_stance_s = min_stance_s
        self.arithmetic = arithmetic
        self.dtype = dtype

    def detect(self, stream: FootStream) -> ImuGait:
        rate = stream.rate_hz
        side = stream.side
        counts = imu_counts(stream)
        zupt = self.zero_velocity.detect(counts, rate)
        starts, ends = zupt.run_start_index_, zupt.run_end_index_
        n_window = zupt.window_samples_
        n_report = samples_for_s(self.report_s, rate) or 1
        search = samples_for_s(self.zupt_search_s, rate) or 1
        rest = samples_for_s(self.rest_s, rate)
        max_stride = samples_for_s(self.max_stride_time_s, rate)
        swing_area = round(self.swing_min_deg) * 10 * rate_hz_to_chz(rate) // 100
        shift = ring_shift(rate)
        slots = ring_slots(counts, shift)
        slot_quiet = quiet_samples(slots, self.zero_velocity.gyr_threshold_dps, self.zero_velocity.acc_threshold_g)
        slot_l1 = np.abs(slots[:, 3:]).sum(axis=1)
        half = samples_for_s(self.gravity_half_window_s, rate) >> shift
        dt = (100 << shift) / rate_hz_to_chz(rate)  # as the firmware computes it
        n = len(counts)

        axis = (0, AXIS_ONE, 0)
        rest_sums = (0, 0, 0, 0)
        previous_ic = -1
        rows: list[dict[str, float]] = []
        for j in range(1, len(starts)):
            # The still phase before this motion: a rest teaches the gyroscope bias (the
            # device sums from the sample that confirmed it, at most REST_MAX_SAMPLES).
            if ends[j - 1] - starts[j - 1] + 1 >= rest:
                first = int(starts[j - 1]) + n_window - 1
                count = min(int(ends[j - 1]) - first + 1, REST_MAX_SAMPLES)
                sums = counts[first : first + count, 3:].sum(axis=0)
                rest_sums = (int(sums[0]), int(sums[1]), int(sums[2]), count)
            m0 = int(ends[j - 1]) + 1
            still = int(starts[j])
            confirm = still + n_window - 1
            if still + n_report - 1 <= ends[j]:
                report_at = last = still + n_report - 1
            elif ends[j] + 1 < n:
                report_at, last = int(ends[j]) + 1, int(ends[j])
            else:
                continue  # the recording stops before the device would report it
            pitch = (counts[:, 3] * axis[0] + counts[:, 4] * axis[1] + counts[:, 5] * axis[2]) >> 12
            ev = self.events.detect(pitch, m0, confirm, still, rate).events_
            assert ev is not None
            if (
                confirm - m0 >= self.ring_slots << shift
                or ev.peak_dps < self.swing_threshold_dps
                or ev.swing_area < swing_area
                or (report_at >> shift) - ((m0 - search) >> shift) >= self.ring_slots
            ):
                continue  # no swing, or the ring no longer holds the stride
            # Slots wholly inside the still phase before (at most zupt_search_s of it)
            # and the one after; the stride runs between their calmest slots.
            a_hi = (m0 >> shift) - 1
            a_lo = a_hi
            lowest = (m0 - search) >> shift
            while a_lo - 1 >= lowest and slot_quiet[a_lo - 1]:
                a_lo -= 1
            b_lo = (still + (1 << shift) - 1) >> shift
            b_hi = ((last + 1) >> shift) - 1
            z0 = a_lo + int(np.argmin(slot_l1[a_lo : a_hi + 1]))
            z1 = b_lo + int(np.argmin(slot_l1[b_lo : b_hi + 1]))
            g0 = _mean_acc(slots, max(a_lo, z0 - half), min(a_hi, z0 + half))
            g1 = _mean_acc(slots, max(b_lo, z1 - half), min(b_hi, z1 + half))
            traj = StrideTrajectory(self.arithmetic, self.dtype).estimate(slots, z0, z1, g0, rest_sums, dt)
            fpa = FootProgressionAngle(
                self.angle.turn_deg,
                self.angle.cone_deg,
                self.angle.min_stride_m,
                self.angle.yaw_offset_deg,
                self.angle.imu_from_heel_m,
            ).estimate(traj.displacement_m_, traj.heading_rad_, side)
            speed = math.nan
            if previous_ic >= 0 and 0 < ev.ic_index - previous_ic <= max_stride:
                speed = fpa.stride_length_m_ / ((ev.ic_index - previous_ic) / rate)
            previous_ic = ev.ic_index
            axis = pitch_axis_q12(g1) or axis
            rows.append(
                dict(
                    to=ev.to_index,
                    ic=ev.ic_index,
                    end=last,
                    start_zupt=z0 << shift,
                    end_zupt=z1 << shift,
                    fpa=fpa.fpa_deg_,
                    fpa_out=fpa.fpa_out_deg_,
                    length=fpa.stride_length_m_,
                    speed=speed,
                    direction={"forward": 1, "backward": 2}.get(fpa.direction_, 0),
                    heading=math.degrees(traj.heading_rad_),
                    swept=ev.swing_deg,
                )
            )
        self._set_results(rows, rate)
        return self

    def _set_results(self, rows: list[dict[str, float]], rate: float) -> None:
        def col(name: str, dtype: type = np.float64) -> npt.NDArray[np.generic]:
            return np.array([r[name] for r in rows], dtype=dtype)

        self.to_index_ = col("to", np.int64)
        self.ic_index_ = col("ic", np.int64)
        self.stride_end_index_ = col("end", np.int64)
        self.start_index_ = col("start_zupt", np.int64)
        self.end_index_ = col("end_zupt", np.int64)
        self.fpa_deg_ = col("fpa")
        self.fpa_out_deg_ = col("fpa_out")
        self.stride_length_m_ = col("length")
        self.speed_ms_ = col("speed")
        codes = col("direction", np.int64)
        self.direction_ = np.array([("unknown", "forward", "backward")[c] for c in codes], dtype=object)
        self.heading_change_deg_ = col("heading")
        self.swing_deg_ = col("swept")
        # Stances as the device emits them from the IMU alone: the initial contact from
        # one stride, the toe-off from the next; the stride that ended inside the stance
        # gives it its angle, length and direction (GaitCore drops stances < 100 ms).
        steps: list[ImuStep] = []
        min_stance = samples_for_s(self.min_stance_s, rate)
        for j in range(1, len(rows)):
            ic, to = int(self.ic_index_[j - 1]), int(self.to_index_[j])
            if to - ic < min_stance:
                continue
            inside = ic <= self.stride_end_index_[j - 1] <= to
            steps.append(
                ImuStep(
                    ic_index=ic,
                    to_index=to,
                    fpa_deg=float(self.fpa_deg_[j - 1]) if inside else math.nan,
                    direction=self.direction_[j - 1] if inside else "unknown",
                    stride_length_m=float(self.stride_length_m_[j - 1]) if inside else math.nan,
                    speed_ms=float(self.speed_ms_[j - 1]) if inside else math.nan,
                )
            )
        self.steps_ = steps


def _mean_acc(slots: IntArray, lo: int, hi: int) -> tuple[float, float, float]:
    s = slots[lo : hi + 1, :3].sum(axis=0)
    m = hi - lo + 1
    return (float(s[0]) / m, float(s[1]) / m, float(s[2]) / m)
