"""A bleak backend over bumble: normal bleak code on the emulated radio.

bleak 3.1 has no bumble backend, but ``BleakScanner(backend=...)`` and
``BleakClient(backend=...)`` accept any subclass of its base classes::

    from bleak import BleakClient, BleakScanner
    from insole.emulation.bumble_backend import BumbleClient, BumbleScanner, use_transport

    use_transport("tcp-client:127.0.0.1:9001")      # or INSOLE_BLE_TRANSPORT in the environment
    use_connection_interval(30.0)                   # optional: what a phone would choose
    device = await BleakScanner.find_device_by_filter(match, service_uuids=[SERVICE_UUID],
                                                      backend=BumbleScanner)
    async with BleakClient(device, backend=BumbleClient) as client:
        await client.pair()                         # LE Secure Connections, bonding
        await client.start_notify(CHAR_UUID, on_notify)
        await client.write_gatt_char(CONTROL_UUID, packet, response=True)

All scanners and clients of one event loop share one bumble device (the host's
radio) on one controller, as bleak's clients share the OS adapter. Like BlueZ, a
client re-encrypts a link to a bonded peer on connect and asks for a 517-byte MTU;
it calls the disconnected callback on every disconnection. ATT errors surface as
:class:`bleak.exc.BleakGATTProtocolError` with the ATT error code.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal, TypeVar

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import hci, pairing
from bumble.att import ATT_Error
from bumble.core import UUID, AdvertisingData, PhysicalTransport
from bumble.core import TimeoutError as BumbleTimeoutError
from bumble.device import Advertisement, Connection, ConnectionParametersPreferences, Device, Peer
from bumble.keys import JsonKeyStore, KeyStore, MemoryKeyStore
from bumble.transport import open_transport

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

TRANSPORT_ENV = "INSOLE_BLE_TRANSPORT"
INTERVAL_ENV = "INSOLE_BLE_CONNECTION_INTERVAL_MS"
HOST_ADDRESS = "C0:15:00:00:00:FE"  # the host's static random address
CLIENT_MTU = 517  # what BlueZ asks for
# The connection interval the host asks for: the central decides it (MicroPython has
# no call for a peripheral to ask for another). 7.5 ms, the shortest, by default;
# phones use 30-50 ms, BlueZ 30-50 ms: use_connection_interval() or INTERVAL_ENV.
DEFAULT_CONNECTION_INTERVAL_MS = 7.5

_PROPERTY_NAMES: tuple[tuple[int, Any], ...] = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)
_SERVICE_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)
_SERVICE_DATA = (
    AdvertisingData.SERVICE_DATA_16_BIT_UUID,
    AdvertisingData.SERVICE_DATA_32_BIT_UUID,
    AdvertisingData.SERVICE_DATA_128_BIT_UUID,
)

_default_transport: str | None = None
_default_keystore: str | None = None
_connection_interval_ms: float | None = None


def use_transport(transport: str, keystore_path: str | None = None) -> None:
    """The controller the host's radio attaches to (a bumble transport name), and
    optionally a JSON file that keeps the host's bond keys between runs."""
    global _default_transport, _default_keystore
    _default_transport = transport
    _default_keystore = keystore_path


def use_connection_interval(interval_ms: float | None) -> None:
    """The connection interval new connections ask for (7.5..4000 ms, a multiple of
    1.25 ms); None for the environment's or the default."""
    global _connection_interval_ms
    if interval_ms is not None:
        _check_interval(interval_ms)
    _connection_interval_ms = interval_ms


def connection_interval_ms() -> float:
    """What a new connection asks for: use_connection_interval(), else INTERVAL_ENV, else the default."""
    if _connection_interval_ms is not None:
        return _connection_interval_ms
    text = os.environ.get(INTERVAL_ENV)
    return _check_interval(float(text)) if text else DEFAULT_CONNECTION_INTERVAL_MS


def _check_interval(interval_ms: float) -> float:
    units = interval_ms / 1.25
    if not 6 <= units <= 3200 or units != int(units):
        raise ValueError(f"a connection interval is 7.5..4000 ms in steps of 1.25 ms, not {interval_ms:g}")
    return interval_ms


