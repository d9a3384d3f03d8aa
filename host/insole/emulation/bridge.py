"""Host side of the unix port's ``bluetooth`` stand-in: one bumble peripheral per insole.

The firmware under the MicroPython unix port imports ``firmware/boards/unix/bluetooth.py``,
which forwards every ``BLE`` call over a loopback socket to this bridge. The bridge
owns a bumble :class:`~bumble.device.Device` on one HCI transport (a controller of the
emulated radio, ``insole.emulation.radio``, or any bumble transport: a USB dongle) and
makes it behave as MicroPython's binding of NimBLE on an ESP32 does, not as bumble's
defaults do. Sources: MicroPython's ``extmod/nimble/modbluetooth_nimble.c``,
``extmod/modbluetooth.c`` and ``docs/library/bluetooth.rst``; NimBLE as ESP-IDF ships it
(espressif/esp-nimble, ``nimble/host/src/``). Each rule below names where it comes from.

- GATT database from ``gatts_register_services``; MicroPython's characteristic flags are
  NimBLE's own (modbluetooth_nimble.c passes them through). Access is checked as
  ``ble_att_svr_check_perms`` does: a read without FLAG_READ is refused with 0x02, a
  write without FLAG_WRITE/FLAG_WRITE_NO_RESPONSE with 0x03; an attribute that needs
  encryption on an unencrypted link answers 0x0F (Insufficient Encryption) when the
  store holds an LTK for the peer and 0x05 (Insufficient Authentication) otherwise.
  Descriptors carry no security flags (modbluetooth_nimble.c keeps READ/WRITE only).
  A CCCD write must be 2 bytes (0x0D) and ask only for what the characteristic
  offers (0x06), as ``ble_gatts_clt_cfg_access_locked`` checks.
- ``gatts_notify``/``gatts_indicate`` send whether or not the central subscribed
  (bluetooth.rst); ``gatts_write(..., True)`` reaches subscribers only, each by its
  CCCD: a notification if it enabled notifications, else an indication.
- Transmit credits model NimBLE's buffer pool: each notification or indication takes
  one, returned once the controller reports the packet sent (over the air on the
  emulated radio), so a firmware that sends faster than the link carries sees ENOMEM.
- The bond store is the firmware's, through ``_IRQ_GET_SECRET``/``_IRQ_SET_SECRET``,
  in NimBLE's own records (see :class:`SecRecord` and :class:`NimbleKeyStore`): two
  per bond, keyed by the peer's identity address, plus our IRK. Peers' IRKs (to
  resolve their private addresses) are loaded once, during ``active(True)``, and
  added when a bond is stored: a handler registered after ``active(True)`` loses them.
  A refused store write is handled as NimBLE does through MicroPython (the link stays
  encrypted and is reported bonded, the bond is not stored); a store whose delete
  never reports "not found" hangs NimBLE, which ends this emulated insole (loudly).
- Connection, disconnection, MTU exchange, connection update, encryption change
  (with NimBLE's ``sec_state``), remote writes and indication confirmations come back
  as the IRQ events of the real port, with its event numbers and data tuples.

Run: ``python -m insole.emulation.bridge --controller TRANSPORT --listen 127.0.0.1:0
[--address C0:15:01:00:00:01]``. It opens the transport first (a ``tcp-server:``
transport waits for its controller to connect), prints the port it listens on, serves
one MicroPython connection and exits when that connection closes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import json
import logging
import os
import secrets
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

from bumble import gatt, hci, pairing, smp
from bumble.att import (
    ATT_INSUFFICIENT_AUTHENTICATION_ERROR,
    ATT_INSUFFICIENT_ENCRYPTION_ERROR,
    ATT_INVALID_ATTRIBUTE_LENGTH_ERROR,
    ATT_READ_NOT_PERMITTED_ERROR,
    ATT_REQUEST_NOT_SUPPORTED_ERROR,
    ATT_WRITE_NOT_PERMITTED_ERROR,
    ATT_Error,
    Attribute,
    Bearer,
)
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

# MicroPython's characteristic flags, NimBLE's BLE_GATT_CHR_F_* (the low byte is the
# ATT property byte itself).
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
_DESCRIPTOR_FLAGS = FLAG_READ | FLAG_WRITE | FLAG_WRITE_NO_RESPONSE  # modbluetooth_nimble.c
_CCCD_NOTIFY = 0x0001
_CCCD_INDICATE = 0x0002

TX_CREDITS = 12  # ESP32 NimBLE's default number of ACL buffers
_SECRET_TIMEOUT_S = 5.0
_DEFAULT_MTU = 256  # NimBLE's preferred MTU until the firmware sets its own
# A store loop NimBLE runs until the store says "no more" (ble_store_util_delete_all,
# ble_store_iterate): here it gives up after this many rounds and calls the hang.
_STORE_LOOP_LIMIT = 64

# -- NimBLE's bond records, as MicroPython hands them to _IRQ_GET/SET_SECRET ------------

# Object types (ble_store.h), and MicroPython's own for our IRK (modbluetooth_nimble.c:
# SECRET_TYPE_OUR_IRK, key b"irk", value the 16-byte IRK).
STORE_OUR_SEC = 1
STORE_PEER_SEC = 2
SECRET_TYPE_OUR_IRK = 10
OUR_IRK_KEY = b"irk"
# ble_hs_pvcy.c: the IRK NimBLE uses when none was set (load_irk could not store one).
NIMBLE_DEFAULT_IRK = bytes.fromhex("ef8de2164fec430dbf5bdd34c0531eb8")
# struct ble_store_value_sec (esp-nimble's ble_store.h) as GCC lays it out for the
# ESP32 (uint64 aligned to 8): peer_addr {type, val[6]}, bond_count, key_size, ediv,
# rand_num, ltk[16], ltk_present, irk[16], irk_present, csrk[16], csrk_present,
# sign_counter, authenticated (bit 0) and sc (bit 1). 88 bytes.
_VALUE_SEC = struct.Struct("<B6sxHBxHxxQ16sB16sB16sBxIBxxxxxxx")
VALUE_SEC_SIZE = _VALUE_SEC.size


def store_key(address: hci.Address) -> bytes:
    """The key MicroPython passes for a peer: its ble_addr_t (type, then 6 bytes LSB first)."""
    return bytes((address.address_type & 1,)) + bytes(address)


@dataclasses.dataclass
class SecRecord:
    """One ble_store_value_sec: our keys for a peer (type 1) or the peer's (type 2)."""

    peer: hci.Address  # the peer's identity address
    key_size: int = 16
    ediv: int = 0
    rand: int = 0
    ltk: bytes | None = None
    irk: bytes | None = None
    csrk: bytes | None = None
    authenticated: bool = False
    sc: bool = True

    def pack(self) -> bytes:
        return _VALUE_SEC.pack(
            self.peer.address_type & 1, bytes(self.peer), 0, self.key_size, self.ediv, self.rand,
            self.ltk or bytes(16), int(self.ltk is not None), self.irk or bytes(16), int(self.irk is not None),
            self.csrk or bytes(16), int(self.csrk is not None), 0, int(self.authenticated) | int(self.sc) << 1,
        )

    @classmethod
    def unpack(cls, value: bytes | None) -> SecRecord | None:
        """The record, or None where MicroPython's binding reads nothing: no value, or a
        value not of the struct's size (ble_secret_store_read: BLE_HS_ENOENT)."""
        if value is None or len(value) != VALUE_SEC_SIZE:
            return None
        (addr_type, addr, _bond_count, key_size, ediv, rand, ltk, ltk_present, irk, irk_present, csrk,
         csrk_present, _sign_counter, bits) = _VALUE_SEC.unpack(value)
        return cls(
            peer=hci.Address(addr, hci.AddressType(addr_type & 1)), key_size=key_size, ediv=ediv, rand=rand,
            ltk=ltk if ltk_present & 1 else None, irk=irk if irk_present & 1 else None,
            csrk=csrk if csrk_present & 1 else None, authenticated=bool(bits & 1), sc=bool(bits & 2),
        )


