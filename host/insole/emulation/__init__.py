"""Simulated insoles: the same firmware on the MicroPython unix port, with stand-ins for
the hardware around it. Used by `insole demo`, `hil`, `validate`, `--simulate` and the tests.

* :mod:`~insole.emulation.board` — the simulated board: the firmware (precompiled, as on
  the device) behind a pty, its sensors replaying a sample file;
* :mod:`~insole.emulation.insoles` — simulated insoles for a live session, over a pty or
  the emulated radio;
* the emulated BLE radio (needs the ``emulation`` extra, bumble):
  :mod:`~insole.emulation.radio` (virtual controllers on loopback),
  :mod:`~insole.emulation.peripheral` (one insole on it: bridge + firmware),
  :mod:`~insole.emulation.bridge` (the host side of the unix port's ``bluetooth`` stand-in),
  :mod:`~insole.emulation.bumble_backend` (bleak on bumble: the host keeps its own BLE code);
* :mod:`~insole.emulation.process` — starting and always ending their processes.
"""
