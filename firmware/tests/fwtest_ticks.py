# Ticks wrap: the device clock must stay right across a wrap of the ESP32's 2**30 ms
# ticks period (the unix port's period is 2**62, so the ESP32 is emulated here).
import time

_PERIOD = 1 << 30
_HALF = _PERIOD >> 1


class _Esp32Ticks:
    def __init__(self, start):
        self.now = start

    def ticks_ms(self):
        return self.now % _PERIOD

    @staticmethod
    def ticks_diff(a, b):
        # MicroPython's definition for a 2**30 period
        return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


def _make_clock(ticks):
    from insolefw.app import Clock
    return Clock(ticks.ticks_ms, ticks.ticks_diff)


def test_clock_counts_through_a_ticks_wrap():
    ticks = _Esp32Ticks(_PERIOD - 5000)  # 5 s before the wrap
    clock = _make_clock(ticks)
    total = 0
    for step in (1000, 3999, 2, 1, 20000, 123):
        ticks.now += step
        total += step
        assert clock.now_ms() == total, (clock.now_ms(), total)


def test_clock_wraps_modulo_2_pow_30():
    ticks = _Esp32Ticks(0)
    clock = _make_clock(ticks)
    for _ in range(5):
        ticks.now += _HALF - 1  # the longest gap ticks_diff can measure
        clock.now_ms()
    expected = (5 * (_HALF - 1)) % _PERIOD
    assert clock.now_ms() == expected, (clock.now_ms(), expected)
    assert clock.now_ms() < _PERIOD


def test_unix_ticks_diff_is_used_the_same_way():
    a = time.ticks_ms()
    b = time.ticks_add(a, 10)
    assert time.ticks_diff(b, a) == 10
    assert time.ticks_diff(a, b) == -10


def test_firmware_never_subtracts_raw_ticks():
    # Every elapsed-time computation must go through ticks_diff; raw `ticks_ms() - x`
    # breaks at the wrap. A textual check over the firmware sources.
    root = _firmware_root()
    bad = []
    for path in _py_files(root):
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                code = line.split("#", 1)[0]
                for name in ("ticks_ms()", "ticks_us()", "ticks_cpu()"):
                    at = code.find(name)
                    if at >= 0 and ("-" in code[at + len(name):at + len(name) + 3] or
                                    code[:at].rstrip().endswith("-")):
                        bad.append("%s:%d" % (path, lineno))
    assert not bad, bad


def _firmware_root():
    import sys
    for p in sys.path:
        if p.endswith("firmware"):
            return p
    raise AssertionError("firmware directory not on MICROPYPATH")


def _py_files(root):
    import os
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        for entry in os.ilistdir(d):
            name, kind = entry[0], entry[1]
            path = d + "/" + name
            if kind == 0x4000:
                stack.append(path)
            elif name.endswith(".py"):
                out.append(path)
    return out
