# The ESP32's number model, asked of a MicroPython binary: one fact per line. Run by
# scripts/build-micropython-esp32.sh (to check its build) and tests/test_micropython_switch.py.
# On the ESP32 model it prints 2147483647 / True False / True / 1073741823 / 20.
import sys
import time

import micropython


def allocates(bits):  # an argument: a literal 2**30 would be folded at compile time
    micropython.heap_lock()
    try:
        2**bits
        return False
    except MemoryError:
        return True
    finally:
        micropython.heap_unlock()


print(sys.maxsize)  # 31-bit small ints: 2**31 - 1
print(allocates(30), allocates(29))  # 2**30 is a heap-allocated big int, 2**29 is not
print(1.0 + 1e-8 == 1.0)  # float32: 1e-8 is below half an ulp of 1.0
print(time.ticks_add(0, -1))  # ticks wrap at 2**30
print(time.ticks_diff(time.ticks_add(2**30 - 10, 20), 2**30 - 10))  # ... and ticks_diff unwraps: 20
