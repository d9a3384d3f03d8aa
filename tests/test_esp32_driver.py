"""The ESP32-S3 board's IMU driver and board layer, run under the real MicroPython unix port.

The hardware is replaced only at the bus: a fake I2C object that emulates the
LSM6DSOX's registers and tagged FIFO, and a fake `machine` module (pins, ADC, timer,
PWM) whose timer and interrupt the test fires by hand on a simulated clock. The
driver and board code under test are the files that `insole flash` puts on the device.
"""

from __future__ import annotations

import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import micropython_env, micropython_executable
from insole.resources import FIRMWARE_DIR, LAYOUTS_DIR

pytestmark = pytest.mark.micropython

ESP32_BOARD_DIR = FIRMWARE_DIR / "boards" / "esp32s3"

# --------------------------------------------------------------------------- MicroPython side

FAKE_IMU = r'''
# An LSM6DSOX as seen from its I2C bus: registers, software reset, tagged FIFO.
_FIFO_WORDS = 512


class FakeLSM6DSOX:
    def __init__(self, address=0x6A, chip_id=0x6C, freq_fine=0):
        self.address = address
        self.regs = bytearray(128)
        self.regs[0x0F] = chip_id
        self.regs[0x12] = 0x04
        self.regs[0x18] = 0xE0  # CTRL9_XL default: DEN_X/Y/Z set, I3C enabled
        self.regs[0x63] = freq_fine & 0xFF
        self.writes = []  # (register, value) in the order written
        self.fifo = bytearray(7 * _FIFO_WORDS)
        self.head = 0
        self.count = 0
        self.byte_pos = 0
        self.overrun = 0
        self.slot = 0
        self.resets = 0
        self.data_bursts = 0

    def watermark_words(self):
        return self.regs[0x07] | ((self.regs[0x08] & 1) << 8)

    def above_watermark(self):
        wtm = self.watermark_words()
        return 1 if wtm and self.count >= wtm else 0

    def push_word(self, sensor, cnt, x, y, z):
        if self.regs[0x0A] & 7 != 6:
            return  # FIFO not in continuous mode: nothing is batched
        if self.count == _FIFO_WORDS:  # continuous mode: the oldest word is overwritten
            self.head = (self.head + 1) % _FIFO_WORDS
            self.count -= 1
            self.overrun = 1
        i = 7 * ((self.head + self.count) % _FIFO_WORDS)
        self.fifo[i] = (sensor << 3) | ((cnt & 3) << 1)
        vals = (x, y, z)
        for k in range(3):
            v = vals[k] & 0xFFFF
            self.fifo[i + 1 + 2 * k] = v & 0xFF
            self.fifo[i + 2 + 2 * k] = v >> 8
        self.count += 1

    def push_sample(self, acc, gyro, gyro_first=True):
        cnt = self.slot & 3
        self.slot += 1
        if gyro_first:
            self.push_word(0x01, cnt, *gyro)
            self.push_word(0x02, cnt, *acc)
        else:
            self.push_word(0x02, cnt, *acc)
            self.push_word(0x01, cnt, *gyro)

    def _check(self, addr):
        if addr != self.address:
            raise OSError(19)  # ENODEV: nobody acknowledged the address

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        for i in range(len(buf)):
            v = buf[i]
            self.writes.append((reg + i, v))
            if reg + i == 0x12 and v & 1:
                self.regs[0x12] = 0x04  # software reset: back to the default
                self.resets += 1
                continue
            self.regs[reg + i] = v
            if reg + i == 0x0A and v & 7 == 0:  # bypass mode empties the FIFO
                self.count = 0
                self.byte_pos = 0
                self.overrun = 0

    def readfrom_mem(self, addr, reg, n):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, reg, buf)
        return bytes(buf)

    # Allocation-free: the driver calls it under heap_lock.
    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        n = len(buf)
        if reg == 0x78:
            self.data_bursts += 1
            for i in range(n):
                if self.count == 0:
                    buf[i] = 0
                    continue
                buf[i] = self.fifo[7 * self.head + self.byte_pos]
                self.byte_pos += 1
                if self.byte_pos == 7:
                    self.byte_pos = 0
                    self.head = (self.head + 1) % _FIFO_WORDS
                    self.count -= 1
            return
        if reg == 0x3A:
            self.regs[0x3A] = self.count & 0xFF
            self.regs[0x3B] = ((self.count >> 8) & 3) | (0x40 if self.overrun else 0) | (
                0x80 if self.above_watermark() else 0)
            self.overrun = 0
        for i in range(n):
            buf[i] = self.regs[reg + i]
'''

