# Runs before main.py on every start. Safe boot: tap RESET, then hold BOOT (GPIO0)
# within the first second. SAFE_BOOT = True then tells main.py not to start the
# firmware, so the REPL stays free for mpremote / `insole flash` even if the firmware
# would grab the serial port or crash. (BOOT held *while* RESET is released selects
# the ROM download mode instead: GPIO0 is a strapping pin.)
# boot.py and main.py share the __main__ namespace, so main.py sees SAFE_BOOT.
from micropython import const
from machine import Pin
import time

_PIN_BOOT = const(0)  # BOOT button to GND, pulled up
_PIN_MOTOR = const(14)  # motor MOSFET gate: a short buzz confirms safe boot
_SAFE_BOOT_WINDOW_MS = const(1000)
_POLL_MS = const(10)


def _boot_button_pressed():
    button = Pin(_PIN_BOOT, Pin.IN, Pin.PULL_UP)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < _SAFE_BOOT_WINDOW_MS:
        if not button.value():
            return True
        time.sleep_ms(_POLL_MS)
    return False


SAFE_BOOT = _boot_button_pressed()
if SAFE_BOOT:
    _motor = Pin(_PIN_MOTOR, Pin.OUT, value=1)
    time.sleep_ms(150)
    _motor.value(0)
    print("insole: safe boot (BOOT held): firmware not started, REPL free")