class BridgeWedged(Exception):
    """NimBLE would loop forever here on the device; the emulated insole stops."""


class NimbleKeyStore(KeyStore):
    """NimBLE's bond store as MicroPython's binding drives it, over the firmware's IRQs.

    - ``_IRQ_GET_SECRET(type, index, key)``: a keyed read (``key`` = :func:`store_key`)
      or, with ``key`` None, the index-th record of the type (ble_store_iterate);
    - ``_IRQ_SET_SECRET(type, key, value)``: write, or delete with ``value`` None. A
      False from a write is BLE_HS_ESTORE_CAP; from a delete, BLE_HS_ENOENT.

    ``resolving`` is the controller's resolving list: the peers' IRKs loaded during
    ``active(True)`` (:meth:`restore_irks`) and those of bonds stored since.
    """

    def __init__(self, bridge: PeripheralBridge) -> None:
        self.bridge = bridge
        self.resolving: dict[str, tuple[bytes, hci.Address]] = {}
        self.restored: dict[str, SecRecord] = {}  # per peer, our record its last LTK lookup found

    # -- the firmware's store ------------------------------------------------------------

    async def read(self, sec_type: int, key: bytes | None, index: int = 0) -> bytes | None:
        value = await self.bridge.ask(IRQ_GET_SECRET, [sec_type, index, None if key is None else key.hex()],
                                      bytes_at=[2])
        return bytes.fromhex(value) if isinstance(value, str) else None

    async def write(self, sec_type: int, key: bytes, value: bytes | None) -> bool:
        answer = await self.bridge.ask(IRQ_SET_SECRET, [sec_type, key.hex(), None if value is None else value.hex()],
                                       bytes_at=[1, 2])
        return bool(answer)  # modbluetooth.c: mp_obj_is_true(result)

    async def read_record(self, sec_type: int, address: hci.Address) -> SecRecord | None:
        return SecRecord.unpack(await self.read(sec_type, store_key(address)))

    # -- NimBLE's procedures -------------------------------------------------------------

    async def restore_irks(self) -> None:
        """ble_hs_misc_restore_irks: each peer record's IRK into the resolving list.
        ble_store_iterate stops at the first index that reads nothing."""
        for index in range(256):  # the index is a u8 (ble_store_key_sec.idx)
            record = SecRecord.unpack(await self.read(STORE_PEER_SEC, None, index))
            if record is None:
                return
            if record.irk is not None:
                self.resolving[str(record.peer)] = (record.irk, record.peer)

    async def load_our_irk(self) -> bytes:
        """modbluetooth_nimble.c load_irk: our IRK from the store, or a new one stored
        there; applying an IRK clears the peers' (ble_hs_pvcy_set_our_irk), so they are
        restored again. If the new one cannot be stored NimBLE keeps its default."""
        irk = await self.read(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY)
        if irk is None or len(irk) != 16:
            irk = secrets.token_bytes(16)
            if not await self.write(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY, irk):
                return NIMBLE_DEFAULT_IRK
        self.resolving.clear()
        await self.restore_irks()
        return irk

    async def persist(self, sec_type: int, record: SecRecord) -> bool:
        """ble_store_write with MicroPython's store: on BLE_HS_ESTORE_CAP the overflow
        event goes to ble_store_util_status_rr, which unpairs the oldest peer
        (ble_gap_unpair_oldest_peer) and retries; False when the write is abandoned."""
        key, value = store_key(record.peer), record.pack()
        for _ in range(_STORE_LOOP_LIMIT):
            if await self.write(sec_type, key, value):
                return True
            oldest = await self.oldest_bonded_peer()
            if oldest is None:
                logger.info("store full: the bond with %s is not stored (type %d)", record.peer, sec_type)
                return False  # BLE_HS_ENOENT; ble_sm_persist_keys ignores it
            await self.unpair(oldest)
        return False

    async def oldest_bonded_peer(self) -> hci.Address | None:
        """ble_store_util_bonded_peers iterates OUR_SEC records with the key BLE_ADDR_ANY.
        MicroPython's binding asserts that an OUR_SEC read has an address, but asserts are
        compiled out on the ESP32 (ports/esp32/boards/sdkconfig.base:
        CONFIG_COMPILER_OPTIMIZATION_ASSERTIONS_DISABLE), so it passes those seven zero
        bytes as a key: a store keyed by address finds nothing, and nothing is evicted."""
        record = SecRecord.unpack(await self.read(STORE_OUR_SEC, bytes(7), 0))
        return record.peer if record is not None else None

    async def unpair(self, address: hci.Address) -> None:
        """ble_gap_unpair: end any link with the peer, forget its IRK and delete its bond."""
        device = self.bridge.device
        if device is not None:
            for connection in list(device.connections.values()):
                if connection.peer_address == address:
                    self.bridge.spawn(connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR))
        self.resolving.pop(str(address), None)
        await self.delete_peer(address)

    async def delete_peer(self, address: hci.Address) -> None:
        """ble_store_util_delete_peer: each sec type deleted until the store says "not
        found" (ble_store_util_delete_all); MicroPython never stores CCCD records."""
        key = store_key(address)
        for sec_type in (STORE_OUR_SEC, STORE_PEER_SEC):
            for _ in range(_STORE_LOOP_LIMIT):
                if not await self.write(sec_type, key, None):
                    break
            else:
                self.bridge.wedge(
                    f"ble_store_util_delete_all: _IRQ_SET_SECRET({sec_type}, key, None) returned True "
                    f"{_STORE_LOOP_LIMIT} times for {address}; NimBLE deletes until the store answers False "
                    "(not found), so on the device it loops forever"
                )

    # -- bumble's KeyStore ---------------------------------------------------------------

    async def get(self, name: str) -> PairingKeys | None:
        """Our keys for a peer (the LTK a re-encrypting central uses): ble_sm_retrieve_ltk
        reads OUR_SEC by the peer's identity address (MicroPython ignores ediv/rand)."""
        record = await self.read_record(STORE_OUR_SEC, hci.Address(name))
        if record is None or record.ltk is None:
            return None
        self.restored[name] = record
        return PairingKeys(address_type=record.peer.address_type,
                           ltk=PairingKeys.Key(value=record.ltk, authenticated=record.authenticated))

    async def update(self, name: str, keys: PairingKeys) -> None:
        """ble_sm_persist_keys: after a pairing with bonding (both sides asked for it),
        our keys, then the peer's; a stored peer IRK joins the resolving list
        (ble_store_write_peer_sec). Failed writes are ignored, as there."""
        session = self.bridge.pairing_session(name)
        bonding = session.bonding if session is not None else True
        if session is not None:
            self.bridge.pairing_bonded[session.connection.handle] = bonding
        if not bonding:
            return
        peer = hci.Address(name)
        our_ltk = keys.ltk or keys.ltk_central  # bumble files the responder's own LTK as ltk_central
        peer_ltk = keys.ltk or keys.ltk_peripheral
        authenticated = any(k is not None and k.authenticated for k in (keys.ltk, keys.ltk_central, keys.irk))
        key_size = (session.connection.encryption_key_size if session is not None else 0) or 16
        sc = bool(session.sc) if session is not None else True
        device = self.bridge.device
        ours = SecRecord(peer, key_size=key_size, ltk=our_ltk.value if our_ltk else None,
                         irk=device.irk if device is not None else None, authenticated=authenticated, sc=sc)
        theirs = SecRecord(peer, key_size=key_size, ltk=peer_ltk.value if peer_ltk else None,
                           irk=keys.irk.value if keys.irk else None, csrk=keys.csrk.value if keys.csrk else None,
                           authenticated=authenticated, sc=sc)
        await self.persist(STORE_OUR_SEC, ours)
        if await self.persist(STORE_PEER_SEC, theirs) and theirs.irk is not None:
            self.resolving[name] = (theirs.irk, peer)

    async def delete(self, name: str) -> None:
        await self.unpair(hci.Address(name))

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        return []  # bumble needs it only for the resolving list, given below

    async def get_resolving_keys(self) -> list[tuple[bytes, hci.Address]]:
        return list(self.resolving.values())


