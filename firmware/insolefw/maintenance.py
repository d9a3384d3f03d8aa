# FACTORY_RESET (USB only, docs/protocol.md): rare, so app.py imports this module only
# when it is asked for, and the code does not sit in the heap the rest of the time.
import board
from insolefw import protocol as P
from insolefw.settings import Settings


def factory_reset(device, seq):
    """The insole as it left the factory, then as at power-on: a board with a radio
    and sensors measures again. Answers ACK, or BAD_STATE 0xFF when the settings file
    could not be removed (reset in RAM, but the old settings would come back)."""
    device._stop()
    device.events.clear()
    device.settings = Settings()
    removed = Settings.erase(board.SETTINGS_DIR)
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
