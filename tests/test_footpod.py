"""The insole as any sports app sees it: a running speed and cadence footpod.

The client here is bumble's own device and GATT client, as a generic app would use
its platform's: nothing from ``insole`` but what starts the simulated insole (the
firmware on the unix port, walking, its radio on the emulated link). What is checked
is what the Bluetooth SIG's documents define:

- advertising (Core Supplement): flags, the 16-bit service list with Running Speed and
  Cadence 0x1814 and the appearance 0x0441 (Running Walking Sensor, In-Shoe: category
  0x011 << 6 | subcategory 1) in the advertising data itself, so that a passive scanner
  finds it; the complete name and the insole's service data in the scan response;
- RSC Service: Sensor Location 0x2A5D is 0x02, "In shoe"; RSC Feature 0x2A54 supports
  what the measurements carry and not multiple sensor locations (bit 4);
- RSC Measurement 0x2A53: flags (bit 0 stride length present, bit 1 total distance
  present, bit 2 running), speed in 1/256 m/s, cadence in 1/min, stride length in
  1/100 m. Cadence counts foot falls of both feet (steps per minute); the stride length
  is the distance between two successive contacts of the same foot, so one stride takes
  two steps: speed = cadence / 60 x stride length / 2. When walking stops the sensor
  says so (speed and cadence 0), it does not repeat the last values;
- Battery Level 0x2A19: a measured, falling percentage;
- ATT: a write to a characteristic without the write property is refused with 0x03.

``insole peripheral`` runs the same simulated insole on a transport the user names;
the last test drives it over ``tcp-server:`` with a controller opened here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import UUID, AdvertisingData, PhysicalTransport
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.transport import open_transport

from insole.emulation.insoles import simulated_ble_insole, write_insole_samples
from insole.emulation.peripheral import BridgedPeripheral
from insole.emulation.radio import VirtualRadio, radio_controller, radio_link
from insole.sim import SessionPlan, Stand, Walk, simulate_session

pytestmark = [pytest.mark.ble, pytest.mark.micropython]

RSC_SERVICE = UUID.from_16_bits(0x1814)
RSC_MEASUREMENT = UUID.from_16_bits(0x2A53)
RSC_FEATURE = UUID.from_16_bits(0x2A54)
SENSOR_LOCATION = UUID.from_16_bits(0x2A5D)
BATTERY_LEVEL = UUID.from_16_bits(0x2A19)
INSOLE_SERVICE = UUID("5c981000-6144-4e19-8626-361760cb12cb")
APPEARANCE_IN_SHOE = 0x0441
SENSOR_LOCATION_IN_SHOE = 0x02
AD_FLAGS, AD_UUID16_COMPLETE, AD_UUID128_COMPLETE, AD_NAME, AD_APPEARANCE, AD_SERVICE_DATA_128 = (
    0x01, 0x03, 0x07, 0x09, 0x19, 0x21)

# The simulated walk: standing, walking, standing, over and over (the sample file loops).
CADENCE_SPM = 110.0
STRIDE_LENGTH_M = 1.3
WALK_S, STAND_S = 8.0, 6.0
CYCLE_S = 1.0 + WALK_S + STAND_S
SPEED_MS = CADENCE_SPM / 60.0 * STRIDE_LENGTH_M / 2.0


@dataclass
class Measurement:
    """One RSC Measurement, decoded as the specification defines it."""

    arrival_s: float
    flags: int
    speed_ms: float
    cadence_spm: int
    stride_m: float | None
    distance_m: float | None

    @classmethod
    def decode(cls, value: bytes, arrival_s: float) -> Measurement:
        flags, speed, cadence = struct.unpack_from("<BHB", value)
        off = 4
        stride = distance = None
        if flags & 0x01:
            (stride_cm,) = struct.unpack_from("<H", value, off)
            stride, off = stride_cm / 100.0, off + 2
        if flags & 0x02:
            (distance_dm,) = struct.unpack_from("<I", value, off)
            distance, off = distance_dm / 10.0, off + 4
        assert off == len(value), f"RSC Measurement {value.hex()}: {len(value)} bytes, the flags say {off}"
        return cls(arrival_s, flags, speed / 256.0, cadence, stride, distance)


def ad_fields(data: AdvertisingData) -> dict[int, list[bytes]]:
    fields: dict[int, list[bytes]] = {}
    for ad_type, value in data.ad_structures:
        fields.setdefault(int(ad_type), []).append(bytes(value))
    return fields


def uuid16s(fields: dict[int, list[bytes]]) -> list[int]:
    return [u for value in fields.get(AD_UUID16_COMPLETE, []) for u in struct.unpack(f"<{len(value) // 2}H", value)]


@pytest.fixture(scope="module")
def footpod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VirtualRadio, BridgedPeripheral]]:
    """A radio with the simulated left insole walking on it (controller 1); the app's is 0."""
    work = tmp_path_factory.mktemp("footpod")
    plan = SessionPlan([Stand(duration_s=1.0), Walk(duration_s=WALK_S, fpa_deg=8.0, cadence_spm=CADENCE_SPM,
                                                     stride_length_m=STRIDE_LENGTH_M), Stand(duration_s=STAND_S)],
                       name="footpod")
    stream = simulate_session(plan, rate_hz=104.0, seed=3).streams[0]
    layout, _ = write_insole_samples(stream, work / "left.ismp")
    with VirtualRadio(n_controllers=2) as radio, simulated_ble_insole(
        radio.transports[1], "left", work / "left.ismp", layout, log_path=work / "insole.log",
        env={"INSOLE_SIM_BATTERY_HOURS": "0.05"},  # 3 minutes from full to empty: visibly falling
    ) as insole:
        yield radio, insole


