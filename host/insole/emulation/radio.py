"""The emulated radio: bumble virtual controllers on one link, reachable over loopback TCP.

One controller per device (each insole and the host). Each controller listens on its
own port on 127.0.0.1 (chosen by the OS); a bumble host attaches with the transport
``tcp-client:127.0.0.1:PORT``. Every new host connection to a port gets a fresh
controller, as after a power cycle: when a host goes away (process ended or killed),
its controller leaves the link and the peers of its connections see them drop with
"connection timeout", as a central does when an insole's battery dies.

The link keeps time as a BLE link does (bumble's own ``LocalLink`` delivers every
packet at once): a connection carries data only at its connection events, one every
connection interval (the interval the central chose in its connection request, or a
later connection update). In each event the central and the peripheral take turns,
each packet costing its air time at 1 Mbit/s plus the inter-frame space, up to
``pdus_per_event`` packets per direction (phones cap their connection events) and
within the interval. The controller reports a packet as completed (HCI Number Of
Completed Packets) only once it has gone over the air, so a host that sends faster
than the link carries sees its buffers fill, as on a device. Active scanners receive
each advertiser's own scan response (bumble's controller repeats the advertising
data, to passive scanners too).

The radio runs in its own process (``python -m insole.emulation.radio --controllers N``)
so that it has a CPU of its own; :class:`VirtualRadio` starts and always kills it.
Insoles join it through :class:`insole.emulation.peripheral.BridgedPeripheral`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import functools
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from insole.emulation.process import read_first_line, stop_process

if TYPE_CHECKING:  # bumble is imported where the radio process needs it, not by its launcher
    from bumble import hci
    from bumble.controller import Controller
    from bumble.link import LocalLink
    from bumble.transport.common import StreamPacketSource

LOOPBACK = "127.0.0.1"
# HCI error "connection timeout": what a central sees when its peripheral vanishes.
_REASON_CONNECTION_TIMEOUT = 0x08
# Packets per direction in one connection event: phones cap their events at a few
# packets (4 is at the low end of what iOS and Android devices carry), so the numbers
# measured here are what a phone gives at least.
PDUS_PER_EVENT = 4
_LL_PAYLOAD_MAX = 251  # LE Data Length Extension, as the ESP32-S3 and current phones use
_LL_OVERHEAD_BYTES = 14  # preamble 1, access address 4, header 2, MIC 4, CRC 3
_EMPTY_PDU_US = 80  # an empty PDU (no payload, no MIC) at 1 Mbit/s
_T_IFS_US = 150  # inter-frame space
_US_PER_BYTE = 8  # LE 1M PHY
_EVENT_MARGIN_US = 1250  # the event ends before the next one's anchor
_CONTROL_PDU_BYTES = 12
_DEFAULT_INTERVAL_UNITS = 24  # 30 ms, for a connection whose request was not seen

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# The link's timing: connection events


def _air_us(payload_bytes: int) -> int:
    return (payload_bytes + _LL_OVERHEAD_BYTES) * _US_PER_BYTE


@dataclasses.dataclass
class _Pdu:
    """An L2CAP PDU or an LL control PDU waiting for its connection event."""

    sender: Controller | None
    source: hci.Address
    destination: hci.Address
    payload: Any  # bytes (ACL) or an ll.ControlPdu
    fragments: int  # LL PDUs it takes (and HCI packets the sender completes with it)
    air_us: int
    sender_handle: int = 0  # the sender's connection handle (ACL only)


@dataclasses.dataclass
class _ConnectionEvents:
    """One connection's schedule: its anchor, interval and what each side has queued."""

    central: hci.Address
    peripheral: hci.Address
    interval_s: float
    anchor: float
    queues: dict[hci.Address, collections.deque[_Pdu]]
    task: asyncio.Task[None] | None = None