FAKE_MACHINE = r'''
# Stand-in for the ESP32's machine module: the test drives timer and interrupt itself.
# Every signature takes exactly the arguments the ESP32 port's C code accepts (its
# allowed_args tables; tests/test_device_api.py checks them against the vendored
# source), so a keyword the device refuses raises TypeError here too. MicroPython has
# no "/" in signatures: a parameter whose name starts with "_" stands for one the
# device takes only by position.
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    by_id = {}

    def __init__(self, _id, mode=None, pull=-1, *, value=None, drive=None, hold=None):
        self.id = _id
        self.mode = mode
        self.pull = pull
        self.level = 0 if value is None else value
        self.handler = None
        self.trigger = None
        self.value_fn = None
        Pin.by_id[_id] = self

    def value(self, _v=None):
        if _v is None:
            return self.value_fn() if self.value_fn else self.level
        self.level = _v

    def __call__(self, _v=None):
        return self.value(_v)

    def irq(self, handler=None, trigger=3, wake=None):
        self.handler = handler
        self.trigger = trigger if handler is not None else 0


# ADC samples come from a function of (pin, select lines) set by the test.
adc_source = None


class ADC:
    ATTN_11DB = 3

    def __init__(self, _pin, *, atten=-1):
        self.pin = _pin
        self.atten = atten

    def read_u16(self):
        return adc_source(self.pin.id)

    def read_uv(self):
        return adc_source(self.pin.id) * 50


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=-1, timeout=-1):
        raise OSError("the test passes its fake bus to SensorSource")


class PWM:
    def __init__(self, _pin, freq=-1, *, duty=-1, duty_u16=-1, duty_ns=-1, invert=False, lightsleep=False):
        self.pin = _pin
        self.freq = freq
        self.duty = duty_u16

    def duty_u16(self, _d=None):
        if _d is None:
            return self.duty
        self.duty = _d


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0
    last = None

    def __init__(self, _id=-1, *, mode=1, callback=None, period=-1, tick_hz=1000, freq=None, hard=False):
        self.id = _id
        self.callback = None
        self.freq = 0
        Timer.last = self

    def init(self, *, mode=1, callback=None, period=-1, tick_hz=1000, freq=None, hard=False):
        if hard:  # ports/esp32/machine_timer.c
            raise ValueError("hard Timers are not implemented")
        self.freq = freq
        self.callback = callback

    def deinit(self):
        self.callback = None
'''

FAKE_ESP32 = r'''
# Stand-in for the ESP32 port's esp32 module (ports/esp32/modesp32.c): the test sets
# the IDF heap regions that idf_heap_info reports.
HEAP_DATA = 4  # MALLOC_CAP_8BIT
HEAP_EXEC = 1  # MALLOC_CAP_EXEC
regions = []  # (total, free, largest free block, least free ever) per region
asked = []


def idf_heap_info(_capabilities):
    asked.append(_capabilities)
    return list(regions)
'''

DRIVER_SCRIPT = r'''
import json
import micropython
import sys
from array import array

from fake_imu import FakeLSM6DSOX
from drivers.lsm6dsox import LSM6DSOX, mount_is_rotation

out = {}

# Chip-ID check: a wrong WHO_AM_I, and no device at the address at all.
for key, fake in (("wrong_id", FakeLSM6DSOX(chip_id=0x6B)), ("no_device", FakeLSM6DSOX(address=0x6B))):
    try:
        LSM6DSOX(fake)
        out[key] = None
    except OSError as exc:
        out[key] = str(exc)
try:
    LSM6DSOX(FakeLSM6DSOX(), mount=((0, 1), (1, 1), (2, -1)))
    out["reflection"] = None
except ValueError as exc:
    out["reflection"] = str(exc)
out["rotations"] = [mount_is_rotation(m) for m in (
    ((0, 1), (1, 1), (2, 1)), ((1, -1), (0, 1), (2, 1)), ((1, 1), (0, 1), (2, 1)),
    ((0, 1), (0, 1), (2, 1)), ((2, 1), (0, 1), (1, 1)))]

# Configuration written to the chip.
fake = FakeLSM6DSOX(freq_fine=-7)
with open(sys.argv[1]) as f:
    cfg = json.load(f)
imu = LSM6DSOX(fake, rate_hz=cfg["rate_hz"], accel_fs_g=cfg["accel_fs_g"], gyro_fs_dps=cfg["gyro_fs_dps"],
               mount=cfg["mount"], watermark_samples=8, burst_samples=cfg["burst_samples"])
out["resets"] = fake.resets
out["writes"] = fake.writes
out["rate_chz"] = imu.rate_chz
out["stopped"] = [fake.regs[0x10], fake.regs[0x11], fake.regs[0x0A]]
imu.start()
out["regs"] = {"%02x" % r: fake.regs[r] for r in (0x07, 0x08, 0x09, 0x0A, 0x0D, 0x10, 0x11, 0x12, 0x18)}

# Known raw words in, foot-frame protocol units out; pairs split across bursts.
samples = cfg["samples"]
for j, (acc, gyro, gyro_first) in enumerate(samples):
    fake.push_sample(acc, gyro, gyro_first)
    if j == 2:
        fake.push_word(0x04, 0, 1, 2, 3)  # a timestamp word: skipped
buf = array("h", bytes(12 * imu.burst_samples))
decoded = []
bursts = []
n = 0  # a global made under heap_lock would allocate
while True:
    before = fake.data_bursts
    micropython.heap_lock()
    try:
        n = imu.fifo_read_into(buf)
    finally:
        micropython.heap_unlock()
    bursts.append(fake.data_bursts - before)
    if not n and not fake.count:
        break
    decoded.extend(list(buf[: 6 * n]))
out["decoded"] = decoded
out["bursts"] = bursts
out["incomplete"] = imu.incomplete

# A slot with only its gyro word (the accel word lost) is discarded, not mispaired.
fake.push_word(0x01, 3, 5, 5, 5)
fake.push_sample((100, 0, 0), (0, 0, 0))
n = imu.fifo_read_into(buf)
out["orphan"] = [n, imu.incomplete, list(buf[:6])]

# Overrun: more than 256 samples unread.
for j in range(300):
    fake.push_sample((j, 0, 0), (0, 0, 0))
imu.fifo_read_into(buf)
out["overrun"] = [imu.overrun, imu.fifo_words]
imu.stop()
out["stop"] = [fake.regs[0x10], fake.regs[0x11], fake.regs[0x0A], fake.count]
print(json.dumps(out))
'''

