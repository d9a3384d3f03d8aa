"""BLE for the insole host: a bumble-backed bleak backend and the emulated radio.

- :mod:`insole.ble.bumble_backend`: ``BumbleScanner`` / ``BumbleClient``, passed as
  ``backend=`` to the normal ``BleakScanner`` / ``BleakClient``;
- :mod:`insole.ble.virtual`: the emulated radio (bumble virtual controllers on
  loopback) and the launcher for a simulated insole on it;
- :mod:`insole.ble.peripheral_bridge`: the host side of the unix port's ``bluetooth``
  stand-in (``firmware/boards/unix/bluetooth.py``);
- :mod:`insole.ble.gatt`: the insole's GATT layout (UUIDs), shared with the firmware.
"""
