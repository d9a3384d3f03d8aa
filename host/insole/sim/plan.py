"""What the simulated person does (segments of a session) and who they are.

Conventions shared with the firmware (keep them in step with firmware/insolefw):

* World frame: x, y horizontal, z up; the walker starts at the origin facing +x.
* Facing heading: the direction the walker's body faces. ``turn_deg`` > 0 turns the
  walker to the left (counter-clockwise seen from above).
* Direction: forward walking moves along the facing heading, backward walking moves
  against it (the walker keeps facing the same way and steps back, toes landing first).
* Foot progression angle (FPA): the signed horizontal angle between the foot's long axis
  (heel -> toes) and the walker's *facing* heading, positive = toe-out on both feet.
  For a left foot toe-out means the toes point left of the facing heading (foot yaw =
  heading + FPA); for a right foot they point right (foot yaw = heading - FPA). For
  forward walking the facing heading is the line of progression; for backward walking
  it is the line of progression reversed, so that toeing out looks the same whichever
  way one walks. During turns the heading is that of the step's own stance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Direction = Literal["forward", "backward"]


def _positive(name: str, value: float) -> None:
    if not value > 0.0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class Walk:
    """A stretch of walking; consecutive walks in the same direction flow without a stop.

    Give either ``duration_s`` (the number of steps is then ``duration_s * cadence / 60``,
    so the time is approximate) or ``n_steps`` (footfalls). A walking bout starts from
    standing with a weight shift and a half-length first step, and ends with one extra
    closing step that brings the feet side by side. ``fpa_deg`` may be one value for both
    feet or ``(left, right)``.
    """

    duration_s: float | None = None
    n_steps: int | None = None
    direction: Direction = "forward"
    cadence_spm: float = 110.0
    fpa_deg: float | tuple[float, float] = 8.0
    stride_length_m: float = 1.3
    turn_deg: float = 0.0
    # Step-to-step variability (the ground truth records every realised value).
    fpa_sd_deg: float = 1.0
    stride_length_cv: float = 0.02
    step_time_cv: float = 0.02

    def __post_init__(self) -> None:
        if (self.duration_s is None) == (self.n_steps is None):
            raise ValueError("Walk needs exactly one of duration_s and n_steps")
        if self.duration_s is not None:
            _positive("duration_s", self.duration_s)
        if self.n_steps is not None and self.n_steps < 1:
            raise ValueError(f"n_steps must be at least 1, got {self.n_steps}")
        if self.direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {self.direction!r}")
        if not 40.0 <= self.cadence_spm <= 180.0:
            raise ValueError(f"cadence_spm must be within 40..180 (walking), got {self.cadence_spm}")
        if not 0.0 <= self.stride_length_m <= 2.2:
            raise ValueError(f"stride_length_m must be within 0..2.2, got {self.stride_length_m}")
        for value in self.fpa_pair_deg:
            if not -45.0 <= value <= 45.0:
                raise ValueError(f"fpa_deg must be within -45..45, got {value}")
        if min(self.fpa_sd_deg, self.stride_length_cv, self.step_time_cv) < 0.0 or self.step_time_cv > 0.1:
            raise ValueError("variability must be non-negative (step_time_cv at most 0.1)")

    @property
    def fpa_pair_deg(self) -> tuple[float, float]:
        """(left, right) foot progression angle, positive = toe-out."""
        if isinstance(self.fpa_deg, tuple):
            return (float(self.fpa_deg[0]), float(self.fpa_deg[1]))
        return (float(self.fpa_deg), float(self.fpa_deg))

    def footfalls(self) -> int:
        if self.n_steps is not None:
            return self.n_steps
        assert self.duration_s is not None
        return max(1, round(self.duration_s * self.cadence_spm / 60.0))


@dataclass(frozen=True)
class Stand:
    """Quiet standing on both feet; with ``weight_shift`` the load sways between the feet."""

    duration_s: float
    weight_shift: bool = False
    weight_shift_period_s: float = 4.0

    def __post_init__(self) -> None:
        _positive("duration_s", self.duration_s)
        _positive("weight_shift_period_s", self.weight_shift_period_s)


@dataclass(frozen=True)
class HeelRaises:
    """Bilateral heel raises: rise onto the forefoot, hold, lower, rest; in sets."""

    reps: int = 10
    hold_s: float = 3.0
    rest_s: float = 1.0
    sets: int = 3
    set_rest_s: float = 30.0
    rise_s: float = 1.0
    lower_s: float = 1.0
    raise_deg: float = 25.0  # foot pitch at the top, about the metatarsal heads

    def __post_init__(self) -> None:
        if self.reps < 1 or self.sets < 1:
            raise ValueError("reps and sets must be at least 1")
        for name in ("rise_s", "lower_s", "rest_s"):
            _positive(name, getattr(self, name))
        if self.hold_s < 0.0 or self.set_rest_s < 0.0:
            raise ValueError("hold_s and set_rest_s must not be negative")
        if not 5.0 <= self.raise_deg <= 45.0:
            raise ValueError(f"raise_deg must be within 5..45, got {self.raise_deg}")


Segment = Walk | Stand | HeelRaises


@dataclass(frozen=True)
class SessionPlan:
    segments: tuple[Segment, ...]
    name: str = "custom"

    def __init__(self, segments: Iterable[Segment], name: str = "custom") -> None:
        object.__setattr__(self, "segments", tuple(segments))
        object.__setattr__(self, "name", name)
        if not self.segments:
            raise ValueError("a session plan needs at least one segment")
        for segment in self.segments:
            if not isinstance(segment, (Walk, Stand, HeelRaises)):
                raise TypeError(f"not a plan segment: {segment!r}")


@dataclass(frozen=True)
class Subject:
    """Body and gait style of the simulated person (foot frame: x to the toes, y left, z up)."""

    body_mass_kg: float = 75.0
    step_width_m: float = 0.10  # lateral distance between the heel centres
    standing_fpa_deg: float = 8.0
    # IMU position in the foot frame, from the heel contact point: under the midfoot,
    # 2 cm above the ground (shoe sole + insole).
    imu_position_m: tuple[float, float, float] = (0.10, 0.0, 0.02)
    # Metatarsal-head rocker axis as a fraction of the foot length from the heel centre.
    mth_fraction: float = 0.70
    heel_strike_pitch_deg: float = 18.0  # dorsiflexion at forward initial contact
    toe_off_pitch_deg: float = 35.0  # plantarflexion at forward toe-off
    toe_strike_pitch_deg: float = 15.0  # plantarflexion at backward initial contact (toes first)
    backward_heel_off_pitch_deg: float = 10.0  # dorsiflexion when the heel leaves last, backward
    swing_clearance_m: float = 0.05
    swing_roll_deg: float = 4.0
    # Vertical ground-reaction oscillation: total force swings between (1 - a) and (1 + a)
    # times body weight over a step (mid single support vs. mid double support).
    grf_oscillation: float = 0.2
    weight_shift_share: float = 0.3  # standing load on one foot swings 0.5 +- this
    cop_lateral_mm: float = 0.0  # extra lateral (+) / medial (-) loading of both feet

    def __post_init__(self) -> None:
        _positive("body_mass_kg", self.body_mass_kg)
        if not 0.0 <= self.grf_oscillation < 0.5 or not 0.0 <= self.weight_shift_share < 0.5:
            raise ValueError("grf_oscillation and weight_shift_share must be within 0..0.5")


@dataclass(frozen=True)
class SensorModel:
    """Imperfections of the simulated insole's sensors; ``SensorModel.ideal()`` has none."""

    acc_noise_ms2: float = 0.012  # white noise per sample (BMI270-class at ~50 Hz bandwidth)
    gyro_noise_dps: float = 0.07
    acc_bias_ms2: float = 0.04  # standard deviation of the constant bias per axis
    gyro_bias_dps: float = 0.3  # standard deviation of the initial bias per axis
    gyro_bias_walk_dps_per_sqrt_s: float = 0.005  # random walk of the gyro bias
    misalignment_deg: float = 0.0  # standard deviation per axis of the mounting rotation
    pressure_noise_kpa: float = 0.4  # ADC noise per sample
    pressure_gain_sd: float = 0.05  # relative gain spread between cells
    pressure_baseline_kpa: float = 1.0  # largest initial offset of a cell
    pressure_drift_kpa_per_sqrt_s: float = 0.02  # random walk of each cell's baseline

    @classmethod
    def ideal(cls) -> SensorModel:
        return cls(**{name: 0.0 for name in cls.__dataclass_fields__})


