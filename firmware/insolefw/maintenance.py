# FACTORY_RESET (USB only, docs/protocol.md): rare, so app.py imports this module only
# when it is asked for, and the code does not sit in the heap the rest of the time.
import gc

import board
from insolefw import protocol as P
from insolefw.settings import Settings


def factory_reset(device, seq):
    """The insole as it left the factory, then as at power-on: a board with a radio
    and sensors measures again; no exercise program. Answers ACK, or BAD_STATE 0xFF when
    the settings or program files could not be removed (reset in RAM, but the old ones
    would come back)."""
    device._stop()
    device.events.clear()
    device.program = None  # its runner's memory goes; its files below
    # The program's files by name (program.PROGRAM_FILE, STATE_FILE; tests/test_constants_sync.py):
    # importing insolefw.program to read them would cost its ~10 KB of code here. The
    # files go first: their paths' garbage is collected before anything lasting is made.
    d = board.SETTINGS_DIR
    removed = Settings.erase(d) & Settings.erase(d, "program.bin") & Settings.erase(d, "program_state.bin")
    gc.collect()
    device.settings = Settings()
    ble = device.ble
    if ble is not None:
        ble.clear_bonds()
    device.eventlog.clear()
    device.samplelog.clear()
    layout_for_side = getattr(board, "layout_for_side", None)
    own = layout_for_side(device.side) if layout_for_side and board.LAYOUT else board.LAYOUT
    device._layout = list(sum(own, ()))
    device._restart_cueing()
    device.samples_total = 0
    device.out = ble or device.serial
    if ble is not None:
        ble.set_side(device.side)
        if device.live is not None:
            device._start_live(-1)
    if removed:
        device._ack(P.T_COMMAND, P.CMD_FACTORY_RESET, seq)
    else:
        device._error(P.T_COMMAND, P.CMD_FACTORY_RESET, seq, P.E_BAD_STATE, 0xFF)
    # Rare: this module's code leaves the heap again until the next reset asks for it.
    import sys
    import insolefw
    sys.modules.pop(__name__, None)
    if hasattr(insolefw, "maintenance"):
        delattr(insolefw, "maintenance")