def bleak_uuid(uuid: UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-"))


class BumbleAdapter:
    """The host's radio: one bumble device on one controller per event loop."""

    _adapters: ClassVar[dict[tuple[int, str], BumbleAdapter]] = {}

    def __init__(self, transport_name: str, keystore_path: str | None) -> None:
        self.transport_name = transport_name
        self.keystore_path = keystore_path
        self.transport: Any = None
        self.device: Device | None = None
        self.connect_lock = asyncio.Lock()  # bumble connects to one peer at a time
        self._scan_listeners: list[Callable[[Advertisement], None]] = []
        self._opening: asyncio.Task[None] | None = None

    @classmethod
    async def get(cls, transport_name: str | None = None) -> BumbleAdapter:
        name = transport_name or _default_transport or os.environ.get(TRANSPORT_ENV)
        if not name:
            raise BleakError(f"no bumble transport: call use_transport() or set {TRANSPORT_ENV}")
        key = (id(asyncio.get_running_loop()), name)
        adapter = cls._adapters.get(key)
        if adapter is None:
            adapter = cls._adapters[key] = cls(name, _default_keystore)
        if adapter.device is None:
            if adapter._opening is None:
                adapter._opening = asyncio.create_task(adapter._open())
            try:
                await asyncio.shield(adapter._opening)
            except BaseException:
                adapter._opening = None
                raise
        return adapter

    async def _open(self) -> None:
        self.transport = await open_transport(self.transport_name)
        device = Device.with_hci("insole-host", hci.Address(HOST_ADDRESS), self.transport.source, self.transport.sink)
        # The identity key it gives peripherals when pairing (bumble's with_hci leaves it
        # all zero): derived from the address, as bumble does for its configuration
        # files, so that bonds kept in a key store stay valid from run to run.
        device.irk = (bytes(hci.Address(HOST_ADDRESS)) * 3)[:16]
        keystore: KeyStore = JsonKeyStore(None, self.keystore_path) if self.keystore_path else MemoryKeyStore()
        device.keystore = keystore
        device.pairing_config_factory = lambda connection: pairing.PairingConfig(
            sc=True, mitm=False, bonding=True,
            delegate=pairing.PairingDelegate(io_capability=pairing.PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
        )
        device.on("advertisement", self._on_advertisement)
        await device.power_on()
        self.device = device

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._scan_listeners):
            listener(advertisement)

    async def add_scan_listener(self, listener: Callable[[Advertisement], None], active: bool) -> None:
        self._scan_listeners.append(listener)
        if len(self._scan_listeners) == 1:
            assert self.device is not None
            await self.device.start_scanning(active=active, filter_duplicates=False)

    async def remove_scan_listener(self, listener: Callable[[Advertisement], None]) -> None:
        if listener in self._scan_listeners:
            self._scan_listeners.remove(listener)
            if not self._scan_listeners and self.device is not None and self.device.is_scanning:
                await self.device.stop_scanning()

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
        self.transport = None
        self.device = None

    @classmethod
    async def close_all(cls) -> None:
        """Closes the adapters of the running event loop (call before it ends)."""
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in cls._adapters if k[0] == loop_id]:
            await cls._adapters.pop(key).close()


