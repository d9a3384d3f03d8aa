"""Host twins of the firmware's gait modules: numpy/Python references of what the device computes.

One host module per firmware module, one class per firmware class, on the same integer
counts, so that firmware (under MicroPython) and host agree sample for sample and bit
for bit (the tests check it on real data):

- :mod:`insole.gait.units` ↔ ``firmware/insolefw/units.py``: samples ↔ milliseconds
  at a rate in 0.01 Hz.
- :mod:`insole.gait.contact` ↔ ``firmware/insolefw/contact.py``: the state machines on
  summed pressure, line by line (:class:`PressureContact`, :class:`HeelRaises`).
- :mod:`insole.gait.gait` ↔ ``firmware/insolefw/gait.py``: ``GaitCore``'s pressure path
  (layout regions :class:`LayoutRegions`, per-sample sums, roll-over direction), over a
  whole stream in :class:`PressureStepDetection` and :class:`HeelRaiseDetection`.
- :mod:`insole.gait.imu` ↔ ``firmware/insolefw/imu.py``: still phases
  (:class:`ZeroVelocityDetection`), toe-off and initial contact
  (:class:`ImuEventDetection`), ring slots, and :class:`ImuTracker` over a whole stream.
- :mod:`insole.gait.stride` ↔ ``firmware/insolefw/stride.py``: levelling, fixed-point
  integration (:class:`StrideTrajectory`), direction, foot progression angle and
  stride length (:class:`FootProgressionAngle`).
- :mod:`insole.gait.cue` ↔ ``firmware/insolefw/cue.py``: the per-step cue decision
  (:class:`CueEngine`).

gaitmap style: each algorithm is a class whose constructor takes its parameters (each
machine's defaults stated once, in a frozen dataclass: :class:`PressureContactParameters`,
:class:`HeelRaiseParameters`, :class:`ImuTrackerParameters`, :class:`StrideParameters`;
None means the firmware's), one action method that returns self, and results as
attributes with a trailing underscore. The stream-level detectors take what the
firmware receives: ``detect(stream_counts(stream), stream.rate_hz)``
(:func:`insole.quantise.stream_counts`).
"""

from insole.gait.contact import HeelRaiseParameters, HeelRaises, PressureContact, PressureContactParameters
from insole.gait.cue import CueEngine
from insole.gait.gait import HeelRaiseDetection, LayoutRegions, PressureStepDetection
from insole.gait.imu import ImuEventDetection, ImuTracker, ImuTrackerParameters, ZeroVelocityDetection
from insole.gait.stride import (
    FootProgressionAngle,
    StrideParameters,
    StrideTrajectory,
    mounting_yaw_from_roll_deg,
)

__all__ = [
    "CueEngine",
    "FootProgressionAngle",
    "HeelRaiseDetection",
    "HeelRaiseParameters",
    "HeelRaises",
    "ImuEventDetection",
    "ImuTracker",
    "ImuTrackerParameters",
    "LayoutRegions",
    "PressureContact",
    "PressureContactParameters",
    "PressureStepDetection",
    "StrideParameters",
    "StrideTrajectory",
    "ZeroVelocityDetection",
    "mounting_yaw_from_roll_deg",
]
