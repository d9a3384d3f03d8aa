"""The emulated radio behaves as MicroPython's NimBLE binding on an ESP32 does.

Each test runs a small peripheral written against MicroPython's ``bluetooth`` API
alone (not the insole firmware: the tests are about the model) on the unix port, its
radio bridged to the emulated link (``insole.emulation.bridge``), and a central that is
bumble's own device and GATT client on another controller of the link. What each
test expects is what the sources say (cited in ``insole.emulation.bridge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import UUID, PhysicalTransport
from bumble.device import Connection, Device, Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

from insole.emulation.bridge import (
    OUR_IRK_KEY,
    SECRET_TYPE_OUR_IRK,
    STORE_OUR_SEC,
    STORE_PEER_SEC,
    VALUE_SEC_SIZE,
    SecRecord,
    store_key,
)
from insole.emulation.peripheral import BridgedPeripheral
from insole.emulation.radio import VirtualRadio

pytestmark = [pytest.mark.ble, pytest.mark.micropython]

CENTRAL, PERIPHERAL = 0, 1  # controllers on the emulated link
PERIPHERAL_ADDRESS = hci.Address("C0:15:01:00:00:01")
CENTRAL_IDENTITY = hci.Address("C0:15:00:00:00:C1")
_UUID = "5c98eee{}-6144-4e19-8626-361760cb12cb"
NOTIFY, UPDATE, INDICATE, READ_ONLY, SECURED, COMMAND = (UUID(_UUID.format(i)) for i in range(1, 7))
HCI_PIN_OR_KEY_MISSING = 0x06

# The peripheral, in MicroPython. Its bond store follows bluetooth.rst's example: a
# dict of (type, key) -> value, kept in a file, False for a delete of nothing (or True
# with --delete-always-true); --max-secrets N refuses new entries beyond N.
# --irq-after-active registers the IRQ handler after BLE().active(True).
# It prints "ready", "connect HANDLE ADDRTYPE ADDRHEX", "encryption HANDLE ENC AUTH
# BOND KEYSIZE", "indicate_done HANDLE STATUS", "write NAME VALUEHEX", "sent"; a write
# of b"send" to COMMAND makes it gatts_notify NOTIFY, gatts_write(UPDATE, ..., True)
# and gatts_indicate INDICATE, whatever the central subscribed to.
PERIPHERAL_SCRIPT = r'''
import asyncio
import os
import sys
from binascii import hexlify

import bluetooth
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

ARGS = sys.argv[1:]
MAX_SECRETS = int(ARGS[ARGS.index("--max-secrets") + 1]) if "--max-secrets" in ARGS else 64
PATH = os.getenv("INSOLE_SETTINGS_DIR") + "/secrets.bin"
secrets = {}
order = []
state = {"conn": -1, "send": False, "advertise": False}
names = {}


def load():
    try:
        with open(PATH, "rb") as f:
            data = f.read()
    except OSError:
        return
    off = 0
    while off < len(data):
        klen = data[off + 1]
        vlen = data[off + 2] | (data[off + 3] << 8)
        entry = (data[off], bytes(data[off + 4 : off + 4 + klen]))
        secrets[entry] = bytes(data[off + 4 + klen : off + 4 + klen + vlen])
        order.append(entry)
        off += 4 + klen + vlen


def save():
    with open(PATH, "wb") as f:
        for entry in order:
            value = secrets[entry]
            f.write(bytes((entry[0], len(entry[1]), len(value) & 0xFF, len(value) >> 8)))
            f.write(entry[1])
            f.write(value)


def irq(event, data):
    if event == _IRQ_GET_SECRET:
        sec_type, index, key = data
        if key is None:
            found = [secrets[e] for e in order if e[0] == sec_type]
            return found[index] if index < len(found) else None
        return secrets.get((sec_type, bytes(key)))
    if event == _IRQ_SET_SECRET:
        sec_type, key, value = data
        entry = (sec_type, bytes(key))
        if value is None:
            if entry not in secrets:
                return "--delete-always-true" in ARGS
            del secrets[entry]
            order.remove(entry)
            save()
            return True
        if entry not in secrets:
            if len(secrets) >= MAX_SECRETS:
                return False
            order.append(entry)
        secrets[entry] = bytes(value)
        save()
        return True
    if event == _IRQ_CENTRAL_CONNECT:
        state["conn"] = data[0]
        print("connect", data[0], data[1], hexlify(bytes(data[2])).decode())
    elif event == _IRQ_CENTRAL_DISCONNECT:
        state["advertise"] = True
        print("disconnect", data[0])
    elif event == _IRQ_ENCRYPTION_UPDATE:
        print("encryption", *data)
    elif event == _IRQ_GATTS_INDICATE_DONE:
        print("indicate_done", data[0], data[2])
    elif event == _IRQ_GATTS_WRITE:
        value = bytes(ble.gatts_read(data[1]))
        print("write", names.get(data[1]), hexlify(value).decode())
        if value == b"send":
            state["send"] = True
    return None


load()
ble = bluetooth.BLE()
if "--irq-after-active" in ARGS:
    ble.active(True)
    ble.irq(irq)
else:
    ble.irq(irq)
    ble.active(True)
ble.config(bond=True, le_secure=True, mitm=False, io=3)
U = bluetooth.UUID
BASE = "5c98eee%d-6144-4e19-8626-361760cb12cb"
chars = (
    (U(BASE % 1), _FLAG_READ | _FLAG_NOTIFY),
    (U(BASE % 2), _FLAG_READ | _FLAG_NOTIFY),
    (U(BASE % 3), _FLAG_INDICATE),
    (U(BASE % 4), _FLAG_READ),
    (U(BASE % 5), _FLAG_READ | _FLAG_READ_ENCRYPTED | _FLAG_WRITE | _FLAG_WRITE_ENCRYPTED),
    (U(BASE % 6), _FLAG_WRITE),
)
((h_notify, h_update, h_indicate, h_read_only, h_secured, h_command),) = ble.gatts_register_services(
    ((U("5c98eee0-6144-4e19-8626-361760cb12cb"), chars),)
)
for handle, name in ((h_notify, "notify"), (h_update, "update"), (h_indicate, "indicate"),
                     (h_read_only, "read_only"), (h_secured, "secured"), (h_command, "command")):
    names[handle] = name
ble.gatts_write(h_read_only, b"fixed")
ble.gatts_write(h_secured, b"secret")
ADV = bytes((2, 1, 6, 6, 9)) + b"model"
ble.gap_advertise(100000, ADV)
print("ready")


async def main():
    asyncio.create_task(bluetooth.poll_task())
    while True:
        await asyncio.sleep_ms(10)
        if state["send"]:
            state["send"] = False
            conn = state["conn"]
            ble.gatts_notify(conn, h_notify, b"unasked")
            ble.gatts_write(h_update, b"updated", True)
            ble.gatts_indicate(conn, h_indicate, b"indicated")
            print("sent")
        if state["advertise"]:
            state["advertise"] = False
            ble.gap_advertise(100000, ADV)


asyncio.run(main())
'''


@pytest.fixture(scope="module")
def radio() -> Iterator[VirtualRadio]:
    with VirtualRadio(n_controllers=2) as radio:
        yield radio


@contextlib.contextmanager
def model_peripheral(radio: VirtualRadio, work: Path, *args: str) -> Iterator[BridgedPeripheral]:
    script = work / "nimble_model_peripheral.py"
    script.write_text(PERIPHERAL_SCRIPT)
    settings = work / "settings"
    settings.mkdir(exist_ok=True)
    with BridgedPeripheral(radio.transports[PERIPHERAL], script=script, args=args, settings_dir=settings,
                           log_path=work / "peripheral.log") as peripheral:
        assert peripheral.firmware_line() == "ready"
        yield peripheral


async def expect(peripheral: BridgedPeripheral, prefix: str, timeout_s: float = 10.0) -> list[str]:
    """The fields of the next line the peripheral prints that starts with ``prefix``."""
    async with asyncio.timeout(timeout_s):
        while True:
            line = await asyncio.to_thread(peripheral.firmware_line, timeout_s)
            if line.startswith(prefix):
                return line.split()


def stored_secrets(work: Path) -> dict[tuple[int, bytes], bytes]:
    """The peripheral's bond store, as its script keeps it on disk."""
    path = work / "settings" / "secrets.bin"
    data = path.read_bytes() if path.exists() else b""
    entries = {}
    off = 0
    while off < len(data):
        sec_type, klen, vlen = data[off], data[off + 1], struct.unpack_from("<H", data, off + 2)[0]
        entries[(sec_type, data[off + 4 : off + 4 + klen])] = data[off + 4 + klen : off + 4 + klen + vlen]
        off += 4 + klen + vlen
    return entries