@contextlib.asynccontextmanager
async def app(transport: str, mtu: int = 23) -> AsyncIterator[Device]:
    """A generic app's central: bumble's device, asking for no larger MTU than ``mtu``."""
    hci_transport = await open_transport(transport)
    device = Device.with_hci("sports-app", hci.Address("C0:15:00:00:00:A0"), hci_transport.source,
                             hci_transport.sink)
    device.gatt_server.max_mtu = mtu  # what it answers when the insole asks for a larger MTU
    await device.power_on()
    try:
        yield device
    finally:
        await hci_transport.close()


async def find_footpod(device: Device, active: bool, timeout_s: float = 15.0) -> Advertisement:
    """The first advertiser with Running Speed and Cadence and the In-Shoe appearance."""
    found: asyncio.Future[Advertisement] = asyncio.get_running_loop().create_future()

    def on_advertisement(advertisement: Advertisement) -> None:
        fields = ad_fields(advertisement.data)
        appearance = [struct.unpack("<H", v)[0] for v in fields.get(AD_APPEARANCE, [])]
        if 0x1814 in uuid16s(fields) and APPEARANCE_IN_SHOE in appearance and not found.done():
            found.set_result(advertisement)

    device.on("advertisement", on_advertisement)
    await device.start_scanning(active=active, filter_duplicates=False)
    try:
        return await asyncio.wait_for(found, timeout_s)
    finally:
        await device.stop_scanning()
        device.remove_listener("advertisement", on_advertisement)


async def connect(device: Device, address: hci.Address, mtu: int) -> tuple[Connection, Peer]:
    connection = await device.connect(address, transport=PhysicalTransport.LE, timeout=10)
    peer = Peer(connection)
    if mtu > 23:
        await peer.request_mtu(mtu)
    await peer.discover_services()
    await peer.discover_characteristics()
    return connection, peer


def characteristic(peer: Peer, uuid: UUID) -> Any:
    found = peer.get_characteristics_by_uuid(uuid)
    assert found, f"no characteristic {uuid}"
    return found[0]


def run(scenario: Any) -> Any:
    return asyncio.run(scenario())


# --------------------------------------------------------------------------------------


def test_a_sports_app_finds_the_insole_by_rsc_service_and_appearance(
    footpod: tuple[VirtualRadio, BridgedPeripheral],
) -> None:
    radio, _ = footpod

    async def scenario() -> None:
        async with app(radio.transports[0]) as device:
            # A passive scan sees the advertising data alone: the service and the appearance are there.
            passive = await find_footpod(device, active=False)
            fields = ad_fields(passive.data)
            assert fields[AD_FLAGS] == [b"\x06"]  # LE General Discoverable, BR/EDR not supported
            assert 0x1814 in uuid16s(fields)
            assert bytes(INSOLE_SERVICE.to_bytes()) in fields[AD_UUID128_COMPLETE]
            assert AD_NAME not in fields and AD_SERVICE_DATA_128 not in fields  # those are in the scan response
            # An active scan adds the scan response: the name and the insole's service data.
            active = ad_fields((await find_footpod(device, active=True)).data)
            assert active[AD_NAME] == [b"insole-L"]
            service_data = active[AD_SERVICE_DATA_128][0]
            assert service_data[:16] == bytes(INSOLE_SERVICE.to_bytes())
            assert service_data[16] == 0  # left
            assert service_data[17] >= 1  # protocol version

    run(scenario)


