"""One insole on a BLE controller: the peripheral bridge plus a MicroPython program.

The bridge (``python -m insole.emulation.bridge``) owns a bumble device on one HCI
transport (a virtual controller of the emulated radio, or any bumble transport: a USB
dongle, ``tcp-server:``); the program runs under the unix port with
``boards/unix/bluetooth.py`` as its ``bluetooth`` module, the stand-in that forwards
every call to that bridge.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from insole.emulation.board import HEAP, micropython_env, micropython_executable
from insole.emulation.process import START_TIMEOUT_S, read_first_line, stop_process
from insole.emulation.radio import LOOPBACK
from insole.resources import FIRMWARE_DIR

FIRMWARE_MAIN = FIRMWARE_DIR / "boards" / "unix" / "main_unix.py"  # the insole's firmware on the unix port


class BridgedPeripheral:
    """One insole on the emulated link: the peripheral bridge plus a MicroPython program.

    Start-up order: the bridge first (it attaches to its controller and listens on a
    free loopback port, which it prints), then MicroPython with ``INSOLE_BLE_BRIDGE``
    set to that port (and ``INSOLE_SETTINGS_DIR``, ``INSOLE_SIDE``). The program is
    ``script``: by default the insole's firmware, whose board layer opens the BLE link
    when ``INSOLE_BLE_BRIDGE`` is set; tests run their own peripherals, with
    ``python_path`` added to MicroPython's path (keep ``capture_stdout`` only for a
    program that reports on stdout).
    ``restart()`` ends both and starts them again with the same
    address and settings directory, as a firmware reset does; bonds survive because
    the firmware keeps them (``_IRQ_SET_SECRET``) under its settings directory.
    """

    def __init__(
        self,
        controller: str,
        *,
        side: str = "left",
        address: str | None = None,
        script: Path = FIRMWARE_MAIN,
        args: Sequence[str] = (),
        python_path: Sequence[Path] = (),
        settings_dir: Path | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        capture_stdout: bool = True,
        heap: str | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        inherit_stderr: bool = False,
    ) -> None:
        self.controller = controller
        self.capture_stdout = capture_stdout  # False: the program's stdout goes to the log
        self.heap = heap  # MicroPython heap size; default insole.emulation.board.HEAP
        # How long the bridge may take to open its transport (a tcp-server waits for its
        # controller), and whether its and the program's stderr go to ours.
        self.start_timeout_s = start_timeout_s
        self.inherit_stderr = inherit_stderr
        self.side = side
        self.address = address or ("C0:15:01:00:00:01" if side == "left" else "C0:15:01:00:00:02")
        self.script = script
        self.args = list(args)
        self.python_path = tuple(python_path)
        self._own_settings = settings_dir is None
        self.settings_dir = settings_dir or Path(tempfile.mkdtemp(prefix="insole-ble-settings-"))
        self.extra_env = dict(env or {})
        self.log_path = log_path
        self.bridge: subprocess.Popen[str] | None = None
        self.firmware: subprocess.Popen[str] | None = None
        self.bridge_port = 0

    def _stderr(self) -> IO[bytes] | int | None:
        if self.inherit_stderr:
            return None
        return open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL

    def start(self) -> BridgedPeripheral:
        stderr = self._stderr()
        try:
            self._start(stderr)
        except BaseException:
            self.stop()  # a half-started insole leaves nothing running
            raise
        finally:
            if stderr is not None and not isinstance(stderr, int):
                stderr.close()
        return self

    def _start(self, stderr: IO[bytes] | int | None) -> None:
        self.bridge = subprocess.Popen(
            [sys.executable, "-m", "insole.emulation.bridge", "--controller", self.controller,
             "--listen", f"{LOOPBACK}:0", "--address", self.address],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            start_new_session=True,  # Ctrl-C reaches the host alone (emulation/process.py)
        )
        self.bridge_port = int(read_first_line(self.bridge, "the peripheral bridge", self.start_timeout_s))
        env = micropython_env(extra_paths=self.python_path)
        env["INSOLE_BLE_BRIDGE"] = f"{LOOPBACK}:{self.bridge_port}"
        env["INSOLE_SETTINGS_DIR"] = str(self.settings_dir)
        env["INSOLE_SIDE"] = self.side
        env.update(self.extra_env)
        self.firmware = subprocess.Popen(
            [micropython_executable(), "-X", f"heapsize={self.heap or HEAP}", str(self.script), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if self.capture_stdout else stderr,
            stderr=stderr, env=env, text=True, start_new_session=True,
        )

    def firmware_line(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """The next line the MicroPython program prints (test scripts report on stdout)."""
        assert self.firmware is not None
        return read_first_line(self.firmware, "the MicroPython program", timeout_s)

    def stop(self) -> None:
        try:
            stop_process(self.firmware)
        finally:
            # The bridge ends by itself once MicroPython is gone; give it a moment to take
            # its controller off the link cleanly, then make sure.
            stop_process(self.bridge, grace_s=2.0)
            self.firmware = self.bridge = None

    def restart(self) -> BridgedPeripheral:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_settings:
            shutil.rmtree(self.settings_dir, ignore_errors=True)

    def __enter__(self) -> BridgedPeripheral:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
