"""Host side of the unix port's ``bluetooth`` stand-in: one bumble peripheral per insole.

The firmware under the MicroPython unix port imports ``firmware/boards/unix/bluetooth.py``,
which forwards every ``BLE`` call over a loopback socket to this bridge. The bridge
owns a bumble :class:`~bumble.device.Device` attached to one virtual controller
(``insole.emulation.radio``) and makes it behave as MicroPython's NimBLE port would:

- the GATT database is built from ``gatts_register_services``; the MicroPython flags
  map onto ATT properties and bumble permissions (``FLAG_WRITE_ENCRYPTED`` →
  ``WRITE_REQUIRES_ENCRYPTION`` …), so bumble refuses an unencrypted write with
  INSUFFICIENT_ENCRYPTION before the firmware sees it;
- ``config(bond=, le_secure=, mitm=, io=)`` become the pairing configuration (LE Secure
  Connections, bonding); the bond keys are stored by the firmware itself through
  ``_IRQ_SET_SECRET``/``_IRQ_GET_SECRET``, as on the device, so they survive a
  firmware restart exactly when the firmware persists them;
- connection, disconnection, MTU exchange, connection update, encryption change,
  remote writes and indication confirmations come back as the IRQ events of the real
  port, with the real event numbers and data tuples;
- notifications take transmit credits (NimBLE's buffer pool); a credit returns when
  the packet has left the host stack, so a firmware that sends too fast sees ENOMEM
  instead of an ever-growing queue.

One quirk of bumble's emulated controller is compensated here: it answers an active
scan with the advertising data again instead of the scan response, so the bridge
advertises ``adv_data + resp_data`` together; a scanner sees what a real active scan
of the device shows, the advertising data and the scan response merged.

Run: ``python -m insole.emulation.bridge --controller tcp-client:127.0.0.1:P
--listen 127.0.0.1:0 [--address C0:15:01:00:00:01]``. It prints the port it listens
on, serves one MicroPython connection and exits when that connection closes.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bumble import gatt, hci, pairing
from bumble.att import Attribute
from bumble.core import UUID
from bumble.device import AdvertisingType, Connection, Device
from bumble.keys import KeyStore, PairingKeys
from bumble.transport import open_transport

logger = logging.getLogger(__name__)

# Messages, both ways: u16 length (of op + body), u8 op, body (see bluetooth.py).
OP_CALL = 0x01
OP_NOTIFY = 0x02
OP_INDICATE = 0x03
OP_WRITE = 0x04
OP_IRQ_RESULT = 0x05
OP_REPLY = 0x81
OP_IRQ = 0x82
OP_REMOTE_WRITE = 0x83
OP_CREDIT = 0x84

# MicroPython's IRQ event numbers.
IRQ_CENTRAL_CONNECT = 1
IRQ_CENTRAL_DISCONNECT = 2
IRQ_GATTS_INDICATE_DONE = 20
IRQ_MTU_EXCHANGED = 21
IRQ_CONNECTION_UPDATE = 27
IRQ_ENCRYPTION_UPDATE = 28
IRQ_GET_SECRET = 29
IRQ_SET_SECRET = 30

# MicroPython's characteristic flags (the low byte is the ATT property byte itself).
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_PERMISSIONS = (
    (FLAG_READ, Attribute.READABLE),
    (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE, Attribute.WRITEABLE),
    (FLAG_READ_ENCRYPTED, Attribute.READ_REQUIRES_ENCRYPTION),
    (FLAG_READ_AUTHENTICATED, Attribute.READ_REQUIRES_ENCRYPTION | Attribute.READ_REQUIRES_AUTHENTICATION),
    (FLAG_READ_AUTHORIZED, Attribute.READ_REQUIRES_AUTHORIZATION),
    (FLAG_WRITE_ENCRYPTED, Attribute.WRITE_REQUIRES_ENCRYPTION),
    (FLAG_WRITE_AUTHENTICATED, Attribute.WRITE_REQUIRES_ENCRYPTION | Attribute.WRITE_REQUIRES_AUTHENTICATION),
    (FLAG_WRITE_AUTHORIZED, Attribute.WRITE_REQUIRES_AUTHORIZATION),
)

# NimBLE's store object type for a peer's security keys; the firmware treats it as opaque.
SECRET_TYPE_PEER = 2
TX_CREDITS = 12  # ESP32 NimBLE's default number of ACL buffers
_MAX_ACL_IN_FLIGHT = 32  # return credits only while the host stack keeps up
_SECRET_TIMEOUT_S = 5.0
_DEFAULT_MTU = 256  # NimBLE's preferred MTU until the firmware sets its own


def flags_to_permissions(flags: int) -> Attribute.Permissions:
    permissions = Attribute.Permissions(0)
    for flag, permission in _PERMISSIONS:
        if flags & flag:
            permissions |= permission
    return permissions


def parse_uuid(text: str) -> UUID:
    return UUID.from_16_bits(int(text, 16)) if len(text) == 4 else UUID(text)


class _Value:
    """One attribute's value as the stack keeps it; remote writes go to the firmware."""

    def __init__(self, bridge: PeripheralBridge) -> None:
        self.bridge = bridge
        self.data = b""
        self.handle = 0
        self.attribute: Attribute[bytes] | None = None

    def read(self, connection: Connection) -> bytes:
        return self.data

    def write(self, connection: Connection, value: bytes) -> None:
        self.data = bytes(value)
        self.bridge.remote_write(connection.handle, self.handle, self.data)