BOARD_SCRIPT = r'''
import json
import micropython
import sys
from array import array

import fake_machine
sys.modules["machine"] = fake_machine
from fake_imu import FakeLSM6DSOX
import board

with open(sys.argv[1]) as f:
    cfg = json.load(f)
out = {"layout8": board.LAYOUT_LEFT_8, "layout16": board.LAYOUT_LEFT_16,
       "layout_right": board.layout_for_side(1), "layout_left": board.layout_for_side(0),
       "sides": [board.read_side(p) for p in cfg["side_files"]], "name": board.NAME,
       "default_side": board.DEFAULT_SIDE, "settings_dir": board.SETTINGS_DIR}

# A simulated clock just before ticks_us wraps, so the run crosses the wrap. The period
# is the port's: 2**30 on the ESP32, 2**62 on this unix build.
import time
PERIOD = time.ticks_add(0, -1) + 1
now = [PERIOD - 40000]


def clock():
    return now[0]


board.ticks_us = clock

# ADC: each record's value says when it was sampled (ms since the start) and which
# channel (through the mux select lines in the mux variant).
SEL = (15, 16, 17, 18)
start_us = now[0]
record_ms = [0]


def adc(pin_id):
    ch = pin_id - 1  # direct: FSR k on GPIO k+1
    if cfg["mux"]:
        ch = 0
        for bit in range(4):
            if fake_machine.Pin.by_id[SEL[bit]].level:
                ch |= 1 << bit
    if pin_id == 9:
        return 30000  # battery pin
    return 1000 * ch + record_ms[0] % 1000


fake_machine.adc_source = adc

fake = FakeLSM6DSOX()
src = board.SensorSource(cfg["rate_chz"], i2c=fake)
out["rate_chz"] = src.rate_chz
out["n_pressure"] = src.n_pressure
timer = fake_machine.Timer.last
int_pin = fake_machine.Pin.by_id[13]
int_pin.value_fn = fake.above_watermark
src.start()
out["timer_hz"] = timer.freq
out["int_trigger"] = int_pin.trigger

imu_period = cfg["imu_period_us"]
timer_period = 1000000 // timer.freq
pressure = array("H", bytes(32))
imu = array("h", bytes(12))
got = []  # (imu sample index, record ms, all channels from one record, imu)
sample_times = []
record_times = []
t_end = cfg["duration_us"]
t_imu = cfg["imu_phase_us"]
t_timer = cfg["timer_phase_us"]
pause = cfg["gc_pause"]  # (from_us, to_us): timer callbacks and draining wait
stall = cfg["stall"]  # (from_us, to_us): the app does not drain (FIFO may overrun)
drop_edges = cfg["drop_edges"]  # rising INT1 edges (0, 1, ...) whose callback is lost
drain_at = None
k_imu = 0
edges = 0
alloc_failures = 0
delivered_us = []  # per sample in got: when the sampling task read it


def locked(fn, a, b=None):
    # Runs board code with the heap locked: any allocation raises MemoryError.
    global alloc_failures
    micropython.heap_lock()
    try:
        return fn(a) if b is None else fn(a, b)
    except MemoryError as exc:
        alloc_failures += 1
        if alloc_failures == 1:
            micropython.heap_unlock()
            sys.print_exception(exc)
            micropython.heap_lock()
    finally:
        micropython.heap_unlock()


def in_window(t, window):
    return window and window[0] <= t < window[1]


while min(t_imu, t_timer) < t_end:
    if t_imu <= t_timer:
        now[0] = (start_us + t_imu) % PERIOD
        was = fake.above_watermark()
        # The sample index in the raw words, so that it survives scaling to mg exactly.
        fake.push_sample(((k_imu >> 8) * 125, -(k_imu & 255) * 125, 2048), (k_imu % 100, 7, -7))
        sample_times.append(t_imu)
        k_imu += 1
        if fake.above_watermark() and not was:
            if edges not in drop_edges:  # a full scheduler queue drops the callback
                locked(src._on_int, int_pin)
            edges += 1
        t_event = t_imu
        t_imu += imu_period
    else:
        t_run = t_timer
        if in_window(t_timer, pause):
            t_run = pause[1]  # a soft callback runs after the GC pause
        now[0] = (start_us + t_run) % PERIOD
        record_ms[0] = t_run // 1000
        record_times.append(t_run)
        locked(timer.callback, timer)
        t_event = t_run
        t_timer += timer_period
    if drain_at is None and src._flag.state:  # the sampling task wakes up
        drain_at = t_event + cfg["drain_latency_us"]
    t_next = min(t_imu, t_timer)
    if drain_at is not None and drain_at <= t_next and src._flag.state:
        t_drain = drain_at
        if in_window(t_drain, pause):
            t_drain = pause[1]
        if in_window(t_drain, stall):
            t_drain = stall[1]
        if t_drain > t_next:
            drain_at = t_drain
            continue
        now[0] = (start_us + t_drain) % PERIOD
        src._flag.state = 0  # what ready() does
        while locked(src.read_into, pressure, imu):
            ok = all(pressure[c] // 1000 == c for c in range(src.n_pressure))
            got.append((imu[0] // 61 + 256 * (imu[1] // 61), pressure[0] % 1000, ok, list(imu)))
            delivered_us.append(t_drain)
        drain_at = None
        if src._flag.state:
            drain_at = t_drain + cfg["drain_latency_us"]

src.stop()
out["timer_stopped"] = timer.callback is None
out["irq_off"] = int_pin.handler is None
out["alloc_failures"] = alloc_failures
out["got"] = got
out["sample_times_us"] = sample_times
out["delivered_us"] = delivered_us
out["edges"] = edges
out["record_times_us"] = record_times
out["dropped"] = src.dropped
out["stale"] = src.stale_pressure
out["battery_mv"] = board.battery_mv()
board.pairing_gesture()  # makes the board's BOOT pin
button = fake_machine.Pin.by_id[0]
button.level = 1
gestures = [board.pairing_gesture() for _ in range(3)]  # released
button.level = 0
gestures += [board.pairing_gesture() for _ in range(10)]  # held 5 s: one gesture
button.level = 1
gestures.append(board.pairing_gesture())
button.level = 0
gestures += [board.pairing_gesture() for _ in range(4)]  # held again for 2 s
out["pairing_gestures"] = [i for i, g in enumerate(gestures) if g]
out["boot_pin_pull"] = button.pull
motor = board.Motor()
motor.on(50)
half = motor._pwm.duty
motor.on(150)
full = motor._pwm.duty
motor.off()
out["motor"] = [half, full, motor._pwm.duty, motor._pwm.freq]
print(json.dumps(out))
'''

