# The scripted gait core of the Device-level program tests (program_harness.py): strides
# with chosen foot angles and directions, heel raises with chosen holds, so that every
# expected count is exact.
import struct

from insolefw import protocol as P


class _Raises:
    def __init__(self):
        self.state = 0
        self._start = 0
        self._top_start = -1
        self._top_end = -1


class _Tracker:
    def __init__(self):
        self.fpa_cdeg = P.NA_I16
        self.direction = 0
        self.stride_end_index = -1


class ScriptCore:
    """Stands in for GaitCore at 100 Hz. Stride j (of `strides`: (fpa, direction)) has
    its contact at sample 100 j, its stride analysis at 100 j + 20 and its STEP at the
    toe-off, 100 j + 60. Raises (start, end, hold_ms): the heel is up over [start, end),
    the HEEL_RAISE record goes out at end."""

    def __init__(self, events, strides=(), raises=(), first=0):
        self.events = events
        self.strides = strides
        self.raise_list = raises
        self.first = first  # the first stride starts at this sample
        self.imu_tracker = _Tracker()
        self.raises = _Raises()
        self._record = bytearray(P.STEP_LEN)
        self._raise = bytearray(P.HEEL_RAISE_LEN)
        self.configure(10000, 0, 1, 0)

    def configure(self, rate_chz, n_pressure, imu, side):
        self.rate_chz = rate_chz
        self.n_pressure = n_pressure
        self.imu = imu
        self.sample_index = 0
        self.steps = 0
        self.pending = 0

    def set_layout(self, positions, side):
        pass

    def process(self, pressure, imu):
        index = self.sample_index
        self.sample_index = index + 1
        rel = index - self.first
        j = rel // 100
        if rel >= 0 and j < len(self.strides):
            phase = rel % 100
            if phase == 20:
                self.pending = 1
            elif phase == 60:
                self.steps += 1
                fpa, direction = self.strides[j]
                struct.pack_into("<IIHHhBBHBBHHI", self._record, 0, index - 60, index, 600, P.NA_U16,
                                 fpa, direction, 2, P.NA_U16, P.NA_U8, P.NA_U8, P.NA_U16, P.NA_U16,
                                 self.steps)
                self.events.push(P.T_STEP, self._record, P.STEP_LEN)
        raises = self.raises
        raises.state = 1
        for n, (start, end, hold_ms) in enumerate(self.raise_list):
            if start <= index < end:
                raises.state = 2
                raises._start = raises._top_start = start  # the top at once
            elif index == end:
                struct.pack_into("<IIHHHH", self._raise, 0, start, end, hold_ms, n + 1, 1, 0)
                self.events.push(P.T_HEEL_RAISE, self._raise, P.HEEL_RAISE_LEN)

    def finish_stride(self):
        self.pending = 0
        fpa, direction = self.strides[(self.sample_index - 1 - self.first) // 100]
        t = self.imu_tracker
        t.fpa_cdeg = fpa
        t.direction = direction
        t.stride_end_index = self.sample_index - 1
