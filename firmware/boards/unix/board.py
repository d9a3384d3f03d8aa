# Board layer for the MicroPython unix port: the simulated insole.
#
# The link is stdin/stdout, which the host connects to one end of a pseudo-terminal
# (its launcher sets O_NONBLOCK on it); the host talks to the other end with pyserial,
# exactly as to a board on /dev/ttyACM0. There are no live sensors: samples arrive
# by replay. Diagnostics go to stderr, never to the link.
import asyncio
import os
import select
import sys
import time

NAME = "unix-sim"
_side = os.getenv("INSOLE_SIDE")
DEFAULT_SIDE = {"left": 0, "right": 1}.get(_side, 0xFF)

def _layout_from_env():
    # INSOLE_SIM_LAYOUT="x0,y0,x1,y1,..." (mm, this foot's frame): the simulated insole's
    # own sensor positions, as a real board has them. Without it the host sends the
    # recording's layout (LAYOUT packet) before a replay.
    values = [int(v) for v in (os.getenv("INSOLE_SIM_LAYOUT") or "").split(",") if v]
    return tuple((values[i], values[i + 1]) for i in range(0, len(values) - 1, 2))


LAYOUT = _layout_from_env()
HAS_IMU = False  # no IMU of its own; a sample file (INSOLE_SIM_SAMPLES) may carry IMU data
SETTINGS_DIR = os.getenv("INSOLE_SETTINGS_DIR") or "/tmp/insole-sim-settings"
# Event log slots (x 40 bytes): 64 = 32 steps with a cue each; the 128K heap keeps
# >= 40 KB free after start-up. INSOLE_EVENT_LOG_RECORDS overrides (tests of losses).
EVENT_LOG_RECORDS = int(os.getenv("INSOLE_EVENT_LOG_RECORDS") or 64)
# Live SAMPLES kept for a BLE backfill (248-byte slots): none at the 128K test heap,
# set by the host for BLE simulations (which run with a larger heap).
SAMPLE_LOG_BYTES = int(os.getenv("INSOLE_SAMPLE_LOG_BYTES") or 0)
_poll_out = select.poll()
_poll_out.register(sys.stdout.buffer, select.POLLOUT)


def open_link():
    return sys.stdin.buffer, sys.stdout.buffer


def open_ble():
    """The radio: the `bluetooth` stand-in (boards/unix/bluetooth.py) bridged to an
    emulated controller when INSOLE_BLE_BRIDGE is set, else none."""
    if not os.getenv("INSOLE_BLE_BRIDGE"):
        return None
    import bluetooth

    return bluetooth.BLE()


def wait_writable():
    _poll_out.poll(100)


def prepare_link():
    pass


def restore_repl():
    pass


# A simulated cell: full at power-on, discharging linearly from 4180 to 3400 mV over
# INSOLE_SIM_BATTERY_HOURS (default 8), so the Battery service reports a measured,
# falling level as on the device. 0 or less: no battery (-1, "unknown").
_battery_hours = float(os.getenv("INSOLE_SIM_BATTERY_HOURS") or 8)
_battery_t0 = time.ticks_ms()


def battery_mv():
    if _battery_hours <= 0:
        return -1
    elapsed_s = time.ticks_diff(time.ticks_ms(), _battery_t0) // 1000
    drop = 780 * elapsed_s // (int(_battery_hours * 3600) or 1)
    return 4180 - drop if drop < 780 else 3400


# Pairing window after power-on, in ms (docs/security.md): INSOLE_PAIRING_WINDOW_S
# (default 60; 0 keeps it closed until the USB command opens it).
PAIRING_WINDOW_MS = int(float(os.getenv("INSOLE_PAIRING_WINDOW_S") or 60) * 1000)


# Device clock: INSOLE_CLOCK_PPM (float, default 0) makes it run fast (+) or slow (-)
# by that many parts per million against the host's, for clock-sync tests. Only the
# device clock (packet time_ms) is skewed; replay and sample-file pacing are not.
_ppb = int(float(os.getenv("INSOLE_CLOCK_PPM") or 0) * 1000)
if _ppb:
    _t0 = time.ticks_ms()

    def ticks_ms():
        elapsed = time.ticks_diff(time.ticks_ms(), _t0)
        return time.ticks_add(_t0, elapsed + elapsed * _ppb // 1000000000)
else:
    ticks_ms = time.ticks_ms


class Motor:
    """No motor on the unix port: every switch is counted and logged to stderr with
    the board's ticks_ms ("motor on 60% t=1234", "motor off t=1534")."""

    def __init__(self):
        self.cues = 0  # times switched on from off
        self.duty_pct = 0

    def on(self, duty_pct):
        if not self.duty_pct:
            self.cues += 1
        self.duty_pct = duty_pct
        sys.stderr.write("motor on %d%% t=%d\n" % (duty_pct, ticks_ms()))

    def off(self):
        if self.duty_pct:
            sys.stderr.write("motor off t=%d\n" % ticks_ms())
        self.duty_pct = 0


class _SampleFileSource:
    """Live sensors of the simulated insole: samples from a file, paced by the clock.

    The file (INSOLE_SIM_SAMPLES) is written by the host: an 8-byte header
    b"ISMP" rate_chz:u16 n_pressure:u8 imu:u8, then wire-format sample records. At
    the end it starts over, like a treadmill. Nothing is allocated per sample.
    """

    def __init__(self):
        import struct

        self._f = open(os.getenv("INSOLE_SIM_SAMPLES"), "rb")
        head = self._f.read(8)
        if head[:4] != b"ISMP":
            raise ValueError("INSOLE_SIM_SAMPLES is not a sample file")
        self.rate_chz, self.n_pressure, self.imu = struct.unpack_from("<HBB", head, 4)
        self._record = 2 * self.n_pressure + 12 * self.imu
        self._buf = bytearray(self._record)
        self.dropped = 0
        self._n = 0
        self._t0 = 0

    def start(self):
        self._f.seek(8)
        self._n = 0
        self._t0 = time.ticks_ms()

    def stop(self):
        pass

    def _due_ms(self):
        return (self._n * 100000) // self.rate_chz

    async def ready(self):
        wait = self._due_ms() - time.ticks_diff(time.ticks_ms(), self._t0)
        await asyncio.sleep_ms(wait if wait > 0 else 0)

    def read_into(self, pressure, imu):
        if self._due_ms() > time.ticks_diff(time.ticks_ms(), self._t0):
            return 0
        if self._f.readinto(self._buf) != self._record:
            self._f.seek(8)  # loop the walk
            if self._f.readinto(self._buf) != self._record:
                return 0
        np2 = 2 * self.n_pressure
        for k in range(self.n_pressure):
            pressure[k] = self._buf[2 * k] | (self._buf[2 * k + 1] << 8)
        if self.imu:
            for k in range(6):
                v = self._buf[np2 + 2 * k] | (self._buf[np2 + 2 * k + 1] << 8)
                imu[k] = v - 0x10000 if v & 0x8000 else v
        self._n += 1
        return 1


SensorSource = _SampleFileSource if os.getenv("INSOLE_SIM_SAMPLES") else None