BUDGET_SCRIPT = r'''
import json
import sys

import fake_esp32
import fake_machine
sys.modules["machine"] = fake_machine
sys.modules["esp32"] = fake_esp32
import board


class FakeGC:
    # The Python heap as the test says it is; records the order of calls.
    def __init__(self, free, alloc):
        self.free = free
        self.alloc = alloc
        self.calls = []

    def collect(self):
        self.calls.append("collect")

    def mem_free(self):
        self.calls.append("mem_free")
        return self.free

    def mem_alloc(self):
        self.calls.append("mem_alloc")
        return self.alloc


with open(sys.argv[1]) as f:
    cfg = json.load(f)
out = []
for case in cfg["cases"]:
    fake_esp32.regions = case["regions"]
    fake_esp32.asked = []
    board.gc = FakeGC(case["free"], case["alloc"])
    budget = board.log_budget_bytes()
    out.append({"budget": budget, "asked": fake_esp32.asked, "first_call": board.gc.calls[0]})
print(json.dumps({"cases": out, "most": 40 * board.EVENT_LOG_RECORDS + board.SAMPLE_LOG_BYTES}))
'''

LINK_SCRIPT = r'''
import asyncio
import select
import sys

import fake_machine
sys.modules["machine"] = fake_machine
import board

reader, writer = board.open_link()
buf = bytearray(8)
first = reader.readinto(buf)
first_bytes = list(buf[:first]) if first else []
poller = select.poll()
poller.register(reader, select.POLLIN)
idle = reader.readinto(buf)
idle_poll = len(poller.poll(0))
writer.write(b"R")  # tells the test to send more


async def take():
    return await asyncio.StreamReader(reader).readinto(buf)


n = asyncio.run(take())
second = list(buf[:n])
while True:  # the rest, until the test closes the pipe (0 = closed; None = nothing yet)
    n = reader.readinto(buf)
    if n == 0:
        break
    if n:
        second.extend(buf[:n])
sys.stderr.write(repr([first, first_bytes, idle, idle_poll, second]) + "\n")
'''


