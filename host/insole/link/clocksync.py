"""Two insoles on one timeline: each device clock's offset and drift against the host's.

Every packet carries the device's ``time_ms`` when it was made; the host notes when it
arrived. Arrival = made + latency, and latency is never negative, so the smallest
``host − device`` differences lie on a line ``offset + drift × device`` (the device
crystal's error is the drift, typically ±20…200 ppm). We take the minimum difference
in each window of device time and fit a line through those minima robustly (a
window without one fast packet sits above the line and must not tilt it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from insole.model import FloatArray

DEVICE_TIME_MODULUS_MS = 1 << 30  # docs/protocol.md: device time_ms is ms since boot modulo 2**30


@dataclass
class ClockFit:
    """host_s = offset_s + (1 + drift) × device_s, valid over the fitted span."""

    offset_s: float
    drift: float  # relative rate error of the device clock (2e-4 = 200 ppm fast host-side)
    residual_ms: float  # median distance of the window minima from the line
    n_windows: int

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    def to_host_s(self, device_s: npt.ArrayLike) -> FloatArray:
        return self.offset_s + (1.0 + self.drift) * np.asarray(device_s, dtype=np.float64)


@dataclass
class ClockSync:
    """Collects (device time, host arrival time) pairs of one device and fits its clock.

    ``window_s`` trades latency spikes (longer windows find a fast packet more surely)
    against resolving drift (at least a few windows are needed).
    """

    window_s: float = 2.0
    _device_ms: list[int] = field(default_factory=list)
    _host_s: list[float] = field(default_factory=list)

    def add(self, device_time_ms: int, host_arrival_s: float) -> None:
        """``device_time_ms`` as it came in the packet header (modulo 2**30)."""
        self._device_ms.append(int(device_time_ms))
        self._host_s.append(float(host_arrival_s))

    def __len__(self) -> int:
        return len(self._device_ms)

    def device_s(self) -> FloatArray:
        """The device times seen so far, unwrapped, in seconds."""
        return unwrap_counter(self._device_ms, DEVICE_TIME_MODULUS_MS).astype(np.float64) / 1000.0

    def fit(self) -> ClockFit:
        if len(self) < 2:
            raise ValueError("clock sync needs at least two packets")
        return lower_envelope_fit(self.device_s(), np.asarray(self._host_s), self.window_s)


def unwrap_counter(values: Iterable[int], modulus: int) -> npt.NDArray[np.int64]:
    """Unwrap a wrapping counter (seq: 2^16, device time_ms: 2^30) into a monotonic int64 series.

    Each step is taken as the smallest forward-or-backward move modulo ``modulus``.
    """
    v = np.asarray(list(values), dtype=np.int64)
    if v.size == 0:
        return v
    steps = np.diff(v) % modulus
    steps = np.where(steps >= modulus // 2, steps - modulus, steps)
    return np.concatenate([v[:1], v[0] + np.cumsum(steps)])


def lower_envelope_fit(x_s: FloatArray, y_s: FloatArray, window_s: float = 2.0) -> ClockFit:
    """y = offset + (1 + drift) · x through the lower envelope of y − x.

    y is x plus a positive delay of varying size (a packet's latency, a sample's wait
    in the FIFO): the smallest y − x in each window of x are the samples of the line.
    A window whose fastest packet was still slow (a busy host, a radio retry) sits
    above it, so the line is fitted robustly: the median of the pairwise slopes
    (Theil–Sen) and the median offset of the window minima.
    """
    diff = y_s - x_s
    window = np.floor((x_s - np.min(x_s)) / window_s).astype(np.int64)
    minima_idx = np.array([np.flatnonzero(window == w)[np.argmin(diff[window == w])] for w in np.unique(window)])
    x = x_s[minima_idx]
    y = diff[minima_idx]
    slope = _theil_sen_slope(x, y)
    intercept = float(np.median(y - slope * x))
    residual = y - (intercept + slope * x)
    return ClockFit(
        offset_s=intercept,
        drift=slope,
        residual_ms=float(np.median(np.abs(residual)) * 1000.0),
        n_windows=len(x),
    )


def _theil_sen_slope(x: FloatArray, y: FloatArray) -> float:
    if len(x) < 2 or np.ptp(x) == 0.0:
        return 0.0
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx != 0.0
    return float(np.median((y[j] - y[i])[ok] / dx[ok]))


@dataclass(frozen=True)
class SampleTimeline:
    """Where a live stream's samples fall on the host's clock: sample k at
    ``t0_s + k / rate_hz`` (host seconds since the recording's start)."""

    t0_s: float
    rate_hz: float
    device_to_host: ClockFit
    index_to_device: ClockFit


MIN_PACKETS = 20
MIN_SPAN_S = 2.0
MAX_DRIFT = 2e-3  # crystals and IMU oscillators are within a few hundred ppm


def sample_timeline(
    first_index: npt.ArrayLike, device_ms: npt.ArrayLike, host_ms: npt.ArrayLike, nominal_rate_hz: float
) -> SampleTimeline | None:
    """The host time of a stream's samples from its SAMPLES packets: each carries the
    index of its first sample and the device time it was made; the recording notes
    when it arrived. Two lower-envelope fits compose: sample index → device time (a
    sample is packed after it was measured) and device time → host time (a packet
    arrives after it was sent). None when the packets span too little time."""
    index = np.asarray(first_index, dtype=np.float64)
    host_s = np.asarray(host_ms, dtype=np.float64) / 1000.0
    if len(index) < MIN_PACKETS or np.ptp(host_s) < MIN_SPAN_S:
        return None
    device_s = unwrap_counter([int(v) for v in np.asarray(device_ms)], DEVICE_TIME_MODULUS_MS).astype(np.float64) / 1000.0
    if np.ptp(device_s) < MIN_SPAN_S:
        return None  # no device clock in the packets (e.g. written by a converter)
    to_host = lower_envelope_fit(device_s, host_s)
    to_device = lower_envelope_fit(index / nominal_rate_hz, device_s)
    if max(abs(to_host.drift), abs(to_device.drift)) > MAX_DRIFT:
        return None  # not clocks running side by side: leave the stream's own time base
    scale = (1.0 + to_host.drift) * (1.0 + to_device.drift)
    return SampleTimeline(
        t0_s=to_host.offset_s + (1.0 + to_host.drift) * to_device.offset_s,
        rate_hz=nominal_rate_hz / scale,
        device_to_host=to_host,
        index_to_device=to_device,
    )
