# Gait from the foot IMU: contact events, still phases, and per-stride foot angle.
#
# ImuTracker.update() is on the sampling path (integers, no allocation).
# ImuTracker.analyse() is the per-stride float work; the caller runs it outside the
# sampling path when update() reports STRIDE.
from micropython import const

from insolefw.protocol import NA_I16, NA_U16
from insolefw.units import samples_for_ms

# update() result bits
IMU_IC = const(1)  # initial contact at self.ic_index
IMU_TO = const(2)  # toe-off at self.to_index
IMU_STRIDE = const(4)  # a swing ended in a still phase: call analyse()

DIR_UNKNOWN = const(0)
DIR_FORWARD = const(1)
DIR_BACKWARD = const(2)


class ImuContact:
    """Contact events from angular rate alone: stance is where the foot is nearly still.

    Deliberately simple; a later iteration fuses it with pressure.
    """

    SWING_CDPS = 1500  # 150 deg/s in 0.1 deg/s units: the foot is swinging
    STILL_CDPS = 600  # |gx|+|gy|+|gz| below 60 deg/s: the foot is loaded and still

    def __init__(self):
        self.reset(10000)

    def reset(self, rate_chz):
        self.state = 0  # 0 unknown, 1 swing, 2 stance
        self._run = 0
        self.ic_index = -1
        self.to_index = -1
        self._confirm = samples_for_ms(30, rate_chz) or 1
        self._last_still = -1

    def update(self, index, gx, gy, gz):
        mag = abs(gx) + abs(gy) + abs(gz)
        if self.state != 1:
            if abs(gy) > self.SWING_CDPS:
                self._run += 1
                if self._run >= self._confirm:
                    self._run = 0
                    was = self.state
                    self.state = 1
                    if was == 2 and self.ic_index >= 0:
                        self.to_index = self._last_still + 1
                        return 2
            else:
                self._run = 0
                if mag < self.STILL_CDPS:
                    self._last_still = index
            return 0
        if mag < self.STILL_CDPS:
            self._run += 1
            if self._run >= self._confirm:
                self._run = 0
                self.state = 2
                self.ic_index = index - self._confirm + 1
                self._last_still = index
                return 1
        else:
            self._run = 0
        return 0


class ImuTracker:
    """Per-foot IMU tracking: events, still phases, strides.

    Results of analyse(): fpa_cdeg (0.01 deg, + toe-out, NA_I16 if unknown),
    stride_mm and speed_mms (NA_U16 if unknown), direction (DIR_*), and
    stride_end_index (the sample the stride ended at: the still phase it ended in).
    """

    def __init__(self):
        self.contact = ImuContact()
        self.reset(10000, 0)

    def reset(self, rate_chz, side):
        self.rate_chz = rate_chz
        self.side = side
        self.contact.reset(rate_chz)
        self.ic_index = -1
        self.to_index = -1
        self._clear_result()

    def _clear_result(self):
        self.fpa_cdeg = NA_I16
        self.stride_mm = NA_U16
        self.speed_mms = NA_U16
        self.direction = DIR_UNKNOWN
        self.stride_end_index = -1

    def update(self, index, imu):
        """imu: array('h') ax, ay, az [mg], gx, gy, gz [0.1 deg/s]. Returns IMU_* bits."""
        event = self.contact.update(index, imu[3], imu[4], imu[5])
        if event == 1:
            self.ic_index = self.contact.ic_index
            return IMU_IC
        if event == 2:
            self.to_index = self.contact.to_index
            return IMU_TO
        return 0

    def analyse(self):
        """Per-stride float work (allocates): fills the result attributes."""
        self._clear_result()
