"""Rigid-foot kinematics and the IMU signals they imply.

A foot is a rigid body with a frame at the heel contact point: x toward the toes, y to
the left, z up (the same for both feet). Its orientation is R = Rz(yaw) Ry(pitch) Rx(roll)
(world <- foot); positive pitch lowers the toes (plantarflexion). The heel point follows
phases: in stance the foot rotates about a point fixed on the ground (the heel, the
metatarsal heads, or nothing while flat), in swing it blends from "rotating about the
last pivot" to "rotating about the next pivot" with a minimum-jerk weight, plus a
clearance lift. Everything is evaluated with analytic first and second derivatives, so
the synthesised gyroscope (body angular rate) and accelerometer (specific force of the
sensor point, lever arm included) are exact, not finite-difference approximations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insole.model import STANDARD_GRAVITY_MS2, FloatArray, Side
from insole.sim.piecewise import QuinticCurve, bump, minimum_jerk

GRAVITY_WORLD_MS2 = np.array([0.0, 0.0, -STANDARD_GRAVITY_MS2])


def rotation_zyx(yaw: FloatArray, pitch: FloatArray, roll: FloatArray) -> FloatArray:
    """(n, 3, 3) matrices Rz(yaw) Ry(pitch) Rx(roll), world <- body."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r = np.empty(yaw.shape + (3, 3))
    r[..., 0, 0] = cy * cp
    r[..., 0, 1] = cy * sp * sr - sy * cr
    r[..., 0, 2] = cy * sp * cr + sy * sr
    r[..., 1, 0] = sy * cp
    r[..., 1, 1] = sy * sp * sr + cy * cr
    r[..., 1, 2] = sy * sp * cr - cy * sr
    r[..., 2, 0] = -sp
    r[..., 2, 1] = cp * sr
    r[..., 2, 2] = cp * cr
    return r


