"""Every deliberate copy of a constant stays equal to its other copies.

MicroPython modules state their numbers as private ``const()``s, compiled into each
module (idiomatic, and free at run time), and the host states the same protocol in
Python: so some numbers stand in several places on purpose. This file reads the
firmware's sources (MicroPython is Python syntax; nothing is imported) and checks:

* same-named ``const()``s across firmware files are equal (a name means one thing);
* the firmware's codes (packet types, commands, errors, modes, directions, cue
  reasons and outcomes, cue modes and schedules) against the host's enums, both ways;
* single numbers the host and the firmware share (lengths, sentinels, flags …);
* the emulated radio's wire: the bridge's opcodes, IRQ numbers and flags, in the unix
  port's ``bluetooth`` stand-in, the firmware's BLE module and the host's bridge;
* the GATT UUIDs the firmware serves and the host looks for;
* the defaults of the host's gait twins (``insole.gait``'s parameter dataclasses)
  against the firmware machines' constants, unit for unit.

The board's pins have their own check against hardware/wiring.md (test_firmware_build).
"""

from __future__ import annotations

import ast
import dataclasses
import struct
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from insole.emulation import bridge
from insole.gait import contact as contact_twin
from insole.gait.contact import HeelRaiseParameters, PressureContactParameters
from insole.gait.cue import SEED_ZERO
from insole.gait.imu import ImuTrackerParameters
from insole.gait.stride import AXIS_ONE, StrideParameters
from insole.link import gatt
from insole.link.clocksync import DEVICE_TIME_MODULUS_MS
from insole.protocol import (
    BOND_ADDR_LEN,
    CRC_LEN,
    CUE_PATTERN_WEIGHTS,
    FIXED_PAYLOAD_LEN,
    HEADER_LEN,
    MAX_BONDS_LISTED,
    MAX_PACKET_LEN,
    MAX_PRESSURE_CHANNELS,
    NA_I16,
    NA_U8,
    NA_U16,
    NA_U32,
    OPEN_PAIRING_MAX_S,
    PROTOCOL_VERSION,
    SAMPLES_HEADER_LEN,
    SETTINGS_VERSION,
    STEP_FLAG_CONTACT_IMU,
    STEP_FLAG_CONTACT_PRESSURE,
    USB_ONLY_COMMANDS,
    CommandCode,
    CueMode,
    CueOutcome,
    CuePattern,
    CueReason,
    CueSchedule,
    Direction,
    ErrorCode,
    Mode,
    PacketType,
    Status,
)

FIRMWARE = REPO_ROOT / "firmware"
FW = FIRMWARE / "insolefw"
BLUETOOTH_STAND_IN = FIRMWARE / "boards" / "unix" / "bluetooth.py"
BRIDGE = REPO_ROOT / "host" / "insole" / "emulation" / "bridge.py"


def _module_values(path: Path) -> dict[str, Any]:
    """The module-level ``NAME = const(...)`` and ``NAME = <literal>`` of a source file,
    evaluated in order (a const may be built from earlier ones)."""
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        expression = node.value
        if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name) and expression.func.id == "const":
            expression = expression.args[0]
        try:
            values[node.targets[0].id] = eval(compile(ast.Expression(expression), str(path), "eval"), {}, dict(values))
        except (NameError, TypeError, AttributeError, SyntaxError):
            continue  # not a constant (a call, an object)
    return values


def _consts(path: Path) -> dict[str, int]:
    """Only the ``const()`` assignments."""
    names = {
        node.targets[0].id
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "const"
        and isinstance(node.targets[0], ast.Name)
    }
    return {name: value for name, value in _module_values(path).items() if name in names}


def _firmware_files() -> Iterator[Path]:
    for path in sorted(FIRMWARE.rglob("*.py")):
        if "tests" not in path.relative_to(FIRMWARE).parts:
            yield path


