"""Physical units ↔ protocol counts, as a device measures and sends them.

* acceleration m/s² ↔ mg, angular rate deg/s ↔ 0.1 deg/s (i16, clipped to ±32767 so
  that a saturated value never becomes the -32768 "n/a" sentinel; NaN ↔ sentinel);
* pressure ↔ counts × ``pressure_scale`` (u16, 0..65534; NaN ↔ 0xFFFF), with a round
  scale chosen per stream (:func:`choose_pressure_scale`);
* sampling rate Hz ↔ the protocol's 0.01 Hz.

:func:`stream_counts` turns a whole :class:`~insole.model.FootStream` into a
:class:`CountStream`, the counts the firmware would have measured: what replay, the
simulated insoles and the host's gait twins (``insole.gait``) take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insole.model import STANDARD_GRAVITY_MS2, FloatArray, FootStream, I16Array, Side, U16Array
from insole.protocol.constants import NA_I16, NA_U16

MG_PER_MS2 = 1000.0 / STANDARD_GRAVITY_MS2
GYRO_COUNTS_PER_DPS = 10.0
I16_MAX_VALID = 32767


def _quantise_signed(values: npt.ArrayLike, counts_per_unit: float) -> I16Array:
    x = np.asarray(values, dtype=np.float64) * counts_per_unit
    nan = np.isnan(x)
    # Clip to ±32767 so a saturated value never turns into the -32768 sentinel.
    counts = np.clip(np.rint(np.where(nan, 0.0, x)), -I16_MAX_VALID, I16_MAX_VALID).astype(np.int16)
    counts[nan] = NA_I16
    return counts


def _dequantise_signed(raw: npt.ArrayLike, units_per_count: float) -> FloatArray:
    r = np.asarray(raw, dtype=np.int16)
    out = r.astype(np.float64) * units_per_count
    out[r == NA_I16] = np.nan
    return out


def acc_ms2_to_raw(acc_ms2: npt.ArrayLike) -> I16Array:
    """Specific force m/s² → mg counts, clipped to ±32767, NaN → sentinel."""
    return _quantise_signed(acc_ms2, MG_PER_MS2)


def raw_to_acc_ms2(raw: npt.ArrayLike) -> FloatArray:
    return _dequantise_signed(raw, 1.0 / MG_PER_MS2)


def gyro_dps_to_raw(gyro_dps: npt.ArrayLike) -> I16Array:
    """Angular rate deg/s → 0.1 deg/s counts, clipped to ±32767, NaN → sentinel."""
    return _quantise_signed(gyro_dps, GYRO_COUNTS_PER_DPS)


def raw_to_gyro_dps(raw: npt.ArrayLike) -> FloatArray:
    return _dequantise_signed(raw, 1.0 / GYRO_COUNTS_PER_DPS)


def imu_to_raw(acc_ms2: npt.ArrayLike, gyro_dps: npt.ArrayLike) -> I16Array:
    """(n, 3) acc + (n, 3) gyro in physical units → (n, 6) raw ``ax ay az gx gy gz``."""
    return np.concatenate([acc_ms2_to_raw(acc_ms2), gyro_dps_to_raw(gyro_dps)], axis=1)


def raw_to_imu(imu_raw: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(n, 6) raw → ((n, 3) acc m/s², (n, 3) gyro deg/s), NaN for sentinels."""
    raw = np.asarray(imu_raw, dtype=np.int16)
    return raw_to_acc_ms2(raw[:, :3]), raw_to_gyro_dps(raw[:, 3:])


def pressure_to_counts(pressure: npt.ArrayLike, pressure_scale: float) -> U16Array:
    """Physical pressure → counts (value / scale), clipped to 0..65534, NaN → 0xFFFF."""
    if not pressure_scale > 0:
        raise ValueError(f"pressure_scale must be positive, got {pressure_scale}")
    x = np.asarray(pressure, dtype=np.float64) / pressure_scale
    nan = np.isnan(x)
    counts = np.clip(np.rint(np.where(nan, 0.0, x)), 0, NA_U16 - 1).astype(np.uint16)
    counts[nan] = NA_U16
    return counts


def counts_to_pressure(counts: npt.ArrayLike, pressure_scale: float) -> FloatArray:
    c = np.asarray(counts, dtype=np.uint16)
    out = c.astype(np.float64) * pressure_scale
    out[c == NA_U16] = np.nan
    return out


def choose_pressure_scale(pressure: npt.ArrayLike | None, *, target_max_counts: float = 60000.0) -> float:
    """A round scale (1, 2 or 5 × 10^k) that puts the largest value at or below ~60000
    counts; 1.0 without pressure (None) or without a positive value."""
    if pressure is None:
        return 1.0
    x = np.asarray(pressure, dtype=np.float64)
    finite = x[np.isfinite(x)]
    peak = float(finite.max()) if finite.size else 0.0
    if peak <= 0.0:
        return 1.0
    wanted = peak / target_max_counts
    exponent = math.floor(math.log10(wanted))
    for mantissa in (1, 2, 5, 10):
        scale = float(f"{mantissa}e{exponent}")  # decimal literal: 0.001, not 0.0010000000000000002
        if scale >= wanted * (1 - 1e-12):
            return scale
    raise AssertionError("unreachable: 10 × 10^k ≥ wanted")


def rate_hz_to_chz(rate_hz: float) -> int:
    """Sampling rate in Hz → the protocol's 0.01 Hz units (204.8 Hz → 20480)."""
    return round(rate_hz * 100.0)


def chz_to_rate_hz(rate_chz: int) -> float:
    return rate_chz / 100.0


@dataclass(frozen=True)
class CountStream:
    """One foot's samples as the firmware receives them, with what it needs to read them.

    ``pressure`` is (n, n_pressure) u16 counts (0xFFFF n/a), ``imu`` (n, 6) i16
    ``ax ay az`` [mg] ``gx gy gz`` [0.1 deg/s] (-32768 n/a); either may be None.
    ``layout`` names the sensor positions (``hardware/layouts``), ``side`` the foot.
    """

    side: Side
    layout: str
    pressure: U16Array | None
    imu: I16Array | None
    pressure_scale: float


def stream_counts(stream: FootStream, pressure_scale: float | None = None) -> CountStream:
    """The stream in protocol counts, as the device would have measured it; the pressure
    scale is :func:`choose_pressure_scale`'s unless given."""
    if pressure_scale is None:
        pressure_scale = choose_pressure_scale(stream.pressure)
    pressure = None if stream.pressure is None else pressure_to_counts(stream.pressure, pressure_scale)
    imu = None
    if stream.acc_ms2 is not None and stream.gyro_dps is not None:
        imu = imu_to_raw(stream.acc_ms2, stream.gyro_dps)
    return CountStream(stream.side, stream.layout, pressure, imu, pressure_scale)
