"""Piecewise quintic Hermite curves: C2-continuous scalar functions of time, vectorised.

Every angle, load share and force factor of the simulator is one of these: the builder
places knots (time, value, first derivative, second derivative) and the curve between
two knots is the unique quintic matching both ends. Equal values with zero derivatives
give an exactly constant piece; zero derivatives at both ends give a minimum-jerk move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insole.model import FloatArray


@dataclass(frozen=True)
class Knot:
    t_s: float
    value: float
    slope: float = 0.0  # d value / dt
    curvature: float = 0.0  # d² value / dt²


class QuinticCurve:
    """C2 curve through knots; constant (with zero derivatives) outside the knot range."""

    def __init__(self, knots: list[Knot]) -> None:
        if not knots:
            raise ValueError("a curve needs at least one knot")
        times = np.array([k.t_s for k in knots], dtype=np.float64)
        if np.any(np.diff(times) <= 0.0):
            bad = int(np.argmin(np.diff(times)))
            raise ValueError(f"knot times must increase strictly (knot {bad}: {times[bad]} -> {times[bad + 1]})")
        self.times_s = times
        self.values = np.array([k.value for k in knots], dtype=np.float64)
        self._first = knots[0]
        self._last = knots[-1]
        if len(knots) == 1:
            self._coefficients = np.zeros((0, 6))
            return
        h = np.diff(times)
        p0, p1 = self.values[:-1], self.values[1:]
        slopes = np.array([k.slope for k in knots])
        curvatures = np.array([k.curvature for k in knots])
        # Derivatives in the unit parameter tau = (t - t0) / h.
        m0, m1 = slopes[:-1] * h, slopes[1:] * h
        a0, a1 = curvatures[:-1] * h**2, curvatures[1:] * h**2
        d = p1 - p0
        self._coefficients = np.stack(
            [
                p0,
                m0,
                a0 / 2.0,
                10.0 * d - 6.0 * m0 - 4.0 * m1 - (3.0 * a0 - a1) / 2.0,
                -15.0 * d + 8.0 * m0 + 7.0 * m1 + (3.0 * a0 - 2.0 * a1) / 2.0,
                6.0 * d - 3.0 * m0 - 3.0 * m1 - (a0 - a1) / 2.0,
            ],
            axis=1,
        )

    def __call__(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Value, first and second time derivative at each time."""
        t = np.asarray(t_s, dtype=np.float64)
        value = np.empty_like(t)
        slope = np.zeros_like(t)
        curvature = np.zeros_like(t)
        before = t < self.times_s[0]
        after = t >= self.times_s[-1]
        value[before] = self._first.value
        value[after] = self._last.value
        inside = ~(before | after)
        if np.any(inside):
            ti = t[inside]
            index = np.searchsorted(self.times_s, ti, side="right") - 1
            t0 = self.times_s[index]
            h = self.times_s[index + 1] - t0
            tau = (ti - t0) / h
            c = self._coefficients[index]
            value[inside] = c[:, 0] + tau * (
                c[:, 1] + tau * (c[:, 2] + tau * (c[:, 3] + tau * (c[:, 4] + tau * c[:, 5])))
            )
            slope[inside] = (
                c[:, 1] + tau * (2 * c[:, 2] + tau * (3 * c[:, 3] + tau * (4 * c[:, 4] + tau * 5 * c[:, 5])))
            ) / h
            curvature[inside] = (2 * c[:, 2] + tau * (6 * c[:, 3] + tau * (12 * c[:, 4] + tau * 20 * c[:, 5]))) / h**2
        return value, slope, curvature


def minimum_jerk(tau: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """s(tau) rising 0 -> 1 on [0, 1] with zero 1st and 2nd derivatives at both ends (d/dtau)."""
    x = np.clip(tau, 0.0, 1.0)
    s = x**3 * (10.0 - 15.0 * x + 6.0 * x**2)
    ds = 30.0 * x**2 * (1.0 - x) ** 2
    dds = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)
    return s, ds, dds


def bump(tau: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """b(tau) = 64 tau³ (1 - tau)³: peak 1 at 0.5, zero value and 1st/2nd derivatives at 0 and 1."""
    x = np.clip(tau, 0.0, 1.0)
    u = 1.0 - x
    b = 64.0 * x**3 * u**3
    db = 192.0 * x**2 * u**2 * (u - x)
    ddb = 384.0 * x * u * (u * u - 3.0 * x * u + x * x)
    return b, db, ddb