# --------------------------------------------------------------------------- host side


def _run(tmp_path: Path, script: str, cfg: dict, board_source: str | None = None) -> dict:
    # The config goes in a file: this unix-port build aborts on an argv longer than ~256 chars.
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "fake_imu.py").write_text(FAKE_IMU)
    (tmp_path / "fake_machine.py").write_text(FAKE_MACHINE)
    (tmp_path / "fake_esp32.py").write_text(FAKE_ESP32)
    (tmp_path / "script.py").write_text(script)
    board_dir = ESP32_BOARD_DIR
    if board_source is not None:
        board_dir = tmp_path / "board_variant"
        board_dir.mkdir()
        (board_dir / "board.py").write_text(board_source)
    env = micropython_env()
    # The ESP32 board, not the unix one, is `board` here.
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(board_dir), str(FIRMWARE_DIR)])
    result = subprocess.run(
        [micropython_executable(), "-X", "heapsize=4M", str(tmp_path / "script.py"), str(tmp_path / "cfg.json")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)).__floor__())


# Datasheet sensitivities (LSM6DSOX DS12814 table 3): mg/LSB and mdps/LSB.
ACCEL_MG_PER_LSB = {2: Fraction("0.061"), 4: Fraction("0.122"), 8: Fraction("0.244"), 16: Fraction("0.488")}
GYRO_MDPS_PER_LSB = {250: Fraction("8.75"), 500: Fraction("17.5"), 1000: Fraction(35), 2000: Fraction(70)}


def _expected_foot(acc: list[int], gyro: list[int], mount: list[list[int]], accel_fs: int, gyro_fs: int) -> list[int]:
    acc_mg = [raw * ACCEL_MG_PER_LSB[accel_fs] for raw in acc]
    gyro_ddps = [raw * GYRO_MDPS_PER_LSB[gyro_fs] / 100 for raw in gyro]
    foot_acc = [_round_half_up(sign * acc_mg[axis]) for axis, sign in mount]
    foot_gyro = [_round_half_up(sign * gyro_ddps[axis]) for axis, sign in mount]
    return foot_acc + foot_gyro


BOARD_MOUNT = [[1, -1], [0, 1], [2, 1]]


