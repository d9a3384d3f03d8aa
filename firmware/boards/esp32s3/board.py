# Board layer for the ESP32-S3 insole (hardware/README.md, pins in hardware/wiring.md).
#
# Implements the board contract of firmware/README.md. The sampling path (timer
# callback, INT handler, read_into) allocates nothing: buffers are made in __init__,
# times are 2**30-wrapping ticks compared with ticks_diff, and all math is small-int.
#
# Timing: the IMU FIFO is the sample clock. Its watermark interrupt only sets a
# ThreadSafeFlag; the asyncio task then drains the FIFO in one I2C burst, so a GC pause
# or a slow link only delays samples, it loses none until the FIFO (256 samples:
# 2.46 s at 104 Hz, 1.23 s at 208 Hz) overruns. The watermark signal on INT1 is a
# level that stays high until the FIFO is drained, and the ESP32 port delivers pin and
# timer callbacks through one 8-deep scheduler queue that drops a callback silently
# when full (ports/esp32/machine_pin.c, py/scheduler.c): a lost rising edge would
# never come again. So the timer callback also polls the level, and a lost edge costs
# at most one timer period (9.6 ms at 104 Hz). Pressure cannot be read by the IMU,
# so a machine.Timer samples the ADC at least as often as the IMU into a ring of
# timestamped records; every IMU sample gets the pressure record nearest to it in
# time. Pairing by time, not by count, means a late or lost timer callback (soft
# callbacks wait out a GC pause) or the two clocks' drift costs at most a slightly
# stale pressure value (counted in stale_pressure), never a permanent shift.
from micropython import const
import asyncio
import gc
import io
import micropython
import select
import sys
from array import array
from machine import ADC, I2C, PWM, Pin, Timer
from time import ticks_add, ticks_diff, ticks_us

from drivers.lsm6dsox import LSM6DSOX

NAME = "esp32s3-insole-v1"
HAS_IMU = True
SETTINGS_DIR = "/settings"
SIDE_FILE = "/side.txt"  # written by `insole flash --side left|right`
# The two logs at most (log_budget_bytes() says how much of that fits now):
# Event log (insolefw/eventlog.py): 1400 slots x 40 bytes = 56,000 bytes. A STEP and a
# CUE per step: 700 steps, 10 min at a walking cadence of 140 steps/min (70 per
# insole); 23 min of STEPs alone at 60 per insole per minute.
EVENT_LOG_RECORDS = 1400
# Sample log for BLE backfill (insolefw/eventlog.py): 160 notifications of 248 bytes,
# 8 samples each with 8 cells + IMU: 1280 samples, 12.3 s at 104 Hz. A backfill at a
# phone's 50 ms connection interval asks for the first lost sample about 10.2 s after
# it was sent (up to 6 s to notice the loss, 3.75 s to reconnect and re-encrypt, 0.45 s
# for the request; tests/test_ble_insole.py measures the last two): 133 slots, plus room.
SAMPLE_LOG_BYTES = 39680

# Heap, on the ESP32-S3 without PSRAM (the vendored ports/esp32 and py/ sources): the
# Python heap starts at 64 KB (MICROPY_GC_INITIAL_HEAP_SIZE, mpconfigport.h; main.c).
# With MICROPY_GC_SPLIT_HEAP_AUTO, an allocation that does not fit after a collection
# adds a heap area taken from the largest free block of the ESP-IDF heap
# (gc_get_max_new_split, gccollect.c), the heap NimBLE and the IDF allocate from too,
# and that area is at least as large as the whole Python heap so far, up to the
# entire block (gc_try_add_heap, py/gc.c). Hence BLE is switched on before the logs
# are sized (NimBLE takes its buffer pools then), and two reserves:
# - left in the IDF's largest block for what NimBLE and the IDF allocate later (LE
#   Secure pairing's ECDH and bond writes to NVS take a few KB each);
_IDF_RESERVE_BYTES = const(32768)
# - left free in the Python heap after the logs, for the rest of start-up and run-time
#   churn, so that no later allocation grows the heap again.
_PY_RESERVE_BYTES = const(24576)
_GC_AREA_MIN_OVERHEAD = const(2048)  # a new area's tables: max(2 KB, 13/512 of it) (py/gc.c)

# -- configuration ------------------------------------------------------------------
_PRESSURE_MUX = const(0)  # 0: 8 FSRs on 8 ADC1 pins; 1: 16 FSRs through a CD74HC4067
_N_PRESSURE = const(8 + 8 * _PRESSURE_MUX)
_DEFAULT_RATE_CHZ = const(10400)  # 104 Hz nominal; 208 Hz (20800) also supported

