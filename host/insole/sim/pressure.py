"""Plantar pressure under the insole's cells from a foot's vertical load and centre of pressure.

The load of one foot, F, is spread over the sole as
``p(x, y) = F · m(x) · n(y | x)``, in the anatomical frame of the layout file (x from the
heel centre toward the toes, y lateral-positive, i.e. the LEFT foot's y):

* ``m(x)`` is the footprint's distribution along the foot (heel pad, a light lateral
  midfoot band, metatarsal heads, toes) tilted exponentially, ``∝ f(x) exp(λx)``, with λ
  solved so that its mean is the centre of pressure. A CoP near the heel loads only the
  heel, one at 42 % (standing) loads heel and forefoot together, one under the metatarsal
  heads (push-off, heel raise) leaves the heel unloaded.
* Only the part of the sole that touches the ground carries load: when the foot is
  pitched about its heel (toes up) or about its metatarsal heads (heel up), a point
  lifted by more than the sole's compliance (about 8 mm) is unloaded. So the heel reads
  zero once it has left the ground in push-off or a heel raise, and the forefoot reads
  zero while a forward step is still on its heel.
* ``n(y | x)`` is a Gaussian across the foot around the footprint's centre line at that x
  (central heel, lateral midfoot, central forefoot, medial hallux), shifted sideways by
  the subject's lateral loading offset.

Both factors integrate to one, so the pressure field integrates to F. Each cell reads the
pressure at its centre, in kPa (1 kPa = 0.1 N/cm²).
"""

from __future__ import annotations

import numpy as np

from insole.model import FloatArray

PRESSURE_UNIT = "kPa"

# Footprint along the foot, in fractions of the foot length: (centre, width, weight).
_FOOTPRINT_BLOBS = ((0.05, 0.06, 1.0), (0.36, 0.09, 0.22), (0.69, 0.075, 1.1), (0.87, 0.035, 0.20))
# Centre line (lateral +) and half-width of the contact across the foot, for a 270 mm foot.
_ACROSS_X = (0.05, 0.36, 0.69, 0.87)
_ACROSS_CENTRE_M = (0.0, 0.018, 0.002, -0.006)
_ACROSS_SIGMA_M = (0.018, 0.012, 0.032, 0.018)
_REFERENCE_FOOT_M = 0.27
_SOLE_COMPLIANCE_M = 0.008  # a point lifted more than this no longer touches
_CONTACT_EDGE_M = 0.006  # width of the soft edge of the contact region


class PressureModel:
    def __init__(self, channel_xy_m: FloatArray, foot_length_m: float, mth_x_m: float) -> None:
        """``channel_xy_m``: (n_channels, 2) cell centres from the layout file (LEFT-foot y);
        ``mth_x_m``: the metatarsal-head pivot's distance from the heel pivot."""
        self.channel_xy_m = np.asarray(channel_xy_m, dtype=np.float64)
        self.foot_length_m = foot_length_m
        self.mth_x_m = mth_x_m
        length = foot_length_m
        grid = np.linspace(-0.08 * length, 0.97 * length, 240)
        self._log_footprint_grid = self._log_footprint(grid)
        self._dx = float(grid[1] - grid[0])
        self._grid = grid
        self.lambdas = np.linspace(-160.0, 160.0, 1601) / length
        log_weights = self._log_footprint_grid[None, :] + self.lambdas[:, None] * grid[None, :]
        peak = log_weights.max(axis=1, keepdims=True)
        weights = np.exp(log_weights - peak)
        total = weights.sum(axis=1)
        self.log_normaliser = np.log(total * self._dx) + peak[:, 0]
        self.mean_x_m = (weights * grid).sum(axis=1) / total  # increases with lambda
        x = self.channel_xy_m[:, 0]
        scale = length / _REFERENCE_FOOT_M
        self._channel_log_footprint = self._log_footprint(x)
        self._channel_centre_m = np.interp(x / length, _ACROSS_X, _ACROSS_CENTRE_M) * scale
        self._channel_sigma_m = np.interp(x / length, _ACROSS_X, _ACROSS_SIGMA_M) * scale

    def _log_footprint(self, x_m: FloatArray) -> FloatArray:
        length = self.foot_length_m
        density = np.zeros_like(x_m, dtype=np.float64)
        for centre, width, weight in _FOOTPRINT_BLOBS:
            sigma = width * length
            density += weight * np.exp(-0.5 * ((x_m - centre * length) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        return np.log(np.maximum(density, 1e-300))

    @property
    def cop_range_m(self) -> tuple[float, float]:
        return float(self.mean_x_m[0]), float(self.mean_x_m[-1])

    def _contact_gate(self, x_m: FloatArray, pitch_rad: FloatArray) -> FloatArray:
        """(n, len(x)) share of the sole at x still touching the ground at each pitch."""
        sine = np.sin(np.abs(pitch_rad))[:, None]
        reach = _SOLE_COMPLIANCE_M / np.maximum(sine, 1e-9)
        heel_up = (pitch_rad > 0.0)[:, None]
        # Heel up: contact in front of (pivot - reach); toes up: behind (heel + reach).
        distance = np.where(heel_up, x_m[None, :] - (self.mth_x_m - reach), reach - x_m[None, :])
        # Smoothstep over the soft edge: exactly zero where the sole is clear of the ground.
        g = np.clip((distance + _CONTACT_EDGE_M) / (2.0 * _CONTACT_EDGE_M), 0.0, 1.0)
        return g * g * (3.0 - 2.0 * g)

    def cell_pressure_kpa(
        self, force_n: FloatArray, cop_fraction: FloatArray, lateral_offset_m: float, pitch_rad: FloatArray
    ) -> FloatArray:
        """(n, n_channels) pressure for loads ``force_n`` (n,) centred near ``cop_fraction`` of the foot length."""
        target = np.clip(np.asarray(cop_fraction) * self.foot_length_m, self.mean_x_m[0], self.mean_x_m[-1])
        lam = np.interp(target, self.mean_x_m, self.lambdas)
        log_norm = np.interp(lam, self.lambdas, self.log_normaliser)
        x_cells = self.channel_xy_m[:, 0]
        along = np.exp(self._channel_log_footprint[None, :] + lam[:, None] * x_cells[None, :] - log_norm[:, None])
        loaded = np.asarray(force_n) > 0.0
        pitched = loaded & (np.abs(pitch_rad) > 1e-4)
        if np.any(pitched):
            # Renormalise over the part of the sole that still touches the ground.
            p, lp = pitch_rad[pitched], lam[pitched]
            log_weights = self._log_footprint_grid[None, :] + lp[:, None] * self._grid[None, :]
            weights = np.exp(log_weights - log_norm[pitched][:, None]) * self._contact_gate(self._grid, p)
            touching = np.maximum(weights.sum(axis=1) * self._dx, 1e-12)
            along[pitched] *= self._contact_gate(x_cells, p) / touching[:, None]
        sigma = self._channel_sigma_m
        offset = self.channel_xy_m[:, 1] - self._channel_centre_m - lateral_offset_m
        across = np.exp(-0.5 * (offset / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
        pressure_kpa: FloatArray = np.asarray(force_n)[:, None] * along * across[None, :] / 1000.0
        return pressure_kpa