class _NimbleDelegate(pairing.PairingDelegate):
    """Accepts a pairing request as NimBLE does: after giving a repeat pairing its due."""

    def __init__(self, bridge: PeripheralBridge, connection: Connection,
                 io_capability: pairing.PairingDelegate.IoCapability) -> None:
        super().__init__(io_capability=io_capability)
        self.bridge = bridge
        self.connection = connection

    async def accept(self) -> bool:
        return await self.bridge.on_pairing_request(self.connection)


class _Value:
    """One attribute's value as the stack keeps it; access is checked as NimBLE does and
    remote writes go to the firmware."""

    def __init__(self, bridge: PeripheralBridge, flags: int) -> None:
        self.bridge = bridge
        self.flags = flags
        self.data = b""
        self.handle = 0
        self.attribute: Attribute[bytes] | None = None

    async def read(self, connection: Connection) -> bytes:
        await self.bridge.check_access(connection, self.flags, reading=True)
        return self.data

    async def write(self, connection: Connection, value: bytes) -> None:
        await self.bridge.check_access(connection, self.flags, reading=False)
        self.data = bytes(value)
        self.bridge.remote_write(connection.handle, self.handle, self.data)


@dataclasses.dataclass
class _SecState:
    """NimBLE's ble_gap_sec_state of one link, as _IRQ_ENCRYPTION_UPDATE reports it."""

    encrypted: bool = False
    authenticated: bool = False
    bonded: bool = False
    key_size: int = 0


