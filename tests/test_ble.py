"""The BLE link under the real stack, end to end.

The firmware's GATT server (``insolefw.ble.BleLink``) runs on the MicroPython unix
port behind the ``bluetooth`` stand-in (``firmware/tests/ble_echo_peripheral.py``, an
app that echoes ACKs and streams on request); the stand-in talks to the peripheral
bridge, a bumble device on a virtual controller; the host uses plain bleak calls
through the bumble backend, on another controller of the same emulated link.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from insole.emulation import bumble_backend
from insole.emulation.bumble_backend import BumbleClient, BumbleScanner
from insole.emulation.peripheral import BridgedPeripheral
from insole.emulation.radio import PDUS_PER_EVENT, VirtualRadio
from insole.link.gatt import (
    BATTERY_LEVEL_UUID,
    CONTROL_UUID,
    EVENTS_UUID,
    FIRMWARE_REVISION_UUID,
    MANUFACTURER_NAME_UUID,
    MODEL_NUMBER_UUID,
    RSC_FEATURE_UUID,
    RSC_MEASUREMENT_UUID,
    SAMPLES_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    advertised_side,
    control_write,
    device_name,
)
from insole.protocol import Ack, Command, CommandCode, PacketType, Samples, Status, decode_packet
from insole.resources import FIRMWARE_DIR

pytestmark = pytest.mark.ble

HOST, LEFT, RIGHT = 0, 1, 2  # controller per device on the emulated link
STREAM_PACKETS = 400
SAMPLES_PER_PACKET = 5  # 16 pressure channels + IMU (44 bytes) in a 244-byte notification
_OUR_PROGRAMS = ("insole.emulation.radio", "insole.emulation.bridge", "ble_echo_peripheral.py")


ECHO_PERIPHERAL = FIRMWARE_DIR / "tests" / "ble_echo_peripheral.py"


def echo_peripheral(controller: str, **options: Any) -> BridgedPeripheral:
    """The firmware tests' echo peripheral (not the insole firmware) on the emulated radio."""
    return BridgedPeripheral(controller, script=ECHO_PERIPHERAL, python_path=(FIRMWARE_DIR / "tests",), **options)


