# Exercise programs through the whole Device: walking over sessions, stops and reboots. The tests are in
# program_walking_cases.py; every module is compiled after the Device is made (device_fixture),
# the helpers first, while the heap is least broken up.
import device_fixture  # noqa: F401  (makes the Device first)
import program_script  # noqa: F401,E402
import program_harness  # noqa: F401,E402
from program_walking_cases import *  # noqa: E402,F401,F403  (the test_* functions)