def test_same_named_consts_are_equal_across_firmware_files() -> None:
    seen: dict[str, dict[str, int]] = {}
    for path in _firmware_files():
        for name, value in _consts(path).items():
            seen.setdefault(name, {})[path.relative_to(FIRMWARE).as_posix()] = value
    shared = {name: where for name, where in seen.items() if len(where) > 1}
    assert shared, "no const() is shared between firmware files: is the parser still finding them?"
    differ = {name: where for name, where in shared.items() if len(set(where.values())) > 1}
    assert not differ, f"one name, several values: {differ}"


# (firmware file, prefix of its names, host enum, renames firmware -> host, every host member covered)
ENUM_COPIES: list[tuple[Path, str, type[IntEnum], dict[str, str], bool]] = [
    (FW / "protocol.py", "T_", PacketType, {}, True),
    (FW / "protocol.py", "CMD_", CommandCode, {}, True),
    (FW / "protocol.py", "E_", ErrorCode, {}, True),
    (FW / "ble.py", "_T_", PacketType, {"FIRST_EVENT_EXT": "CUE"}, False),
    (FW / "app.py", "MODE_", Mode, {}, True),
    (FW / "app.py", "_REASON_", CueReason, {}, False),
    (FW / "app.py", "_PATTERN_", CuePattern, {}, False),
    (FW / "cue.py", "REASON_", CueReason, {}, True),
    (FW / "imu.py", "DIR_", Direction, {}, True),
    (FW / "settings.py", "CUE_", CueMode, {"FPA_BAND": "FOOT_ANGLE"}, True),
    (FW / "settings.py", "SCHEDULE_", CueSchedule, {"EVERY": "EVERY_STEP"}, True),
]


@pytest.mark.parametrize(
    ("path", "prefix", "enum", "renames", "complete"),
    ENUM_COPIES,
    ids=[f"{p.name}:{prefix}*={e.__name__}" for p, prefix, e, _, _ in ENUM_COPIES],
)
def test_firmware_codes_match_the_host_enum(
    path: Path, prefix: str, enum: type[IntEnum], renames: dict[str, str], complete: bool
) -> None:
    firmware = {
        renames.get(name[len(prefix) :], name[len(prefix) :]): value
        for name, value in _consts(path).items()
        if name.startswith(prefix)
    }
    assert firmware, f"no {prefix}* const() in {path.name}"
    host = {member.name: int(member) for member in enum}
    assert {name: host.get(name) for name in firmware} == firmware
    if complete:
        assert set(host) == set(firmware), f"{enum.__name__} and {path.name}'s {prefix}* name different codes"


def test_cue_outcomes_match_the_host_enum() -> None:
    cue = _consts(FW / "cue.py")
    names = ("CUED", "FADED_EVERY_KTH", "FADED_PROBABILITY", "NO_FEEDBACK_BLOCK")
    assert {name: cue[name] for name in names} == {member.name: int(member) for member in CueOutcome}
    assert _consts(FW / "app.py")["_CUED"] == CueOutcome.CUED