def body_rates_zyx(
    angles: tuple[FloatArray, FloatArray, FloatArray],
    rates: tuple[FloatArray, FloatArray, FloatArray],
    accelerations: tuple[FloatArray, FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray]:
    """Body-frame angular velocity ω = vee(Rᵀ Ṙ) and its time derivative, both (n, 3), rad/s and rad/s²."""
    (_, pitch, roll), (dyaw, dpitch, droll), (ddyaw, ddpitch, ddroll) = angles, rates, accelerations
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    omega = np.stack(
        [
            droll - dyaw * sp,
            dpitch * cr + dyaw * cp * sr,
            -dpitch * sr + dyaw * cp * cr,
        ],
        axis=-1,
    )
    alpha = np.stack(
        [
            ddroll - ddyaw * sp - dyaw * dpitch * cp,
            ddpitch * cr - dpitch * droll * sr + ddyaw * cp * sr - dyaw * dpitch * sp * sr + dyaw * droll * cp * cr,
            -ddpitch * sr - dpitch * droll * cr + ddyaw * cp * cr - dyaw * dpitch * sp * cr - dyaw * droll * cp * sr,
        ],
        axis=-1,
    )
    return omega, alpha


def _apply(rotation: FloatArray, vectors: FloatArray) -> FloatArray:
    result: FloatArray = np.einsum("nij,nj->ni", rotation, vectors)
    return result


def _apply_transpose(rotation: FloatArray, vectors: FloatArray) -> FloatArray:
    result: FloatArray = np.einsum("nji,nj->ni", rotation, vectors)
    return result


@dataclass(frozen=True)
class PositionPhases:
    """Heel-point phases of one foot, sorted by start time; phase i lasts until start i+1.

    Stance phase: heel = pivot_a_world - R pivot_a_foot (the foot turns about a fixed
    ground point). Swing phase (``swing``): heel = (1-s) A + s B + clearance·bump·ẑ with
    A, B the stance formulas of the previous and next pivot and s a minimum-jerk weight
    over [start, end].
    """

    start_s: FloatArray  # (p,)
    end_s: FloatArray  # (p,), used by swing phases
    swing: npt.NDArray[np.bool_]  # (p,)
    clearance_m: FloatArray  # (p,)
    pivot_a_world: FloatArray  # (p, 3)
    pivot_a_foot: FloatArray  # (p, 3)
    pivot_b_world: FloatArray  # (p, 3)
    pivot_b_foot: FloatArray  # (p, 3)


@dataclass(frozen=True)
class FootMotion:
    """Exact motion of one foot at given times (world frame unless named body)."""

    t_s: FloatArray
    yaw_rad: FloatArray
    pitch_rad: FloatArray
    roll_rad: FloatArray
    rotation: FloatArray  # (n, 3, 3) world <- foot
    omega_body_rads: FloatArray  # (n, 3)
    alpha_body_rads2: FloatArray  # (n, 3)
    heel_m: FloatArray  # (n, 3)
    heel_velocity_ms: FloatArray
    heel_acceleration_ms2: FloatArray
    imu_m: FloatArray  # (n, 3) position of the IMU point
    imu_velocity_ms: FloatArray
    imu_acceleration_ms2: FloatArray
    specific_force_body_ms2: FloatArray  # (n, 3) what an ideal accelerometer on the foot reads
    mth_m: FloatArray  # (n, 3) metatarsal-head point


class FootTrajectory:
    """Pose of one foot as a function of time, with exact derivatives."""

    def __init__(
        self,
        side: Side,
        yaw: QuinticCurve,
        pitch: QuinticCurve,
        roll: QuinticCurve,
        phases: PositionPhases,
        imu_position_m: FloatArray,
        mth_position_m: FloatArray,
    ) -> None:
        self.side = side
        self.yaw = yaw
        self.pitch = pitch
        self.roll = roll
        self.phases = phases
        self.imu_position_m = np.asarray(imu_position_m, dtype=np.float64)
        self.mth_position_m = np.asarray(mth_position_m, dtype=np.float64)

    def evaluate(self, t_s: FloatArray) -> FootMotion:
        t = np.asarray(t_s, dtype=np.float64)
        yaw, dyaw, ddyaw = self.yaw(t)
        pitch, dpitch, ddpitch = self.pitch(t)
        roll, droll, ddroll = self.roll(t)
        rotation = rotation_zyx(yaw, pitch, roll)
        omega, alpha = body_rates_zyx((yaw, pitch, roll), (dyaw, dpitch, droll), (ddyaw, ddpitch, ddroll))

        ph = self.phases
        index = np.clip(np.searchsorted(ph.start_s, t, side="right") - 1, 0, len(ph.start_s) - 1)

        def about_pivot(world: FloatArray, foot: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
            # heel = P - R r;  d/dt = -R (ω × r);  d²/dt² = -R (α × r + ω × (ω × r))
            w_cross_r = np.cross(omega, foot)
            position = world - _apply(rotation, foot)
            velocity = -_apply(rotation, w_cross_r)
            acceleration = -_apply(rotation, np.cross(alpha, foot) + np.cross(omega, w_cross_r))
            return position, velocity, acceleration

        a, da, dda = about_pivot(ph.pivot_a_world[index], ph.pivot_a_foot[index])
        b, db, ddb = about_pivot(ph.pivot_b_world[index], ph.pivot_b_foot[index])

        swing = ph.swing[index]
        start = ph.start_s[index]
        duration = np.where(swing, ph.end_s[index] - start, 1.0)
        tau = np.where(swing, (t - start) / duration, 0.0)
        s, ds, dds = minimum_jerk(tau)
        lift, dlift, ddlift = bump(tau)
        zero = ~swing
        s[zero] = ds[zero] = dds[zero] = 0.0
        lift[zero] = dlift[zero] = ddlift[zero] = 0.0
        ds, dds = ds / duration, dds / duration**2
        clearance = ph.clearance_m[index]
        up = np.array([0.0, 0.0, 1.0])

        sc = s[:, None]
        heel = a + sc * (b - a) + (clearance * lift)[:, None] * up
        heel_velocity = da + sc * (db - da) + ds[:, None] * (b - a) + (clearance * dlift / duration)[:, None] * up
        heel_acceleration = (
            dda
            + sc * (ddb - dda)
            + 2.0 * ds[:, None] * (db - da)
            + dds[:, None] * (b - a)
            + (clearance * ddlift / duration**2)[:, None] * up
        )

        r_imu = np.broadcast_to(self.imu_position_m, heel.shape)
        w_cross_imu = np.cross(omega, r_imu)
        imu = heel + _apply(rotation, r_imu)
        imu_velocity = heel_velocity + _apply(rotation, w_cross_imu)
        imu_acceleration = heel_acceleration + _apply(rotation, np.cross(alpha, r_imu) + np.cross(omega, w_cross_imu))
        specific_force = _apply_transpose(rotation, imu_acceleration - GRAVITY_WORLD_MS2)
        mth = heel + _apply(rotation, np.broadcast_to(self.mth_position_m, heel.shape))
        return FootMotion(
            t_s=t,
            yaw_rad=yaw,
            pitch_rad=pitch,
            roll_rad=roll,
            rotation=rotation,
            omega_body_rads=omega,
            alpha_body_rads2=alpha,
            heel_m=heel,
            heel_velocity_ms=heel_velocity,
            heel_acceleration_ms2=heel_acceleration,
            imu_m=imu,
            imu_velocity_ms=imu_velocity,
            imu_acceleration_ms2=imu_acceleration,
            specific_force_body_ms2=specific_force,
            mth_m=mth,
        )

    def sole_height_m(self, t_s: FloatArray) -> FloatArray:
        """Height of the lowest sole contact point (heel or metatarsal heads) above the ground."""
        motion = self.evaluate(t_s)
        return np.minimum(motion.heel_m[:, 2], motion.mth_m[:, 2])
