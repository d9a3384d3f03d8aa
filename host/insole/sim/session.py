"""simulate_session: a plan in, two FootStreams and their exact ground truth out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from insole.layouts import load_layout
from insole.model import (
    STANDARD_GRAVITY_MS2,
    FloatArray,
    FootStream,
    HeelRaiseRow,
    Side,
    StepRow,
)
from insole.sim.kinematics import FootMotion, FootTrajectory
from insole.sim.plan import Segment, SensorModel, SessionPlan, Subject
from insole.sim.pressure import PRESSURE_UNIT, PressureModel
from insole.sim.timeline import (
    SIDES,
    ContactTruth,
    RaiseTruth,
    StepTruth,
    Timeline,
    build_timeline,
)


@dataclass
class SimulatedSession:
    """Simulated recording of both feet with its exact ground truth.

    ``steps``/``raises`` are the STEPS.csv/RAISES.csv rows; ``step_truth``/``raise_truth``
    are parallel lists with more detail. Only stance phases with both an initial contact
    and a toe-off during walking are steps: the first stance of a bout starts from
    standing and the last two end in standing, so those are listed in ``contacts`` only.
    """

    streams: list[FootStream]  # [left, right]
    steps: list[StepRow]
    step_truth: list[StepTruth]
    raises: list[HeelRaiseRow]
    raise_truth: list[RaiseTruth]
    contacts: list[ContactTruth]
    trajectories: dict[Side, FootTrajectory]
    vertical_force_n: FloatArray  # (n, 2) true load of [left, right] foot at the sample times
    cop_fraction: FloatArray  # (n, 2) true centre of pressure along each foot, fraction of its length
    plan: SessionPlan
    subject: Subject
    rate_hz: float
    seed: int
    duration_s: float

    def times_s(self) -> FloatArray:
        return self.streams[0].times_s()

    def motion(self, side: Side, t_s: FloatArray | None = None) -> FootMotion:
        """Exact motion of one foot, at the sample times unless given."""
        return self.trajectories[side].evaluate(self.times_s() if t_s is None else t_s)


def load_layout_cells(layout: str) -> tuple[FloatArray, float]:
    """Cell centres (n, 2) in metres (LEFT-foot y, lateral +) and the foot length in metres."""
    spec = load_layout(layout)
    cells = np.array([[c.x_mm, c.y_mm] for c in spec.channels], dtype=np.float64) / 1000.0
    return cells, spec.foot_length_mm / 1000.0


def _rotation_from_vector(rotation_vector: FloatArray) -> FloatArray:
    angle = float(np.linalg.norm(rotation_vector))
    if angle == 0.0:
        return np.eye(3)
    k = rotation_vector / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rotation: FloatArray = np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * kx @ kx
    return rotation


def _sensor_readings(
    motion: FootMotion, pressure_kpa: FloatArray, sensors: SensorModel, rate_hz: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    n = len(motion.t_s)
    dt = 1.0 / rate_hz
    mount = _rotation_from_vector(np.radians(rng.normal(0.0, 1.0, 3) * sensors.misalignment_deg))
    acc = motion.specific_force_body_ms2 @ mount.T
    gyro = np.degrees(motion.omega_body_rads) @ mount.T
    acc = acc + rng.normal(0.0, 1.0, 3) * sensors.acc_bias_ms2 + rng.normal(0.0, 1.0, (n, 3)) * sensors.acc_noise_ms2
    gyro_bias = rng.normal(0.0, 1.0, 3) * sensors.gyro_bias_dps + np.cumsum(
        rng.normal(0.0, 1.0, (n, 3)) * sensors.gyro_bias_walk_dps_per_sqrt_s * math.sqrt(dt), axis=0
    )
    gyro = gyro + gyro_bias + rng.normal(0.0, 1.0, (n, 3)) * sensors.gyro_noise_dps
    n_cells = pressure_kpa.shape[1]
    gain = np.clip(1.0 + rng.normal(0.0, 1.0, n_cells) * sensors.pressure_gain_sd, 0.5, 1.5)
    baseline = rng.uniform(0.0, 1.0, n_cells) * sensors.pressure_baseline_kpa + np.cumsum(
        rng.normal(0.0, 1.0, (n, n_cells)) * sensors.pressure_drift_kpa_per_sqrt_s * math.sqrt(dt), axis=0
    )
    pressure = pressure_kpa * gain + baseline + rng.normal(0.0, 1.0, (n, n_cells)) * sensors.pressure_noise_kpa
    return np.maximum(pressure, 0.0), acc, gyro


def _vertical_forces(timeline: Timeline, t: FloatArray, subject: Subject, mth_x_m: float) -> FloatArray:
    weight_n = subject.body_mass_kg * STANDARD_GRAVITY_MS2
    share_left = np.clip(timeline.load_share_left(t)[0], 0.0, 1.0)
    factor = timeline.walking_force_factor(t)[0]
    if timeline.raise_windows_s:
        # Rising onto the toes lifts the body by about the heel's rise: F = m (g + z̈).
        starts, ends = np.array(timeline.raise_windows_s).T
        k = np.searchsorted(starts, t, side="right") - 1
        inside = (k >= 0) & (t < ends[np.clip(k, 0, None)])
        pitch, dpitch, ddpitch = timeline.trajectories["left"].pitch(t[inside])
        rise_acceleration = mth_x_m * (np.cos(pitch) * ddpitch - np.sin(pitch) * dpitch**2)
        factor = factor.copy()
        factor[inside] += rise_acceleration / STANDARD_GRAVITY_MS2
    total = weight_n * factor
    return np.stack([total * share_left, total * (1.0 - share_left)], axis=1)


def simulate_session(
    plan: SessionPlan | Sequence[Segment],
    *,
    rate_hz: float = 100.0,
    seed: int = 0,
    layout: str = "insole8",
    subject: Subject | None = None,
    sensors: SensorModel | None = None,
) -> SimulatedSession:
    """Simulate both insoles through ``plan``; times are ``k / rate_hz`` from 0.

    Units: pressure in kPa, specific force in m/s² (+9.81 on z at rest), angular rate in
    deg/s, IMU axes of the foot frame (x to the toes, y left, z up). ``sensors`` defaults
    to a realistic ``SensorModel()``; pass ``SensorModel.ideal()`` for exact signals.
    See ``insole.sim.plan`` for the heading, direction and foot-progression-angle conventions.
    """
    if not isinstance(plan, SessionPlan):
        plan = SessionPlan(plan)
    if not 1.0 <= rate_hz <= 1000.0:
        raise ValueError(f"rate_hz must be within 1..1000, got {rate_hz}")
    subject = subject or Subject()
    sensors = sensors or SensorModel()
    cells_m, foot_length_m = load_layout_cells(layout)
    gait_seed, left_seed, right_seed = np.random.SeedSequence(seed).spawn(3)
    timeline = build_timeline(plan, subject, foot_length_m, np.random.default_rng(gait_seed))

    n = math.floor(timeline.duration_s * rate_hz + 1e-9) + 1
    t = np.arange(n) / rate_hz
    mth_x_m = subject.mth_fraction * foot_length_m
    forces = _vertical_forces(timeline, t, subject, mth_x_m)
    pressure_model = PressureModel(cells_m, foot_length_m, mth_x_m)
    streams: list[FootStream] = []
    cop = np.empty((n, 2))
    for index, (side, seed_sequence) in enumerate(zip(SIDES, (left_seed, right_seed), strict=True)):
        motion = timeline.trajectories[side].evaluate(t)
        knot_t, knot_x = timeline.cop_knots[side]
        cop[:, index] = np.interp(t, knot_t, knot_x)
        pressure = pressure_model.cell_pressure_kpa(
            forces[:, index], cop[:, index], subject.cop_lateral_mm / 1000.0, motion.pitch_rad
        )
        pressure, acc, gyro = _sensor_readings(motion, pressure, sensors, rate_hz, np.random.default_rng(seed_sequence))
        streams.append(
            FootStream(
                side=side,
                rate_hz=float(rate_hz),
                t0_s=0.0,
                layout=layout,
                pressure=pressure,
                pressure_unit=PRESSURE_UNIT,
                acc_ms2=acc,
                gyro_dps=gyro,
                device="insole simulate",
                extra={"seed": seed, "plan": plan.name, "sensor_model": asdict(sensors)},
            )
        )
    return SimulatedSession(
        streams=streams,
        steps=[s.row() for s in timeline.steps],
        step_truth=timeline.steps,
        raises=[r.row() for r in timeline.raises],
        raise_truth=timeline.raises,
        contacts=timeline.contacts,
        trajectories=timeline.trajectories,
        vertical_force_n=forces,
        cop_fraction=cop,
        plan=plan,
        subject=subject,
        rate_hz=float(rate_hz),
        seed=seed,
        duration_s=timeline.duration_s,
    )