def test_shared_numbers_match() -> None:
    protocol = _module_values(FW / "protocol.py")
    ble = _consts(FW / "ble.py")
    pairs = {
        "protocol.VERSION": (protocol["VERSION"], PROTOCOL_VERSION),
        "protocol.HEADER_LEN": (protocol["HEADER_LEN"], HEADER_LEN),
        "ble._HEADER_LEN": (ble["_HEADER_LEN"], HEADER_LEN),
        "protocol.MAX_PACKET": (protocol["MAX_PACKET"], MAX_PACKET_LEN),
        "protocol.CRC_LEN": (protocol["CRC_LEN"], CRC_LEN),
        "ble._CRC_LEN": (ble["_CRC_LEN"], CRC_LEN),
        "protocol.SAMPLES_HEADER_LEN": (protocol["SAMPLES_HEADER_LEN"], SAMPLES_HEADER_LEN),
        "protocol.NA_U8": (protocol["NA_U8"], NA_U8),
        "protocol.NA_U16": (protocol["NA_U16"], NA_U16),
        "protocol.NA_I16": (protocol["NA_I16"], NA_I16),
        "cue.NA_U32": (_module_values(FW / "cue.py")["NA_U32"], NA_U32),
        "protocol.TIME_MASK + 1": (protocol["TIME_MASK"] + 1, DEVICE_TIME_MODULUS_MS),
        "protocol.BOND_ADDR_LEN": (protocol["BOND_ADDR_LEN"], BOND_ADDR_LEN),
        "protocol.MAX_BONDS_LISTED": (protocol["MAX_BONDS_LISTED"], MAX_BONDS_LISTED),
        "protocol.OPEN_PAIRING_MAX_S": (protocol["OPEN_PAIRING_MAX_S"], OPEN_PAIRING_MAX_S),
        "protocol.USB_ONLY_COMMANDS (bit n = command n)": (
            sorted(code for code in range(256) if protocol["USB_ONLY_COMMANDS"] >> code & 1),
            sorted(int(code) for code in USB_ONLY_COMMANDS),
        ),
        "settings.SETTINGS_VERSION": (_consts(FW / "settings.py")["SETTINGS_VERSION"], SETTINGS_VERSION),
        "gait.FLAG_PRESSURE": (_consts(FW / "gait.py")["FLAG_PRESSURE"], STEP_FLAG_CONTACT_PRESSURE),
        "gait.FLAG_IMU": (_consts(FW / "gait.py")["FLAG_IMU"], STEP_FLAG_CONTACT_IMU),
        "gait.MAX_CHANNELS": (_consts(FW / "gait.py")["MAX_CHANNELS"], MAX_PRESSURE_CHANNELS),
        "contact._MAX_CHANNELS": (_consts(FW / "contact.py")["_MAX_CHANNELS"], MAX_PRESSURE_CHANNELS),
        "cue._SEED_ZERO": (_consts(FW / "cue.py")["_SEED_ZERO"], SEED_ZERO),
        "cue.PATTERNS": (
            _module_values(FW / "cue.py")["PATTERNS"],
            tuple(CUE_PATTERN_WEIGHTS[pattern] for pattern in sorted(CUE_PATTERN_WEIGHTS)),
        ),
    }
    for packet_type, length in FIXED_PAYLOAD_LEN.items():
        name = f"{PacketType(packet_type).name}_LEN"
        pairs[f"protocol.{name}"] = (protocol[name], length)
    differ = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    assert not differ, f"firmware and host disagree (firmware, host): {differ}"


def test_firmware_status_layout_is_the_hosts() -> None:
    """The firmware packs STATUS with _STATUS_FMT: the host's Status fields, in order, in the same sizes."""
    layout = _module_values(FW / "protocol.py")["_STATUS_FMT"]
    values = tuple(range(1, len(dataclasses.fields(Status)) + 1))  # distinct: an order mix-up shows
    payload = Status(*values).payload()
    assert struct.calcsize(layout) == len(payload) == FIXED_PAYLOAD_LEN[PacketType.STATUS]
    assert struct.unpack(layout, payload) == values


