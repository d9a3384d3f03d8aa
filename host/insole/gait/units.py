"""Host twin of firmware/insolefw/units.py: sample counts ↔ milliseconds at a rate in 0.01 Hz.

The same integer arithmetic as the firmware (rates taken in steps of 0.04 Hz so that
the device stays within small ints), so that host twins and device agree to the
sample at any rate.
"""

from __future__ import annotations


def samples_for_ms(ms: int, rate_chz: int) -> int:
    """Samples in ``ms`` milliseconds at ``rate_chz`` (0.01 Hz), rounded to the nearest."""
    return (ms * (rate_chz >> 2) + 12500) // 25000


def ms_for_samples(n: int, rate_chz: int) -> int:
    """Milliseconds that ``n`` samples last at ``rate_chz`` (0.01 Hz), rounded to the nearest."""
    blocks = n // rate_chz
    n -= blocks * rate_chz
    return blocks * 100000 + (n * 25000 + (rate_chz >> 3)) // (rate_chz >> 2)