@contextlib.asynccontextmanager
async def central_device(radio: VirtualRadio, *, private: bool = False) -> AsyncIterator[Device]:
    """bumble's own device as the central (a private one uses resolvable private addresses)."""
    transport = await open_transport(radio.transports[CENTRAL])
    device = Device.with_hci("central", CENTRAL_IDENTITY, transport.source, transport.sink)
    device.keystore = MemoryKeyStore()
    device.irk = secrets.token_bytes(16)
    if private:
        device.le_privacy_enabled = True
        device.le_rpa_timeout = 0  # the test takes a new address itself
    device.pairing_config_factory = lambda _connection: PairingConfig(
        sc=True, mitm=False, bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )
    await device.power_on()
    try:
        yield device
    finally:
        await transport.close()


async def new_private_address(device: Device) -> hci.Address:
    """A new resolvable private address, as a phone takes every few minutes."""
    address = hci.Address.generate_private_address(device.irk)
    await device.send_sync_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))
    device.random_address = address
    return address


async def connect(device: Device) -> tuple[Connection, Peer]:
    connection = await device.connect(PERIPHERAL_ADDRESS, transport=PhysicalTransport.LE, timeout=10)
    peer = Peer(connection)
    await peer.discover_services()
    await peer.discover_characteristics()
    return connection, peer