@pytest.mark.parametrize("mtu", [23, 247])
def test_rsc_values_are_sensible_consistent_and_go_to_zero_when_walking_stops(
    footpod: tuple[VirtualRadio, BridgedPeripheral], mtu: int
) -> None:
    radio, _ = footpod

    async def scenario() -> list[Measurement]:
        async with app(radio.transports[0], mtu) as device:
            advertisement = await find_footpod(device, active=False)
            connection, peer = await connect(device, advertisement.address, mtu)
            assert characteristic(peer, SENSOR_LOCATION) is not None
            location = bytes(await peer.read_value(characteristic(peer, SENSOR_LOCATION)))
            assert location == bytes((SENSOR_LOCATION_IN_SHOE,))
            (feature,) = struct.unpack("<H", bytes(await peer.read_value(characteristic(peer, RSC_FEATURE))))
            assert not feature & 0x10, "multiple sensor locations: no"
            measurements: list[Measurement] = []
            await peer.subscribe(characteristic(peer, RSC_MEASUREMENT),
                                 lambda value: measurements.append(Measurement.decode(bytes(value), time.monotonic())),
                                 prefer_notify=True)
            # Long enough for a walk to stop and start again, wherever in its cycle it is.
            await asyncio.sleep(CYCLE_S + 3.0)
            assert connection.att_mtu == mtu
            await connection.disconnect()
            await asyncio.sleep(0.1)
            for m in measurements:
                if m.stride_m is not None:
                    assert feature & 0x01, "stride length sent but not in RSC Feature"
                if m.distance_m is not None:
                    assert feature & 0x02, "total distance sent but not in RSC Feature"
                if m.flags & 0x04:
                    assert feature & 0x04, "walking/running status sent but not in RSC Feature"
            return measurements

    measurements = run(scenario)
    walking = [m for m in measurements if m.speed_ms > 0]
    assert len(walking) >= 4, f"at MTU {mtu}: {len(walking)} walking measurements in {CYCLE_S + 3:.0f} s"
    for m in walking:
        assert abs(m.cadence_spm - CADENCE_SPM) <= 0.15 * CADENCE_SPM, m
        assert m.stride_m is not None and abs(m.stride_m - STRIDE_LENGTH_M) <= 0.25 * STRIDE_LENGTH_M, m
        assert abs(m.speed_ms - SPEED_MS) <= 0.25 * SPEED_MS, m
        # The RSC specification's definitions tie the three together.
        assert abs(m.speed_ms - m.cadence_spm / 60.0 * m.stride_m / 2.0) <= 0.15 * m.speed_ms, m
        assert not m.flags & 0x04, "walking, not running, at 1.2 m/s"
    # Once walking stops: a measurement of zero speed and cadence, soon, and no stale values after it.
    stops = [i for i in range(1, len(measurements))
             if measurements[i - 1].speed_ms > 0 and measurements[i].speed_ms == 0]
    assert stops, "walking stopped, but no zero measurement followed"
    for i in stops:
        zero = measurements[i]
        assert zero.cadence_spm == 0
        assert zero.arrival_s - measurements[i - 1].arrival_s <= 4.0, "the zero came long after the last step"
        later = measurements[i + 1 :]
        if later:
            assert later[0].speed_ms == 0 or later[0].arrival_s - zero.arrival_s >= STAND_S - 2.0, \
                "a walking value again while standing"


def test_battery_level_is_measured_and_falls(footpod: tuple[VirtualRadio, BridgedPeripheral]) -> None:
    radio, _ = footpod

    async def scenario() -> list[int]:
        async with app(radio.transports[0]) as device:
            advertisement = await find_footpod(device, active=False)
            connection, peer = await connect(device, advertisement.address, 23)
            battery = characteristic(peer, BATTERY_LEVEL)
            levels = [bytes(await peer.read_value(battery))[0]]
            deadline = time.monotonic() + 30.0
            while levels[-1] == levels[0] and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                levels.append(bytes(await peer.read_value(battery))[0])
            await connection.disconnect()
            return levels

    levels = run(scenario)
    assert all(0 <= level <= 100 for level in levels), levels
    assert levels[-1] < levels[0], f"battery level constant at {levels[0]} % for 30 s on a 3-minute battery"


