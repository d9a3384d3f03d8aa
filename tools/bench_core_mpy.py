# Runs under the MicroPython unix port (started by tools/bench_core.py): the cost of the
# firmware's gait core per sample, on a sample file written by the host.
#
#     micropython -X heapsize=128K tools/bench_core_mpy.py FILE
#
# Prints one line "key=value ..." per run, parsed by bench_core.py.
import gc
import struct
import sys
import time
from array import array

from insolefw.gait import EventQueue, GaitCore

_CHUNK = 64  # samples decoded ahead of the timed loop


def main(path, layout):
    f = open(path, "rb")
    head = f.read(8)
    assert head[:4] == b"ISMP", "not a sample file"
    rate_chz, n_pressure, imu = struct.unpack_from("<HBB", head, 4)
    record = 2 * n_pressure + 12 * imu
    raw = bytearray(_CHUNK * record)
    pressures = [array("H", bytes(32)) for _ in range(_CHUNK)]
    imus = [array("h", bytes(12)) for _ in range(_CHUNK)]
    events = EventQueue()
    core = GaitCore(events)
    core.configure(rate_chz, n_pressure, imu, 0)
    core.set_layout(layout if n_pressure and len(layout) == 2 * n_pressure else (), 0)
    dst = bytearray(64)
    samples = 0
    strides = 0
    process_us = 0
    stride_us = 0
    process_bytes = 0
    stride_bytes = 0
    gc.collect()
    free_start = gc.mem_free()
    while True:
        n = f.readinto(raw) // record if record else 0
        if not n:
            break
        for j in range(n):
            off = j * record
            p = pressures[j]
            for k in range(n_pressure):
                p[k] = raw[off + 2 * k] | (raw[off + 2 * k + 1] << 8)
            if imu:
                m = imus[j]
                base = off + 2 * n_pressure
                for k in range(6):
                    v = raw[base + 2 * k] | (raw[base + 2 * k + 1] << 8)
                    m[k] = v - 0x10000 if v & 0x8000 else v
        gc.collect()
        gc.disable()  # allocation is measured, not collected, inside the chunk
        m0 = gc.mem_alloc()
        t0 = time.ticks_us()
        chunk_stride_us = 0
        chunk_stride_bytes = 0
        for j in range(n):
            core.process(pressures[j], imus[j])
            if core.pending:
                s0 = time.ticks_us()
                a0 = gc.mem_alloc()
                core.finish_stride()
                chunk_stride_bytes += gc.mem_alloc() - a0
                chunk_stride_us += time.ticks_diff(time.ticks_us(), s0)
                strides += 1
        elapsed = time.ticks_diff(time.ticks_us(), t0)
        allocated = gc.mem_alloc() - m0
        gc.enable()
        process_us += elapsed - chunk_stride_us
        stride_us += chunk_stride_us
        process_bytes += allocated - chunk_stride_bytes
        stride_bytes += chunk_stride_bytes
        samples += n
        while events.pop_into(dst):
            pass
    gc.collect()
    t0 = time.ticks_us()
    gc.collect()
    gc_us = time.ticks_diff(time.ticks_us(), t0)
    print("samples=%d steps=%d strides=%d process_us=%d stride_us=%d process_bytes=%d "
          "stride_bytes=%d free_start=%d free_end=%d gc_us=%d" % (
              samples, core.steps, strides, process_us, stride_us, process_bytes,
              stride_bytes, free_start, gc.mem_free(), gc_us))


_layout = [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 and sys.argv[2] else []
main(sys.argv[1], _layout)
