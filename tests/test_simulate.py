"""Physics and ground-truth checks of `insole simulate` (insole.sim)."""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from insole.errors import UserError
from insole.export.events_csv import read_raises_csv, read_steps_csv
from insole.layouts import load_layout
from insole.model import STANDARD_GRAVITY_MS2, FootStream
from insole.recording import read_header, read_recording
from insole.sim import (
    HeelRaises,
    SensorModel,
    SessionPlan,
    SimulatedSession,
    Stand,
    Subject,
    Walk,
    demo_plan,
    fpa_sweep_plan,
    simulate_session,
)

G = STANDARD_GRAVITY_MS2
IDEAL = SensorModel.ideal()
REGIONS = np.array([c.region for c in load_layout("insole8").channels])
HEEL = REGIONS == "heel"
FOREFOOT = REGIONS == "forefoot"


@pytest.fixture(scope="module")
def forward() -> SimulatedSession:
    walk = Walk(n_steps=14, fpa_deg=10.0, fpa_sd_deg=0.0)
    return simulate_session(SessionPlan([Stand(1.0), walk, Stand(1.0)]), sensors=IDEAL)


@pytest.fixture(scope="module")
def backward() -> SimulatedSession:
    walk = Walk(n_steps=12, direction="backward", cadence_spm=95.0, stride_length_m=0.7, fpa_deg=10.0, fpa_sd_deg=0.0)
    return simulate_session(SessionPlan([Stand(1.0), walk, Stand(1.0)]), sensors=IDEAL)


@pytest.fixture(scope="module")
def turn() -> SimulatedSession:
    # FPA equal to the standing one, so the feet end exactly 180° from where they started.
    walk = Walk(n_steps=10, turn_deg=180.0, cadence_spm=100.0, stride_length_m=0.7, fpa_deg=8.0, fpa_sd_deg=0.0)
    return simulate_session(SessionPlan([Stand(1.0), walk, Stand(1.0)]), sensors=IDEAL)


@pytest.fixture(scope="module")
def raises() -> SimulatedSession:
    exercise = HeelRaises(reps=3, hold_s=1.5, rest_s=1.0, sets=2, set_rest_s=3.0, raise_deg=25.0)
    return simulate_session(SessionPlan([Stand(1.0), exercise, Stand(1.0)]), sensors=IDEAL)


def side_index(side: str) -> int:
    return 0 if side == "left" else 1


def stream(session: SimulatedSession, side: str) -> FootStream:
    return session.streams[side_index(side)]


def acc(s: FootStream) -> np.ndarray:
    assert s.acc_ms2 is not None
    return s.acc_ms2


def gyro(s: FootStream) -> np.ndarray:
    assert s.gyro_dps is not None
    return s.gyro_dps


def pressure(s: FootStream) -> np.ndarray:
    assert s.pressure is not None
    return s.pressure


def integrate_gyro(rotation0: np.ndarray, gyro_dps: np.ndarray, dt: float) -> np.ndarray:
    """Body-rate integration with the exponential map over the mean rate of each interval."""
    rotation = rotation0.copy()
    omega = np.radians(gyro_dps)
    for k in range(len(omega) - 1):
        phi = (omega[k] + omega[k + 1]) * dt / 2.0
        angle = float(np.linalg.norm(phi))
        if angle > 0.0:
            axis = phi / angle
            kx = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
            rotation = rotation @ (np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * kx @ kx)
    return rotation


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(a.T @ b) - 1.0) / 2.0, -1.0, 1.0)))


def yaw_deg(rotation: np.ndarray) -> float:
    return math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))


