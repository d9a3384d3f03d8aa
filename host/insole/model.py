"""In-memory form of one foot's recording, shared by importers, the simulator and recordings.

Everything that produces samples (an importer, the simulator, a decoded recording)
yields `FootStream`s in physical units; `insole.recording` quantises them to protocol
counts on the way to disk and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

Side = Literal["left", "right"]
WalkingDirection = Literal["forward", "backward", "unknown"]
SIDES: tuple[Side, ...] = ("left", "right")
WALKING_DIRECTIONS: tuple[WalkingDirection, ...] = ("forward", "backward", "unknown")
# numpy arrays by dtype, for signatures throughout the package.
FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
U16Array: TypeAlias = npt.NDArray[np.uint16]
I16Array: TypeAlias = npt.NDArray[np.int16]
U32Array: TypeAlias = npt.NDArray[np.uint32]

STANDARD_GRAVITY_MS2 = 9.80665


@dataclass
class FootStream:
    """Uniformly sampled data of one insole.

    Sample k was taken at ``t0_s + k / rate_hz`` in the recording's own time base.
    Missing values are NaN. IMU axes are in the foot frame: x toward the toes,
    y to the left, z up, for both feet; at rest ``acc_ms2[:, 2]`` is about +9.81.
    """

    side: Side
    rate_hz: float
    t0_s: float
    layout: str  # file stem in hardware/layouts/
    pressure: FloatArray | None  # (n, n_pressure) in `pressure_unit`, or None
    pressure_unit: str
    acc_ms2: FloatArray | None  # (n, 3) specific force in m/s², or None
    gyro_dps: FloatArray | None  # (n, 3) angular rate in deg/s, or None
    device: str = ""
    firmware_version: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(a) for a in (self.pressure, self.acc_ms2, self.gyro_dps) if a is not None}
        if not lengths:
            raise ValueError(f"{self.side} stream has neither pressure nor IMU data")
        if len(lengths) != 1:
            raise ValueError(f"{self.side} stream: pressure and IMU lengths differ: {sorted(lengths)}")
        if (self.acc_ms2 is None) != (self.gyro_dps is None):
            raise ValueError(f"{self.side} stream: IMU needs both accelerometer and gyroscope")
        if self.pressure is not None and not 0 < self.pressure.shape[1] <= 16:
            raise ValueError(f"{self.side} stream: {self.pressure.shape[1]} pressure channels, expected 1..16")
        if not 1.0 <= self.rate_hz <= 1000.0:
            raise ValueError(f"{self.side} stream: implausible rate {self.rate_hz} Hz")

    @property
    def n_samples(self) -> int:
        for a in (self.pressure, self.acc_ms2):
            if a is not None:
                return len(a)
        raise AssertionError("unreachable: checked in __post_init__")

    @property
    def n_pressure(self) -> int:
        return 0 if self.pressure is None else int(self.pressure.shape[1])

    @property
    def has_imu(self) -> bool:
        return self.acc_ms2 is not None

    def times_s(self) -> FloatArray:
        return self.t0_s + np.arange(self.n_samples) / self.rate_hz


@dataclass(frozen=True)
class StepRow:
    """One stance phase, as written to STEPS.csv (times in the recording's time base)."""

    side: Side
    ic_s: float
    to_s: float
    fpa_deg: float | None
    direction: WalkingDirection


@dataclass(frozen=True)
class HeelRaiseRow:
    """One heel-raise repetition, as written to RAISES.csv."""

    side: Side
    start_s: float
    end_s: float
    hold_s: float


def as_side(text: str) -> Side:
    """``text`` as a :data:`Side`; ValueError for anything else (files, arguments)."""
    for side in SIDES:
        if text == side:
            return side
    raise ValueError(f"side must be 'left' or 'right', got {text!r}")


def as_walking_direction(text: str) -> WalkingDirection:
    """``text`` as a :data:`WalkingDirection`; ValueError for anything else."""
    for direction in WALKING_DIRECTIONS:
        if text == direction:
            return direction
    raise ValueError(f"direction must be one of {', '.join(WALKING_DIRECTIONS)}, got {text!r}")
