# Sample counts <-> milliseconds at a rate in 0.01 Hz, in integers (no floats on the
# sampling path). Intermediate products stay below 2**30, the ESP32's small-int limit,
# so nothing is allocated: 100000 = 4 * 25000, and rates are multiples of 4 (0.04 Hz).


def samples_for_ms(ms, rate_chz):
    # samples = ms * rate_hz / 1000; ms up to 40 s keeps ms * (rate_chz >> 2) small
    return (ms * (rate_chz >> 2) + 12500) // 25000


def ms_for_samples(n, rate_chz):
    # ms = n * 100000 / rate_chz; whole 100 s blocks first, then n < rate_chz <= 25000
    blocks = n // rate_chz
    n -= blocks * rate_chz
    return blocks * 100000 + (n * 25000 + (rate_chz >> 3)) // (rate_chz >> 2)