def wrap_deg(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


# --- kinematics ---------------------------------------------------------------------------


def test_imu_signals_are_the_derivatives_of_the_pose(turn: SimulatedSession) -> None:
    t = np.linspace(1.0, turn.duration_s - 1.0, 4001)
    h = 1e-5
    before, now, after = (turn.motion("left", t + dt) for dt in (-h, 0.0, h))
    rotation_rate = (after.rotation - before.rotation) / (2 * h)
    skew = np.einsum("nji,njk->nik", now.rotation, rotation_rate)  # Rᵀ Ṙ = [ω]×
    omega = np.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], axis=1)
    assert np.abs(omega - now.omega_body_rads).max() < 1e-5
    assert np.abs(now.omega_body_rads).max() > 3.0  # the check saw real motion
    acceleration = (after.imu_m - 2 * now.imu_m + before.imu_m) / h**2
    assert np.abs(acceleration - now.imu_acceleration_ms2).max() < 1e-3
    specific_force = np.einsum("nji,nj->ni", now.rotation, now.imu_acceleration_ms2 + [0.0, 0.0, G])
    assert np.allclose(specific_force, now.specific_force_body_ms2)
    sampled = turn.streams[0]
    assert np.allclose(gyro(sampled), np.degrees(turn.motion("left").omega_body_rads))


def test_integrated_gyro_reproduces_the_180_degree_turn(turn: SimulatedSession) -> None:
    dt = 1.0 / turn.rate_hz
    for side in ("left", "right"):
        truth = turn.motion(side)
        rotation_end = integrate_gyro(truth.rotation[0], gyro(stream(turn, side)), dt)
        heading_change = wrap_deg(yaw_deg(rotation_end) - yaw_deg(truth.rotation[0]))
        assert abs(abs(heading_change) - 180.0) < 1.0, side
        assert rotation_angle_deg(rotation_end, truth.rotation[-1]) < 1.0, side
    headings = [s.facing_heading_deg for s in turn.step_truth]
    assert np.all(np.diff(np.unwrap(np.radians(headings))) > 0.0)  # a left turn, step by step


def test_double_integrated_specific_force_reproduces_the_stride(forward: SimulatedSession) -> None:
    dt = 1.0 / forward.rate_hz
    t = forward.times_s()
    checked = 0
    for side in ("left", "right"):
        truth = forward.motion(side)
        rows = [s for s in forward.step_truth if s.side == side]
        specific_force = acc(stream(forward, side))
        world = np.einsum("nij,nj->ni", truth.rotation, specific_force) - [0.0, 0.0, G]
        for previous, step in itertools.pairwise(rows):
            start = int(np.ceil(np.mean(previous.foot_flat_s) / dt))
            end = int(np.floor(np.mean(step.foot_flat_s) / dt))
            a = world[start : end + 1]
            velocity = np.concatenate([[np.zeros(3)], np.cumsum((a[1:] + a[:-1]) / 2.0 * dt, axis=0)])
            displacement = np.sum((velocity[1:] + velocity[:-1]) / 2.0 * dt, axis=0)
            assert np.linalg.norm(velocity[-1]) < 0.01  # zero-velocity at both foot-flat moments
            stride = float(np.hypot(displacement[0], displacement[1]))
            assert stride == pytest.approx(step.stride_length_m, rel=0.01)
            assert abs(displacement[2]) < 0.01
            checked += 1
            assert t[start] < step.ic_s < t[end]
    assert checked >= 10


def test_at_rest_the_imu_reads_gravity_only(forward: SimulatedSession) -> None:
    t = forward.times_s()
    quiet = t < 0.25  # standing before the first weight shift
    for s in forward.streams:
        assert np.allclose(acc(s)[quiet], [0.0, 0.0, G], atol=1e-9)
        assert np.allclose(gyro(s)[quiet], 0.0, atol=1e-9)
        assert np.allclose(np.linalg.norm(acc(s)[quiet], axis=1), 9.80665)


def test_a_flat_foot_in_stance_is_still(forward: SimulatedSession, backward: SimulatedSession) -> None:
    for session in (forward, backward):
        for step in session.step_truth:
            t = np.linspace(*step.foot_flat_s, 50)
            motion = session.motion(step.side, t)
            assert np.abs(motion.omega_body_rads).max() < 1e-9
            assert np.abs(motion.imu_velocity_ms).max() < 1e-9
            assert np.allclose(motion.specific_force_body_ms2, [0.0, 0.0, G], atol=1e-9)
            assert step.foot_flat_s[1] - step.foot_flat_s[0] > 0.1