def characteristic(peer: Peer, uuid: UUID) -> Any:
    return peer.get_characteristics_by_uuid(uuid)[0]


async def att_error(operation: Any) -> int:
    """The ATT error code the operation ends with (it must end with one)."""
    with pytest.raises(ATT_Error) as error:
        await operation
    return int(error.value.error_code)


def capture_updates(connection: Connection) -> list[tuple[str, int, bytes]]:
    """Every notification and indication the central receives, subscribed or not."""
    received: list[tuple[str, int, bytes]] = []
    client = connection.gatt_client
    for kind, name in (("notification", "on_att_handle_value_notification"),
                       ("indication", "on_att_handle_value_indication")):
        original: Callable[[Any], None] = getattr(client, name)

        def record(pdu: Any, kind: str = kind, original: Callable[[Any], None] = original) -> None:
            received.append((kind, pdu.attribute_handle, bytes(pdu.attribute_value)))
            original(pdu)

        setattr(client, name, record)
    return received


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


# --------------------------------------------------------------------------------------
# 1. Notifications


def test_gatts_notify_and_indicate_reach_a_central_that_never_subscribed(radio: VirtualRadio, tmp_path: Path) -> None:
    """bluetooth.rst: gatts_notify and gatts_indicate send "regardless of the subscription
    status of the client"; gatts_write(..., send_update=True) reaches subscribers only."""
    with model_peripheral(radio, tmp_path) as peripheral:

        async def scenario() -> None:
            async with central_device(radio) as device:
                connection, peer = await connect(device)
                received = capture_updates(connection)
                notify, update, indicate = (characteristic(peer, u) for u in (NOTIFY, UPDATE, INDICATE))
                await peer.write_value(characteristic(peer, COMMAND), b"send", with_response=True)
                await expect(peripheral, "sent")
                done = await expect(peripheral, "indicate_done")
                assert done[2] == "0"  # confirmed by the central
                await asyncio.sleep(0.3)  # a notification of UPDATE would have come by now
                assert ("notification", notify.handle, b"unasked") in received
                assert ("indication", indicate.handle, b"indicated") in received
                assert not [r for r in received if r[1] == update.handle]

                updates: list[bytes] = []
                await peer.subscribe(update, updates.append, prefer_notify=True)
                await peer.write_value(characteristic(peer, COMMAND), b"send", with_response=True)
                await expect(peripheral, "sent")
                async with asyncio.timeout(5):
                    while not updates:
                        await asyncio.sleep(0.02)
                assert updates == [b"updated"]
                await connection.disconnect()

        run(scenario)


