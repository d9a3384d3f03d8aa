"""The emulated radio: bumble virtual controllers on one link, reachable over loopback TCP.

One controller per device (each insole and the host). Each controller listens on its
own port on 127.0.0.1 (chosen by the OS); a bumble host attaches with the transport
``tcp-client:127.0.0.1:PORT``. Every new host connection to a port gets a fresh
controller, as after a power cycle: when a host goes away (process ended or killed),
its controller leaves the link and the peers of its connections see them drop with
"connection timeout", as a central does when an insole's battery dies.

The radio runs in its own process (``python -m insole.ble.virtual --controllers N``)
so that it has a CPU of its own; :class:`VirtualRadio` starts and always kills it.
:class:`BridgedPeripheral` starts one insole on the emulated link: the peripheral
bridge (``insole.ble.peripheral_bridge``) plus a MicroPython program under the unix
port whose ``bluetooth`` module is the stand-in that talks to that bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from insole.paths import FIRMWARE_DIR

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 20.0
# HCI error "connection timeout": what a central sees when its peripheral vanishes.
_REASON_CONNECTION_TIMEOUT = 0x08

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# The radio process


class _HciPort:
    """One TCP port of the radio; the controller behind it is rebuilt per host connection."""

    def __init__(self, link: object, index: int) -> None:
        self.link = link
        self.index = index
        self.active: _HciConnection | None = None


class _HciConnection(asyncio.Protocol):
    def __init__(self, port: _HciPort) -> None:
        self.port = port
        self.controller: object | None = None
        self.transport: asyncio.Transport | None = None
        self.source: object | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        from bumble.controller import Controller
        from bumble.transport.common import StreamPacketSink, StreamPacketSource

        assert isinstance(transport, asyncio.Transport)
        if self.port.active is not None:
            # A second host on the same radio replaces the first (its process died
            # without closing, or a restart raced the old connection).
            self.port.active.power_off()
        self.port.active = self
        self.transport = transport
        self.source = StreamPacketSource()
        self.controller = Controller(
            f"C{self.port.index}",
            host_source=self.source,
            host_sink=StreamPacketSink(transport),
            link=self.port.link,
            # No public address: every device uses its static random address, also as
            # its identity address in pairing, so a bond matches on the next connection.
        )
        # LE Data Length Extension (251-byte link-layer payloads), as the ESP32-S3 and
        # current phones negotiate: a 247-byte MTU notification travels in one packet.
        self.controller.le_acl_data_packet_length = 251

    def data_received(self, data: bytes) -> None:
        if self.source is not None:
            self.source.data_received(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.power_off()

    def power_off(self) -> None:
        """Take the controller off the link; its peers see their connections time out."""
        from bumble import ll

        controller = self.controller
        if controller is None:
            return
        self.controller = None
        if self.port.active is self:
            self.port.active = None
        for connection in list(controller.le_connections.values()):  # type: ignore[attr-defined]
            connection.send_ll_control_pdu(ll.TerminateInd(_REASON_CONNECTION_TIMEOUT))
        controller.le_connections.clear()  # type: ignore[attr-defined]
        controller.le_legacy_advertiser.stop()  # type: ignore[attr-defined]
        for advertising_set in controller.advertising_sets.values():  # type: ignore[attr-defined]
            advertising_set.stop()
        controller.le_scan_enable = False  # type: ignore[attr-defined]
        controller.host = None  # type: ignore[attr-defined]
        if controller in self.port.link.controllers:  # type: ignore[attr-defined]
            self.port.link.remove_controller(controller)  # type: ignore[attr-defined]
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve_radio(n_controllers: int, host: str = LOOPBACK) -> None:
    """Run the radio until cancelled; prints the ports, space-separated, on one line."""
    from bumble.link import LocalLink

    link = LocalLink()
    loop = asyncio.get_running_loop()
    ports: list[int] = []
    servers = []
    for index in range(n_controllers):
        hci_port = _HciPort(link, index)
        server = await loop.create_server(lambda p=hci_port: _HciConnection(p), host, 0)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    print(" ".join(map(str, ports)), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for server in servers:
            server.close()


def _radio_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bumble virtual controllers on loopback TCP")
    parser.add_argument("--controllers", type=int, default=2, help="number of controllers (one per device)")
    parser.add_argument("--host", default=LOOPBACK)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("INSOLE_BLE_LOG", "WARNING").upper())
    try:
        asyncio.run(serve_radio(args.controllers, args.host))
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------------------
# Launchers used by the host (tests, demo)


def _read_first_line(process: subprocess.Popen[str], what: str, timeout_s: float = START_TIMEOUT_S) -> str:
    """The first stdout line of a child that announces its ports, or an error with its stderr."""
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    line = result[0].strip() if result else ""
    if not line:
        process.kill()
        process.wait(timeout=5)
        raise RuntimeError(f"{what} did not start within {timeout_s:.0f} s")
    return line


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes] | None, grace_s: float = 0.0) -> None:
    """Ends a child we started: terminate (with a grace period if asked), then kill."""
    if process is None or process.poll() is not None:
        return
    if grace_s > 0:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait(timeout=5)


class VirtualRadio:
    """Starts the radio process with one controller per device; use as a context manager.

    ``transports[i]`` is the bumble transport name for device ``i``.
    """

    def __init__(self, n_controllers: int = 3, log_path: Path | None = None) -> None:
        self.n_controllers = n_controllers
        self.log_path = log_path
        self.ports: list[int] = []
        self.process: subprocess.Popen[str] | None = None

    @property
    def transports(self) -> list[str]:
        return [f"tcp-client:{LOOPBACK}:{port}" for port in self.ports]

    def start(self) -> VirtualRadio:
        stderr: IO[bytes] | int = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "insole.ble.virtual", "--controllers", str(self.n_controllers)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        try:
            self.ports = [int(p) for p in _read_first_line(self.process, "the virtual radio").split()]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> VirtualRadio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


ECHO_PERIPHERAL = FIRMWARE_DIR / "tests" / "ble_echo_peripheral.py"


class BridgedPeripheral:
    """One insole on the emulated link: the peripheral bridge plus a MicroPython program.

    Start-up order: the bridge first (it attaches to its controller and listens on a
    free loopback port, which it prints), then MicroPython with ``INSOLE_BLE_BRIDGE``
    set to that port (and ``INSOLE_SETTINGS_DIR``, ``INSOLE_SIDE``). The program is
    ``script`` (default: the echo peripheral of the tests); the full firmware can run
    here once its board layer opens the BLE link when ``INSOLE_BLE_BRIDGE`` is set
    (pass ``capture_stdout=False`` unless the program reports on stdout).
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
        script: Path = ECHO_PERIPHERAL,
        args: Sequence[str] = (),
        settings_dir: Path | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        capture_stdout: bool = True,
        heap: str | None = None,
    ) -> None:
        self.controller = controller
        self.capture_stdout = capture_stdout  # False: the program's stdout goes to the log
        self.heap = heap  # MicroPython heap size; default simboard.HEAP
        self.side = side
        self.address = address or ("C0:15:01:00:00:01" if side == "left" else "C0:15:01:00:00:02")
        self.script = script
        self.args = list(args)
        self._own_settings = settings_dir is None
        self.settings_dir = settings_dir or Path(tempfile.mkdtemp(prefix="insole-ble-settings-"))
        self.extra_env = dict(env or {})
        self.log_path = log_path
        self.bridge: subprocess.Popen[str] | None = None
        self.firmware: subprocess.Popen[str] | None = None
        self.bridge_port = 0

    def _stderr(self) -> IO[bytes] | int:
        return open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL

    def start(self) -> BridgedPeripheral:
        stderr = self._stderr()
        try:
            self._start(stderr)
        except BaseException:
            self.stop()  # a half-started insole leaves nothing running
            raise
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        return self

    def _start(self, stderr: IO[bytes] | int) -> None:
        from insole.simboard import HEAP, micropython_env, micropython_executable

        self.bridge = subprocess.Popen(
            [sys.executable, "-m", "insole.ble.peripheral_bridge", "--controller", self.controller,
             "--listen", f"{LOOPBACK}:0", "--address", self.address],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        self.bridge_port = int(_read_first_line(self.bridge, "the peripheral bridge"))
        env = micropython_env(extra_paths=(FIRMWARE_DIR / "tests",))
        env["INSOLE_BLE_BRIDGE"] = f"{LOOPBACK}:{self.bridge_port}"
        env["INSOLE_SETTINGS_DIR"] = str(self.settings_dir)
        env["INSOLE_SIDE"] = self.side
        env.update(self.extra_env)
        self.firmware = subprocess.Popen(
            [micropython_executable(), "-X", f"heapsize={self.heap or HEAP}", str(self.script), *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if self.capture_stdout else stderr,
            stderr=stderr, env=env, text=True,
        )

    def firmware_line(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """The next line the MicroPython program prints (test scripts report on stdout)."""
        assert self.firmware is not None
        return _read_first_line(self.firmware, "the MicroPython program", timeout_s)

    def stop(self) -> None:
        try:
            _stop(self.firmware)
        finally:
            # The bridge ends by itself once MicroPython is gone; give it a moment to take
            # its controller off the link cleanly, then make sure.
            _stop(self.bridge, grace_s=2.0)
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


if __name__ == "__main__":
    _radio_main()