def test_swing_is_realistic(forward: SimulatedSession) -> None:
    motion = forward.motion("left")
    pitch = np.degrees(motion.pitch_rad)
    assert 35.0 < pitch.max() < 60.0  # plantarflexion after toe-off
    assert -30.0 < pitch.min() < -15.0  # dorsiflexion before heel strike
    assert 250.0 < np.abs(gyro(forward.streams[0])[:, 1]).max() < 700.0
    assert 0.05 < motion.heel_m[:, 2].max() < 0.3


# --- foot progression angle and direction -------------------------------------------------


def test_toe_out_is_positive_on_both_feet(forward: SimulatedSession) -> None:
    for step in forward.step_truth:
        assert step.fpa_deg == pytest.approx(10.0)
        assert step.direction == "forward"
        motion = forward.motion(step.side, np.array([np.mean(step.foot_flat_s)]))
        foot_axis = motion.rotation[0][:2, 0]
        yaw = math.degrees(math.atan2(foot_axis[1], foot_axis[0]))
        # Walking along +x: the left foot's toes point left (+yaw), the right foot's right.
        assert yaw == pytest.approx(10.0 if step.side == "left" else -10.0, abs=1e-9)
        progression = np.array(
            [math.cos(math.radians(step.stride_heading_deg)), math.sin(math.radians(step.stride_heading_deg))]
        )
        if step.stride_length_m > 0.5:
            cross = progression[0] * foot_axis[1] - progression[1] * foot_axis[0]
            assert np.sign(cross) == (1.0 if step.side == "left" else -1.0)
            angle = math.degrees(math.acos(float(progression @ foot_axis)))
            assert angle == pytest.approx(10.0, abs=1e-6)


def test_backward_fpa_is_relative_to_the_facing_direction(backward: SimulatedSession) -> None:
    assert backward.step_truth
    for step in backward.step_truth:
        assert step.direction == "backward"
        assert step.fpa_deg == pytest.approx(10.0)
        assert step.facing_heading_deg == pytest.approx(0.0)
        motion = backward.motion(step.side, np.array([np.mean(step.foot_flat_s)]))
        foot_axis = motion.rotation[0][:2, 0]
        assert math.degrees(math.atan2(foot_axis[1], foot_axis[0])) == pytest.approx(
            10.0 if step.side == "left" else -10.0, abs=1e-9
        )
        if step.stride_length_m > 0.5:
            # The foot moves heel first, against its long axis.
            assert abs(wrap_deg(step.stride_heading_deg - 180.0)) < 1e-6
    assert backward.step_truth[-1].heel_xy_m[0] < -3.0


def test_turn_steps_keep_their_fpa_relative_to_their_own_heading(turn: SimulatedSession) -> None:
    for step in turn.step_truth:
        motion = turn.motion(step.side, np.array([np.mean(step.foot_flat_s)]))
        relative = wrap_deg(yaw_deg(motion.rotation[0]) - step.facing_heading_deg)
        assert relative == pytest.approx(8.0 if step.side == "left" else -8.0, abs=1e-6)
        assert step.fpa_deg == pytest.approx(8.0)


# --- contacts -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["forward", "backward", "turn"])
def test_contacts_are_where_the_sole_touches_the_ground(name: str, request: pytest.FixtureRequest) -> None:
    session: SimulatedSession = request.getfixturevalue(name)
    t = np.arange(0.0, session.duration_s, 0.0005)
    for side in ("left", "right"):
        height = session.trajectories[side].sole_height_m(t)
        assert height.min() > -1e-12
        down = height < 1e-7
        change = np.flatnonzero(np.diff(down.astype(np.int8)))
        lift_off = t[change[down[change]]]
        touch_down = t[change[~down[change]] + 1]
        contacts = [c for c in session.contacts if c.side == side]
        truth_to = np.array([c.to_s for c in contacts if c.to_s is not None])
        truth_ic = np.array([c.ic_s for c in contacts if c.ic_s is not None])
        assert len(lift_off) == len(truth_to) and len(touch_down) == len(truth_ic)
        assert np.abs(lift_off - truth_to).max() < 0.003
        assert np.abs(touch_down - truth_ic).max() < 0.003
        steps = [s for s in session.steps if s.side == side]
        assert all(any(abs(s.ic_s - c) < 1e-9 for c in truth_ic) for s in steps)
        assert all(any(abs(s.to_s - c) < 1e-9 for c in truth_to) for s in steps)