def _our_children() -> list[str]:
    """Live processes started by this test process that belong to the emulated stack."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if any(p in line for p in _OUR_PROGRAMS)]


@pytest.fixture(scope="module")
def radio() -> Iterator[VirtualRadio]:
    with VirtualRadio(n_controllers=3) as radio:
        yield radio


@pytest.fixture(autouse=True)
def no_leaked_processes(radio: VirtualRadio) -> Iterator[None]:
    # Every test ends its bridges and MicroPython programs; only the radio stays.
    yield
    leftover = [p for p in _our_children() if "insole.emulation.radio" not in p]
    assert not leftover, f"processes left running: {leftover}"


def test_radio_process_ends_with_its_context() -> None:
    with VirtualRadio(n_controllers=2) as spare:
        assert spare.process is not None and spare.process.poll() is None
        pid = str(spare.process.pid)
        assert any(line.split()[0] == pid for line in _our_children())
    assert spare.process.poll() is not None
    assert not any(line.split()[0] == pid for line in _our_children())


# --------------------------------------------------------------------------------------
# helpers


def _command(code: CommandCode, seq: int) -> bytes:
    return control_write(Command(code).encode(seq=seq))


@dataclass
class Inbox:
    """Notifications per characteristic, with their arrival times (the callbacks only append)."""

    packets: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)

    def callback(self, uuid: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        box = self.packets.setdefault(uuid, [])
        return lambda _char, data: box.append((time.perf_counter(), bytes(data)))

    def of(self, uuid: str) -> list[bytes]:
        return [data for _, data in self.packets.get(uuid, [])]

    async def wait(self, uuid: str, count: int, timeout_s: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.packets.get(uuid, [])) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.of(uuid)


async def _find(side: int, timeout_s: float = 10.0) -> tuple[BLEDevice, Any]:
    """The insole of this side, found by service UUID and advertised name."""
    name = device_name(side)
    async with BleakScanner(service_uuids=[SERVICE_UUID], backend=BumbleScanner) as scanner:
        async with asyncio.timeout(timeout_s):
            async for device, adv in scanner.advertisement_data():
                if adv.local_name == name:
                    return device, adv
    raise AssertionError("unreachable")


async def _line(peripheral: BridgedPeripheral, timeout_s: float = 10.0) -> str:
    return await asyncio.to_thread(peripheral.firmware_line, timeout_s)


def _run(radio: VirtualRadio, scenario: Callable[[], Any], interval_ms: float | None = None) -> Any:
    """Runs the host's side; its connections ask for ``interval_ms`` (the backend's default if None)."""
    async def main() -> Any:
        bumble_backend.use_transport(radio.transports[HOST])
        bumble_backend.use_connection_interval(interval_ms)
        try:
            return await scenario()
        finally:
            bumble_backend.use_connection_interval(None)
            await bumble_backend.shutdown()

    return asyncio.run(main())


# Connection intervals the streaming tests run at: the shortest (what the host asks for
# by default) and what phones choose (30-50 ms).
INTERVALS_MS = [7.5, 30.0, 50.0]


# --------------------------------------------------------------------------------------
# tests


@pytest.mark.micropython
def test_scan_by_service_and_side_connect_and_read_standard_services(radio: VirtualRadio) -> None:
    with echo_peripheral(radio.transports[LEFT], side="left") as left:
        assert left.firmware_line() == "ready insole-L"

        async def scenario() -> None:
            device, adv = await _find(side=0)
            assert adv.local_name == "insole-L"
            assert SERVICE_UUID in adv.service_uuids
            assert advertised_side(adv.service_data) == 0
            async with BleakClient(device, backend=BumbleClient) as client:
                assert client.mtu_size == 247  # the firmware's MTU, exchanged on connect
                services = {s.uuid for s in client.services}
                assert SERVICE_UUID in services
                chars = {c.uuid: c for c in client.services.characteristics.values()}
                assert chars[CONTROL_UUID].properties == ["write", "notify"]
                assert chars[SAMPLES_UUID].properties == ["notify"]
                assert chars[STATUS_UUID].properties == ["read", "notify"]
                assert bytes(await client.read_gatt_char(MANUFACTURER_NAME_UUID)) == b"insole project"
                assert bytes(await client.read_gatt_char(MODEL_NUMBER_UUID)) == b"insole"
                version = (FIRMWARE_DIR / "insolefw" / "version.py").read_text()
                expected = ".".join(re.search(rf"FW_{part} = (\d+)", version).group(1)  # type: ignore[union-attr]
                                    for part in ("MAJOR", "MINOR", "PATCH"))
                assert bytes(await client.read_gatt_char(FIRMWARE_REVISION_UUID)).decode() == expected
                assert (await client.read_gatt_char(BATTERY_LEVEL_UUID))[0] <= 100
                assert bytes(await client.read_gatt_char(RSC_FEATURE_UUID)) == b"\x01\x00"
                # Status is the insole's own business (mode, samples measured): a bond first.
                with pytest.raises(BleakGATTProtocolError):
                    await client.read_gatt_char(STATUS_UUID)

        _run(radio, scenario)


@pytest.mark.micropython
def test_control_write_refused_unencrypted_then_accepted_after_pairing(radio: VirtualRadio) -> None:
    with echo_peripheral(radio.transports[LEFT], side="left") as left:
        assert left.firmware_line().startswith("ready")

        async def scenario() -> None:
            device, _ = await _find(side=0)
            inbox = Inbox()
            async with BleakClient(device, backend=BumbleClient) as client:
                await client.start_notify(CONTROL_UUID, inbox.callback(CONTROL_UUID))
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.PING, 1), response=True)
                # NimBLE (ble_att_svr_check_perms): 0x05 to a peer without a bond, 0x0F only to a bonded one.
                assert refused.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION

                await client.pair()
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.PING, 2), response=True)
                # The first thing the app saw is the paired write: the refused one never arrived.
                assert await _line(left) == "packet 6 2"
                answers = await inbox.wait(CONTROL_UUID, 1)
                ack = decode_packet(answers[0]).body
                assert isinstance(ack, Ack) and ack.ref_seq == 2 and ack.ref_command == CommandCode.PING

                # A write whose CRC fails is not passed on, and nothing is answered.
                bad = bytearray(_command(CommandCode.PING, 3))
                bad[-1] ^= 0xFF
                await client.write_gatt_char(CONTROL_UUID, bytes(bad), response=True)
                assert await _line(left) == "bad 3"
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.GET_STATUS, 4), response=True)
                assert await _line(left) == "packet 6 4"
                answers = await inbox.wait(CONTROL_UUID, 2)
                status = decode_packet(answers[1]).body
                assert len(answers) == 2 and isinstance(status, Status)
                print(f"\nfree heap of the echo app with BleLink and the bluetooth stand-in at 128K: "
                      f"{status.free_heap} bytes")
                # The status characteristic holds the same STATUS packet.
                assert bytes(await client.read_gatt_char(STATUS_UUID)) == answers[1]

        _run(radio, scenario)


def _check_stream(samples: list[bytes]) -> int:
    """Every SAMPLES packet continues the index of the one before: nothing lost or reordered."""
    expected = 0
    for packet in samples:
        body = decode_packet(packet).body
        assert isinstance(body, Samples)
        assert int(body.indices[0]) == expected
        expected += body.count
    return expected


@pytest.mark.micropython
@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
def test_notification_throughput_no_loss(radio: VirtualRadio, interval_ms: float) -> None:
    with echo_peripheral(radio.transports[LEFT], side="left",
                           env={"INSOLE_BLE_STREAM_PACKETS": str(STREAM_PACKETS)}) as left:
        assert left.firmware_line().startswith("ready")

        async def scenario() -> dict[str, float]:
            device, _ = await _find(side=0)
            inbox = Inbox()
            async with BleakClient(device, backend=BumbleClient) as client:
                await client.pair()
                for uuid in (SAMPLES_UUID, EVENTS_UUID, RSC_MEASUREMENT_UUID):
                    await client.start_notify(uuid, inbox.callback(uuid))
                start = time.perf_counter()
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.START_STREAM, 1), response=True)
                assert await _line(left) == "packet 6 1"
                sent, dropped, busy = map(int, (await _line(left, 60)).split()[1:])
                assert (sent, dropped) == (STREAM_PACKETS, 0)
                await inbox.wait(SAMPLES_UUID, STREAM_PACKETS)
                await inbox.wait(EVENTS_UUID, STREAM_PACKETS // 25)
                samples = inbox.packets[SAMPLES_UUID]
                elapsed = samples[-1][0] - start
                n_samples = _check_stream([data for _, data in samples])
                assert len(samples) == STREAM_PACKETS
                assert n_samples == STREAM_PACKETS * SAMPLES_PER_PACKET
                # One STEP per 25 SAMPLES packets, each also as an RSC Measurement.
                assert len(inbox.of(EVENTS_UUID)) == STREAM_PACKETS // 25
                assert len(await inbox.wait(RSC_MEASUREMENT_UUID, STREAM_PACKETS // 25)) == STREAM_PACKETS // 25
                n_bytes = sum(len(data) for _, data in samples)
                return {"packets_s": len(samples) / elapsed, "bytes_s": n_bytes / elapsed,
                        "samples_s": n_samples / elapsed, "busy": busy}

        rates = _run(radio, scenario, interval_ms)
        print(f"\nBLE notification throughput at a {interval_ms:g} ms connection interval (emulated link, one "
              f"insole): {rates['packets_s']:.0f} packets/s, "
              f"{rates['bytes_s'] / 1000:.1f} kB/s, {rates['samples_s']:.0f} samples/s "
              f"(16 pressure channels + IMU per sample); the firmware waited for stack buffers "
              f"{rates['busy']} times")
        # Two feet at 100 Hz each need 200 samples/s; anything less would fall behind.
        assert rates["samples_s"] > 200
        # No faster than the link carries: a few packets per connection event.
        assert rates["packets_s"] <= PDUS_PER_EVENT * 1000.0 / interval_ms * 1.05


@pytest.mark.micropython
def test_disconnect_reconnect_and_bond_survives_firmware_restart(radio: VirtualRadio) -> None:
    with echo_peripheral(radio.transports[LEFT], side="left") as left:
        assert left.firmware_line().startswith("ready")

        async def write_ping(client: BleakClient, seq: int) -> None:
            await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.PING, seq), response=True)
            assert await _line(left) == f"packet 6 {seq}"

        async def scenario() -> None:
            device, _ = await _find(side=0)
            client = BleakClient(device, backend=BumbleClient)
            await client.connect()
            await client.pair()
            await write_ping(client, 1)
            await client.disconnect()
            assert not client.is_connected

            # The insole advertises again; the bond makes the new link encrypted at once.
            device, _ = await _find(side=0)
            lost = asyncio.Event()
            async with BleakClient(device, lambda _c: lost.set(), backend=BumbleClient) as client:
                await write_ping(client, 2)
                # The insole hangs up by itself ...
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.EXIT_TO_REPL, 3), response=True)
                assert await _line(left) == "packet 6 3"
                assert await _line(left) == "disconnect True"
                await asyncio.wait_for(lost.wait(), 10)
                assert not client.is_connected
            lost.clear()
            device, _ = await _find(side=0)
            async with BleakClient(device, lambda _c: lost.set(), backend=BumbleClient) as client:
                await write_ping(client, 4)
                # Firmware reset: the central sees the link drop ...
                await asyncio.to_thread(left.restart)
                await asyncio.wait_for(lost.wait(), 10)
                assert not client.is_connected
                with pytest.raises(BleakError):
                    await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.PING, 9), response=True)
            assert (await _line(left)).startswith("ready")
            # ... and after reconnecting, the bond the firmware stored still holds.
            device, _ = await _find(side=0)
            async with BleakClient(device, backend=BumbleClient) as client:
                await write_ping(client, 5)

        _run(radio, scenario)


@pytest.mark.micropython
def test_two_insoles_at_once(radio: VirtualRadio) -> None:
    env = {"INSOLE_BLE_STREAM_PACKETS": "150"}
    with echo_peripheral(radio.transports[LEFT], side="left", env=env) as left, \
            echo_peripheral(radio.transports[RIGHT], side="right", env=env) as right:
        assert left.firmware_line() == "ready insole-L"
        assert right.firmware_line() == "ready insole-R"

        async def stream(device: BLEDevice, peripheral: BridgedPeripheral, go: asyncio.Barrier) -> tuple[int, float]:
            inbox = Inbox()
            async with BleakClient(device, backend=BumbleClient) as client:
                await client.pair()
                await client.start_notify(SAMPLES_UUID, inbox.callback(SAMPLES_UUID))
                await go.wait()  # both links up and paired: stream at the same time
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.START_STREAM, 1), response=True)
                assert await _line(peripheral) == "packet 6 1"
                assert (await _line(peripheral, 60)).startswith("stream 150 0 ")
                n_samples = _check_stream(await inbox.wait(SAMPLES_UUID, 150))
                return n_samples, inbox.packets[SAMPLES_UUID][-1][0]

        async def scenario() -> float:
            (left_device, left_adv), (right_device, right_adv) = await asyncio.gather(_find(0), _find(1))
            assert advertised_side(left_adv.service_data) == 0
            assert advertised_side(right_adv.service_data) == 1
            assert left_device.address != right_device.address
            go = asyncio.Barrier(3)
            streams = asyncio.gather(stream(left_device, left, go), stream(right_device, right, go))
            await go.wait()
            start = time.perf_counter()
            results = await streams
            assert [n for n, _ in results] == [150 * SAMPLES_PER_PACKET] * 2
            return 2 * 150 * SAMPLES_PER_PACKET / (max(t for _, t in results) - start)

        samples_s = _run(radio, scenario)
        print(f"\nBLE notification throughput, two insoles at once: {samples_s:.0f} samples/s in all")


@pytest.mark.micropython
def test_events_as_indications(radio: VirtualRadio) -> None:
    with echo_peripheral(radio.transports[RIGHT], side="right", args=["--indicate"],
                           env={"INSOLE_BLE_STREAM_PACKETS": "100"}) as right:
        assert right.firmware_line() == "ready insole-R"

        async def scenario() -> None:
            device, _ = await _find(side=1)
            inbox = Inbox()
            async with BleakClient(device, backend=BumbleClient) as client:
                events = client.services.get_characteristic(EVENTS_UUID)
                assert events is not None and events.properties == ["indicate"]
                await client.pair()
                await client.start_notify(EVENTS_UUID, inbox.callback(EVENTS_UUID))
                await client.start_notify(SAMPLES_UUID, inbox.callback(SAMPLES_UUID))
                await client.write_gatt_char(CONTROL_UUID, _command(CommandCode.START_STREAM, 1), response=True)
                assert await _line(right) == "packet 6 1"
                assert (await _line(right, 60)).startswith("stream 100 0 ")
                steps = await inbox.wait(EVENTS_UUID, 4)
                assert [decode_packet(p).header.type for p in steps] == [PacketType.STEP] * 4
                assert [p[8 + 24] for p in steps] == [1, 2, 3, 4]  # step_number, in order
                assert _check_stream(await inbox.wait(SAMPLES_UUID, 100)) == 100 * SAMPLES_PER_PACKET

        _run(radio, scenario)


def test_every_pending_gatt_request_ends_with_the_link(radio: VirtualRadio) -> None:
    """A request queued behind one in flight fails when the link drops, as on BlueZ.

    bumble cancels only the request in flight; the one waiting for its turn went out
    on the dead link afterwards and took its 30-s timeout (a CI failure of the
    pairing-refusal test, where the insole dropped the link during a subscribe).
    """
    from bumble.device import Device
    from bumble.gatt import Characteristic, CharacteristicValue, Service
    from bumble.hci import Address
    from bumble.transport import open_transport

    slow_uuid = "7e1a0001-0000-4000-8000-00000000beef"

    async def scenario() -> tuple[list[BaseException | bytearray], float]:
        async with await open_transport(radio.transports[RIGHT]) as (source, sink):
            peripheral = Device.with_hci("slow", Address("C0:15:00:00:00:51"), source, sink)

            async def read_slowly(_connection: Any) -> bytes:
                await asyncio.sleep(5.0)
                return b"late"

            peripheral.add_service(Service(slow_uuid, [Characteristic(
                slow_uuid, Characteristic.Properties.READ, Characteristic.READABLE,
                CharacteristicValue(read=read_slowly))]))  # fmt: skip
            await peripheral.power_on()
            await peripheral.start_advertising(auto_restart=False)
            async with BleakClient(str(peripheral.random_address), backend=BumbleClient, timeout=10.0) as client:
                connection = next(iter(peripheral.connections.values()))
                reads = [asyncio.ensure_future(client.read_gatt_char(slow_uuid)) for _ in range(2)]
                await asyncio.sleep(0.5)  # the first read is in flight, the second waits its turn
                start = time.monotonic()
                await connection.disconnect()
                results = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 10.0)
                ended_after_s = time.monotonic() - start
            await peripheral.power_off()
        return results, ended_after_s

    results, ended_after_s = _run(radio, scenario)
    assert all(isinstance(result, BleakError) for result in results), results
    assert ended_after_s < 5.0, "a queued request outlived the link"
