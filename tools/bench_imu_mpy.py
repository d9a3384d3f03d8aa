# Cost of ImuTracker on the MicroPython unix port: µs per update() and per analyse().
#
#     micropython -X heapsize=128K tools/bench_imu_mpy.py [RATE_HZ] [SAMPLES]
#
# (MICROPYPATH must hold .frozen, firmware/ and firmware/boards/unix, as for the
# simulated board.) Drives update() with a synthetic walk (still stance, then a swing
# with push-off, swing and landing lobes and a consistent accelerometer), 20,000
# samples by default, and times update() alone and each analyse() separately.
import gc
import math
import sys
import time
from array import array

from insolefw.imu import IMU_STRIDE, ImuTracker


def stride(rate):
    g = 9.80665
    out = [array("h", (0, 0, 1000, 0, 0, 0))] * (rate * 6 // 10)
    n = rate * 4 // 10
    T = n / rate
    a = math.radians(30)
    for i in range(n + 1):
        w = 2 * math.pi * i / n
        theta = a * (0.3 * math.sin(w) - (1 - math.cos(w)))
        rate_dps = math.degrees(a * 2 * math.pi / T * (0.3 * math.cos(w) - math.sin(w)))
        ax = 1.2 * 2 * math.pi / (T * T) * math.sin(w)
        c = math.cos(theta)
        s = math.sin(theta)
        k = 1000 / g
        out.append(array("h", (round((c * ax - s * g) * k), 0, round((s * ax + c * g) * k), 0, round(rate_dps * 10), 0)))
    return out


def main(rate, samples):
    tracker = ImuTracker()  # its ring first, while the heap is in one piece
    tracker.reset(round(rate * 100), 0)
    pattern = stride(rate)
    m = len(pattern)
    analyse_us = []
    gc.collect()
    t0 = time.ticks_us()
    for i in range(samples):
        if tracker.update(i, pattern[i % m]) & IMU_STRIDE:
            a = time.ticks_us()
            tracker.analyse()
            analyse_us.append(time.ticks_diff(time.ticks_us(), a))
    total = time.ticks_diff(time.ticks_us(), t0) - sum(analyse_us)
    t0 = time.ticks_us()
    for i in range(samples):
        pattern[i % m]
    loop = time.ticks_diff(time.ticks_us(), t0)
    analyse_us.sort()
    print("rate=%d Hz samples=%d update_us=%.2f (loop overhead %.2f) strides=%d analyse_us median=%d max=%d"
          % (rate, samples, total / samples, loop / samples, len(analyse_us),
             analyse_us[len(analyse_us) // 2], analyse_us[-1]))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 104, int(sys.argv[2]) if len(sys.argv) > 2 else 20000)
