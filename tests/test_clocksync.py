"""Clock offset and drift from packet times: synthetic links with known skew and latency."""

from __future__ import annotations

import numpy as np
import pytest

from insole.link.clocksync import ClockSync


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
    _true_s, device_ms, host_s = _packets(rng, drift_ppm * 1e-6, offset_s=1234.5)
    sync = ClockSync()
    for d, h in zip(device_ms, host_s, strict=True):
        sync.add(int(d), float(h))
    fit = sync.fit()
    assert abs(fit.drift_ppm - drift_ppm) < 10.0
    # The window minima lie on the line but for the jitter of the fastest packet in each
    # (the smallest of ~7 exponential 6-ms tails, and the 1-ms steps of device time).
    assert fit.residual_ms < 1.0, fit.residual_ms
    # An event at a known true time, stamped by the device clock, lands near its host time.
    event_true_s = np.linspace(10.0, 590.0, 50)
    event_device_s = np.floor(event_true_s / (1.0 + drift_ppm * 1e-6) * 1000.0) / 1000.0
    error_ms = (fit.to_host_s(event_device_s) - (1234.5 + event_true_s)) * 1000.0
    # The fit's line follows the fastest packets: aligned to within the minimum latency (4 ms) + 2 ms.
    assert np.max(np.abs(error_ms - 4.0)) < 2.0, error_ms


def test_slow_windows_do_not_bend_the_line() -> None:
    # A busy host or a radio retry now and then: every packet of a 4-s block arrives
    # 300 ms late. The window minima of those blocks sit far above the line; the fit
    # (median of pairwise slopes, median offset) must not follow them.
    rng = np.random.default_rng(11)
    _true_s, device_ms, host_s = _packets(rng, 200e-6, offset_s=50.0)
    clean = ClockSync()
    slow = ClockSync()
    for i, (d, h) in enumerate(zip(device_ms, host_s, strict=True)):
        t = i / 10.0
        delayed = any(start <= t < start + 4.0 for start in (120.0, 440.0, 560.0))
        clean.add(int(d), float(h))
        slow.add(int(d), float(h) + (0.3 if delayed else 0.0))
    reference = clean.fit()
    fit = slow.fit()
    assert abs(fit.drift_ppm - 200.0) < 5.0 and abs(fit.drift_ppm - reference.drift_ppm) < 2.0, fit.drift_ppm
    assert abs(fit.offset_s - reference.offset_s) * 1000.0 < 1.0


def test_device_time_wrap_is_unwrapped() -> None:
    rng = np.random.default_rng(3)
    _, device_ms, host_s = _packets(rng, 100e-6, offset_s=0.0, duration_s=60.0, start_ms=(1 << 30) - 20_000)
    assert device_ms.min() < 1000 < (1 << 30) - 25_000 < device_ms.max()  # the 2**30 wrap is inside
    sync = ClockSync()
    for d, h in zip(device_ms, host_s, strict=True):
        sync.add(int(d), float(h))
    assert abs(sync.fit().drift_ppm - 100.0) < 40.0


def test_left_and_right_share_one_timeline() -> None:
    rng = np.random.default_rng(11)
    fits = []
    for drift_ppm in (200.0, -200.0):
        _, device_ms, host_s = _packets(rng, drift_ppm * 1e-6, offset_s=50.0)
        sync = ClockSync()
        for d, h in zip(device_ms, host_s, strict=True):
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


def _live_packets(rng: np.random.Generator, start_s: float, clock_ppm: float, imu_ppm: float,
                  duration_s: float = 120.0, rate_hz: float = 104.0, per_packet: int = 8):
    """SAMPLES packets of one insole: (first index, device time ms, host arrival ms), and the
    true host time of its sample 0 and its true sample rate."""
    true_rate = rate_hz * (1 + imu_ppm * 1e-6)
    first = np.arange(0, int(duration_s * rate_hz), per_packet)
    sampled_s = start_s + first / true_rate
    # Packed when the FIFO is drained (bursts of up to 77 ms), sent, then carried by the radio.
    packed_s = sampled_s + rng.uniform(0.0, 0.077, len(first)) * (rng.random(len(first)) < 0.8)
    device_ms = np.floor((packed_s - 3.0) * (1 + clock_ppm * 1e-6) * 1000.0).astype(np.int64) + 777_000
    host_ms = np.floor((packed_s + 0.004 + rng.exponential(0.008, len(first))) * 1000.0).astype(np.int64)
    return first, device_ms, host_ms, start_s, true_rate


def test_live_samples_land_on_the_host_timeline_within_a_few_ms() -> None:
    from insole.link.clocksync import sample_timeline

    rng = np.random.default_rng(5)
    feet = [_live_packets(rng, 10.0, 200.0, 40.0), _live_packets(rng, 10.137, -200.0, -60.0)]
    errors_ms = []
    for first, device_ms, host_ms, start_s, true_rate in feet:
        timeline = sample_timeline(first, device_ms, host_ms, 104.0)
        assert timeline is not None
        assert abs(timeline.rate_hz / true_rate - 1.0) < 20e-6
        k = np.arange(0, 12_000, 500)  # sample times over the two minutes
        mapped = timeline.t0_s + k / timeline.rate_hz
        errors_ms.append((mapped - (start_s + k / true_rate)) * 1000.0)
    # Each foot: within the radio's minimum latency (4 ms) + 2 ms, everywhere.
    for error in errors_ms:
        assert np.all(np.abs(error - 4.0) < 2.0), error
    # Left against right: the same true instant lands within 2 ms on both.
    assert np.max(np.abs(errors_ms[0] - errors_ms[1])) < 2.0


def test_a_converted_recording_without_device_times_keeps_its_own_timeline() -> None:
    from insole.link.clocksync import sample_timeline

    first = np.arange(0, 4000, 8)
    assert sample_timeline(first, np.zeros(len(first), dtype=np.int64), first * 10, 100.0) is None
    assert sample_timeline(first[:5], first[:5] * 10, first[:5] * 10, 100.0) is None


@pytest.mark.parametrize(("clock_ppm", "imu_ppm"), [(10_000.0, 40.0), (200.0, -10_000.0)])
def test_a_clock_one_percent_off_keeps_the_stream_on_its_own_time_base(clock_ppm: float, imu_ppm: float) -> None:
    # Crystals and IMU oscillators are within a few hundred ppm; 1 % is no clock running
    # beside the host's (a converter's made-up times, a wrong nominal rate), so the
    # stream is not put on the host timeline.
    from insole.link.clocksync import sample_timeline

    first, device_ms, host_ms, _, _ = _live_packets(np.random.default_rng(5), 10.0, clock_ppm, imu_ppm)
    assert sample_timeline(first, device_ms, host_ms, 104.0) is None