def test_bridge_opcodes_irqs_and_flags_match_the_bluetooth_stand_in() -> None:
    stand_in = _consts(BLUETOOTH_STAND_IN)
    host = _module_values(BRIDGE)
    opcodes = {name[1:]: value for name, value in stand_in.items() if name.startswith("_OP_")}
    assert opcodes and opcodes == {name: value for name, value in host.items() if name.startswith("OP_")}
    # IRQ event numbers: the real module's, as the firmware, the stand-in and the bridge use them.
    irqs = {name.lstrip("_"): value for name, value in _consts(FW / "ble.py").items() if name.startswith("_IRQ_")}
    irqs_stand_in = {name.lstrip("_"): value for name, value in stand_in.items() if name.startswith("_IRQ_")}
    irqs_bridge = {name: value for name, value in host.items() if name.startswith("IRQ_")}
    for copy in (irqs_stand_in, irqs_bridge):
        assert copy and {name: irqs.get(name) for name in copy} == copy
    # Characteristic flags: the module exports the ATT property ones (the stand-in has
    # exactly those); the permission flags (0x0200 and up) the firmware defines itself.
    flags = {name: value for name, value in stand_in.items() if name.startswith("FLAG_")}
    flags_fw = {name.lstrip("_"): value for name, value in _consts(FW / "ble.py").items() if name.startswith("_FLAG_")}
    assert flags and {name: flags_fw.get(name, value) for name, value in flags.items()} == flags
    known = {**flags, **flags_fw}
    flags_bridge = {name: value for name, value in host.items() if name.startswith("FLAG_")}
    assert flags_bridge and {name: known.get(name, value) for name, value in flags_bridge.items()} == flags_bridge
    assert set(flags_fw) <= set(flags_bridge)  # every flag the firmware uses, the bridge maps
    assert bridge.OP_CREDIT == opcodes["OP_CREDIT"]  # the module the host runs is the file read here