# -- pins (GPIO numbers; hardware/wiring.md has the same table) ----------------------
_PIN_BOOT = const(0)  # BOOT button, read by boot.py
_PIN_FSR = (1, 2, 3, 4, 5, 6, 7, 8)  # ADC1_CH0..CH7, channel order of LAYOUT
_PIN_MUX_SIG = const(1)  # mux variant: CD74HC4067 SIG -> ADC1_CH0
_PIN_MUX_SEL = (15, 16, 17, 18)  # mux variant: S0..S3
_PIN_BATTERY = const(9)  # ADC1_CH8, VBAT through a 1M/1M divider
_PIN_I2C_SDA = const(11)
_PIN_I2C_SCL = const(12)
_PIN_IMU_INT1 = const(13)  # LSM6DSOX INT1, push-pull, active high
_PIN_MOTOR = const(14)  # gate of the motor MOSFET

_I2C_ID = const(0)
_I2C_HZ = const(400000)
_IMU_ADDRESS = const(0x6A)  # LSM6DSOX SDO/SA0 tied to GND
_TIMER_ID = const(0)
_MOTOR_PWM_HZ = const(20000)  # above hearing; the ERM integrates it
_BATTERY_DIVIDER = const(2)  # VBAT = 2 x pin voltage

# Foot frame (x toes, y left, z up) from the chip's axes, as mounted (hardware/wiring.md,
# "IMU mounting"): (chip axis 0=X 1=Y 2=Z, sign) for foot x, y, z. Same for both feet.
IMU_MOUNT = ((1, -1), (0, 1), (2, 1))

_WATERMARK_SAMPLES = const(8)  # INT1 every 8 samples: 77 ms at 104 Hz
_BURST_SAMPLES = const(32)  # most samples taken per I2C burst

_P_RING = const(256)  # pressure records kept: 2.5 s at 104 Hz, as deep as the IMU FIFO
_P_RING_MASK = const(255)
_COUNT_MASK = const(0x0FFFFFFF)  # record counter wraps here, staying a small int
_LAG_MAX = const(_P_RING - 4)  # stay clear of the slot the timer is writing

_MP_STREAM_POLL = const(3)
_POLLIN = const(1)
_WRITE_WAIT_MS = const(20)

# Sensor positions of hardware/layouts/insole8.json (left foot), same channel order.
LAYOUT_LEFT_8 = ((15, -12), (15, 14), (95, 24), (185, -28), (195, -2), (170, 32), (240, -22), (232, 12))
# Mux variant: the same 8, then 8 more (hardware/wiring.md, "16-channel variant").
LAYOUT_LEFT_16 = LAYOUT_LEFT_8 + ((30, 1), (85, -22), (130, 30), (130, -25),
                                  (205, -30), (190, 14), (160, 40), (248, -5))


def layout_for_side(side):
    """LAYOUT for a side: y points left on both feet, so the right foot mirrors y."""
    left = LAYOUT_LEFT_16 if _PRESSURE_MUX else LAYOUT_LEFT_8
    if side == 1:
        return tuple((x, -y) for x, y in left)
    return left


def read_side(path=SIDE_FILE):
    """0 left, 1 right from the side file, else 0xFF (unknown)."""
    try:
        with open(path) as f:
            text = f.read(16)
    except OSError:
        return 0xFF
    text = text.strip().lower()
    if text == "left":
        return 0
    if text == "right":
        return 1
    return 0xFF


DEFAULT_SIDE = read_side()
LAYOUT = layout_for_side(DEFAULT_SIDE)


# -- link: USB serial (native USB CDC, which is also MicroPython's REPL) -------------

class _UsbReader(io.IOBase):
    """sys.stdin.buffer made non-blocking: readinto returns what is there, or None.

    stdin's own readinto blocks until the buffer is full, so this takes bytes while
    poll says one is ready. It is pollable itself (ioctl), for asyncio.StreamReader.
    """

    def __init__(self):
        self._in = sys.stdin.buffer
        self._byte = bytearray(1)
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)

    def _ready(self):
        for _ in self._poll.ipoll(0):  # ipoll allocates no result list
            return True
        return False

    def readinto(self, buf):
        size = len(buf)
        one = self._byte
        src = self._in
        n = 0
        while n < size and self._ready():
            if not src.readinto(one):
                return n  # end of file (never on USB CDC; on a closed pipe: 0)
            buf[n] = one[0]
            n += 1
        return n if n else None

    def ioctl(self, req, arg):
        if req == _MP_STREAM_POLL:
            return arg & _POLLIN if self._ready() else 0
        return -1