def demo_plan() -> SessionPlan:
    """About two minutes: toe-out walking, a 180° turn, backward walking, weight shifts, heel raises."""
    return SessionPlan(
        [
            Stand(duration_s=3.0),
            Walk(duration_s=25.0, fpa_deg=(14.0, 12.0), cadence_spm=110.0, stride_length_m=1.3),
            Walk(n_steps=8, turn_deg=180.0, fpa_deg=(14.0, 12.0), cadence_spm=100.0, stride_length_m=0.7),
            Walk(duration_s=10.0, fpa_deg=(14.0, 12.0), cadence_spm=110.0, stride_length_m=1.3),
            Stand(duration_s=2.0),
            Walk(duration_s=15.0, direction="backward", fpa_deg=8.0, cadence_spm=96.0, stride_length_m=0.7),
            Stand(duration_s=16.0, weight_shift=True),
            HeelRaises(reps=6, hold_s=2.0, rest_s=1.0, sets=1),
            Stand(duration_s=3.0),
        ],
        name="demo",
    )


def fpa_sweep_plan(
    fpa_values: Sequence[float],
    *,
    steps_per_value: int = 20,
    cadence_spm: float = 110.0,
    stride_length_m: float = 1.3,
    pause_s: float = 2.0,
) -> SessionPlan:
    """One straight bout per foot progression angle, each followed by a short pause."""
    if not fpa_values:
        raise ValueError("fpa_sweep_plan needs at least one angle")
    segments: list[Segment] = [Stand(duration_s=pause_s)]
    for fpa in fpa_values:
        segments.append(
            Walk(n_steps=steps_per_value, fpa_deg=float(fpa), cadence_spm=cadence_spm, stride_length_m=stride_length_m)
        )
        segments.append(Stand(duration_s=pause_s))
    return SessionPlan(segments, name="fpa-sweep")


__all__ = [
    "Direction",
    "HeelRaises",
    "Segment",
    "SensorModel",
    "SessionPlan",
    "Stand",
    "Subject",
    "Walk",
    "demo_plan",
    "fpa_sweep_plan",
]