class FirmwareKeyStore(KeyStore):
    """Bond keys kept by the firmware (``_IRQ_GET_SECRET``/``_IRQ_SET_SECRET``), one record per peer."""

    def __init__(self, bridge: PeripheralBridge) -> None:
        self.bridge = bridge

    async def _get_index(self, index: int) -> dict[str, Any] | None:
        value = await self.bridge.ask(IRQ_GET_SECRET, [SECRET_TYPE_PEER, index, None], bytes_at=[2])
        return json.loads(bytes.fromhex(value)) if isinstance(value, str) else None

    async def get(self, name: str) -> PairingKeys | None:
        value = await self.bridge.ask(IRQ_GET_SECRET, [SECRET_TYPE_PEER, 0, name.encode().hex()], bytes_at=[2])
        if not isinstance(value, str):
            return None
        keys = PairingKeys.from_dict(json.loads(bytes.fromhex(value))["keys"])
        self.bridge.bonds[name] = keys
        return keys

    async def update(self, name: str, keys: PairingKeys) -> None:
        record = json.dumps({"name": name, "keys": keys.to_dict()}, separators=(",", ":")).encode()
        if await self.bridge.ask(IRQ_SET_SECRET, [SECRET_TYPE_PEER, name.encode().hex(), record.hex()], bytes_at=[1, 2]):
            self.bridge.bonds[name] = keys

    async def delete(self, name: str) -> None:
        await self.bridge.ask(IRQ_SET_SECRET, [SECRET_TYPE_PEER, name.encode().hex(), None], bytes_at=[1, 2])
        self.bridge.bonds.pop(name, None)

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        entries = []
        for index in range(64):
            record = await self._get_index(index)
            if record is None:
                break
            entries.append((record["name"], PairingKeys.from_dict(record["keys"])))
        return entries


