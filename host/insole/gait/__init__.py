"""Gait algorithms on the host: numpy references of what the firmware computes.

gaitmap style: small classes with parameters carrying units in their names, one
action method (``detect``/``estimate``) returning self, results as attributes with a
trailing underscore. They run on the same integer counts as the device, and the tests
check that firmware (under MicroPython) and host agree step for step on real data.

- :mod:`insole.gait.pressure`: contact events with self-adapting thresholds
  (:class:`PressureStepDetection`), walking direction from the pressure roll-over, and
  heel raises in sets (:class:`HeelRaiseDetection`).
- :mod:`insole.gait.imu`: still phases (:class:`ZeroVelocityDetection`), IMU-only
  contact events (:class:`ImuEventDetection`), the levelled, zero-velocity-updated
  stride (:class:`StrideTrajectory`), foot progression angle, stride length, speed and
  direction (:class:`FootProgressionAngle`, :class:`ImuGait` for a whole stream).
"""

from insole.gait.imu import (
    FootProgressionAngle,
    ImuEventDetection,
    ImuGait,
    StrideTrajectory,
    ZeroVelocityDetection,
    mounting_yaw_from_roll_deg,
)
from insole.gait.pressure import HeelRaiseDetection, PressureStepDetection

__all__ = [
    "FootProgressionAngle",
    "HeelRaiseDetection",
    "ImuEventDetection",
    "ImuGait",
    "PressureStepDetection",
    "StrideTrajectory",
    "ZeroVelocityDetection",
    "mounting_yaw_from_roll_deg",
]