@pytest.mark.parametrize(
    ("accel_fs_g", "gyro_fs_dps", "rate_hz", "burst_samples"),
    [(16, 2000, 104, 3), (8, 1000, 208, 32), (2, 250, 52, 1)],
)
def test_driver_decodes_fifo_into_foot_frame_without_allocating(
    tmp_path: Path, accel_fs_g: int, gyro_fs_dps: int, rate_hz: int, burst_samples: int
) -> None:
    samples = [
        ([1000, -2048, 2049], [100, -1000, 32767], True),
        ([-32768, 32767, 0], [-32768, 1, -1], False),
        ([2048, 0, -2048], [7, 14, -15], True),
        ([123, -457, 16001], [2500, -2500, 1], False),
        ([-1, 1, 0], [-3, 3, 0], True),
    ]
    cfg = {"rate_hz": rate_hz, "accel_fs_g": accel_fs_g, "gyro_fs_dps": gyro_fs_dps,
           "mount": BOARD_MOUNT, "burst_samples": burst_samples, "samples": samples}
    out = _run(tmp_path, DRIVER_SCRIPT, cfg)

    expected = [v for acc, gyro, _ in samples for v in _expected_foot(acc, gyro, BOARD_MOUNT, accel_fs_g, gyro_fs_dps)]
    assert out["decoded"] == expected
    assert out["incomplete"] == 0
    assert all(b == 1 for b in out["bursts"][:-1])  # one I2C burst per read with data
    # With burst_samples=1, a pair split by the cap still completes on the next read.
    assert len(out["bursts"]) >= -(-len(samples) // burst_samples)


def test_driver_checks_chip_id_and_mounting(tmp_path: Path) -> None:
    cfg = {"rate_hz": 104, "accel_fs_g": 16, "gyro_fs_dps": 2000, "mount": BOARD_MOUNT,
           "burst_samples": 32, "samples": []}
    out = _run(tmp_path, DRIVER_SCRIPT, cfg)
    assert "not an LSM6DSOX" in out["wrong_id"] and "0x6b" in out["wrong_id"] and "0x6c" in out["wrong_id"]
    assert "no I2C device answers at 0x6a" in out["no_device"]
    assert "proper rotation" in out["reflection"]
    assert out["rotations"] == [True, True, False, False, True]


def test_driver_configuration_registers(tmp_path: Path) -> None:
    cfg = {"rate_hz": 208, "accel_fs_g": 16, "gyro_fs_dps": 2000, "mount": BOARD_MOUNT,
           "burst_samples": 32, "samples": []}
    out = _run(tmp_path, DRIVER_SCRIPT, cfg)
    regs = {int(k, 16): v for k, v in out["regs"].items()}
    assert out["resets"] == 1
    # I3C disabled (CTRL9_XL bit 1, the other bits kept) before the software reset.
    writes = [tuple(w) for w in out["writes"]]
    reset_at = writes.index((0x12, 0x05))
    i3c_at = writes.index((0x18, 0xE2))
    assert i3c_at < reset_at
    assert regs[0x18] == 0xE2
    assert out["stopped"] == [0, 0, 0]  # constructed powered down, FIFO in bypass
    assert regs[0x10] == 0x54  # 208 Hz, +-16 g (FS code 01)
    assert regs[0x11] == 0x5C  # 208 Hz, 2000 dps
    assert regs[0x09] == 0x55  # both batched at 208 Hz
    assert regs[0x0A] == 0x06  # continuous mode
    assert regs[0x07] | ((regs[0x08] & 1) << 8) == 16  # watermark: 8 samples = 16 words
    assert regs[0x0D] == 0x08  # INT1 on FIFO watermark
    assert regs[0x12] & 0x44 == 0x44  # block data update, address auto-increment
    # 6667 Hz x (1 + 0.15 % x -7) / 32 in 0.01 Hz
    assert out["rate_chz"] == int(Fraction(666700) * (1 - Fraction(105, 10000)) / 32)
    assert out["orphan"][0] == 1 and out["orphan"][1] == 1  # the lone gyro word was discarded
    assert out["orphan"][2][:3] == _expected_foot([100, 0, 0], [0, 0, 0], BOARD_MOUNT, 16, 2000)[:3]
    assert out["overrun"] == [True, 512]
    assert out["stop"] == [0, 0, 0, 0]


def _board_cfg(tmp_path: Path, **overrides: object) -> dict:
    side_files = []
    for name, text in (("left.txt", "left\n"), ("right.txt", " RIGHT "), ("junk.txt", "middle")):
        (tmp_path / name).write_text(text)
        side_files.append(str(tmp_path / name))
    side_files.append(str(tmp_path / "missing.txt"))
    cfg: dict[str, object] = {
        "mux": False, "rate_chz": 10400, "imu_period_us": 9605, "imu_phase_us": 300,
        "timer_phase_us": 0, "duration_us": 1_500_000, "drain_latency_us": 400,
        "gc_pause": None, "stall": None, "drop_edges": [], "side_files": side_files,
    }
    cfg.update(overrides)
    return cfg


def _nearest_record_errors(out: dict) -> list[int]:
    """Per delivered sample: time from the IMU sample to the pressure record paired with it."""
    sample_times = out["sample_times_us"]
    errors = []
    for index, record_ms, ok, _imu in out["got"]:
        assert ok, "channels of one record came from different records or wrong channels"
        t_sample = sample_times[index]
        # record_ms is the record's time in ms (mod 1000): the candidate records with that stamp
        candidates = [t for t in out["record_times_us"] if (t // 1000) % 1000 == record_ms]
        errors.append(min(abs(t - t_sample) for t in candidates))
    return errors


def test_board_pairs_every_imu_sample_with_the_nearest_pressure_record(tmp_path: Path) -> None:
    out = _run(tmp_path, BOARD_SCRIPT, _board_cfg(tmp_path))
    assert out["alloc_failures"] == 0
    assert out["int_trigger"] == 1  # Pin.IRQ_RISING: the FIFO watermark rising
    assert out["rate_chz"] == 10417 and out["n_pressure"] == 8 and out["timer_hz"] == 105
    indices = [g[0] for g in out["got"]]
    assert indices == list(range(len(indices)))  # every sample, in order, none twice
    assert len(indices) >= len(out["sample_times_us"]) - 16  # only the last partial batch waits
    # Through the mounting table: foot x = -chip y, y = chip x, z = chip z, for the gyro too.
    assert all(g[3][2:] == [999, -5, round((g[0] % 100) * 0.7 + 1e-9), -5] for g in out["got"])
    errors = _nearest_record_errors(out)
    period = 9605
    assert max(errors) <= period  # never further than one IMU period
    assert sum(errors) / len(errors) < period / 2
    assert out["dropped"] == 0 and out["stale"] <= 1
    assert out["timer_stopped"] and out["irq_off"]


def test_board_keeps_sampling_when_an_interrupt_edge_is_lost(tmp_path: Path) -> None:
    # INT1 (FIFO watermark) is a level: once its rising edge's callback is dropped by a
    # full scheduler queue, the line stays high and no edge comes again. Drop one early
    # edge, and one later that falls where a drain would have been due.
    cfg = _board_cfg(tmp_path, drop_edges=[2, 20], duration_us=4_000_000)
    out = _run(tmp_path, BOARD_SCRIPT, cfg)
    assert out["alloc_failures"] == 0
    indices = [g[0] for g in out["got"]]
    assert indices == list(range(len(indices)))  # every sample, in order
    assert len(indices) >= len(out["sample_times_us"]) - 16
    assert out["dropped"] == 0  # the FIFO never overran
    # The oldest sample of a batch waits 7 periods for the watermark (8 samples), then
    # the 400 us task latency; after a lost edge at most one timer period more, until
    # the timer callback's level poll.
    period = 9605
    timer_period = 1_000_000 // out["timer_hz"]
    delays = [d - out["sample_times_us"][i] for i, d in zip(indices, out["delivered_us"], strict=True)]
    assert max(delays) <= 7 * period + 400 + timer_period, max(delays)
    assert max(delays) > 7 * period + 400  # an edge was lost and the poll made up for it


def test_board_survives_a_gc_pause_and_counts_fifo_overrun(tmp_path: Path) -> None:
    cfg = _board_cfg(tmp_path, gc_pause=[400_000, 460_000], stall=[800_000, 3_900_000], duration_us=4_400_000)
    out = _run(tmp_path, BOARD_SCRIPT, cfg)
    assert out["alloc_failures"] == 0
    indices = [g[0] for g in out["got"]]
    assert indices == sorted(set(indices))  # in order, none twice
    # The 3.1 s stall makes ~323 samples; the FIFO keeps 256 of them.
    lost = len(out["sample_times_us"]) - len(indices)
    missing = sorted(set(range(indices[-1] + 1)) - set(indices))
    assert 50 <= len(missing) <= 80, len(missing)
    assert abs(out["dropped"] - len(missing)) <= 3
    assert lost >= len(missing)
    # Samples made during the 60 ms GC pause were kept (the FIFO absorbed the pause)...
    in_pause = [i for i, t in enumerate(out["sample_times_us"]) if 400_000 <= t < 460_000]
    assert set(in_pause) <= set(indices)
    # ...and got the nearest pressure there was: stale, but counted. After the stall the
    # FIFO reaches further back than the pressure ring (both ~2.45 s): stale as well.
    errors = _nearest_record_errors(out)
    stale = [i for (i, *_), e in zip(out["got"], errors, strict=True) if e > 9605]
    assert set(in_pause) & set(stale)
    assert abs(out["stale"] - len(stale)) <= 3
    before_pause = [e for (i, *_), e in zip(out["got"], errors, strict=True) if i < in_pause[0]]
    assert max(before_pause) <= 9605


def test_board_mux_variant_scans_sixteen_channels_in_order(tmp_path: Path) -> None:
    source = (ESP32_BOARD_DIR / "board.py").read_text()
    assert "_PRESSURE_MUX = const(0)" in source
    variant = source.replace("_PRESSURE_MUX = const(0)", "_PRESSURE_MUX = const(1)")
    cfg = _board_cfg(tmp_path, mux=True, rate_chz=20800, imu_period_us=4801, duration_us=600_000)
    out = _run(tmp_path, BOARD_SCRIPT, cfg, board_source=variant)
    assert out["n_pressure"] == 16 and out["rate_chz"] == 20834 and out["timer_hz"] == 209
    assert out["alloc_failures"] == 0
    assert len(out["got"]) > 100
    errors = _nearest_record_errors(out)  # also checks channel k read mux input k
    assert max(errors) <= 4801


def test_board_constants_layout_side_battery_motor(tmp_path: Path) -> None:
    out = _run(tmp_path, BOARD_SCRIPT, _board_cfg(tmp_path, duration_us=50_000))
    layout = json.loads((LAYOUTS_DIR / "insole8.json").read_text())
    from_json = [[c["x_mm"], c["y_mm"]] for c in layout["channels"]]
    assert out["layout8"] == from_json
    assert out["layout_left"] == from_json
    assert out["layout_right"] == [[x, -y] for x, y in from_json]
    assert out["layout16"][:8] == from_json and len(out["layout16"]) == 16
    assert len({tuple(p) for p in out["layout16"]}) == 16
    assert all(0 <= x <= layout["foot_length_mm"] and abs(y) <= 60 for x, y in out["layout16"])
    assert out["sides"] == [0, 1, 255, 255]
    assert out["default_side"] == 255  # no /side.txt on this machine
    assert out["name"] == "esp32s3-insole-v1" and out["settings_dir"] == "/settings"
    assert out["battery_mv"] == 30000 * 50 * 2 // 1000
    assert out["pairing_gestures"] == [6, 17]  # the 4th poll of each hold, once per hold
    assert out["boot_pin_pull"] == 1  # Pin.PULL_UP: the button pulls GPIO0 to ground
    assert out["motor"] == [32767, 65535, 0, 20000]


def test_log_budget_from_the_python_heap_and_the_idf_largest_block(tmp_path: Path) -> None:
    # The board keeps 24 KB free in the Python heap and 32 KB in the IDF's largest
    # block; a new Python heap area is at least the heap's size and needs
    # max(2 KB, 13/512 of it) for its tables.
    most = 40 * 1400 + 39680
    cases = [
        # Plenty: the maxima.
        ({"regions": [[400000, 250000, 200000, 240000], [30000, 20000, 19000, 18000]],
          "free": 60000, "alloc": 70000}, most),
        # One area the size of the 130 KB heap would not fit in 120 KB - 32 KB: no growth,
        # only the heap's own free bytes beyond 24 KB.
        ({"regions": [[300000, 150000, 120000, 100000]], "free": 60000, "alloc": 70000}, 60000 - 24576),
        # Growth fits: 100,000 - 32,768 = 67,232 >= the 64,000-byte heap; less 2,048 of tables.
        ({"regions": [[300000, 150000, 100000, 90000]], "free": 30000, "alloc": 34000},
         (30000 - 24576) + (100000 - 32768 - 2048)),
        # Much free in total but fragmented: the largest block counts, not the free bytes.
        ({"regions": [[300000, 200000, 40000, 150000], [200000, 180000, 30000, 100000]],
          "free": 30000, "alloc": 34000}, 30000 - 24576),
        # Nothing to spare anywhere.
        ({"regions": [[300000, 40000, 30000, 20000]], "free": 20000, "alloc": 44000}, 0),
        ({"regions": [], "free": 24576, "alloc": 40000}, 0),
    ]
    out = _run(tmp_path, BUDGET_SCRIPT, {"cases": [c for c, _ in cases]})
    assert out["most"] == most
    assert [c["budget"] for c in out["cases"]] == [expected for _, expected in cases]
    assert all(c["asked"] == [4] for c in out["cases"])  # esp32.HEAP_DATA (MALLOC_CAP_8BIT)
    assert all(c["first_call"] == "collect" for c in out["cases"])  # free bytes after a collection


def test_usb_link_reader_is_non_blocking_and_pollable(tmp_path: Path) -> None:
    (tmp_path / "fake_imu.py").write_text(FAKE_IMU)
    (tmp_path / "fake_machine.py").write_text(FAKE_MACHINE)
    (tmp_path / "script.py").write_text(LINK_SCRIPT)
    env = micropython_env()
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(ESP32_BOARD_DIR), str(FIRMWARE_DIR)])
    proc = subprocess.Popen(
        [micropython_executable(), str(tmp_path / "script.py")],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        proc.stdin.write(b"\x03\x00\x01")  # 0x03 is data here, not Ctrl-C
        proc.stdin.flush()
        assert proc.stdout.read(1) == b"R"
        proc.stdin.write(b"abc")
        proc.stdin.flush()
        proc.stdin.close()
        proc.wait(timeout=20)
        report = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert proc.returncode == 0, report
    first, first_bytes, idle, idle_poll, second = json.loads(report.strip().splitlines()[-1].replace("None", "null"))
    assert (first, first_bytes) == (3, [3, 0, 1])
    assert idle is None and idle_poll == 0  # nothing there: None, not 0 (0 means closed)
    assert bytes(second) == b"abc"