def test_gatt_uuids_match() -> None:
    firmware = _module_values(FW / "ble.py")
    names = ("SERVICE_UUID", "SAMPLES_UUID", "EVENTS_UUID", "CONTROL_UUID", "STATUS_UUID")
    assert {name: firmware[name] for name in names} == {name: getattr(gatt, name) for name in names}
    # The standard services and characteristics, by their 16-bit UUIDs.
    served = {
        node.args[0].value
        for node in ast.walk(ast.parse((FW / "ble.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "UUID"
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, int)
    }
    known = {int(value[4:8], 16) for name, value in vars(gatt).items() if name.endswith("_UUID") and value.endswith("-0000-1000-8000-00805f9b34fb")}
    assert served and served == known


def _class_constants(path: Path, class_name: str) -> dict[str, Any]:
    """A class's ``NAME = <literal>`` attributes (the firmware's tunable constants)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                item.targets[0].id: ast.literal_eval(item.value)
                for item in node.body
                if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name)
                and isinstance(item.value, ast.Constant)
            }
    raise AssertionError(f"no class {class_name} in {path}")


def test_gait_twins_defaults_match_the_firmware_constants() -> None:
    contact = _class_constants(FW / "contact.py", "PressureContact")
    raises = _class_constants(FW / "contact.py", "HeelRaises")
    imu = _consts(FW / "imu.py")
    stride = _consts(FW / "stride.py")
    c, h, i, s = PressureContactParameters(), HeelRaiseParameters(), ImuTrackerParameters(), StrideParameters()
    # (host default in the firmware's unit, firmware constant)
    pairs = {
        "contact_permille": (c.contact_permille, contact["CONTACT_PERMILLE"]),
        "confirm_permille": (c.confirm_permille, contact["CONFIRM_PERMILLE"]),
        "off_permille": (c.off_permille, contact["OFF_PERMILLE"]),
        "floor_trust_shift": (c.floor_trust_shift, contact["FLOOR_TRUST_SHIFT"]),
        "min_range_counts": (c.min_range_counts, contact["MIN_RANGE"]),
        "off_confirm_ms": (c.off_confirm_ms, contact["OFF_CONFIRM_MS"]),
        "min_stance_ms": (c.min_stance_ms, contact["MIN_STANCE_MS"]),
        "window_ms": (c.window_ms, contact["WINDOW_MS"]),
        "min_hold_ms": (h.min_hold_ms, raises["MIN_HOLD_MS"]),
        "min_stand_ms": (h.min_stand_ms, raises["MIN_STAND_MS"]),
        "max_lean_ms": (h.max_lean_ms, raises["MAX_LEAN_MS"]),
        "set_gap_ms": (h.set_gap_ms, raises["SET_GAP_MS"]),
        "min_rise_cdps": (h.min_rise_cdps, raises["MIN_RISE_CDPS"]),
        "still_gyr_threshold_dps": (round(i.still_gyr_threshold_dps * 10), stride["_STILL_GYR"]),
        "stance_gyr_threshold_dps": (round(i.stance_gyr_threshold_dps * 10), imu["_STANCE_GYR"]),
        "stance_pitch_threshold_dps": (round(i.stance_pitch_threshold_dps * 10), imu["_STANCE_PITCH"]),
        "still_acc_threshold_g (low)": (round((1 - i.still_acc_threshold_g) * 1000) ** 2, imu["_ACC2_LO"]),
        "still_acc_threshold_g (high)": (round((1 + i.still_acc_threshold_g) * 1000) ** 2, imu["_ACC2_HI"]),
        "still_window_ms": (i.still_window_ms, imu["_STILL_MS"]),
        "report_ms": (i.report_ms, imu["_REPORT_MS"]),
        "swing_threshold_dps": (round(i.swing_threshold_dps * 10), imu["_SWING_RATE"]),
        "swing_min_deg": (i.swing_min_deg, imu["_SWING_DEG"]),
        "zupt_search_ms": (i.zupt_search_ms, imu["_SEARCH_MS"]),
        "rest_ms": (i.rest_ms, imu["_REST_MS"]),
        "rest_max_samples": (i.rest_max_samples, imu["_REST_MAX"]),
        "ring_capacity_slots": (i.ring_capacity_slots, imu["_RING"]),
        "decimate_above_hz": (round(i.decimate_above_hz * 100), imu["_DECIMATE_ABOVE_CHZ"]),
        "push_lead_ms": (i.push_lead_ms, imu["_PUSH_LEAD_MS"]),
        "contact_lag_ms": (i.contact_lag_ms, imu["_CONTACT_LAG_MS"]),
        "gravity_half_window_ms": (s.gravity_half_window_ms, stride["_GRAVITY_MS"]),
        "turn_deg": (s.turn_deg, stride["_TURN_DEG"]),
        "cone_deg": (s.cone_deg, stride["_CONE_DEG"]),
        "min_stride_m": (round(s.min_stride_m * 1000), stride["_MIN_STRIDE_MM"]),
        "max_stride_time_ms": (s.max_stride_time_ms, stride["_MAX_STRIDE_MS"]),
        "imu_from_heel_m": (round(s.imu_from_heel_m * 1000), stride["_IMU_X_MM"]),
        "AXIS_ONE": (AXIS_ONE, imu["_AXIS_ONE"]),
    }
    # The contact machine's buffers and states, as the twin states them.
    contact_consts = _consts(FW / "contact.py")
    for host_name, firmware_name in (
        ("HISTORY_SAMPLES", "_HISTORY"), ("MAX_WINDOW_SAMPLES", "_MAX_WINDOW"), ("UNKNOWN", "_UNKNOWN"),
        ("SWING", "_SWING"), ("STANCE", "_STANCE"), ("UNLOADING", "_UNLOADING"),
    ):
        pairs[host_name] = (getattr(contact_twin, host_name), contact_consts[firmware_name])
    differ = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    assert not differ, f"host defaults and firmware constants disagree (host, firmware): {differ}"


def test_the_program_files_are_named_alike_where_their_module_is_not_imported() -> None:
    # maintenance.py (factory reset) removes the program's files without importing
    # insolefw.program (its code would not fit beside the maintenance work).
    program = _module_values(FW / "program.py")
    files = (program["PROGRAM_FILE"], program["STATE_FILE"])
    maintenance = (FW / "maintenance.py").read_text(encoding="utf-8")
    assert all(f'Settings.erase(d, "{name}")' in maintenance for name in files)
    assert f'"/{files[0]}"' in (FW / "app.py").read_text(encoding="utf-8")  # the boot's look for a stored one