@pytest.mark.parametrize(("name", "first"), [("forward", "heel"), ("backward", "toes")])
def test_which_end_of_the_foot_lands_first(name: str, first: str, request: pytest.FixtureRequest) -> None:
    session: SimulatedSession = request.getfixturevalue(name)
    for step in session.step_truth:
        at = session.motion(step.side, np.array([step.ic_s, step.to_s]))
        heel_z, mth_z = at.heel_m[:, 2], at.mth_m[:, 2]
        if first == "heel":
            assert abs(heel_z[0]) < 1e-9 and mth_z[0] > 0.03  # heel strike
            assert abs(mth_z[1]) < 1e-9 and heel_z[1] > 0.05  # push-off from the forefoot
        else:
            assert abs(mth_z[0]) < 1e-9 and heel_z[0] > 0.03  # toes land first
            assert abs(heel_z[1]) < 1e-9 and mth_z[1] > 0.02  # heel leaves last


def test_step_rows_and_stride_truth(forward: SimulatedSession) -> None:
    rows = forward.steps
    assert [(r.side, r.ic_s, r.to_s) for r in rows] == [(s.side, s.ic_s, s.to_s) for s in forward.step_truth]
    assert len(rows) == 14 + 1 - 2  # footfalls + closing step, minus the two that end in standing
    assert [r.side for r in rows] == ["left", "right"] * 6 + ["left"]
    for step in forward.step_truth:
        assert 0.55 < step.to_s - step.ic_s < 0.75  # 60 % of a ~1.09 s stride
    steady = [s for s in forward.step_truth if not math.isnan(s.stride_time_s)]
    assert len(steady) == len(rows) - 2
    for s in steady:
        assert s.stride_length_m == pytest.approx(1.3, rel=0.1)
        assert s.speed_ms == pytest.approx(s.stride_length_m / s.stride_time_s)
        assert s.speed_ms == pytest.approx(1.3 / (120.0 / 110.0), rel=0.12)
    assert forward.step_truth[0].stride_length_m == pytest.approx(0.65, rel=0.1)  # the first step is a half stride


# --- loads and pressure -------------------------------------------------------------------


def test_pressure_is_zero_in_swing(forward: SimulatedSession, backward: SimulatedSession) -> None:
    for session in (forward, backward):
        t = session.times_s()
        for side in ("left", "right"):
            airborne = session.trajectories[side].sole_height_m(t) > 1e-9
            assert airborne.sum() > 100
            cells = pressure(stream(session, side))
            assert np.all(cells[airborne] == 0.0)
            assert np.all(session.vertical_force_n[airborne, side_index(side)] == 0.0)
            assert cells[~airborne].sum(axis=1).min() >= 0.0


def _centroid_time(t: np.ndarray, load: np.ndarray) -> float:
    return float((t * load).sum() / load.sum())


@pytest.mark.parametrize(("name", "heel_first"), [("forward", True), ("backward", False)])
def test_heel_loads_before_forefoot_only_walking_forward(
    name: str, heel_first: bool, request: pytest.FixtureRequest
) -> None:
    session: SimulatedSession = request.getfixturevalue(name)
    t = session.times_s()
    for step in session.step_truth:
        cells = pressure(stream(session, step.side))
        inside = (t >= step.ic_s) & (t <= step.to_s)
        heel = cells[inside][:, HEEL].sum(axis=1)
        forefoot = cells[inside][:, FOREFOOT].sum(axis=1)
        heel_time, forefoot_time = _centroid_time(t[inside], heel), _centroid_time(t[inside], forefoot)
        assert (heel_time < forefoot_time - 0.1) == heel_first
        assert (forefoot_time < heel_time - 0.1) == (not heel_first)
        # The end of the foot that is in the air carries nothing.
        first_sample = cells[inside][1]
        if heel_first:
            assert first_sample[FOREFOOT].sum() == 0.0
        else:
            assert first_sample[HEEL].sum() == 0.0


