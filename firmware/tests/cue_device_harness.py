# Helpers of the Device-level cue tests (fwtest_cue_device, fwtest_backfill_device):
# the Device is made by the fwtest module before this is compiled (a 128K heap has
# the large rings in one piece only that early). The gait core is replaced by a
# stub with synthetic strides and foot angles, so these tests exercise the Device's
# own paths (drain, cue hook, motor, events, log) whatever the gait algorithms do.
import struct
import time

from insolefw import protocol as P
from insolefw.settings import Settings

_device = None
_sink = None


class _Motor:
    def __init__(self):
        self.log = []  # (ticks_ms, duty or 0)

    def on(self, duty):
        self.log.append((time.ticks_ms(), duty))

    def off(self):
        self.log.append((time.ticks_ms(), 0))


def setup(device, sink):
    global _device, _sink
    _device = device
    _sink = sink
    device.motor = device.player.motor = _Motor()
    device.core = StubCore(device.events, [])


def device():
    return _device


def _packets():
    # Decoded output since the last call: list of packet bytes.
    out = []
    reader = P.FrameReader()
    reader.feed(_sink.data, len(_sink.data), lambda b, n: out.append(bytes(b[:n])), lambda: None)
    _sink.data = bytearray()
    return out


def _send(ptype, payload):
    buf = bytearray(P.HEADER_LEN + len(payload) + 2)
    struct.pack_into("<BBHI", buf, 0, 1, ptype, 7, 0)
    buf[P.HEADER_LEN:P.HEADER_LEN + len(payload)] = payload
    _device.on_packet(buf, P.HEADER_LEN + len(payload))
    return _packets()


def _settings(**fields):
    s = Settings()
    for name in fields:
        setattr(s, name, fields[name])
    payload = bytearray(P.SETTINGS_LEN)
    s.encode_into(payload, 0)
    return payload


def _command(cmd, args=b""):
    return _send(P.T_COMMAND, bytes((cmd, 0)) + args)


class StubCore:
    """Stands in for GaitCore. Strides of 100 samples: the stride analysis completes at
    sample 20 of each (foot flat) with the next FPA of a list, and the step is emitted
    at its toe-off, sample 60, carrying that FPA (like GaitCore, through the EventQueue)."""

    def __init__(self, events, fpas):
        self.events = events
        self.fpas = fpas
        self.imu_tracker = _Tracker()
        self._record = bytearray(P.STEP_LEN)
        self.configure(10000, 0, 1, 0)

    def configure(self, rate_chz, n_pressure, imu, side):
        self.rate_chz = rate_chz
        self.n_pressure = n_pressure
        self.imu = imu
        self.sample_index = 0
        self.steps = 0
        self.pending = 0
        self.known = 0

    def set_layout(self, positions, side):
        pass

    def process(self, pressure, imu):
        index = self.sample_index
        self.sample_index = index + 1
        phase = index % 100
        if phase == 20:
            self.pending = 1
        elif phase == 60:
            self.steps += 1
            struct.pack_into("<IIHHhBBHBBHHI", self._record, 0, index - 60, index, 600, P.NA_U16,
                             self.imu_tracker.fpa_cdeg, 1, 2, P.NA_U16, P.NA_U8, 0, P.NA_U16,
                             P.NA_U16, self.steps)
            self.events.push(P.T_STEP, self._record, P.STEP_LEN)

    def finish_stride(self):
        self.pending = 0
        t = self.imu_tracker
        t.fpa_cdeg = self.fpas[self.known] if self.known < len(self.fpas) else P.NA_I16
        t.stride_end_index = self.sample_index - 1
        self.known += 1


class _Tracker:
    def __init__(self):
        self.fpa_cdeg = P.NA_I16
        self.stride_end_index = -1


def _replay(seconds, fpas):
    _device.core = StubCore(_device.events, fpas)
    assert _command(P.CMD_REPLAY_BEGIN, struct.pack("<HBBBB", 10000, 0, 1, 0, 0))[0][1] == P.T_ACK
    out = []
    zeros = bytes(12 * 50)
    for first in range(0, seconds * 100, 50):
        out += _send(P.T_SAMPLES, struct.pack("<IBBBB", first, 50, 0, 1, 0) + zeros)
    out += _command(P.CMD_REPLAY_END)
    return out


def _cues(packets):
    return [struct.unpack_from("<IIIIHhhHBBBBHH", p, P.HEADER_LEN) for p in packets if p[1] == P.T_CUE]


def _steps(packets):
    return [struct.unpack_from("<IIHHhBBHBBHHI", p, P.HEADER_LEN) for p in packets if p[1] == P.T_STEP]