# --------------------------------------------------------------------------------------
# 2. ATT errors and permissions


def test_att_errors_and_permissions_as_nimble_answers(radio: VirtualRadio, tmp_path: Path) -> None:
    """ble_att_svr_check_perms: a write to a characteristic without a write property is
    refused with 0x03 (Write Not Permitted) and never reaches the app; an attribute that
    needs encryption answers 0x05 (Insufficient Authentication) to a peer without a bond
    and 0x0F (Insufficient Encryption) to a bonded one on an unencrypted link;
    ble_gatts_clt_cfg_access_locked: a CCCD takes 2 bytes (0x0D) and only what the
    characteristic offers (0x06)."""
    with model_peripheral(radio, tmp_path) as peripheral:

        async def scenario() -> None:
            async with central_device(radio) as device:
                connection, peer = await connect(device)
                read_only, secured = characteristic(peer, READ_ONLY), characteristic(peer, SECURED)
                assert await att_error(peer.write_value(read_only, b"changed", with_response=True)) == 0x03
                assert bytes(await peer.read_value(read_only)) == b"fixed"
                assert await att_error(peer.read_value(secured)) == 0x05
                assert await att_error(peer.write_value(secured, b"x", with_response=True)) == 0x05
                notify = characteristic(peer, NOTIFY)
                descriptors = await peer.discover_descriptors(notify)
                cccd = next(d for d in descriptors if d.type == GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR)
                assert await att_error(peer.write_value(cccd, b"\x02\x00", with_response=True)) == 0x06
                assert await att_error(peer.write_value(cccd, b"\x01\x00\x00", with_response=True)) == 0x0D
                await peer.write_value(cccd, b"\x01\x00", with_response=True)
                # The first write the app sees is this one: the refused ones never arrived.
                await peer.write_value(characteristic(peer, COMMAND), b"ping", with_response=True)
                assert (await expect(peripheral, "write"))[1:] == ["command", b"ping".hex()]

                await connection.pair()
                assert (await expect(peripheral, "encryption"))[2:] == ["1", "0", "1", "16"]
                assert bytes(await peer.read_value(secured)) == b"secret"
                await connection.disconnect()
                await expect(peripheral, "disconnect")

                # Bonded now, but not yet encrypted on the new link: "encrypt", not "pair".
                connection, peer = await connect(device)
                assert await att_error(peer.read_value(characteristic(peer, SECURED))) == 0x0F
                await connection.encrypt()
                assert bytes(await peer.read_value(characteristic(peer, SECURED))) == b"secret"
                await connection.disconnect()

        run(scenario)


# --------------------------------------------------------------------------------------
# 3. Bonds across resets


