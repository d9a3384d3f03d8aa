"""The insole's GATT layout, as ``firmware/insolefw/ble.py`` serves it.

Custom service (this project's 128-bit UUIDs, base ``5c98xxxx-6144-4e19-8626-361760cb12cb``):

========  ========  ==============================================================
UUID      access    content
========  ========  ==============================================================
…1001     notify    SAMPLES packets, one protocol v1 packet per notification
…1002     notify    STEP, HEEL_RAISE and event types >= 0x0A (indicate if so built)
…1003     write     one packet + CRC-16 LE per write, with response, only on an
                    encrypted, bonded link; answers come back as notifications
…1004     read      the latest STATUS packet (also notified); encrypted links only
========  ========  ==============================================================

Gait samples and events are sent only to a bonded host that asked on the current link
(START_STREAM or GET_EVENTS; docs/security.md). Public standard services: Device
Information (0x180A), Battery (0x180F, measured level) and Running Speed and Cadence
(0x1814: RSC Measurement, RSC Feature, Sensor Location "in shoe"), so sports apps see a
footpod. The advertising data carries the flags, the RSC service (0x1814), this
project's service UUID and the appearance 0x0441 (in-shoe running speed and cadence
sensor); the scan response the service data (side byte: 0 left, 1 right, 0xFF unknown;
then the protocol version) and the name ``insole-L``/``insole-R``.
"""

from __future__ import annotations

import struct

from bleak.uuids import normalize_uuid_16

from insole.protocol import crc16

SERVICE_UUID = "5c981000-6144-4e19-8626-361760cb12cb"
SAMPLES_UUID = "5c981001-6144-4e19-8626-361760cb12cb"
EVENTS_UUID = "5c981002-6144-4e19-8626-361760cb12cb"
CONTROL_UUID = "5c981003-6144-4e19-8626-361760cb12cb"
STATUS_UUID = "5c981004-6144-4e19-8626-361760cb12cb"

DEVICE_INFORMATION_UUID = normalize_uuid_16(0x180A)
MANUFACTURER_NAME_UUID = normalize_uuid_16(0x2A29)
MODEL_NUMBER_UUID = normalize_uuid_16(0x2A24)
FIRMWARE_REVISION_UUID = normalize_uuid_16(0x2A26)
BATTERY_SERVICE_UUID = normalize_uuid_16(0x180F)
BATTERY_LEVEL_UUID = normalize_uuid_16(0x2A19)
RSC_SERVICE_UUID = normalize_uuid_16(0x1814)
RSC_MEASUREMENT_UUID = normalize_uuid_16(0x2A53)
RSC_FEATURE_UUID = normalize_uuid_16(0x2A54)
SENSOR_LOCATION_UUID = normalize_uuid_16(0x2A5D)

SIDE_LETTERS = {0: "L", 1: "R"}


def device_name(side: int, base: str = "insole") -> str:
    """The advertised name of an insole on this side (0 left, 1 right)."""
    return f"{base}-{SIDE_LETTERS.get(side, 'X')}"


def control_write(packet: bytes) -> bytes:
    """What one control write carries: the packet and its CRC-16, little-endian."""
    return packet + struct.pack("<H", crc16(packet))


def advertised_side(service_data: dict[str, bytes]) -> int | None:
    """The side byte of the insole service data (0 left, 1 right), or None."""
    data = service_data.get(SERVICE_UUID)
    return data[0] if data and data[0] in (0, 1) else None