async def shutdown() -> None:
    """Detaches the host's radio from its controller (end of a program or test)."""
    await BumbleAdapter.close_all()


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's view of a bumble advertisement (advertising data and scan response merged)."""
    data = advertisement.data
    names = data.get_all(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get_all(AdvertisingData.SHORTENED_LOCAL_NAME)
    service_uuids: list[str] = []
    # get_all() returns each AD type's decoded form (a union type): the isinstance checks
    # pick the forms these types decode to.
    for list_type in _SERVICE_LISTS:
        for uuids in data.get_all(list_type):
            for uuid in uuids if isinstance(uuids, list) else ():
                text = bleak_uuid(uuid)
                if text not in service_uuids:
                    service_uuids.append(text)
    service_data: dict[str, bytes] = {}
    for data_type in _SERVICE_DATA:
        for item in data.get_all(data_type):
            if isinstance(item, tuple) and isinstance(item[0], UUID):
                service_data[bleak_uuid(item[0])] = bytes(item[1])
    manufacturer_data: dict[int, bytes] = {}
    for item in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        if isinstance(item, tuple) and isinstance(item[0], int):
            manufacturer_data[item[0]] = bytes(item[1])
    tx_powers = [v for v in data.get_all(AdvertisingData.TX_POWER_LEVEL) if isinstance(v, int)]
    return AdvertisementData(
        local_name=str(names[-1]) if names else None,
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_powers[-1] if tx_powers else None,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bumble_transport: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._transport_name = bumble_transport
        self._adapter: BumbleAdapter | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._adapter = await BumbleAdapter.get(self._transport_name)
        await self._adapter.add_scan_listener(self._on_advertisement, self._active)

    async def stop(self) -> None:
        if self._adapter is not None:
            await self._adapter.remove_scan_listener(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        adv = advertisement_data(advertisement)
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        address = str(advertisement.address)
        device = self.create_or_update_device(address, address, adv.local_name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)


class BumbleClient(BaseBleakClient):
    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        bumble_transport: str | None = None,
        connection_interval_ms: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._interval_ms = None if connection_interval_ms is None else _check_interval(connection_interval_ms)
        if isinstance(address_or_ble_device, BLEDevice) and isinstance(address_or_ble_device.details, hci.Address):
            self._peer_address = address_or_ble_device.details
        else:
            self._peer_address = hci.Address.from_string_for_transport(str(self.address), PhysicalTransport.LE)
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._transport_name = bumble_transport
        self._adapter: BumbleAdapter | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # -- connection --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name or str(self.address).replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        self._adapter = adapter = await BumbleAdapter.get(self._transport_name)
        device = adapter.device
        assert device is not None
        interval_ms = self._interval_ms or connection_interval_ms()
        preferences = ConnectionParametersPreferences(connection_interval_min=interval_ms,
                                                      connection_interval_max=interval_ms)
        async with adapter.connect_lock:
            try:
                connection = await device.connect(
                    self._peer_address, transport=PhysicalTransport.LE,
                    connection_parameters_preferences={hci.Phy.LE_1M: preferences}, timeout=self._timeout,
                )
            except Exception as exc:
                raise BleakError(f"could not connect to {self.address}: {exc}") from exc
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        self._peer = peer = Peer(connection)
        try:
            assert device.keystore is not None
            if await device.keystore.get(str(connection.peer_address)) is not None:
                await connection.encrypt()  # a bonded peer: secure the link again, as BlueZ does
            elif pair:
                await connection.pair()
            await peer.request_mtu(CLIENT_MTU)
            self.services = await self._discover(peer)
        except BaseException:
            await self.disconnect()
            raise

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.disconnect()
        except Exception:
            logger.debug("disconnect of %s failed", self.address, exc_info=True)
        if self._connection is connection:  # no disconnection event came
            self._on_disconnection(0)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        connection = self._require_connection()
        adapter = self._adapter
        keystore = adapter.device.keystore if adapter is not None and adapter.device is not None else None
        if connection.is_encrypted and keystore is not None and await keystore.get(str(connection.peer_address)):
            # Already paired and bonded, as BlueZ answers: pairing again would make
            # the peripheral delete its bond first (NimBLE's repeat pairing).
            return
        try:
            await connection.pair()
        except Exception as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        adapter = self._adapter or await BumbleAdapter.get(self._transport_name)
        assert adapter.device is not None and adapter.device.keystore is not None
        await adapter.device.keystore.delete(str(self._peer_address))
        await self.disconnect()

    # -- GATT --------------------------------------------------------------------------

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services():
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await service.discover_characteristics():
                properties = [name for bit, name in _PROPERTY_NAMES if characteristic.properties & bit]
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic, characteristic.handle, bleak_uuid(characteristic.uuid), properties,
                    lambda: self.mtu_size - 3, bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in await peer.discover_descriptors(characteristic):
                    collection.add_descriptor(
                        BleakGATTDescriptor(descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_characteristic)
                    )
        return collection

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError("Not connected")
        return self._connection

    def _require_peer(self) -> Peer:
        self._require_connection()
        assert self._peer is not None
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        return await self._read(characteristic.obj)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        return await self._read(descriptor.obj)

    async def _gatt(self, operation: Awaitable[_T]) -> _T:
        """Runs a GATT procedure; ATT errors and a link lost meanwhile become bleak errors.

        The whole procedure ends with the link, as BlueZ ends every pending one:
        bumble cancels only the request in flight, and a request still waiting for
        its turn (or the next step of a subscribe) would go out on the dead link and
        wait 30 s for its timeout.
        """
        try:
            return await self._require_connection().cancel_on_disconnection(operation)
        except ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except BumbleTimeoutError as exc:
            # No answer in ATT's 30 s: BlueZ reports it as a failed operation too.
            raise BleakError(f"{self.address}: no answer to a GATT request ({exc})") from exc
        except asyncio.CancelledError:
            # bumble cancels a pending request when the link drops; that is not a
            # cancellation of the caller's task.
            task = asyncio.current_task()
            if self._connection is None and task is not None and not task.cancelling():
                raise BleakError(f"{self.address} disconnected during a GATT operation") from None
            raise

    async def _read(self, proxy: Any) -> bytearray:
        return bytearray(await self._gatt(self._require_peer().read_value(proxy)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        await self._write(characteristic.obj, data, response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self._write(descriptor.obj, data, True)

    async def _write(self, proxy: Any, data: SizedBuffer, response: bool) -> None:
        await self._gatt(self._require_peer().write_value(proxy, bytes(data), with_response=response))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
                           **kwargs: Any) -> None:
        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        peer = self._require_peer()
        self._subscribers[characteristic.handle] = on_value
        try:
            # Notifications when the characteristic has both, as bleak's other backends do.
            await self._gatt(peer.subscribe(characteristic.obj, on_value, prefer_notify=True))
        except BaseException:
            self._subscribers.pop(characteristic.handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is not None and self._peer is not None:
            await self._gatt(self._peer.unsubscribe(characteristic.obj, subscriber))
