# Gait events from the foot IMU, one sample at a time, integers only in update().
from insolefw.units import samples_for_ms


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