def parse_uuid(text: str) -> UUID:
    return UUID.from_16_bits(int(text, 16)) if len(text) == 4 else UUID(text)


def _is_tcp_server(spec: str) -> bool:
    return spec.startswith("tcp-server:")


class PeripheralBridge:
    def __init__(self, controller: str, address: str) -> None:
        self.controller_spec = controller
        self.address = hci.Address(address)
        self.device: Device | None = None
        self.transport: Any = None
        self.writer: asyncio.StreamWriter | None = None
        self.keystore = NimbleKeyStore(self)
        self.values: dict[int, _Value] = {}
        self.adv_data = b""
        self.resp_data = b""
        self.bond = False
        self.le_secure = False
        self.mitm = False
        self.io_capability = pairing.PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
        self.security: dict[int, _SecState] = {}  # per connection handle
        self.pairing_bonded: dict[int, bool] = {}  # per connection: the pairing that just ended bonded
        self.wedged = False
        self._held_writes: dict[int, list[bytes]] = {}  # per connection, while pairing
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._tx: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._credits_due: deque[int] = deque()  # completed-packet counts at which a credit returns
        self._registered = False
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references until each is done

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_failure)

    def wedge(self, reason: str) -> NoReturn:
        """NimBLE's host task would never return on the device: the insole stops here."""
        logger.critical("%s; the emulated insole stops, as the device would hang", reason)
        print(f"insole bridge: {reason}; the emulated insole stops, as the device would hang",
              file=sys.stderr, flush=True)
        self.wedged = True
        if self.writer is not None:
            self.writer.close()  # the stand-in ends the MicroPython program
        raise BridgeWedged(reason)

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
        if self.wedged:
            raise BridgeWedged("the emulated insole has stopped")
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
            self.spawn(self._answer_call(json.loads(body)))
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
        except BridgeWedged:
            return
        except Exception:
            logger.exception("bluetooth call %s failed", request["m"])
            reply = {"e": errno.EIO}
        self.send(OP_REPLY, json.dumps(reply).encode())

    # -- sending -------------------------------------------------------------------------

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
                # bluetooth.rst: "sent regardless of the subscription status of the client".
                await device.notify_subscriber(connection, attribute, data, force=True)
                self._credit_when_sent(connection)
            else:
                self.spawn(self._indicate(connection, attribute, data))

    def _credit_when_sent(self, connection: Connection) -> None:
        queue = connection.data_packet_queue
        if queue is None or queue.pending == 0:
            self.send(OP_CREDIT, struct.pack("<H", 1))
            return
        if not self._credits_due:
            queue.once("flow", lambda: self._return_credits(connection))
        self._credits_due.append(queue.queued)

    def _return_credits(self, connection: Connection) -> None:
        queue = connection.data_packet_queue
        completed = queue.completed if queue is not None else 1 << 62
        returned = 0
        while self._credits_due and self._credits_due[0] <= completed:
            self._credits_due.popleft()
            returned += 1
        if returned:
            self.send(OP_CREDIT, struct.pack("<H", returned))
        if self._credits_due and queue is not None:
            queue.once("flow", lambda: self._return_credits(connection))

    def _release_credits(self) -> None:
        """The link is gone: NimBLE frees what it still held for it."""
        if self._credits_due:
            self.send(OP_CREDIT, struct.pack("<H", len(self._credits_due)))
            self._credits_due.clear()

    async def _update_subscribers(self, value_handle: int, data: bytes) -> None:
        # gatts_write(..., send_update=True) → ble_gatts_chr_updated: each subscribed
        # client by its CCCD, a notification if enabled, else an indication.
        device = self.device
        attribute = device.gatt_server.get_attribute(value_handle) if device else None
        if device is None or attribute is None:
            return
        for bearer, cccds in list(device.gatt_server.subscribers.items()):
            cccd = cccds.get(value_handle)
            flags = int.from_bytes(cccd, "little") if cccd else 0
            if flags & _CCCD_NOTIFY:
                await device.gatt_server.notify_subscriber(bearer, attribute, data, force=True)
            elif flags & _CCCD_INDICATE:
                self.spawn(device.gatt_server.indicate_subscriber(bearer, attribute, data, force=True))

    async def _indicate(self, connection: Connection, attribute: Attribute[bytes], data: bytes) -> None:
        status = 0
        try:
            await self._require_device().indicate_subscriber(connection, attribute, data, force=True)
        except Exception:
            status = 0x0E  # unlikely error: timeout or link lost
        self.send(OP_CREDIT, struct.pack("<H", 1))
        self.irq(IRQ_GATTS_INDICATE_DONE, [connection.handle, attribute.handle, status])

    # -- access checks -------------------------------------------------------------------

    async def check_access(self, connection: Connection, flags: int, reading: bool) -> None:
        """ble_att_svr_check_perms, for an attribute with these flags."""
        if reading:
            if not flags & FLAG_READ:
                raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR)
            encrypted, authenticated = flags & FLAG_READ_ENCRYPTED, flags & FLAG_READ_AUTHENTICATED
        else:
            if not flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                raise ATT_Error(ATT_WRITE_NOT_PERMITTED_ERROR)
            encrypted, authenticated = flags & FLAG_WRITE_ENCRYPTED, flags & FLAG_WRITE_AUTHENTICATED
        if not (encrypted or authenticated):
            return  # (authorization: NimBLE only has "XXX: Prompt user for authorization")
        if not connection.encryption:
            # Encryption would help only a peer with an LTK: "encrypt again"; else "pair".
            record = await self.keystore.read_record(STORE_PEER_SEC, connection.peer_address)
            bonded = record is not None and record.ltk is not None
            raise ATT_Error(ATT_INSUFFICIENT_ENCRYPTION_ERROR if bonded else ATT_INSUFFICIENT_AUTHENTICATION_ERROR)
        if authenticated and not self.security.get(connection.handle, _SecState()).authenticated:
            raise ATT_Error(ATT_INSUFFICIENT_AUTHENTICATION_ERROR)

    def _write_cccd(self, original: Callable[[Bearer, gatt.Characteristic[Any], bytes], None],
                    bearer: Bearer, characteristic: gatt.Characteristic[Any], value: bytes) -> None:
        """ble_gatts_clt_cfg_access_locked: two bytes, and only what the characteristic offers."""
        if len(value) != 2:
            raise ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH_ERROR)
        allowed = 0
        if characteristic.properties & gatt.Characteristic.Properties.NOTIFY:
            allowed |= _CCCD_NOTIFY
        if characteristic.properties & gatt.Characteristic.Properties.INDICATE:
            allowed |= _CCCD_INDICATE
        if int.from_bytes(value, "little") & ~allowed:
            raise ATT_Error(ATT_REQUEST_NOT_SUPPORTED_ERROR)
        original(bearer, characteristic, value)

    # -- pairing and bonds ---------------------------------------------------------------

    def pairing_session(self, name: str) -> smp.Session | None:
        """The SMP session (per link, until it drops) whose peer is this identity."""
        if self.device is None:
            return None
        for session in self.device.smp_manager.sessions.values():
            peer = session.peer_bd_addr or session.connection.peer_address
            if str(peer) == name or str(session.connection.peer_address) == name:
                return session
        return None

    async def on_pairing_request(self, connection: Connection) -> bool:
        """ble_sm_pair_req_rx → ble_sm_chk_repeat_pairing: a peer with a stored bond that
        pairs again raises BLE_GAP_EVENT_REPEAT_PAIRING; MicroPython's handler deletes the
        old bond (ble_store_util_delete_peer) and retries, until no bond is found. (Before
        that, ble_sm_chk_store_overflow counts the records; when they reach
        BLE_STORE_MAX_BONDS the FULL event goes to ble_store_util_status_rr, which lets
        the pairing proceed: nothing to model.)"""
        try:
            for _ in range(_STORE_LOOP_LIMIT):
                if await self.keystore.read_record(STORE_PEER_SEC, connection.peer_address) is None:
                    return True
                await self.keystore.delete_peer(connection.peer_address)
            self.wedge(f"ble_sm_chk_repeat_pairing: the bond with {connection.peer_address} is still there "
                       "after deleting it; NimBLE retries forever")
        except BridgeWedged:
            return False

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
        # bumble's own permissions stay open: _Value checks access as NimBLE does.
        open_access = Attribute.READABLE | Attribute.WRITEABLE
        for service_uuid, characteristics in spec:
            service_characteristics = []
            group: list[_Value] = []  # value handles in MicroPython's order
            for uuid, flags, descriptors in characteristics:
                value = _Value(self, flags)
                descriptor_values = [_Value(self, d_flags & _DESCRIPTOR_FLAGS) for _, d_flags in descriptors]
                characteristic: gatt.Characteristic[bytes] = gatt.Characteristic(
                    parse_uuid(uuid),
                    gatt.Characteristic.Properties(flags & 0xFF),
                    open_access,
                    gatt.CharacteristicValue(read=value.read, write=value.write),
                    descriptors=[
                        gatt.Descriptor(parse_uuid(d_uuid), open_access,
                                        gatt.CharacteristicValue(read=d_value.read, write=d_value.write))
                        for (d_uuid, _), d_value in zip(descriptors, descriptor_values, strict=True)
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
            advertising_data=self.adv_data,
            scan_response_data=self.resp_data,
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

        self.spawn(exchange())

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

    async def open(self) -> None:
        """Opens the HCI transport; a tcp-server transport waits for its controller."""
        self.transport = await open_transport(self.controller_spec)
        sink = self.transport.sink
        if _is_tcp_server(self.controller_spec) and getattr(sink, "transport", None) is None:
            print(f"insole bridge: waiting for an HCI controller to connect to {self.controller_spec}",
                  file=sys.stderr, flush=True)
            while getattr(sink, "transport", None) is None:
                await asyncio.sleep(0.1)

    async def _power_on(self) -> None:
        if self.transport is None:
            await self.open()
        device = Device.with_hci("MPY NIMBLE", self.address, self.transport.source, self.transport.sink)
        self.device = device  # the store's IRQs below may need it
        device.keystore = self.keystore
        device.gatt_server.max_mtu = _DEFAULT_MTU
        server = device.gatt_server
        original_write_cccd = server.write_cccd
        server.write_cccd = (  # type: ignore[method-assign]
            lambda bearer, characteristic, value: self._write_cccd(original_write_cccd, bearer, characteristic, value)
        )
        device.pairing_config_factory = lambda connection: pairing.PairingConfig(
            sc=True,  # NimBLE offers LE Secure Connections whether or not it insists on them
            mitm=self.mitm,
            bonding=self.bond,
            delegate=_NimbleDelegate(self, connection, self.io_capability),
        )
        device.on("connection", self._on_connection)
        # ble_hs.c ble_hs_sync restores the peers' IRKs from the store; then
        # MicroPython's sync_cb runs load_irk. Both happen inside active(True), so
        # whatever the IRQ handler (if any yet) answers now is what NimBLE knows.
        try:
            await self.keystore.restore_irks()
            device.irk = await self.keystore.load_our_irk()
            await device.power_on()  # loads the resolving list from get_resolving_keys
        except BaseException:
            self.device = None
            raise

    def _on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        address = connection.peer_address
        self.security[handle] = _SecState()
        self.irq(IRQ_CENTRAL_CONNECT, [handle, address.address_type, bytes(reversed(bytes(address))).hex()], [2])

        def on_disconnection(reason: int) -> None:
            self._held_writes.pop(handle, None)
            self.security.pop(handle, None)
            self.pairing_bonded.pop(handle, None)
            self._release_credits()
            self.irq(IRQ_CENTRAL_DISCONNECT,
                     [handle, address.address_type, bytes(reversed(bytes(address))).hex()], [2])

        def on_mtu() -> None:
            self.irq(IRQ_MTU_EXCHANGED, [handle, connection.att_mtu])

        def on_parameters() -> None:
            p = connection.parameters
            self.irq(IRQ_CONNECTION_UPDATE, [handle, round(p.connection_interval / 1.25), p.peripheral_latency,
                                             round(p.supervision_timeout / 10), 0])

        def on_pairing_start() -> None:
            self._held_writes.setdefault(handle, [])

        def pairing_ended() -> None:
            # NimBLE reports the encryption change once pairing and key storage are
            # done, before it handles the next request on the link.
            self._encryption_update(connection)
            for message in self._held_writes.pop(handle, []):
                self.send(OP_REMOTE_WRITE, message)

        def on_pairing(keys: PairingKeys) -> None:
            # ble_sm_key_exch_success: encrypted, authenticated by the pairing method,
            # bonded when both sides asked for bonding (stored or not).
            state = self.security.setdefault(handle, _SecState())
            state.encrypted = bool(connection.encryption)
            state.authenticated = any(k is not None and k.authenticated for k in (keys.ltk, keys.ltk_central))
            state.bonded = self.pairing_bonded.pop(handle, False)
            state.key_size = connection.encryption_key_size or 16  # bumble pairs with 16-byte keys
            pairing_ended()

        def on_pairing_failure(reason: int) -> None:
            pairing_ended()  # the state as it was: NimBLE does not update it on failure

        def on_encryption() -> None:
            if handle in self._held_writes:
                return  # pairing: reported once the keys are exchanged
            # ble_sm_enc_event_rx, BLE_SM_PROC_STATE_ENC_RESTORE: a bond's LTK restored.
            state = self.security.setdefault(handle, _SecState())
            record = self.keystore.restored.get(str(connection.peer_address))
            state.encrypted = bool(connection.encryption)
            state.authenticated = record is not None and record.authenticated
            state.bonded = state.encrypted
            state.key_size = record.key_size if record is not None else connection.encryption_key_size
            self._encryption_update(connection)

        connection.on("disconnection", on_disconnection)
        connection.on("connection_att_mtu_update", on_mtu)
        connection.on("connection_parameters_update", on_parameters)
        connection.on("pairing_start", on_pairing_start)
        connection.on("pairing", on_pairing)
        connection.on("pairing_failure", on_pairing_failure)
        connection.on("connection_encryption_change", on_encryption)

    def _encryption_update(self, connection: Connection) -> None:
        state = self.security.get(connection.handle, _SecState())
        self.irq(IRQ_ENCRYPTION_UPDATE, [connection.handle, int(state.encrypted), int(state.authenticated),
                                         int(state.bonded), state.key_size])

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, BridgeWedged):
        logger.error("bridge task failed", exc_info=exc)


async def run_bridge(controller: str, listen: str, address: str) -> None:
    bridge = PeripheralBridge(controller, address)
    await bridge.open()
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
    parser.add_argument("--controller", required=True,
                        help="bumble HCI transport, e.g. tcp-client:127.0.0.1:9001, tcp-server:127.0.0.1:9002, usb:0")
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
