"""The emulated radio: bumble virtual controllers on one link, reachable over loopback TCP.

One controller per device (each insole and the host). Each controller listens on its
own port on 127.0.0.1 (chosen by the OS); a bumble host attaches with the transport
``tcp-client:127.0.0.1:PORT``. Every new host connection to a port gets a fresh
controller, as after a power cycle: when a host goes away (process ended or killed),
its controller leaves the link and the peers of its connections see them drop with
"connection timeout", as a central does when an insole's battery dies.

The radio runs in its own process (``python -m insole.emulation.radio --controllers N``)
so that it has a CPU of its own; :class:`VirtualRadio` starts and always kills it.
Insoles join it through :class:`insole.emulation.peripheral.BridgedPeripheral`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from insole.emulation.process import read_first_line, stop_process

if TYPE_CHECKING:  # bumble is imported where the radio process needs it, not by its launcher
    from bumble.controller import Controller
    from bumble.link import LocalLink
    from bumble.transport.common import StreamPacketSource

LOOPBACK = "127.0.0.1"
# HCI error "connection timeout": what a central sees when its peripheral vanishes.
_REASON_CONNECTION_TIMEOUT = 0x08

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# The radio process


class _HciPort:
    """One TCP port of the radio; the controller behind it is rebuilt per host connection."""

    def __init__(self, link: LocalLink, index: int) -> None:
        self.link = link
        self.index = index
        self.active: _HciConnection | None = None


class _HciConnection(asyncio.Protocol):
    def __init__(self, port: _HciPort) -> None:
        self.port = port
        self.controller: Controller | None = None
        self.transport: asyncio.Transport | None = None
        self.source: StreamPacketSource | None = None

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
            self.source.data_received(data)

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
        for connection in list(controller.le_connections.values()):
            connection.send_ll_control_pdu(ll.TerminateInd(_REASON_CONNECTION_TIMEOUT))
        controller.le_connections.clear()
        controller.le_legacy_advertiser.stop()
        for advertising_set in controller.advertising_sets.values():
            advertising_set.stop()
        controller.le_scan_enable = False
        controller.host = None
        if controller in self.port.link.controllers:
            self.port.link.remove_controller(controller)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve_radio(n_controllers: int, host: str = LOOPBACK) -> None:
    """Run the radio until cancelled; prints the ports, space-separated, on one line."""
    from bumble.link import LocalLink

    link = LocalLink()  # type: ignore[no-untyped-call]  # bumble leaves its __init__ unannotated
    loop = asyncio.get_running_loop()
    ports: list[int] = []
    servers = []
    for index in range(n_controllers):
        hci_port = _HciPort(link, index)
        server = await loop.create_server(functools.partial(_HciConnection, hci_port), host, 0)
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
# The launcher used by the host (tests, demo)


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
                [sys.executable, "-m", "insole.emulation.radio", "--controllers", str(self.n_controllers)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        try:
            self.ports = [int(p) for p in read_first_line(self.process, "the virtual radio").split()]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> VirtualRadio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _radio_main()
