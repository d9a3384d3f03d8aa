"""Clock offset and drift from packet times: synthetic links with known skew and latency."""

from __future__ import annotations

import numpy as np
import pytest

from insole.clocksync import ClockSync


def _packets(rng: np.random.Generator, drift: float, offset_s: float, duration_s: float = 600.0, rate_hz: float = 10.0,
             start_ms: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Device send times (true seconds), their device_ms header values and host arrival times."""
    true_s = np.arange(0.0, duration_s, 1.0 / rate_hz) + rng.uniform(0, 0.01, int(duration_s * rate_hz))
    device_ms = (start_ms + np.floor(true_s / (1.0 + drift) * 1000.0)).astype(np.int64) % (1 << 30)
    # BLE-like latency: 7.5 ms connection events plus an exponential tail.
    latency_s = 0.004 + rng.integers(0, 3, len(true_s)) * 0.0075 + rng.exponential(0.006, len(true_s))
    return true_s, device_ms, offset_s + true_s + latency_s


@pytest.mark.parametrize("drift_ppm", [200.0, -150.0, 0.0])
def test_fit_recovers_drift_and_aligns_events_within_a_few_ms(drift_ppm: float) -> None:
    rng = np.random.default_rng(7)
    true_s, device_ms, host_s = _packets(rng, drift_ppm * 1e-6, offset_s=1234.5)
    sync = ClockSync()
    for d, h in zip(device_ms, host_s):
        sync.add(int(d), float(h))
    fit = sync.fit()
    assert abs(fit.drift_ppm - drift_ppm) < 10.0
    # An event at a known true time, stamped by the device clock, lands near its host time.
    event_true_s = np.linspace(10.0, 590.0, 50)
    event_device_s = np.floor(event_true_s / (1.0 + drift_ppm * 1e-6) * 1000.0) / 1000.0
    error_ms = (fit.to_host_s(event_device_s) - (1234.5 + event_true_s)) * 1000.0
    # The fit's line follows the fastest packets: aligned to within the minimum latency (4 ms) + 2 ms.
    assert np.max(np.abs(error_ms - 4.0)) < 2.0, error_ms


def test_device_time_wrap_is_unwrapped() -> None:
    rng = np.random.default_rng(3)
    _, device_ms, host_s = _packets(rng, 100e-6, offset_s=0.0, duration_s=60.0, start_ms=(1 << 30) - 20_000)
    assert device_ms.min() < 1000 < (1 << 30) - 25_000 < device_ms.max()  # the 2**30 wrap is inside
    sync = ClockSync()
    for d, h in zip(device_ms, host_s):
        sync.add(int(d), float(h))
    assert abs(sync.fit().drift_ppm - 100.0) < 40.0


def test_left_and_right_share_one_timeline() -> None:
    rng = np.random.default_rng(11)
    fits = []
    for drift_ppm in (200.0, -200.0):
        _, device_ms, host_s = _packets(rng, drift_ppm * 1e-6, offset_s=50.0)
        sync = ClockSync()
        for d, h in zip(device_ms, host_s):
            sync.add(int(d), float(h))
        fits.append((drift_ppm, sync.fit()))
    # The same true instant seen by both devices maps to the same host time.
    true_s = np.linspace(5.0, 595.0, 100)
    mapped = [fit.to_host_s(np.floor(true_s / (1.0 + ppm * 1e-6) * 1000.0) / 1000.0) for ppm, fit in fits]
    left_right_ms = (mapped[0] - mapped[1]) * 1000.0
    assert np.max(np.abs(left_right_ms)) < 3.0
    # The drift correction is what does it: offsets alone leave the feet ~240 ms apart after 10 min.
    offsets_only = [fit.offset_s + np.floor(true_s / (1.0 + ppm * 1e-6) * 1000.0) / 1000.0 for ppm, fit in fits]
    assert np.max(np.abs(offsets_only[0] - offsets_only[1])) * 1000.0 > 200.0


def test_needs_two_packets() -> None:
    sync = ClockSync()
    sync.add(5, 1.0)
    with pytest.raises(ValueError, match="two packets"):
        sync.fit()
