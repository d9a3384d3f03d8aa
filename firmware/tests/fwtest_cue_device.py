# Cueing through the whole Device (settings packet, replay, drain path, CUE events,
# metronome) with synthetic foot angles: the stride analysis is replaced on the
# instance, so these tests do not wait for the FPA estimator. The tests are in
# cue_device_cases.py, compiled after the Device is made.
import device_fixture  # noqa: F401  (makes the Device first)
from cue_device_cases import *  # noqa: E402,F401,F403  (the test_* functions)
