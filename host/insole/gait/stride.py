"""Host twin of firmware/insolefw/stride.py: one stride's levelling, integration, displacement, direction and FPA.

The per-stride work the device runs between samples once a stride is reported
(``insolefw.stride.analyse``), on the same ring slots (:func:`insole.gait.imu.ring_slots`):

1. **Gravity** (:func:`gravity_mean_mg`): the mean acceleration over
   ``gravity_half_window_ms`` either side of the stride's calmest still slots.
2. **Trajectory** (:class:`StrideTrajectory`), from the calmest slot of the still
   phase before the stride to the calmest of the one after it: start attitude = the
   smallest rotation that turns the measured gravity to vertical
   (:func:`levelling_quaternion`: mounting tilt removed, heading 0 = the foot's axis);
   gyroscope minus the bias learnt at rest integrated through the stride; gravity
   removed; velocity integrated, its drift removed as a ramp (zero at both still
   ends); position integrated. Result: the horizontal displacement in the start
   stance's levelled frame and the heading of the foot in the end stance (the
   attitude's twist about the vertical).
3. **Pitch axis** (:func:`pitch_axis_q12`): the end stance's gravity gives the next
   stride's medio-lateral axis, so a tilted mount does not turn pitch into roll.
4. **Direction, foot progression angle and stride length** (:class:`FootProgressionAngle`).

The device integrates in fixed-point integers (no allocation per slot, no
single-precision rounding); so does this twin by default, bit for bit, and
``arithmetic="float"`` runs the same method in float64 or float32 to measure what the
integers cost. The thresholds are the firmware's module constants, stated once here in
:class:`StrideParameters`. :func:`mounting_yaw_from_roll_deg` computes the mounting
yaw the device takes off every angle (``ImuTracker.yaw_offset_cdeg``) from a roll test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from insole.model import STANDARD_GRAVITY_MS2, IntArray, Side, WalkingDirection

Arithmetic = Literal["fixed", "float"]
FloatType = type[np.float32] | type[np.float64] | type[float]
Vector3 = tuple[float, float, float]

AXIS_ONE = 4096  # 1.0 in Q12, the pitch axis's scale


@dataclass(frozen=True)
class StrideParameters:
    """The firmware's per-stride constants (``insolefw/stride.py``).

    Parameters
    ----------
    gravity_half_window_ms
        Gravity is the mean acceleration over this long either side of a stride's
        calmest still slots.
    turn_deg
        The foot's heading turned more between the two stances: direction unknown, no FPA.
    cone_deg
        Forward (backward) when the displacement lies within this angle of the mean foot
        axis of the two stances (of its reverse).
    min_stride_m
        Shorter strides have no direction and no FPA.
    max_stride_time_ms
        Speed only over initial contacts at most this far apart.
    imu_from_heel_m
        The IMU (the PCB under the arch) lies this far ahead of the heel centre.
    """

    gravity_half_window_ms: int = 20
    turn_deg: float = 25.0
    cone_deg: float = 60.0
    min_stride_m: float = 0.100
    max_stride_time_ms: int = 2500
    imu_from_heel_m: float = 0.100


def gravity_mean_mg(slots: IntArray, lo: int, hi: int) -> Vector3:
    """The mean acceleration [mg, sensor axes] of ring slots ``lo..hi`` (``stride._gravity``)."""
    s = slots[lo : hi + 1, :3].sum(axis=0)
    m = hi - lo + 1
    return (float(s[0]) / m, float(s[1]) / m, float(s[2]) / m)


def _unit(g: Vector3) -> Vector3:
    n = math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
    return g[0] / n, g[1] / n, g[2] / n


def levelling_quaternion(g: Vector3) -> tuple[float, float, float, float]:
    """The smallest rotation (w, x, y, z) that turns the measured gravity ``g`` (sensor
    axes, any length) to +z: it removes tilt and adds no twist about the vertical."""
    ux, uy, uz = _unit(g)
    n = math.sqrt(2.0 + 2.0 * uz)
    return ((1.0 + uz) / n, uy / n, -ux / n, 0.0)


def pitch_axis_q12(g: Vector3) -> tuple[int, int, int] | None:
    """The foot's medio-lateral axis in sensor axes (Q12) from the stance's gravity: the
    levelled frame's +y seen from the sensor. None for a sensor upside down (the device
    then keeps the axis it had)."""
    gx, gy, gz = _unit(g)
    if gz <= -0.9:
        return None
    c = 1.0 + gz
    return (round(-gx * gy / c * AXIS_ONE), round((1.0 - gy * gy / c) * AXIS_ONE), round(-gy * AXIS_ONE))


def wrap_rad(angle: float) -> float:
    """``angle`` wrapped to [-pi, pi) (``stride._wrap``)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class StrideTrajectory:
    """Displacement and end heading of one stride, integrated between two still slots.

    ``estimate(slots, start, end, gravity_mg, rest_sums, dt_s)`` integrates ring slots
    ``start..end`` from the attitude that levels ``gravity_mg`` (the start stance's
    gravity, mg); ``rest_sums`` are the gyroscope sums (x, y, z [0.1 deg/s]) and sample
    count of the last rest, whose mean is the bias (count 0: no bias known); ``dt_s``
    the time per slot.

    Parameters
    ----------
    arithmetic
        ``"fixed"``: the firmware's integer arithmetic (``stride._integrate``), bit for
        bit: quaternion and rotation matrix in Q14, half-angle increments in Q14 with
        their rounding remainder carried, acceleration in mg, velocity and position as
        running sums. ``"float"``: the same method in floating point.
    dtype
        The floating-point type of ``"float"``: float64, or float32 as an ESP32 would
        compute it.

    Attributes
    ----------
    displacement_m_
        x, y, z in the start stance's levelled frame (x = the foot's axis), m.
    heading_rad_
        The foot's heading in the end stance, relative to the start stance's.
    duration_s_
        Time from ``start`` to ``end``.
    """

    displacement_m_: Vector3
    heading_rad_: float
    duration_s_: float

    def __init__(self, arithmetic: Arithmetic = "fixed", dtype: FloatType = float) -> None:
        self.arithmetic = arithmetic
        self.dtype = dtype

    def estimate(
        self,
        slots: IntArray,
        start: int,
        end: int,
        gravity_mg: Vector3,
        rest_sums: tuple[int, int, int, int],
        dt_s: float,
    ) -> Self:
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
        gravity_mg: Vector3,
        rest_sums: tuple[int, int, int, int],
        dt_s: float,
    ) -> Self:
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
                ((((xz - wy) >> 13) * ax + ((yz + wx) >> 13) * ay + ((ww - xx - yy + zz) >> 14) * az + 8192) >> 14)
                - g0,
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
        gravity_mg: Vector3,
        gyro_bias_counts: Vector3,
        dt_s: float,
    ) -> Self:
        f = self.dtype
        single = f is np.float32
        sqrt, sin, cos, atan2 = (
            (np.sqrt, np.sin, np.cos, np.arctan2) if single else (math.sqrt, math.sin, math.cos, math.atan2)
        )
        one_half = f(0.5)
        thousandth = f(1000.0)
        dt = f(dt_s)
        half_angle = dt * f(math.pi / 3600.0)  # 0.1 deg/s -> rad, halved
        g = tuple(f(v) for v in gravity_mg)
        g0 = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]) / thousandth
        qw, qx, qy, qz = (f(v) for v in levelling_quaternion(gravity_mg))
        bias = [f(b) for b in gyro_bias_counts]
        rows = [[f(v) for v in row] for row in slots[start : end + 1].tolist()]

        def level(row: Sequence[Any]) -> list[Any]:
            # Acceleration [mg, sensor axes] in the levelled frame [g], gravity removed.
            ax, ay, az = row[0] / thousandth, row[1] / thousandth, row[2] / thousandth
            return [
                (qw * qw + qx * qx - qy * qy - qz * qz) * ax
                + 2 * (qx * qy - qw * qz) * ay
                + 2 * (qx * qz + qw * qy) * az,
                2 * (qx * qy + qw * qz) * ax
                + (qw * qw - qx * qx + qy * qy - qz * qz) * ay
                + 2 * (qy * qz - qw * qx) * az,
                2 * (qx * qz - qw * qy) * ax
                + 2 * (qy * qz + qw * qx) * ay
                + (qw * qw - qx * qx - qy * qy + qz * qz) * az
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
                nv = v[i] + (e[i] + a[i]) * one_half * dt
                pos[i] = pos[i] + (v[i] + nv) * one_half * dt
                v[i] = nv
            e = a
        duration = dt * (len(rows) - 1)
        # Velocity must be zero at the end: its drift, removed as a ramp over the stride,
        # integrates to half the end velocity times the duration.
        scale = f(STANDARD_GRAVITY_MS2)
        x, y, z = (float((pos[i] - v[i] * duration * one_half) * scale) for i in range(3))
        self.displacement_m_ = (x, y, z)
        self.heading_rad_ = float(2 * atan2(qz, qw))
        self.duration_s_ = float(duration)
        return self


class FootProgressionAngle:
    """Walking direction, foot progression angle and stride length of one stride.

    ``estimate(displacement_m, heading_rad, side)`` takes a :class:`StrideTrajectory`'s
    displacement and end heading. The heel's displacement is the IMU's minus what the
    foot's turn moved the IMU about the heel. The stride is forward when that lies
    within ``cone_deg`` of the mean foot axis of the two stances, backward within
    ``cone_deg`` of its reverse; unknown otherwise, for strides shorter than
    ``min_stride_m`` and in turns (``|heading| > turn_deg``).

    Parameters
    ----------
    parameters
        The thresholds; None for the firmware's.
    yaw_offset_deg
        The sensor's mounting yaw (its x axis turned that much counter-clockwise from
        the foot's axis; ``ImuTracker.yaw_offset_cdeg`` / 100 on the device): it adds
        to the left foot's angle and subtracts from the right's unless removed here.

    Attributes
    ----------
    direction_
        "forward", "backward" or "unknown".
    fpa_deg_
        The end stance's FPA, the project's definition: the displacement *into* that
        footprint, reversed walking backward, seen from its foot axis; positive toe-out
        on both feet; NaN when the direction or side is unknown.
    fpa_out_deg_
        The same angle seen from the *start* stance's foot axis: the displacement *out
        of* that footprint, as motion-capture references often define it.
    stride_length_m_
        The heel's horizontal displacement.
    """

    direction_: WalkingDirection
    fpa_deg_: float
    fpa_out_deg_: float
    stride_length_m_: float

    def __init__(self, parameters: StrideParameters | None = None, *, yaw_offset_deg: float = 0.0) -> None:
        self.parameters = parameters or StrideParameters()
        self.yaw_offset_deg = yaw_offset_deg

    def estimate(self, displacement_m: Vector3, heading_rad: float, side: Side | None) -> Self:
        p = self.parameters
        # The heel's displacement: the IMU's, minus what the foot's turn between the two
        # stances moved the IMU about the heel.
        r = p.imu_from_heel_m
        dx = displacement_m[0] - r * (math.cos(heading_rad) - 1.0)
        dy = displacement_m[1] - r * math.sin(heading_rad)
        length = math.hypot(dx, dy)
        theta = math.atan2(dy, dx)
        off_axis = abs(math.degrees(wrap_rad(theta - heading_rad / 2.0)))
        turning = abs(math.degrees(wrap_rad(heading_rad))) > p.turn_deg
        direction: WalkingDirection = "unknown"
        if length >= p.min_stride_m and not turning:
            if off_axis <= p.cone_deg:
                direction = "forward"
            elif off_axis >= 180.0 - p.cone_deg:
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


def mounting_yaw_from_roll_deg(gravity_flat: Vector3, gravity_rolled: Vector3) -> float:
    """The sensor's mounting yaw (its x axis turned counter-clockwise from the foot's long
    axis, degrees; ``FootProgressionAngle(yaw_offset_deg=...)``, ``ImuTracker.yaw_offset_cdeg`` / 100 on the
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