def test_a_write_to_a_read_only_characteristic_is_refused(footpod: tuple[VirtualRadio, BridgedPeripheral]) -> None:
    radio, _ = footpod

    async def scenario() -> None:
        async with app(radio.transports[0]) as device:
            advertisement = await find_footpod(device, active=False)
            connection, peer = await connect(device, advertisement.address, 23)
            for uuid in (RSC_FEATURE, SENSOR_LOCATION, BATTERY_LEVEL):
                with pytest.raises(ATT_Error) as refused:
                    await peer.write_value(characteristic(peer, uuid), b"\x00\x00", with_response=True)
                assert refused.value.error_code == 0x03, uuid  # Write Not Permitted
            await connection.disconnect()

    run(scenario)


# --------------------------------------------------------------------------------------
# `insole peripheral` on a transport the user names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _line(process: subprocess.Popen[str], timeout_s: float = 60.0) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            return line.strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"insole peripheral said nothing (exit code {process.poll()})")


def test_insole_peripheral_command_serves_a_footpod_on_a_tcp_server_transport(tmp_path: Path) -> None:
    """The command's bridge is a bumble host on ``tcp-server:``; here a controller of the
    emulated radio connects to it as a USB dongle would be plugged in, and the app's
    controller shares that controller's link."""
    port = _free_port()
    log = tmp_path / "peripheral.log"
    command = subprocess.Popen(
        [sys.executable, "-m", "insole.cli", "peripheral", "--transport", f"tcp-server:127.0.0.1:{port}",
         "--side", "right", "--duration-s", "90", "--log", str(log), "--stand-s", "1", "--walk-s", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert _line(command).startswith("simulated right insole on tcp-server:")

        async def scenario() -> None:
            link = radio_link()
            for _ in range(200):  # the bridge listens once the firmware's sample file is written
                try:
                    insole_side = await open_transport(f"tcp-client:127.0.0.1:{port}")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the command's bridge never listened")
            radio_controller("insole", insole_side.source, insole_side.sink, link)  # the dongle
            app_controller = radio_controller("app", None, None, link)
            device = Device.with_hci("sports-app", hci.Address("C0:15:00:00:00:A1"), app_controller, app_controller)
            await device.power_on()
            try:
                assert await asyncio.to_thread(_line, command) == "running"
                advertisement = await find_footpod(device, active=True, timeout_s=20.0)
                assert ad_fields(advertisement.data)[AD_NAME] == [b"insole-R"]
                connection, peer = await connect(device, advertisement.address, 247)
                location = bytes(await peer.read_value(characteristic(peer, SENSOR_LOCATION)))
                assert location == bytes((SENSOR_LOCATION_IN_SHOE,))
                measurements: list[Measurement] = []
                await peer.subscribe(characteristic(peer, RSC_MEASUREMENT),
                                     lambda v: measurements.append(Measurement.decode(bytes(v), time.monotonic())),
                                     prefer_notify=True)
                deadline = time.monotonic() + 15.0
                while not any(m.speed_ms > 0 for m in measurements) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                assert any(m.speed_ms > 0 for m in measurements), "no RSC Measurement while walking"
                with pytest.raises(ATT_Error) as refused:
                    await peer.write_value(characteristic(peer, RSC_FEATURE), b"\x00\x00", with_response=True)
                assert refused.value.error_code == 0x03
                await connection.disconnect()
            finally:
                await insole_side.close()

        run(scenario)
    finally:
        command.terminate()
        try:
            command.wait(timeout=10)
        except subprocess.TimeoutExpired:
            command.kill()
            command.wait(timeout=5)
    # Terminated, the command stops what it started: no bridge (nor its firmware) left behind.
    left = subprocess.run(["pgrep", "-f", f"tcp-server:127.0.0.1:{port}"], capture_output=True, text=True).stdout
    assert not left.strip(), f"insole peripheral left processes behind: {left}"