_poll_out = select.poll()
_poll_out.register(sys.stdout.buffer, select.POLLOUT)


def open_link():
    return _UsbReader(), sys.stdout.buffer


def open_ble():
    """The ESP32-S3's own radio (MicroPython's built-in `bluetooth`, NimBLE)."""
    import bluetooth

    return bluetooth.BLE()


def log_budget_bytes():
    """Bytes the event and sample logs may take together now; call it after BLE is on.

    What the Python heap has free beyond _PY_RESERVE_BYTES, plus one new heap area
    from the IDF's largest free block beyond _IDF_RESERVE_BYTES, if the area the GC
    would add (at least the Python heap's size) fits there. Never more than the two
    logs' maxima (EVENT_LOG_RECORDS, SAMPLE_LOG_BYTES).
    """
    import esp32

    gc.collect()
    free = gc.mem_free()
    heap = free + gc.mem_alloc()
    # One (total, free, largest free block, least free ever) tuple per IDF heap region
    # with the capability (esp32_idf_heap_info, ports/esp32/modesp32.c).
    largest = 0
    for region in esp32.idf_heap_info(esp32.HEAP_DATA):
        if region[2] > largest:
            largest = region[2]
    room = largest - _IDF_RESERVE_BYTES
    grow = 0
    if room >= heap:
        overhead = room * 13 // 512
        grow = room - (overhead if overhead > _GC_AREA_MIN_OVERHEAD else _GC_AREA_MIN_OVERHEAD)
    spare = free - _PY_RESERVE_BYTES
    budget = (spare if spare > 0 else 0) + grow
    most = 40 * EVENT_LOG_RECORDS + SAMPLE_LOG_BYTES
    return budget if budget < most else most


def wait_writable():
    for _ in _poll_out.ipoll(_WRITE_WAIT_MS):
        break


def prepare_link():
    # Binary frames contain 0x03; it must not raise KeyboardInterrupt.
    micropython.kbd_intr(-1)


def restore_repl():
    micropython.kbd_intr(3)


# -- the wearer's pairing gesture -----------------------------------------------------

# The pairing window (docs/security.md) opens for 60 s at power-on, and again when the
# wearer holds the BOOT button for 2 s while the insole runs (the app polls every
# 0.5 s). Held during the first second after a reset, BOOT means safe boot (boot.py).
PAIRING_WINDOW_MS = 60000
_PAIRING_HOLD_POLLS = const(4)  # 4 polls of 0.5 s: held for about 2 s
_pairing_button = None
_pairing_held = 0


def pairing_gesture():
    """True once each time the BOOT button has been held for about 2 s."""
    global _pairing_button, _pairing_held
    if _pairing_button is None:
        _pairing_button = Pin(_PIN_BOOT, Pin.IN, Pin.PULL_UP)
    if _pairing_button.value():  # released (pulled up)
        _pairing_held = 0
        return False
    _pairing_held += 1
    return _pairing_held == _PAIRING_HOLD_POLLS


# -- battery and motor ---------------------------------------------------------------

_battery_adc = None


def battery_mv():
    # read_uv: absolute volts need the eFuse calibration; it is read rarely.
    global _battery_adc
    try:
        if _battery_adc is None:
            _battery_adc = ADC(Pin(_PIN_BATTERY), atten=ADC.ATTN_11DB)
        return _battery_adc.read_uv() * _BATTERY_DIVIDER // 1000
    except (OSError, ValueError):
        return -1


