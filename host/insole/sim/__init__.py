"""Realistic synthetic two-foot insole recordings with exact ground truth.

The simulator moves two rigid feet through a session plan (walking forward or backward,
turning, standing, heel raises), derives the IMU signals analytically from the feet's
pose (gyroscope = body angular rate, accelerometer = specific force at the IMU point,
lever arm included), spreads each foot's vertical load over the insole's pressure cells,
and adds sensor imperfections. Ground-truth contacts, foot progression angles, stride
lengths and heel raises come straight from the trajectories.

Conventions (heading, forward/backward, foot progression angle) are documented in
``insole.sim.plan``; the firmware's estimates must follow them.

Modules: ``plan`` (segments, subject, sensor model), ``timeline`` (footprints, contacts,
ground truth), ``kinematics`` (foot pose and IMU), ``pressure`` (load -> cells), ``session``.
"""

from __future__ import annotations

from insole.sim.kinematics import FootMotion, FootTrajectory
from insole.sim.plan import (
    Direction,
    HeelRaises,
    Segment,
    SensorModel,
    SessionPlan,
    Stand,
    Subject,
    Walk,
    demo_plan,
    fpa_sweep_plan,
)
from insole.sim.pressure import PRESSURE_UNIT
from insole.sim.session import SimulatedSession, load_layout_cells, simulate_session
from insole.sim.timeline import ContactTruth, RaiseTruth, StepTruth

__all__ = [
    "PRESSURE_UNIT",
    "ContactTruth",
    "Direction",
    "FootMotion",
    "FootTrajectory",
    "HeelRaises",
    "RaiseTruth",
    "Segment",
    "SensorModel",
    "SessionPlan",
    "SimulatedSession",
    "Stand",
    "StepTruth",
    "Subject",
    "Walk",
    "demo_plan",
    "fpa_sweep_plan",
    "load_layout_cells",
    "simulate_session",
]