@pytest.mark.parametrize("irq_first", [True, False], ids=["irq-before-active", "irq-after-active"])
def test_a_private_central_re_encrypts_after_a_reset_only_if_irq_came_before_active(
    radio: VirtualRadio, tmp_path: Path, irq_first: bool
) -> None:
    """NimBLE loads the bonded peers' IRKs from the store during active(True) (ble_hs_sync:
    ble_hs_misc_restore_irks; modbluetooth_nimble.c load_irk), through _IRQ_GET_SECRET.
    With the handler registered after active(True) those reads get nothing: after a
    reset, a phone on a new resolvable private address is not recognised (its identity
    is not resolved) and its LTK is not found, so it cannot encrypt again."""
    args = () if irq_first else ("--irq-after-active",)
    with model_peripheral(radio, tmp_path, *args) as peripheral:

        async def scenario() -> None:
            async with central_device(radio, private=True) as device:
                first_address = await new_private_address(device)
                connection, _ = await connect(device)
                connected = await expect(peripheral, "connect")
                assert connected[3] == bytes(reversed(bytes(first_address))).hex()
                await connection.pair()
                assert (await expect(peripheral, "encryption"))[2:] == ["1", "0", "1", "16"]
                await connection.disconnect()
                await expect(peripheral, "disconnect")

                await asyncio.to_thread(peripheral.restart)  # an insole reset, same store
                assert await asyncio.to_thread(peripheral.firmware_line) == "ready"
                second_address = await new_private_address(device)
                assert second_address != first_address
                connection = await device.connect(PERIPHERAL_ADDRESS, transport=PhysicalTransport.LE, timeout=10)
                connected = await expect(peripheral, "connect")
                if irq_first:
                    # Resolved: the app sees the phone's identity, and the bond holds.
                    assert connected[3] == bytes(reversed(bytes(CENTRAL_IDENTITY))).hex()
                    await connection.encrypt()
                    assert (await expect(peripheral, "encryption"))[2:] == ["1", "0", "1", "16"]
                else:
                    assert connected[3] == bytes(reversed(bytes(second_address))).hex()
                    with pytest.raises(hci.HCI_Error) as refused:
                        await connection.encrypt()
                    assert refused.value.error_code == HCI_PIN_OR_KEY_MISSING
                await connection.disconnect()

        run(scenario)


# --------------------------------------------------------------------------------------
# 4. Bond records as NimBLE stores them


def test_a_bond_is_two_records_keyed_by_the_peer_identity_plus_our_irk(radio: VirtualRadio, tmp_path: Path) -> None:
    """modbluetooth_nimble.c: our IRK under (10, b"irk"); ble_sm_persist_keys writes our
    keys (type 1) and the peer's (type 2), each a struct ble_store_value_sec keyed by the
    peer's identity ble_addr_t; MicroPython never stores CCCDs (type 3)."""
    with model_peripheral(radio, tmp_path) as peripheral:

        async def scenario() -> bytes:
            async with central_device(radio, private=True) as device:
                await new_private_address(device)
                connection, _ = await connect(device)
                await connection.pair()
                await expect(peripheral, "encryption")
                assert device.keystore is not None
                keys = await device.keystore.get(str(PERIPHERAL_ADDRESS))
                assert keys is not None and keys.ltk is not None
                await connection.disconnect()
                return keys.ltk.value + device.irk

        ltk_and_irk = run(scenario)
        ltk, central_irk = ltk_and_irk[:16], ltk_and_irk[16:]
        store = stored_secrets(tmp_path)
        key = store_key(CENTRAL_IDENTITY)
        assert key == b"\x01" + bytes(CENTRAL_IDENTITY)  # type (random), address LSB first
        assert set(store) == {(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY), (STORE_OUR_SEC, key), (STORE_PEER_SEC, key)}
        assert len(store[(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY)]) == 16
        ours, theirs = (SecRecord.unpack(store[(t, key)]) for t in (STORE_OUR_SEC, STORE_PEER_SEC))
        assert len(store[(STORE_OUR_SEC, key)]) == VALUE_SEC_SIZE == 88
        assert ours is not None and theirs is not None
        assert ours.peer == theirs.peer == CENTRAL_IDENTITY
        assert ours.ltk == theirs.ltk == ltk  # LE Secure Connections: one LTK for both
        assert ours.irk == store[(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY)]
        assert theirs.irk == central_irk
        assert ours.sc and not ours.authenticated  # Just Works