@functools.cache
def _radio_types() -> tuple[Callable[[int], LocalLink], type[Controller]]:
    """The link and controller classes of the radio process (bumble is imported here)."""
    from bumble import hci, ll
    from bumble.controller import Controller
    from bumble.core import PhysicalTransport
    from bumble.link import LocalLink

    class TimedLink(LocalLink):
        """bumble's local link with connection events (see the module's docstring)."""

        def __init__(self, pdus_per_event: int = PDUS_PER_EVENT) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.pdus_per_event = pdus_per_event
            self.connections: dict[frozenset[hci.Address], _ConnectionEvents] = {}

        # -- what the controllers send --------------------------------------------------

        def send_advertising_pdu(self, sender_controller: Controller, packet: ll.AdvertisingPdu) -> None:
            if isinstance(packet, ll.ConnectInd):
                self._connected(packet)
            super().send_advertising_pdu(sender_controller, packet)

        def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                          transport: PhysicalTransport, data: bytes) -> None:
            if transport != PhysicalTransport.LE:
                super().send_acl_data(sender_controller, destination_address, transport, data)
                return
            source = sender_controller.random_address
            connection = sender_controller.le_connections.get(destination_address)
            fragments = max(1, math.ceil(len(data) / _LL_PAYLOAD_MAX))
            air_us = sum(_air_us(min(_LL_PAYLOAD_MAX, len(data) - i * _LL_PAYLOAD_MAX)) for i in range(fragments))
            completed = getattr(sender_controller, "take_fragments", lambda _handle: 1)
            handle = connection.handle if connection is not None else 0
            self._queue(_Pdu(sender_controller, source, destination_address, bytes(data), fragments, air_us,
                             handle), completes=completed(handle))

        def send_ll_control_pdu(self, sender_address: hci.Address, receiver_address: hci.Address,
                                packet: ll.ControlPdu) -> None:
            # In order with the data: an LL control PDU is a packet of the same connection.
            sender = self.find_le_controller(sender_address)
            self._queue(_Pdu(sender, sender_address, receiver_address, packet, 1, _air_us(_CONTROL_PDU_BYTES)))

        # -- connection events ----------------------------------------------------------

        def _connected(self, connect: ll.ConnectInd) -> None:
            key = frozenset((connect.initiator_address, connect.advertiser_address))
            old = self.connections.pop(key, None)
            if old is not None:
                # What the old connection still had queued (its LL_TERMINATE_IND among
                # it) went out before this new connection could start.
                if old.task is not None:
                    old.task.cancel()
                for queue in old.queues.values():
                    while queue:
                        self._deliver(queue.popleft(), old)
            self.connections[key] = _ConnectionEvents(
                central=connect.initiator_address,
                peripheral=connect.advertiser_address,
                interval_s=connect.interval * 1.25e-3,
                anchor=asyncio.get_running_loop().time(),
                queues={connect.initiator_address: collections.deque(),
                        connect.advertiser_address: collections.deque()},
            )

        def _queue(self, pdu: _Pdu, completes: int = 1) -> None:
            pdu.fragments = max(pdu.fragments, completes)
            key = frozenset((pdu.source, pdu.destination))
            events = self.connections.get(key)
            if events is None:  # a connection whose request this link did not carry
                events = self.connections[key] = _ConnectionEvents(
                    central=pdu.source, peripheral=pdu.destination,
                    interval_s=_DEFAULT_INTERVAL_UNITS * 1.25e-3, anchor=asyncio.get_running_loop().time(),
                    queues={pdu.source: collections.deque(), pdu.destination: collections.deque()},
                )
            events.queues.setdefault(pdu.source, collections.deque()).append(pdu)
            if events.task is None or events.task.done():
                events.task = asyncio.get_running_loop().create_task(self._run(events))

        async def _run(self, events: _ConnectionEvents) -> None:
            loop = asyncio.get_running_loop()
            while any(events.queues.values()):
                # The next anchor strictly after now: what is queued during an event
                # (an answer) waits for the next one, as a host is slower than T_IFS.
                now = loop.time()
                k = math.floor((now - events.anchor) / events.interval_s) + 1
                anchor = events.anchor + k * events.interval_s
                await asyncio.sleep(anchor - now)
                self._event(events, anchor)

        def _event(self, events: _ConnectionEvents, anchor: float) -> None:
            loop = asyncio.get_running_loop()
            budget_us = events.interval_s * 1e6 - _EVENT_MARGIN_US
            sides = (events.central, events.peripheral)
            sent = dict.fromkeys(sides, 0)
            elapsed_us = 0
            while True:
                exchange: list[_Pdu | None] = []
                for side in sides:  # the central transmits first, the peripheral answers
                    queue = events.queues.get(side)
                    pdu = queue[0] if queue else None
                    if pdu is not None and sent[side] + pdu.fragments > self.pdus_per_event:
                        pdu = None
                    exchange.append(pdu)
                if not any(exchange):
                    return
                cost_us = sum((p.air_us if p else _EMPTY_PDU_US) + _T_IFS_US for p in exchange)
                if elapsed_us + cost_us > budget_us and elapsed_us > 0:
                    return
                for side, pdu in zip(sides, exchange, strict=True):
                    elapsed_us += (pdu.air_us if pdu else _EMPTY_PDU_US) + _T_IFS_US
                    if pdu is not None:
                        events.queues[side].popleft()
                        sent[side] += pdu.fragments
                        loop.call_at(anchor + elapsed_us * 1e-6, self._deliver, pdu, events)

        def _deliver(self, pdu: _Pdu, events: _ConnectionEvents) -> None:
            receiver = self.find_le_controller(pdu.destination)
            if isinstance(pdu.payload, bytes):
                if receiver is not None:
                    receiver.on_link_acl_data(pdu.source, PhysicalTransport.LE, pdu.payload)
                # Acknowledged by the peer: the sender's host may use the buffers again.
                if pdu.sender is not None and pdu.sender.find_connection_by_handle(pdu.sender_handle) is not None:
                    pdu.sender.send_hci_packet(hci.HCI_Number_Of_Completed_Packets_Event(
                        connection_handles=[pdu.sender_handle], num_completed_packets=[pdu.fragments]))
                return
            if receiver is not None:
                receiver.on_ll_control_pdu(pdu.source, pdu.payload)
            if isinstance(pdu.payload, ll.ConnectionUpdateInd):
                events.interval_s = pdu.payload.interval * 1.25e-3

    class TimedController(Controller):
        """A controller whose ACL packets complete when the link has carried them, and
        whose scan reports carry the advertiser's own scan response."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fragments: dict[int, int] = collections.defaultdict(int)

        def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
            connection = self.find_connection_by_handle(packet.connection_handle)
            if connection is None:
                super().on_hci_acl_data_packet(packet)
                return
            self.fragments[packet.connection_handle] += 1
            connection.assembler.feed_packet(packet)  # the link completes it when sent

        def take_fragments(self, handle: int) -> int:
            """HCI packets the PDU just assembled on this connection came in."""
            return self.fragments.pop(handle, 1)

        def on_hci_le_set_extended_scan_parameters_command(
            self, command: hci.HCI_LE_Set_Extended_Scan_Parameters_Command
        ) -> hci.HCI_StatusReturnParameters:
            self.le_scan_type = command.scan_types[0] if command.scan_types else 0  # 1: active
            return super().on_hci_le_set_extended_scan_parameters_command(command)

        def on_advertising_pdu(self, pdu: ll.AdvInd | ll.AdvExtInd) -> None:
            scanning = self.le_scan_enable
            if scanning:
                self._report(pdu)
            self.le_scan_enable = False  # the base class would report it again, wrongly
            try:
                super().on_advertising_pdu(pdu)
            finally:
                self.le_scan_enable = scanning

        def _report(self, pdu: ll.AdvInd | ll.AdvExtInd) -> None:
            connectable, scannable, response = self._advertiser(pdu.advertiser_address)
            address = pdu.advertiser_address
            if self.le_features & hci.LeFeatureMask.LE_EXTENDED_ADVERTISING:
                kinds = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
                kind = kinds.LEGACY_ADVERTISING_PDU_USED
                if connectable:
                    kind |= kinds.CONNECTABLE_ADVERTISING
                if scannable:
                    kind |= kinds.SCANNABLE_ADVERTISING
                reports = [(kind, pdu.data)]
                if scannable and self.le_scan_type == 1:  # an active scanner asks for it
                    reports.append((kind | kinds.SCAN_RESPONSE, response))
                for extended_type, data in reports:
                    self.send_hci_packet(hci.HCI_LE_Extended_Advertising_Report_Event([
                        hci.HCI_LE_Extended_Advertising_Report_Event.Report(
                            event_type=extended_type, address_type=address.address_type, address=address,
                            primary_phy=hci.Phy.LE_1M, secondary_phy=0, advertising_sid=0xFF,
                            tx_power=0x7F, rssi=-50, periodic_advertising_interval=0,
                            direct_address_type=0, direct_address=hci.Address.ANY, data=data,
                        )
                    ]))
                return
            legacy = hci.HCI_LE_Advertising_Report_Event.EventType
            first = legacy.ADV_IND if connectable else legacy.ADV_SCAN_IND if scannable else legacy.ADV_NONCONN_IND
            reports_legacy = [(first, pdu.data)]
            if scannable and self.le_scan_type == 1:
                reports_legacy.append((legacy.SCAN_RSP, response))
            for event_type, data in reports_legacy:
                self.send_hci_packet(hci.HCI_LE_Advertising_Report_Event([
                    hci.HCI_LE_Advertising_Report_Event.Report(
                        event_type=event_type, address_type=address.address_type, address=address,
                        data=data, rssi=-50,
                    )
                ]))

        def _advertiser(self, address: hci.Address) -> tuple[bool, bool, bytes]:
            """Whether the advertiser at this address is connectable, scannable, and its scan response."""
            advertiser = self.link.find_le_controller(address) if self.link else None
            if advertiser is not None:
                for advertising_set in advertiser.advertising_sets.values():
                    if advertising_set.enabled and advertising_set.address == address and advertising_set.parameters:
                        properties = advertising_set.parameters.advertising_event_properties
                        return bool(properties & 1), bool(properties & 2), bytes(advertising_set.scan_response_data)
                legacy_advertiser = advertiser.le_legacy_advertiser
                if legacy_advertiser.enabled and legacy_advertiser.address == address:
                    kind = legacy_advertiser.advertising_type  # ADV_IND 0, ADV_SCAN_IND 2, ADV_NONCONN_IND 3
                    return kind == 0, kind in (0, 2), bytes(legacy_advertiser.scan_response_data)
            return True, False, b""

    return TimedLink, TimedController


def radio_link(pdus_per_event: int = PDUS_PER_EVENT) -> LocalLink:
    """A link of this radio (connection events), for controllers made by :func:`radio_controller`."""
    timed_link, _ = _radio_types()
    return timed_link(pdus_per_event)


def radio_controller(name: str, host_source: Any, host_sink: Any, link: LocalLink) -> Controller:
    """A controller of this radio on ``link``, for a bumble host on any transport (or in
    the same process: a controller is its own host's source and sink)."""
    _, timed_controller = _radio_types()
    controller = timed_controller(
        name,
        host_source=host_source,
        host_sink=host_sink,
        link=link,
        # No public address: every device uses its static random address, also as
        # its identity address in pairing, so a bond matches on the next connection.
    )
    # LE Data Length Extension (251-byte link-layer payloads), as the ESP32-S3 and
    # current phones negotiate: a 247-byte MTU notification travels in one packet.
    controller.le_acl_data_packet_length = _LL_PAYLOAD_MAX
    return controller


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
        from bumble.transport.common import StreamPacketSink, StreamPacketSource

        assert isinstance(transport, asyncio.Transport)
        if self.port.active is not None:
            # A second host on the same radio replaces the first (its process died
            # without closing, or a restart raced the old connection).
            self.port.active.power_off()
        self.port.active = self
        self.transport = transport
        self.source = StreamPacketSource()
        self.controller = radio_controller(f"C{self.port.index}", self.source, StreamPacketSink(transport),
                                           self.port.link)

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


async def serve_radio(n_controllers: int, host: str = LOOPBACK, pdus_per_event: int = PDUS_PER_EVENT) -> None:
    """Run the radio until cancelled; prints the ports, space-separated, on one line."""
    link = radio_link(pdus_per_event)
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
    parser.add_argument("--pdus-per-event", type=int, default=PDUS_PER_EVENT,
                        help=f"packets per direction in one connection event (default {PDUS_PER_EVENT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("INSOLE_BLE_LOG", "WARNING").upper())
    try:
        asyncio.run(serve_radio(args.controllers, args.host, args.pdus_per_event))
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------------------
# The launcher used by the host (tests, demo)


class VirtualRadio:
    """Starts the radio process with one controller per device; use as a context manager.

    ``transports[i]`` is the bumble transport name for device ``i``; ``pdus_per_event``
    caps each connection event (see the module's docstring).
    """

    def __init__(self, n_controllers: int = 3, log_path: Path | None = None,
                 pdus_per_event: int = PDUS_PER_EVENT) -> None:
        self.n_controllers = n_controllers
        self.log_path = log_path
        self.pdus_per_event = pdus_per_event
        self.ports: list[int] = []
        self.process: subprocess.Popen[str] | None = None

    @property
    def transports(self) -> list[str]:
        return [f"tcp-client:{LOOPBACK}:{port}" for port in self.ports]

    def start(self) -> VirtualRadio:
        stderr: IO[bytes] | int = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "insole.emulation.radio", "--controllers", str(self.n_controllers),
                 "--pdus-per-event", str(self.pdus_per_event)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # Ctrl-C reaches the host alone (emulation/process.py)
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