def test_vertical_force_shares_body_weight(forward: SimulatedSession) -> None:
    weight = 75.0 * G
    total = forward.vertical_force_n.sum(axis=1)
    t = forward.times_s()
    assert np.allclose(total[t < 0.2], weight)
    assert total.min() == pytest.approx(0.8 * weight, rel=0.03)  # mid single support
    assert total.max() == pytest.approx(1.2 * weight, rel=0.03)  # mid double support
    step = forward.step_truth[5]
    inside = (t >= step.ic_s) & (t <= step.to_s)
    force = forward.vertical_force_n[inside, side_index(step.side)] / weight
    assert 1.05 < force.max() < 1.3
    # Double hump: a valley below body weight between two peaks above it.
    first_peak = int(np.argmax(force[: len(force) // 2]))
    second_peak = len(force) // 2 + int(np.argmax(force[len(force) // 2 :]))
    assert force[first_peak] > 1.05 and force[second_peak] > 1.05
    assert force[first_peak:second_peak].min() < 0.9


def test_weight_shift_moves_load_between_feet() -> None:
    session = simulate_session(SessionPlan([Stand(8.0, weight_shift=True)]), sensors=IDEAL)
    weight = 75.0 * G
    left_share = session.vertical_force_n[:, 0] / weight
    assert np.allclose(session.vertical_force_n.sum(axis=1), weight)
    assert left_share.max() == pytest.approx(0.8, abs=0.01) and left_share.min() == pytest.approx(0.2, abs=0.01)
    assert left_share[0] == pytest.approx(0.5) and left_share[-1] == pytest.approx(0.5)
    pressure_left = pressure(session.streams[0])
    assert np.corrcoef(pressure_left.sum(axis=1), left_share)[0, 1] > 0.99
    assert np.allclose(gyro(session.streams[0]), 0.0)


# --- heel raises --------------------------------------------------------------------------


def test_heel_raises_ground_truth_and_signals(raises: SimulatedSession) -> None:
    assert len(raises.raises) == 3 * 2 * 2  # reps x sets x feet
    assert sorted({(r.set, r.rep) for r in raises.raise_truth}) == [(s, rep) for s in (1, 2) for rep in (1, 2, 3)]
    t = raises.times_s()
    for row, truth in zip(raises.raises, raises.raise_truth, strict=True):
        assert row.hold_s == 1.5
        assert row.end_s - row.start_s == pytest.approx(1.0 + 1.5 + 1.0)
        hold = (t > truth.hold_start_s + 0.05) & (t < truth.hold_start_s + row.hold_s - 0.05)
        s = stream(raises, row.side)
        assert np.all(pressure(s)[hold][:, HEEL] == 0.0)
        assert np.all(pressure(s)[hold][:, FOREFOOT].sum(axis=1) > 50.0)
        assert np.allclose(gyro(s)[hold], 0.0, atol=1e-9)
        theta = math.radians(25.0)
        assert np.allclose(acc(s)[hold], [-G * math.sin(theta), 0.0, G * math.cos(theta)], atol=1e-9)
        # The foot turns about the metatarsal heads: they stay put on the ground.
        during = (t >= row.start_s) & (t <= row.end_s)
        motion = raises.motion(row.side, t[during])
        assert np.abs(motion.mth_m[:, 2]).max() < 1e-12
        assert np.ptp(motion.mth_m[:, :2], axis=0).max() < 1e-12
        assert motion.heel_m[:, 2].max() == pytest.approx(0.7 * 0.27 * math.sin(theta), rel=1e-6)
    spacing = np.diff([r.start_s for r in raises.raise_truth if r.side == "left"])
    assert spacing == pytest.approx([4.5, 4.5, 3.5 + 3.0, 4.5, 4.5])
    # Standing between repetitions loads the heel again.
    first, second = raises.raise_truth[0], raises.raise_truth[2]
    between = (t > first.end_s + 0.35) & (t < second.start_s - 0.35)
    assert pressure(stream(raises, "left"))[between][:, HEEL].min() > 10.0


# --- the whole thing ----------------------------------------------------------------------


def test_streams_are_foot_streams(forward: SimulatedSession) -> None:
    left, right = forward.streams
    assert (left.side, right.side) == ("left", "right")
    for s in forward.streams:
        assert s.rate_hz == 100.0 and s.t0_s == 0.0 and s.layout == "insole8" and s.pressure_unit == "kPa"
        assert s.n_pressure == 8 and s.has_imu
        assert s.n_samples == int(forward.duration_s * 100.0) + 1
        assert s.times_s()[-1] <= forward.duration_s


def test_seed_makes_it_deterministic() -> None:
    plan = SessionPlan([Walk(n_steps=6), Stand(2.0, weight_shift=True)])
    a, b, c = simulate_session(plan, seed=3), simulate_session(plan, seed=3), simulate_session(plan, seed=4)
    for x, y in zip(a.streams, b.streams, strict=True):
        for read in (pressure, acc, gyro):
            assert np.array_equal(read(x), read(y))
    assert a.steps == b.steps
    assert a.steps != c.steps  # step-to-step variability comes from the seed
    assert not np.array_equal(acc(a.streams[0]), acc(c.streams[0]))


def test_sensor_imperfections() -> None:
    plan = SessionPlan([Stand(20.0)])
    ideal = simulate_session(plan, sensors=IDEAL)
    noisy = simulate_session(plan, seed=1, sensors=SensorModel())
    model = SensorModel()
    for clean, real in zip(ideal.streams, noisy.streams, strict=True):
        error = acc(real) - acc(clean)
        assert np.std(error, axis=0) == pytest.approx([model.acc_noise_ms2] * 3, rel=0.1)
        gyro_error = gyro(real) - gyro(clean)
        assert np.abs(gyro_error.mean(axis=0)).max() < 4 * model.gyro_bias_dps
        assert np.abs(np.diff(gyro_error.mean(axis=0))).max() > 0.0
        assert pressure(real).min() >= 0.0
    # A mounting misalignment rotates the readings but keeps their magnitude.
    tilted = simulate_session(
        SessionPlan([Walk(n_steps=4)]), sensors=SensorModel(**{**vars(IDEAL), "misalignment_deg": 2.0})
    )
    straight = simulate_session(SessionPlan([Walk(n_steps=4)]), sensors=IDEAL)
    for x, y in zip(tilted.streams, straight.streams, strict=True):
        assert np.allclose(np.linalg.norm(acc(x), axis=1), np.linalg.norm(acc(y), axis=1))
        assert not np.allclose(acc(x), acc(y))


def test_ten_minutes_of_every_activity_generate() -> None:
    plan = SessionPlan(
        [
            Walk(duration_s=300.0),
            Walk(n_steps=10, turn_deg=180.0),
            Walk(duration_s=150.0, direction="backward"),
            Stand(80.0, weight_shift=True),
            HeelRaises(reps=5, sets=2, set_rest_s=10.0),
        ]
    )
    session = simulate_session(plan)  # its speed: tools/bench_simulate.py (no timed assertion here)
    assert session.duration_s > 600.0
    assert len(session.steps) > 700


def test_ready_made_plans() -> None:
    demo = simulate_session(demo_plan())
    assert 100.0 < demo.duration_s < 140.0
    directions = {s.direction for s in demo.step_truth}
    assert directions == {"forward", "backward"}
    forward_fpa = [s.fpa_deg for s in demo.step_truth if s.direction == "forward"]
    assert np.mean(forward_fpa) > 10.0  # toe-out
    headings = np.unwrap(np.radians([s.facing_heading_deg for s in demo.step_truth]))
    assert math.degrees(headings.max() - headings.min()) == pytest.approx(180.0, abs=1e-6)
    assert len(demo.raises) > 0
    left_share = demo.vertical_force_n[:, 0] / demo.vertical_force_n.sum(axis=1)
    assert left_share.max() > 0.75 and left_share.min() < 0.25

    sweep = simulate_session(fpa_sweep_plan([-5.0, 15.0], steps_per_value=12))
    by_segment: dict[int, list[float]] = {}
    for s in sweep.step_truth:
        by_segment.setdefault(s.segment_index, []).append(s.fpa_deg)
    assert [round(float(np.mean(v))) for _, v in sorted(by_segment.items())] == [-5, 15]


def test_plan_validation() -> None:
    with pytest.raises(ValueError):
        Walk()
    with pytest.raises(ValueError):
        Walk(duration_s=10.0, n_steps=5)
    with pytest.raises(ValueError):
        Walk(n_steps=5, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HeelRaises(reps=0)
    with pytest.raises(UserError):
        simulate_session(SessionPlan([Stand(1.0)]), layout="no-such-layout")
    heavy = simulate_session(SessionPlan([Stand(1.0)]), sensors=IDEAL, subject=Subject(body_mass_kg=100.0))
    assert heavy.vertical_force_n.sum(axis=1) == pytest.approx(100.0 * G)


# --- command line -------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    from insole.commands import simulate

    parser = argparse.ArgumentParser(prog="insole")
    simulate.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *argv])
    return int(args.func(args))


def test_cli_writes_recording_and_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "walk.insole"
    assert run_cli("-o", str(out), "--plan", "walk", "--duration-s", "8", "--fpa-deg", "12", "--seed", "5") == 0
    capsys.readouterr()
    steps = read_steps_csv(tmp_path / "walk.steps.csv")
    assert read_raises_csv(tmp_path / "walk.raises.csv") == []
    expected = simulate_session(SessionPlan([Stand(2.0), Walk(duration_s=8.0, fpa_deg=12.0), Stand(2.0)]), seed=5)
    assert len(steps) == len(expected.steps) > 10
    for got, want in zip(steps, expected.steps, strict=True):
        assert (got.side, got.direction) == (want.side, want.direction)
        assert got.ic_s == pytest.approx(want.ic_s, abs=0.0006)
        assert got.fpa_deg == pytest.approx(want.fpa_deg, abs=0.006)
    header = read_header(out)
    assert header["source"] == "simulated"
    assert header["ground_truth"]["steps"] == "walk.steps.csv"
    assert header["ground_truth"]["raises"] == "walk.raises.csv"
    loaded = read_recording(out)
    left = loaded.stream("left")
    assert left.n_samples == expected.streams[0].n_samples
    assert np.allclose(acc(left), acc(expected.streams[0]), atol=0.01)
    assert np.allclose(pressure(left), pressure(expected.streams[0]), atol=0.01)


def test_cli_heel_raises_and_rejected_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "raises.insole"
    assert run_cli("-o", str(out), "--plan", "heel-raises", "--no-noise") == 0
    assert "(60 heel raises)" in capsys.readouterr().out
    assert len(read_raises_csv(tmp_path / "raises.raises.csv")) == 10 * 3 * 2
    with pytest.raises(UserError, match="exists; use -f/--force"):
        run_cli("-o", str(out), "--plan", "heel-raises")
    with pytest.raises(UserError, match="does not take --fpa-deg"):
        run_cli("-o", str(out), "--plan", "heel-raises", "--fpa-deg", "5", "--force")
    with pytest.raises(UserError, match="rate"):
        run_cli("-o", str(out), "--rate-hz", "20", "--force")
    with pytest.raises(UserError, match="cadence"):
        run_cli("-o", str(out), "--plan", "walk", "--cadence-spm", "400", "--force")
    with pytest.raises(UserError, match="does not exist"):
        run_cli("-o", str(tmp_path / "missing" / "x.insole"))
