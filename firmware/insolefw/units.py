# Sample counts <-> milliseconds at a rate in 0.01 Hz, in integers (no floats on the sampling path).


def samples_for_ms(ms, rate_chz):
    # rate_chz is in 0.01 Hz: samples = ms * rate_hz / 1000
    return (ms * rate_chz + 50000) // 100000


def ms_for_samples(n, rate_chz):
    return (n * 100000 + rate_chz // 2) // rate_chz