class Motor:
    """ERM coin motor on a logic-level MOSFET (flyback diode across the motor), PWM.

    Pulse patterns (insolefw/cue.py) switch it with on()/off() at each edge; on() takes
    effect at once (one register write), which is what the cue latency measures.
    """

    def __init__(self):
        self._pwm = PWM(Pin(_PIN_MOTOR, Pin.OUT, value=0), freq=_MOTOR_PWM_HZ, duty_u16=0)

    def on(self, duty_pct):
        duty_pct = 0 if duty_pct < 0 else 100 if duty_pct > 100 else duty_pct
        self._pwm.duty_u16(duty_pct * 65535 // 100)

    def off(self):
        self._pwm.duty_u16(0)


# -- live sensors --------------------------------------------------------------------

def nearest_imu_rate_hz(rate_chz):
    best = 52
    for hz in (104, 208):
        if abs(hz * 100 - rate_chz) < abs(best * 100 - rate_chz):
            best = hz
    return best


class SensorSource:
    def __init__(self, rate_chz=_DEFAULT_RATE_CHZ, i2c=None):
        self.n_pressure = _N_PRESSURE
        self.imu = 1
        self.dropped = 0  # samples lost: IMU FIFO overruns
        self.stale_pressure = 0  # samples whose pressure record is > 1 period away
        if i2c is None:
            i2c = I2C(_I2C_ID, sda=Pin(_PIN_I2C_SDA), scl=Pin(_PIN_I2C_SCL), freq=_I2C_HZ)
        self._imu = LSM6DSOX(i2c, _IMU_ADDRESS, nearest_imu_rate_hz(rate_chz), 16, 2000,
                             IMU_MOUNT, _WATERMARK_SAMPLES, _BURST_SAMPLES)
        self.rate_chz = self._imu.rate_chz
        self._period_us = self._imu.period_us
        self._batch = array("h", bytes(12 * _BURST_SAMPLES))
        self._batch_n = 0
        self._batch_i = 0
        self._t_last = 0  # estimated time of the newest sample in _batch
        self._have_t = False
        self._left = 0  # complete samples left in the FIFO after the last burst
        self._last_drain_us = 0
        self._flag = asyncio.ThreadSafeFlag()
        self._int_pin = Pin(_PIN_IMU_INT1, Pin.IN)
        self._on_int_cb = self._on_int  # bound methods made once, not per interrupt

        self._p_ring = array("H", bytes(2 * _P_RING * _N_PRESSURE))
        # ticks_us of each record; 'l' is 32 bit on the ESP32 (ticks < 2**30) and
        # 64 bit on the unix port, whose ticks period is 2**62.
        self._p_time = array("l", [0] * _P_RING)
        self._p_written = 0  # records written, modulo _COUNT_MASK + 1
        self._p_cursor = 0  # record paired with the last IMU sample
        # Read the ADC at least as often as the IMU samples (rate rounded up).
        self._timer_hz = (self.rate_chz + 99) // 100
        self._timer = Timer(_TIMER_ID)
        if _PRESSURE_MUX:
            self._mux_adc = ADC(Pin(_PIN_MUX_SIG), atten=ADC.ATTN_11DB)
            sel = tuple(Pin(p, Pin.OUT, value=0) for p in _PIN_MUX_SEL)
            self._mux_sel = sel
            # Gray-code scan: exactly one select line changes before each conversion.
            chans = tuple(i ^ (i >> 1) for i in range(16))
            pins = []
            levels = []
            for i in range(16):
                diff = chans[i] ^ chans[i - 1]  # chans[-1] = 8: the scan is cyclic
                bit = 0
                while diff >> bit != 1:
                    bit += 1
                pins.append(sel[bit])
                levels.append((chans[i] >> bit) & 1)
            self._mux_chan = chans
            self._mux_pin = tuple(pins)
            self._mux_level = tuple(levels)
            self._on_tick_cb = self._on_tick_mux
        else:
            self._adcs = tuple(ADC(Pin(p), atten=ADC.ATTN_11DB) for p in _PIN_FSR)
            self._on_tick_cb = self._on_tick

    # Timer callback (soft IRQ): one pressure record. read_u16 is the raw conversion
    # scaled to 16 bit, with no per-call calibration math; 0xFFFF is the n/a sentinel
    # on the wire, so a saturated channel reads 0xFFFE.
    def _on_tick(self, _timer):
        w = self._p_written
        slot = w & _P_RING_MASK
        self._p_time[slot] = ticks_us()
        base = slot * _N_PRESSURE
        ring = self._p_ring
        adcs = self._adcs
        for k in range(_N_PRESSURE):
            v = adcs[k].read_u16()
            ring[base + k] = v if v < 0xFFFF else 0xFFFE
        self._p_written = (w + 1) & _COUNT_MASK
        if self._int_pin.value():  # the watermark level: catches a lost INT1 edge
            self._flag.set()

    def _on_tick_mux(self, _timer):
        w = self._p_written
        slot = w & _P_RING_MASK
        self._p_time[slot] = ticks_us()
        base = slot * _N_PRESSURE
        ring = self._p_ring
        adc = self._mux_adc
        pins = self._mux_pin
        levels = self._mux_level
        chans = self._mux_chan
        for i in range(16):
            pins[i](levels[i])
            v = adc.read_u16()
            ring[base + chans[i]] = v if v < 0xFFFF else 0xFFFE
        self._p_written = (w + 1) & _COUNT_MASK
        if self._int_pin.value():
            self._flag.set()

    # INT1 handler: only wakes the sampling task. On the ESP32 port every pin IRQ is
    # soft: the ISR queues this handler for the interpreter (mp_sched_schedule in
    # ports/esp32/machine_pin.c), and Pin.irq takes no `hard` keyword.
    def _on_int(self, _pin):
        self._flag.set()

    def start(self):
        self._batch_n = 0
        self._batch_i = 0
        self._have_t = False
        self._left = 0
        self._p_written = 0
        self._p_cursor = 0
        if _PRESSURE_MUX:
            for k in range(4):  # the state after the last scan step (channel 8)
                self._mux_sel[k](1 if k == 3 else 0)
        self._imu.start()
        self._last_drain_us = ticks_us()
        self._timer.init(mode=Timer.PERIODIC, freq=self._timer_hz, callback=self._on_tick_cb)
        self._int_pin.irq(handler=self._on_int_cb, trigger=Pin.IRQ_RISING)
        if self._int_pin.value():  # already above the watermark: that edge is gone
            self._flag.set()

    def stop(self):
        self._int_pin.irq(handler=None)
        self._timer.deinit()
        self._imu.stop()
        self._batch_n = 0
        self._batch_i = 0

    async def ready(self):
        # Set by the INT1 edge, or within a timer period by the level poll in _on_tick
        # when the edge's callback was dropped: never waits longer than a watermark
        # period (77 ms at 104 Hz) plus one timer period while the sensors run.
        await self._flag.wait()

    def read_into(self, pressure, imu):
        i = self._batch_i
        if i >= self._batch_n:
            if not self._refill():
                return 0
            i = 0
        b = self._batch
        o = 6 * i
        imu[0] = b[o]
        imu[1] = b[o + 1]
        imu[2] = b[o + 2]
        imu[3] = b[o + 3]
        imu[4] = b[o + 4]
        imu[5] = b[o + 5]
        t = ticks_add(self._t_last, -(self._batch_n - 1 - i) * self._period_us)
        self._pair_pressure(t, pressure)
        self._batch_i = i + 1
        return 1

    def _refill(self):
        # One FIFO burst into _batch, and the time of its newest sample.
        imu = self._imu
        period = self._period_us
        t0 = ticks_us()
        n = imu.fifo_read_into(self._batch)
        t1 = ticks_us()
        if imu.overrun:
            # Continuous mode overwrote the oldest samples: made since the last drain,
            # plus those left then, minus those the FIFO holds now.
            lost = self._left + ticks_diff(t1, self._last_drain_us) // period - (imu.fifo_words >> 1)
            self.dropped += lost if lost > 0 else 1
            self._have_t = False
        self._last_drain_us = t1
        left = imu.fifo_words_left >> 1
        self._left = left
        self._batch_i = 0
        self._batch_n = n
        if self._int_pin.value():  # still at the watermark: no new rising edge will come
            self._flag.set()
        if not n:
            return 0
        # The newest sample read was made before t1 - left periods (upper), and at most
        # one period before the status read (lower). upper is tight when the task ran
        # promptly after the interrupt and late after a GC pause; so predict from the
        # last batch, skewed 0.4 % late (more than the IMU clock's error after the
        # INTERNAL_FREQ_FINE correction), and take whichever is earlier: the estimate
        # follows the tightest recent bound, a few hundred us after the true time.
        upper = ticks_add(t1, -left * period)
        t = upper
        if self._have_t:
            step = n * period
            pred = ticks_add(self._t_last, step + (step >> 8))
            lower = ticks_add(t0, -(left + 1) * period)
            if ticks_diff(pred, upper) < 0:
                t = pred if ticks_diff(pred, lower) > 0 else lower
        self._have_t = True
        self._t_last = t
        return n

    def _pair_pressure(self, t, out):
        # Advance the cursor through the timestamped records to the one nearest t.
        w = self._p_written
        c = self._p_cursor
        lag = (w - c) & _COUNT_MASK
        if lag == 0:  # no record yet
            for k in range(_N_PRESSURE):
                out[k] = 0xFFFF
            self.stale_pressure += 1
            return
        if lag > _LAG_MAX:  # the timer lapped the cursor: take the oldest record kept
            c = (w - _LAG_MAX) & _COUNT_MASK
            lag = _LAG_MAX
        times = self._p_time
        tc = times[c & _P_RING_MASK]
        while lag > 1:
            nxt = (c + 1) & _COUNT_MASK
            tn = times[nxt & _P_RING_MASK]
            if ticks_diff(tn, t) > ticks_diff(t, tc):
                break
            c = nxt
            tc = tn
            lag -= 1
        self._p_cursor = c
        d = ticks_diff(t, tc)
        if d > self._period_us or d < -self._period_us:
            self.stale_pressure += 1
        ring = self._p_ring
        base = (c & _P_RING_MASK) * _N_PRESSURE
        for k in range(_N_PRESSURE):
            out[k] = ring[base + k]
