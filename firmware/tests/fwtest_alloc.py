# The sampling path allocates nothing: proved under micropython.heap_lock().
import micropython
import math
from array import array

from insolefw import protocol as P
from insolefw.gait import EventQueue, GaitCore
from insolefw.replay import ReplaySource
import struct


class _Sink:
    # A link writer that accepts everything (a preallocated byte counter).
    def __init__(self):
        self.bytes = 0

    def write(self, buf, off, n):
        self.bytes += n
        return n


def _walk_samples(n_pressure, imu, first, count, rate_hz=100):
    # A crude periodic gait: ~1 s stride, 60 % stance, heel first, with a swinging gyro.
    rec = 2 * n_pressure + 12 * imu
    buf = bytearray(count * rec)
    for j in range(count):
        i = first + j
        phase = (i % rate_hz) / rate_hz
        off = j * rec
        stance = phase < 0.6
        for k in range(n_pressure):
            load = 0
            if stance:
                # heel channels load early, forefoot late
                centre = 0.15 + 0.3 * k / max(1, n_pressure - 1)
                load = int(20000 * max(0.0, 1 - abs(phase - centre) * 4))
            struct.pack_into("<H", buf, off + 2 * k, load + 50)
        if imu:
            gy = 0 if stance else int(3000 * math.sin((phase - 0.6) / 0.4 * math.pi))
            struct.pack_into("<hhhhhh", buf, off + 2 * n_pressure, 0, 0, 1000, 0, gy, 0)
    return buf


def _positions(n):
    out = []
    for k in range(n):
        out.append(10 + 240 * k // max(1, n - 1))
        out.append(-20 if k % 2 else 20)
    return out


def _run_locked(n_pressure, imu):
    events = EventQueue()
    core = GaitCore(events)
    core.configure(10000, n_pressure, imu, 0)
    core.set_layout(_positions(n_pressure) if n_pressure else (), 0)
    source = ReplaySource()
    source.configure(10000, n_pressure, imu)
    builder = P.PacketBuilder()
    sink = _Sink()
    framer = P.SerialFramer(sink, lambda: None)
    record = bytearray(P.STEP_LEN)
    pressure = array("H", bytes(32))
    imu_buf = array("h", bytes(12))
    sent = 0
    strides = 0
    batch = 20  # a full SAMPLES packet holds at most 22 records of 16 channels + IMU
    for start in range(0, 1000, batch):
        data = _walk_samples(n_pressure, imu, start, batch)
        assert source.push(data, 0, batch)
        micropython.heap_lock()
        try:
            while source.read_into(pressure, imu_buf):
                core.process(pressure, imu_buf)
                if core.pending:
                    # Per-stride float work is allowed to allocate: step outside the lock.
                    micropython.heap_unlock()
                    core.finish_stride()
                    strides += 1
                    micropython.heap_lock()
            while True:
                info = events.pop_into(record)
                if not info:
                    break
                framer.send(builder.buf, builder.event(info >> 8, 0, record, info & 0xFF))
                sent += 1
        finally:
            micropython.heap_unlock()
    return core.steps, sent


def test_pressure_only_path_does_not_allocate():
    steps, sent = _run_locked(8, 0)
    assert steps >= 8, steps  # events really fired inside the locked region
    assert sent == steps, (sent, steps)


def test_pressure_and_imu_path_does_not_allocate():
    steps, _ = _run_locked(16, 1)
    assert steps >= 8, steps


def test_imu_only_path_does_not_allocate():
    steps, _ = _run_locked(0, 1)
    assert steps >= 8, steps


def test_heap_lock_is_effective():
    # Guard against a MicroPython build where heap_lock() does nothing.
    micropython.heap_lock()
    try:
        try:
            bytearray(16)
        except MemoryError:
            return
    finally:
        micropython.heap_unlock()
    raise AssertionError("heap_lock() did not stop an allocation")
