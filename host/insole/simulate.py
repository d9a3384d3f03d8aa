"""Realistic synthetic two-foot insole recordings with exact ground truth.

The same public API as ``insole.sim`` (where it is implemented and documented), under
the name of the ``insole simulate`` command.
"""

from __future__ import annotations

from insole.sim import (
    PRESSURE_UNIT,
    ContactTruth,
    Direction,
    FootMotion,
    FootTrajectory,
    HeelRaises,
    RaiseTruth,
    Segment,
    SensorModel,
    SessionPlan,
    SimulatedSession,
    Stand,
    StepTruth,
    Subject,
    Walk,
    demo_plan,
    fpa_sweep_plan,
    load_layout_cells,
    simulate_session,
)

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