class PeripheralBridge:
    def __init__(self, controller: str, address: str) -> None:
        self.controller_spec = controller
        self.address = hci.Address(address)
        self.device: Device | None = None
        self.transport: Any = None
        self.writer: asyncio.StreamWriter | None = None
        self.values: dict[int, _Value] = {}
        self.adv_data = b""
        self.resp_data = b""
        self.bond = False
        self.le_secure = False
        self.mitm = False
        self.io_capability = pairing.PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
        self.bonds: dict[str, PairingKeys] = {}  # peers whose keys the firmware stored or returned
        self._held_writes: dict[int, list[bytes]] = {}  # per connection, while pairing
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._tx: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._registered = False
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references until each is done

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the socket to MicroPython -----------------------------------------------------

    def send(self, op: int, body: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(struct.pack("<HB", 1 + len(body), op) + body)

    def remote_write(self, conn_handle: int, value_handle: int, data: bytes) -> None:
        message = struct.pack("<HH", conn_handle, value_handle) + data
        held = self._held_writes.get(conn_handle)
        if held is not None:
            # Pairing is finishing here (keys going to the firmware); on NimBLE the
            # encryption event comes before the next ATT request, so this write waits.
            held.append(message)
        else:
            self.send(OP_REMOTE_WRITE, message)

    def irq(self, event: int, data: list[Any], bytes_at: list[int] | None = None, request_id: int | None = None) -> None:
        message: dict[str, Any] = {"e": event, "d": data}
        if bytes_at:
            message["b"] = bytes_at
        if request_id is not None:
            message["id"] = request_id
        self.send(OP_IRQ, json.dumps(message, separators=(",", ":")).encode())

    async def ask(self, event: int, data: list[Any], bytes_at: list[int]) -> Any:
        """An IRQ whose handler's return value the stack needs (the secret store)."""
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFF or 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.irq(event, data, bytes_at, request_id)
        try:
            return await asyncio.wait_for(future, _SECRET_TIMEOUT_S)
        except TimeoutError:
            logger.warning("the firmware did not answer IRQ %d", event)
            return None
        finally:
            self._pending.pop(request_id, None)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        tx_task = asyncio.create_task(self._transmit())
        try:
            while True:
                head = await reader.readexactly(3)
                length, op = struct.unpack("<HB", head)
                body = await reader.readexactly(length - 1)
                await self._on_message(op, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # MicroPython ended
        finally:
            tx_task.cancel()
            writer.close()

    async def _on_message(self, op: int, body: bytes) -> None:
        if op == OP_CALL:
            # In a task of its own: a call may need the firmware's answer to an IRQ
            # (power-on reads the bond store), which arrives on this same socket.
            # MicroPython waits for the reply before sending anything else but such
            # answers, so nothing overtakes the call.
            self._spawn(self._answer_call(json.loads(body)))
        elif op in (OP_NOTIFY, OP_INDICATE):
            self._tx.put_nowait((op, body))
        elif op == OP_WRITE:
            handle, send_update = struct.unpack_from("<HB", body)
            value = self.values.get(handle)
            if value is not None:
                value.data = body[3:]  # readable at once
                if send_update:
                    self._tx.put_nowait((op, body))  # subscribers hear of it in turn
        elif op == OP_IRQ_RESULT:
            (request_id,) = struct.unpack_from("<H", body)
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                future.set_result(json.loads(body[2:]).get("r"))

    async def _answer_call(self, request: dict[str, Any]) -> None:
        try:
            reply: dict[str, Any] = {"r": await self._call(request["m"], *request["a"])}
        except OSError as exc:
            reply = {"e": exc.errno or errno.EIO}
        except Exception:
            logger.exception("bluetooth call %s failed", request["m"])
            reply = {"e": errno.EIO}
        self.send(OP_REPLY, json.dumps(reply).encode())

    async def _transmit(self) -> None:
        """Sends notifications and indications in order; each returns its credit when gone."""
        while True:
            op, body = await self._tx.get()
            if op == OP_WRITE:
                (value_handle,) = struct.unpack_from("<H", body)
                await self._update_subscribers(value_handle, body[3:])
                continue
            conn_handle, value_handle = struct.unpack_from("<HH", body)
            data = body[4:]
            device = self.device
            connection = device.lookup_connection(conn_handle) if device else None
            attribute = device.gatt_server.get_attribute(value_handle) if device else None
            if device is None or connection is None or attribute is None:
                self.send(OP_CREDIT, struct.pack("<H", 1))
                continue
            if op == OP_NOTIFY:
                await device.notify_subscriber(connection, attribute, data)
                queue = connection.data_packet_queue
                if queue is not None and queue.pending > _MAX_ACL_IN_FLIGHT:
                    await connection.drain()
                self.send(OP_CREDIT, struct.pack("<H", 1))
            else:
                self._spawn(self._indicate(connection, attribute, data))

    async def _update_subscribers(self, value_handle: int, data: bytes) -> None:
        # gatts_write(..., send_update=True): each subscribed client by its own choice,
        # notification or indication (no credit: the firmware did not ask for one).
        device = self.device
        attribute = device.gatt_server.get_attribute(value_handle) if device else None
        if device is None or attribute is None:
            return
        await device.notify_subscribers(attribute, data)
        self._spawn(device.indicate_subscribers(attribute, data))

    async def _indicate(self, connection: Connection, attribute: Attribute[bytes], data: bytes) -> None:
        status = 0
        try:
            await self._require_device().indicate_subscriber(connection, attribute, data)
        except Exception:
            status = 0x0E  # unlikely error: timeout or link lost
        self.send(OP_CREDIT, struct.pack("<H", 1))
        self.irq(IRQ_GATTS_INDICATE_DONE, [connection.handle, attribute.handle, status])

    # -- BLE calls ---------------------------------------------------------------------

    async def _call(self, method: str, *args: Any) -> Any:
        handler: Callable[..., Awaitable[Any]] | None = getattr(self, f"_call_{method}", None)
        if handler is None:
            raise OSError(errno.EOPNOTSUPP, method)
        return await handler(*args)

    async def _call_active(self, on: bool) -> bool:
        if on and self.device is None:
            await self._power_on()
        return self.device is not None

    async def _call_config_set(self, settings: dict[str, Any]) -> None:
        device = self._require_device()
        for key, value in settings.items():
            if key == "gap_name":
                self._set_name(str(value))
            elif key == "mtu":
                if not 23 <= int(value) <= 517:
                    raise OSError(errno.EINVAL)
                device.gatt_server.max_mtu = int(value)
            elif key == "bond":
                self.bond = bool(value)
            elif key == "le_secure":
                self.le_secure = bool(value)
            elif key == "mitm":
                self.mitm = bool(value)
            elif key == "io":
                self.io_capability = pairing.PairingDelegate.IoCapability(int(value))
            elif key in ("addr_mode", "rxbuf"):
                pass  # fixed static random address; buffers are the host's
            else:
                raise OSError(errno.EINVAL, key)

    async def _call_config_get(self, key: str) -> Any:
        device = self._require_device()
        if key == "mac":
            return [1, bytes(reversed(bytes(self.address))).hex()]  # random static, MSB first
        if key == "mtu":
            return device.gatt_server.max_mtu
        if key == "gap_name":
            return device.name
        raise OSError(errno.EINVAL, key)

    async def _call_register(self, spec: list[Any]) -> list[list[int]]:
        device = self._require_device()
        if self._registered:
            raise OSError(errno.EALREADY)  # the emulation builds the database once
        services = []
        groups: list[list[_Value]] = []
        for service_uuid, characteristics in spec:
            service_characteristics = []
            group: list[_Value] = []  # value handles in MicroPython's order
            for uuid, flags, descriptors in characteristics:
                value = _Value(self)
                descriptor_values = [_Value(self) for _ in descriptors]
                characteristic: gatt.Characteristic[bytes] = gatt.Characteristic(
                    parse_uuid(uuid),
                    gatt.Characteristic.Properties(flags & 0xFF),
                    flags_to_permissions(flags),
                    gatt.CharacteristicValue(read=value.read, write=value.write),
                    descriptors=[
                        gatt.Descriptor(parse_uuid(d_uuid), flags_to_permissions(d_flags),
                                        gatt.CharacteristicValue(read=d_value.read, write=d_value.write))
                        for (d_uuid, d_flags), d_value in zip(descriptors, descriptor_values, strict=True)
                    ],
                )
                value.attribute = characteristic
                for descriptor, d_value in zip(characteristic.descriptors, descriptor_values, strict=True):
                    d_value.attribute = descriptor
                group += [value, *descriptor_values]
                service_characteristics.append(characteristic)
            services.append(gatt.Service(parse_uuid(service_uuid), service_characteristics))
            groups.append(group)
        device.add_services(services)
        self._registered = True
        handles = []
        for group in groups:
            for value in group:
                assert value.attribute is not None
                value.handle = value.attribute.handle
                self.values[value.handle] = value
            handles.append([value.handle for value in group])
        return handles

    async def _call_advertise(self, interval_us: int | None, adv_hex: str | None, resp_hex: str | None,
                              connectable: bool) -> None:
        device = self._require_device()
        if adv_hex is not None:
            self.adv_data = bytes.fromhex(adv_hex)
        if resp_hex is not None:
            self.resp_data = bytes.fromhex(resp_hex)
        if interval_us is None:
            await device.stop_advertising()
            return
        interval_ms = max(20.0, interval_us / 1000)
        await device.start_advertising(
            advertising_type=(AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE if connectable
                              else AdvertisingType.UNDIRECTED_SCANNABLE),
            # The emulated controller repeats the advertising data as scan response,
            # so both go in the advertising data (what an active scanner shows anyway).
            advertising_data=self.adv_data + self.resp_data,
            advertising_interval_min=interval_ms,
            advertising_interval_max=interval_ms,
        )

    async def _call_disconnect(self, conn_handle: int) -> bool:
        connection = self._require_device().lookup_connection(conn_handle)
        if connection is None:
            return False
        await connection.disconnect()
        return True

    async def _call_pair(self, conn_handle: int) -> None:
        device = self._require_device()
        connection = device.lookup_connection(conn_handle)
        if connection is None:
            raise OSError(errno.ENOTCONN)
        device.request_pairing(connection)  # a peripheral asks; the central pairs

    async def _call_exchange_mtu(self, conn_handle: int) -> None:
        device = self._require_device()
        connection = device.lookup_connection(conn_handle)
        if connection is None:
            raise OSError(errno.ENOTCONN)

        async def exchange() -> None:
            try:
                await connection.gatt_client.request_mtu(device.gatt_server.max_mtu)
            except Exception:
                logger.info("MTU exchange from the peripheral failed", exc_info=True)

        self._spawn(exchange())

    # -- the bumble device -------------------------------------------------------------

    def _require_device(self) -> Device:
        if self.device is None:
            raise OSError(errno.EPERM)  # BLE().active(True) first, as on the device
        return self.device

    def _set_name(self, name: str) -> None:
        device = self._require_device()
        device.name = name
        for attribute in device.gatt_server.attributes:
            if attribute.type == gatt.GATT_DEVICE_NAME_CHARACTERISTIC:
                attribute.value = name.encode()

    async def _power_on(self) -> None:
        self.transport = await open_transport(self.controller_spec)
        device = Device.with_hci("MPY NIMBLE", self.address, self.transport.source, self.transport.sink)
        device.keystore = FirmwareKeyStore(self)
        device.gatt_server.max_mtu = _DEFAULT_MTU
        device.pairing_config_factory = lambda connection: pairing.PairingConfig(
            sc=True,  # NimBLE offers LE Secure Connections whether or not it insists on them
            mitm=self.mitm,
            bonding=self.bond,
            delegate=pairing.PairingDelegate(io_capability=self.io_capability),
        )
        device.on("connection", self._on_connection)
        await device.power_on()
        self.device = device

    def _on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        address = connection.peer_address
        self.irq(IRQ_CENTRAL_CONNECT, [handle, address.address_type, bytes(reversed(bytes(address))).hex()], [2])

        def on_disconnection(reason: int) -> None:
            self._held_writes.pop(handle, None)
            self.irq(IRQ_CENTRAL_DISCONNECT, [handle, address.address_type, bytes(reversed(bytes(address))).hex()], [2])

        def on_mtu() -> None:
            self.irq(IRQ_MTU_EXCHANGED, [handle, connection.att_mtu])

        def on_parameters() -> None:
            p = connection.parameters
            self.irq(IRQ_CONNECTION_UPDATE, [handle, round(p.connection_interval / 1.25), p.peripheral_latency,
                                             round(p.supervision_timeout / 10), 0])

        def on_pairing_start() -> None:
            self._held_writes.setdefault(handle, [])

        def on_pairing_done(*_: object) -> None:
            # NimBLE reports the encryption change once pairing and key storage are
            # done, before it handles the next request on the link.
            self._encryption_update(connection)
            for message in self._held_writes.pop(handle, []):
                self.send(OP_REMOTE_WRITE, message)

        def on_encryption() -> None:
            if handle not in self._held_writes:
                self._encryption_update(connection)

        connection.on("disconnection", on_disconnection)
        connection.on("connection_att_mtu_update", on_mtu)
        connection.on("connection_parameters_update", on_parameters)
        connection.on("pairing_start", on_pairing_start)
        connection.on("pairing", on_pairing_done)
        connection.on("pairing_failure", on_pairing_done)
        connection.on("connection_encryption_change", on_encryption)

    def _encryption_update(self, connection: Connection) -> None:
        encrypted = bool(connection.encryption)
        keys = self.bonds.get(str(connection.peer_address)) if encrypted else None
        # Authenticated means MITM-protected keys (not Just Works), as NimBLE reports it.
        authenticated = bool(keys and keys.ltk and keys.ltk.authenticated)
        self.irq(IRQ_ENCRYPTION_UPDATE, [connection.handle, int(encrypted), int(authenticated),
                                         int(keys is not None), connection.encryption_key_size])

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()


async def run_bridge(controller: str, listen: str, address: str) -> None:
    bridge = PeripheralBridge(controller, address)
    host, port = listen.rsplit(":", 1)
    served = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if served.is_set():
            writer.close()  # one firmware per bridge
            return
        try:
            bridge.writer = writer
            writer.write(struct.pack("<HBH", 3, OP_CREDIT, TX_CREDITS))
            await bridge.serve(reader, writer)
        finally:
            served.set()

    server = await asyncio.start_server(on_client, host, int(port))
    print(server.sockets[0].getsockname()[1], flush=True)
    try:
        await served.wait()
    finally:
        server.close()
        await bridge.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="bumble peripheral for the unix port's bluetooth stand-in")
    parser.add_argument("--controller", required=True, help="bumble transport, e.g. tcp-client:127.0.0.1:9001")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port for MicroPython (0 = any free port)")
    parser.add_argument("--address", default="C0:15:01:00:00:01", help="static random address of this insole")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("INSOLE_BLE_LOG", "WARNING").upper())
    try:
        asyncio.run(run_bridge(args.controller, args.listen, args.address))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
