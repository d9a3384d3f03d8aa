# The whole Device for the Device-level test modules (fwtest_cue_device,
# fwtest_backfill_device), made the way app.main() makes it and before any test case
# is compiled: a 128K heap has its large rings in one piece only that early. Importing
# this module builds it; cue_device_harness then drives it.
import gc

import board

board.EVENT_LOG_RECORDS = 12  # small, so that a walk overflows it

from insolefw.app import Device  # noqa: E402
from serial_sink import SerialSink  # noqa: E402


gc.collect()  # as app.main() does before making the Device
_SINK = SerialSink()
_DEVICE = Device(None, _SINK, lambda: None)

# The tests drive the Device with a stub gait core (cue_device_harness.StubCore): free
# the real one, whose buffers the compiler below can use.
_DEVICE.core = None
gc.collect()  # the compiler needs pieces of a few KB
import cue_device_harness  # noqa: E402

cue_device_harness.setup(_DEVICE, _SINK)
gc.collect()
