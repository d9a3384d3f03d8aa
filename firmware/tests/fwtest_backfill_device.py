# The event log and GET_EVENTS through the whole Device, after a replayed walk with a
# cue on every step. The tests are in backfill_device_cases.py, compiled after the
# Device is made.
import device_fixture  # noqa: F401  (makes the Device first)
from backfill_device_cases import *  # noqa: E402,F401,F403  (the test_* functions)