@pytest.mark.parametrize("max_secrets", [1, 2])
def test_a_full_store_leaves_the_link_encrypted_and_bonded_but_the_bond_unstored(
    radio: VirtualRadio, tmp_path: Path, max_secrets: int
) -> None:
    """_IRQ_SET_SECRET returning False is BLE_HS_ESTORE_CAP: ble_store_util_status_rr
    unpairs the oldest peer, which it looks for by iterating OUR_SEC records with the
    key BLE_ADDR_ANY; MicroPython passes its seven zero bytes as a key, nothing is
    found, the write is abandoned and ble_sm_persist_keys ignores that. The pairing
    completes, encrypted and reported bonded; what was not stored is missing later:
    with nothing stored (1) the central cannot encrypt again; with our keys but not
    the peer's (2) it can, but an unencrypted request is answered as to a stranger."""
    with model_peripheral(radio, tmp_path, "--max-secrets", str(max_secrets)) as peripheral:

        async def scenario() -> None:
            async with central_device(radio) as device:
                connection, _ = await connect(device)
                await connection.pair()
                assert (await expect(peripheral, "encryption"))[2:] == ["1", "0", "1", "16"]
                await connection.disconnect()
                await expect(peripheral, "disconnect")
                stored = set(stored_secrets(tmp_path))
                key = store_key(CENTRAL_IDENTITY)
                if max_secrets == 1:
                    assert stored == {(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY)}
                else:
                    assert stored == {(SECRET_TYPE_OUR_IRK, OUR_IRK_KEY), (STORE_OUR_SEC, key)}

                connection, peer = await connect(device)
                secured = characteristic(peer, SECURED)
                assert await att_error(peer.read_value(secured)) == 0x05
                if max_secrets == 1:
                    with pytest.raises(hci.HCI_Error) as refused:
                        await connection.encrypt()
                    assert refused.value.error_code == HCI_PIN_OR_KEY_MISSING
                else:
                    await connection.encrypt()
                    assert bytes(await peer.read_value(secured)) == b"secret"
                await connection.disconnect()

        run(scenario)


@pytest.mark.parametrize("delete_always_true", [False, True], ids=["store-says-not-found", "store-always-true"])
def test_pairing_again_deletes_the_old_bond_and_a_store_that_never_says_not_found_hangs_nimble(
    radio: VirtualRadio, tmp_path: Path, delete_always_true: bool
) -> None:
    """A bonded peer that pairs again (a phone that forgot the insole): ble_sm_chk_repeat_pairing
    raises BLE_GAP_EVENT_REPEAT_PAIRING, MicroPython's handler calls ble_store_util_delete_peer,
    which deletes each record type until the store answers "not found"
    (ble_store_util_delete_all: while rc == 0). A store whose delete answers True for a
    key it does not hold keeps NimBLE in that loop forever: the insole stops."""
    args = ("--delete-always-true",) if delete_always_true else ()
    with model_peripheral(radio, tmp_path, *args) as peripheral:

        async def scenario() -> None:
            async with central_device(radio) as device:
                connection, _ = await connect(device)
                await connection.pair()
                await expect(peripheral, "encryption")
                await connection.disconnect()
                await expect(peripheral, "disconnect")
                device.keystore = MemoryKeyStore()  # the phone forgot the insole
                connection, _ = await connect(device)
                if not delete_always_true:
                    await connection.pair()
                    assert (await expect(peripheral, "encryption"))[2:] == ["1", "0", "1", "16"]
                    await connection.disconnect()
                    return
                with pytest.raises(Exception):  # noqa: B017  # refused, or the link drops
                    await asyncio.wait_for(connection.pair(), 10)

        run(scenario)
        if delete_always_true:
            assert peripheral.firmware is not None
            peripheral.firmware.wait(timeout=10)  # the program ended with its radio
            assert "ble_store_util_delete_all" in (tmp_path / "peripheral.log").read_text()
        else:
            key = store_key(CENTRAL_IDENTITY)
            assert {(STORE_OUR_SEC, key), (STORE_PEER_SEC, key)} <= set(stored_secrets(tmp_path))
