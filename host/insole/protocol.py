"""Wire protocol v1 on the host: packets, serial framing and quantisation (docs/protocol.md).

Layers, bottom up:

* **Framing** — :func:`frame` and :class:`FrameDecoder`:
  ``COBS(prefix ‖ packet ‖ crc16_le) ‖ 0x00``. The link uses no prefix; recordings
  use a 5-byte ``stream u8 ‖ host_ms u32`` prefix (docs/recording.md), hence the
  ``prefix_len`` parameter. The decoder never raises on garbage; it counts it.
* **Packets** — :class:`Header`, one frozen dataclass per packet type,
  :func:`decode_packet` (raises :class:`PacketError` /
  :class:`PacketVersionError`) and ``body.encode(seq, time_ms)``.
  :class:`PacketStream` stacks both layers and counts refused packets by reason.
* **SAMPLES in bulk** — :func:`decode_sample_batches` / :func:`encode_samples` turn
  many sample batches into numpy arrays and back without a Python loop per sample.
* **Quantisation** — physical units ↔ protocol counts, with the "n/a" sentinels
  mapped to NaN.

Decoding checks structure (version, type, lengths, the SAMPLES/LAYOUT/COMMAND fields
that determine the layout) and the value ranges of what a device validates (SETTINGS
fields, REPLAY_BEGIN, CUE_TEST and GET_EVENTS arguments), with the same BAD_VALUE detail offsets.
Fields of device reports (STATUS, STEP, …) are not range-checked: a host shows what a
device sends. Reserved fields are written 0 and ignored when read.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, ClassVar, Self, TypeAlias

import numpy as np
import numpy.typing as npt
from cobs import cobs

from insole.errors import ProtocolError, UnsupportedVersionError
from insole.model import STANDARD_GRAVITY_MS2

# --------------------------------------------------------------------------- constants

PROTOCOL_VERSION = 1
HEADER_LEN = 8
MAX_PACKET_LEN = 1024  # header + payload
CRC_LEN = 2
MIN_PACKET_LEN = HEADER_LEN
SAMPLES_HEADER_LEN = 8
MAX_SAMPLES_PER_PACKET = 255
MAX_PRESSURE_CHANNELS = 16
IMU_AXES = 6  # ax ay az gx gy gz

# "n/a" sentinels: a decoder reports these as missing, never as numbers.
NA_U8 = 0xFF
NA_U16 = 0xFFFF
NA_U32 = 0xFFFFFFFF
NA_I16 = -32768

U16_WRAP = 1 << 16
U32_WRAP = 1 << 32


class PacketType(IntEnum):
    STATUS = 0x01
    SAMPLES = 0x02
    STEP = 0x03
    HEEL_RAISE = 0x04
    SETTINGS = 0x05
    COMMAND = 0x06
    ACK = 0x07
    ERROR = 0x08
    LAYOUT = 0x09
    CUE = 0x0A
    BACKFILL_END = 0x0B


class CommandCode(IntEnum):
    PING = 0x01
    GET_STATUS = 0x02
    GET_SETTINGS = 0x03
    START_STREAM = 0x04
    STOP_STREAM = 0x05
    REPLAY_BEGIN = 0x06
    REPLAY_END = 0x07
    GET_LAYOUT = 0x08
    CUE_TEST = 0x09
    EXIT_TO_REPL = 0x0A
    GET_EVENTS = 0x0B


class ErrorCode(IntEnum):
    UNSUPPORTED_VERSION = 1
    UNKNOWN_TYPE = 2
    BAD_LENGTH = 3
    BAD_VALUE = 4
    BAD_STATE = 5
    UNKNOWN_COMMAND = 6
    BAD_FRAME = 7
    OVERFLOW = 8
    NOT_BONDED = 9


class Side(IntEnum):
    LEFT = 0
    RIGHT = 1


class Mode(IntEnum):
    IDLE = 0
    LIVE = 1
    REPLAY = 2


class Direction(IntEnum):
    UNKNOWN = 0
    FORWARD = 1
    BACKWARD = 2


class CueMode(IntEnum):
    OFF = 0
    FOOT_ANGLE = 1
    METRONOME = 2


class CueSchedule(IntEnum):
    """Which out-of-band steps get a cue (SETTINGS ``schedule``)."""

    EVERY_STEP = 0
    EVERY_KTH = 1
    PROBABILITY = 2


class CuePattern(IntEnum):
    """Pulse patterns of the firmware (insolefw/cue.py): on/off segments as weights of the duration."""

    LONG = 1  # on
    SHORT_SHORT = 2  # on off on, thirds
    TRIPLE = 3  # on off on off on, fifths
    LONG_SHORT = 4  # on 2/4, off 1/4, on 1/4


# On/off segment weights of each pattern, on first (the firmware's PATTERNS table).
CUE_PATTERN_WEIGHTS: dict[int, tuple[int, ...]] = {
    CuePattern.LONG: (1,),
    CuePattern.SHORT_SHORT: (1, 1, 1),
    CuePattern.TRIPLE: (1, 1, 1, 1, 1),
    CuePattern.LONG_SHORT: (2, 1, 1),
}


class CueReason(IntEnum):
    TOE_IN = 1  # FPA above the band (toes out too far): turn the toes in
    TOE_OUT = 2  # FPA below the band: turn the toes out
    METRONOME = 3
    TEST = 4  # CUE_TEST command


class CueOutcome(IntEnum):
    CUED = 0
    FADED_EVERY_KTH = 1  # out of band, not the k-th out-of-band step
    FADED_PROBABILITY = 2  # out of band, the draw said no
    NO_FEEDBACK_BLOCK = 3  # out of band inside a no-feedback block


# Event packets the device keeps in its event log and resends on GET_EVENTS.
LOGGED_EVENT_TYPES = (PacketType.STEP, PacketType.HEEL_RAISE, PacketType.CUE)
# What GET_EVENTS may ask for: the event log's types, and live SAMPLES where the
# device keeps a sample log (else it answers BAD_VALUE).
BACKFILL_TYPES = (PacketType.SAMPLES, *LOGGED_EVENT_TYPES)


STEP_FLAG_CONTACT_PRESSURE = 0x01
STEP_FLAG_CONTACT_IMU = 0x02

# Fixed payload lengths; SAMPLES, COMMAND and LAYOUT are variable.
FIXED_PAYLOAD_LEN: dict[int, int] = {
    PacketType.STATUS: 24,
    PacketType.STEP: 28,
    PacketType.HEEL_RAISE: 16,
    PacketType.SETTINGS: 36,
    PacketType.ACK: 4,
    PacketType.ERROR: 6,
    PacketType.CUE: 32,
    PacketType.BACKFILL_END: 16,
}

# Argument bytes after the 2-byte COMMAND head, per command.
COMMAND_ARG_LEN: dict[int, int] = {code: 0 for code in CommandCode}
COMMAND_ARG_LEN[CommandCode.REPLAY_BEGIN] = 6
COMMAND_ARG_LEN[CommandCode.CUE_TEST] = 4
COMMAND_ARG_LEN[CommandCode.GET_EVENTS] = 6

# --------------------------------------------------------------------------- errors


class PacketError(ProtocolError):
    """A packet refused under protocol v1.

    ``code`` is the ERROR code a device answers with, ``detail`` the payload offset of
    the first bad field (BAD_VALUE) and ``reason`` a short name for counting
    (``"truncated"``, ``"bad_length"``, ``"unknown_type"``, ``"unknown_command"``,
    ``"bad_value"``).
    """

    def __init__(self, message: str, code: ErrorCode, *, reason: str, detail: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.detail = detail


class PacketVersionError(UnsupportedVersionError):
    """A packet whose header names a protocol version other than 1."""

    code = ErrorCode.UNSUPPORTED_VERSION
    reason = "unsupported_version"
    detail = 0

    def __init__(self, version: int) -> None:
        super().__init__(unsupported_version_message(version))
        self.version = version


def unsupported_version_message(version: int, what: str = "protocol") -> str:
    return f"{what} version {version} is not supported; this side speaks version {PROTOCOL_VERSION}"


def _bad_length(message: str) -> PacketError:
    return PacketError(message, ErrorCode.BAD_LENGTH, reason="bad_length")


def _truncated(message: str) -> PacketError:
    return PacketError(message, ErrorCode.BAD_LENGTH, reason="truncated")


def _bad_value(message: str, detail: int) -> PacketError:
    return PacketError(message, ErrorCode.BAD_VALUE, reason="bad_value", detail=detail)


# --------------------------------------------------------------------------- header


_HEADER = struct.Struct("<BBHI")


@dataclass(frozen=True)
class Header:
    version: int
    type: int
    seq: int
    time_ms: int


def encode_packet(
    packet_type: int, seq: int, time_ms: int, payload: bytes, *, version: int = PROTOCOL_VERSION
) -> bytes:
    """Header + payload. ``seq`` and ``time_ms`` wrap (mod 2^16, 2^32) as the spec says.

    This is the raw layer: it checks only the 1024-byte limit, so it can build packets
    of unknown types or versions for tests of the receiving side.
    """
    if seq < 0 or time_ms < 0:
        raise ProtocolError(f"seq ({seq}) and time_ms ({time_ms}) must not be negative")
    if not 0 <= version <= 0xFF or not 0 <= packet_type <= 0xFF:
        raise ProtocolError(f"version {version} / type {packet_type} do not fit a u8")
    packet = _HEADER.pack(version, packet_type, seq % U16_WRAP, time_ms % U32_WRAP) + bytes(payload)
    if len(packet) > MAX_PACKET_LEN:
        raise ProtocolError(f"packet of {len(packet)} bytes exceeds the {MAX_PACKET_LEN}-byte limit")
    return packet


def decode_header(data: bytes) -> Header:
    """The 8-byte header, after checking length and version (not the type)."""
    if len(data) < HEADER_LEN:
        raise _truncated(f"packet of {len(data)} bytes is shorter than the {HEADER_LEN}-byte header")
    if len(data) > MAX_PACKET_LEN:
        raise _bad_length(f"packet of {len(data)} bytes exceeds the {MAX_PACKET_LEN}-byte limit")
    version, ptype, seq, time_ms = _HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise PacketVersionError(version)
    return Header(version, ptype, seq, time_ms)


# --------------------------------------------------------------------------- fixed-layout bodies


@dataclass(frozen=True)
class _Field:
    """One field of a fixed layout: struct code, and whether it has an n/a sentinel."""

    name: str | None  # None: reserved, written 0 and ignored on read
    code: str  # struct code: B H I h
    na: bool = False


_RANGES = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF), "h": (-32768, 32767)}
_SENTINELS = {"B": NA_U8, "H": NA_U16, "I": NA_U32, "h": NA_I16}


class _FixedBody:
    """Shared encode/decode of the fixed-layout packets; subclasses are frozen dataclasses."""

    TYPE: ClassVar[PacketType]
    _FIELDS: ClassVar[tuple[_Field, ...]]
    _STRUCT: ClassVar[struct.Struct]

    def payload(self) -> bytes:
        values: list[int] = []
        for f in self._FIELDS:
            if f.name is None:
                values.append(0)
                continue
            value = getattr(self, f.name)
            values.append(_field_to_int(type(self).__name__, f, value))
        return self._STRUCT.pack(*values)

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls(**cls._decode_fixed(payload))

    @classmethod
    def _decode_fixed(cls, payload: bytes) -> dict[str, int | None]:
        expected = cls._STRUCT.size
        if len(payload) != expected:
            make = _truncated if len(payload) < expected else _bad_length
            raise make(f"{cls.TYPE.name} payload is {len(payload)} bytes, expected {expected}")
        raw = cls._STRUCT.unpack(payload)
        out: dict[str, int | None] = {}
        for f, value in zip(cls._FIELDS, raw):
            if f.name is not None:
                out[f.name] = None if f.na and value == _SENTINELS[f.code] else value
        return out


def _field_to_int(owner: str, f: _Field, value: int | None) -> int:
    if value is None:
        if not f.na:
            raise ProtocolError(f"{owner}.{f.name} has no n/a value; got None")
        return _SENTINELS[f.code]
    value = int(value)
    low, high = _RANGES[f.code]
    if not low <= value <= high:
        raise ProtocolError(f"{owner}.{f.name} = {value} does not fit its field ({low}..{high})")
    if f.na and value == _SENTINELS[f.code]:
        raise ProtocolError(f"{owner}.{f.name} = {value} is the n/a sentinel; pass None for 'not available'")
    return value


def _layout(*spec: _Field) -> tuple[tuple[_Field, ...], struct.Struct]:
    return spec, struct.Struct("<" + "".join(f.code for f in spec))


@dataclass(frozen=True)
class Status(_FixedBody):
    fw_major: int
    fw_minor: int
    fw_patch: int
    side: int | None  # 0 left, 1 right, None unknown
    mode: int  # Mode
    n_pressure: int
    imu: int
    battery_pct: int | None
    rate_chz: int
    battery_mv: int | None
    dropped_samples: int
    sample_count: int
    free_heap: int | None

    TYPE: ClassVar[PacketType] = PacketType.STATUS
    _FIELDS, _STRUCT = _layout(
        _Field("fw_major", "B"),
        _Field("fw_minor", "B"),
        _Field("fw_patch", "B"),
        _Field("side", "B", na=True),
        _Field("mode", "B"),
        _Field("n_pressure", "B"),
        _Field("imu", "B"),
        _Field("battery_pct", "B", na=True),
        _Field("rate_chz", "H"),
        _Field("battery_mv", "H", na=True),
        _Field("dropped_samples", "I"),
        _Field("sample_count", "I"),
        _Field("free_heap", "I", na=True),
    )


@dataclass(frozen=True)
class Step(_FixedBody):
    ic_index: int
    to_index: int
    stance_ms: int | None
    swing_ms: int | None
    fpa_cdeg: int | None  # 0.01°, positive = toe-out
    direction: int  # Direction
    flags: int
    peak_pressure: int | None
    medial_share: int | None  # 0.5 %
    stride_mm: int | None
    speed_mms: int | None
    step_number: int

    TYPE: ClassVar[PacketType] = PacketType.STEP
    _FIELDS, _STRUCT = _layout(
        _Field("ic_index", "I"),
        _Field("to_index", "I"),
        _Field("stance_ms", "H", na=True),
        _Field("swing_ms", "H", na=True),
        _Field("fpa_cdeg", "h", na=True),
        _Field("direction", "B"),
        _Field("flags", "B"),
        _Field("peak_pressure", "H", na=True),
        _Field("medial_share", "B", na=True),
        _Field(None, "B"),
        _Field("stride_mm", "H", na=True),
        _Field("speed_mms", "H", na=True),
        _Field("step_number", "I"),
    )


    @property
    def fpa_deg(self) -> float | None:
        return None if self.fpa_cdeg is None else self.fpa_cdeg / 100.0


@dataclass(frozen=True)
class HeelRaise(_FixedBody):
    start_index: int
    end_index: int
    hold_ms: int | None
    rep: int
    set: int

    TYPE: ClassVar[PacketType] = PacketType.HEEL_RAISE
    _FIELDS, _STRUCT = _layout(
        _Field("start_index", "I"),
        _Field("end_index", "I"),
        _Field("hold_ms", "H", na=True),
        _Field("rep", "H"),
        _Field("set", "H"),
        _Field(None, "H"),
    )


SETTINGS_VERSION = 2

# Valid ranges of SETTINGS fields (inclusive), with their payload offsets for BAD_VALUE.
SETTINGS_RANGES: dict[str, tuple[int, int, int]] = {
    # name: (offset, low, high)
    "settings_version": (0, SETTINGS_VERSION, SETTINGS_VERSION),
    "side": (1, 0, 1),  # or None
    "cue_mode": (2, 0, 2),
    "cue_duty_pct": (3, 0, 100),
    "fpa_target_cdeg": (4, -3000, 3000),
    "fpa_half_width_cdeg": (6, 50, 2000),
    "toe_in_pattern": (8, 1, 4),
    "toe_out_pattern": (9, 1, 4),
    "cue_duration_ms": (10, 50, 1000),
    "cue_ms_per_deg": (12, 0, 1000),
    "cue_max_ms": (14, 50, 2000),  # and >= cue_duration_ms
    "schedule": (16, 0, 2),
    "fade_every": (17, 1, 100),
    "fade_probability_pct": (18, 0, 100),
    "metronome_pattern": (19, 1, 4),
    "block_on_steps": (20, 1, 1000),
    "block_off_steps": (22, 0, 1000),
    "seed": (24, 0, 0xFFFF),
    "metronome_spm": (26, 40, 200),
    "metronome_pulse_ms": (28, 20, 250),
    "rate_chz": (30, 5000, 25000),
    "stream_samples": (32, 0, 1),
    "imu_yaw_cdeg": (34, -3000, 3000),
}


@dataclass(frozen=True)
class Settings(_FixedBody):
    """SETTINGS, settings_version 2. The defaults are the device's own defaults.

    Decoding validates every field like the device (BAD_VALUE, detail = payload
    offset of the first bad field); :mod:`insole.cue` adds readable names and units.
    """

    settings_version: int = SETTINGS_VERSION
    side: int | None = None  # None: keep the board's own
    cue_mode: int = CueMode.OFF
    cue_duty_pct: int = 60
    fpa_target_cdeg: int = 0
    fpa_half_width_cdeg: int = 200
    toe_in_pattern: int = CuePattern.LONG  # pattern that means "turn the toes in" (FPA above the band)
    toe_out_pattern: int = CuePattern.SHORT_SHORT
    cue_duration_ms: int = 300  # fixed length, or the base when scaled
    cue_ms_per_deg: int = 0  # 0: fixed; else + this many ms per degree beyond the band
    cue_max_ms: int = 600  # cap of a scaled cue
    schedule: int = CueSchedule.EVERY_STEP
    fade_every: int = 2  # EVERY_KTH: cue the k-th, 2k-th, ... out-of-band step
    fade_probability_pct: int = 50  # PROBABILITY: chance of a cue per out-of-band step
    metronome_pattern: int = CuePattern.LONG
    block_on_steps: int = 40  # feedback block length (with block_off_steps > 0)
    block_off_steps: int = 0  # no-feedback block length; 0: no blocks
    seed: int = 1  # the schedule's PRNG seed (0 is taken as 0xACE1)
    metronome_spm: int = 100
    metronome_pulse_ms: int = 100
    rate_chz: int = 10000
    stream_samples: int = 1
    imu_yaw_cdeg: int = 0  # the IMU's mounting yaw (0.01°, counter-clockwise), taken off live foot angles

    TYPE: ClassVar[PacketType] = PacketType.SETTINGS
    _FIELDS, _STRUCT = _layout(
        _Field("settings_version", "B"),
        _Field("side", "B", na=True),
        _Field("cue_mode", "B"),
        _Field("cue_duty_pct", "B"),
        _Field("fpa_target_cdeg", "h"),
        _Field("fpa_half_width_cdeg", "H"),
        _Field("toe_in_pattern", "B"),
        _Field("toe_out_pattern", "B"),
        _Field("cue_duration_ms", "H"),
        _Field("cue_ms_per_deg", "H"),
        _Field("cue_max_ms", "H"),
        _Field("schedule", "B"),
        _Field("fade_every", "B"),
        _Field("fade_probability_pct", "B"),
        _Field("metronome_pattern", "B"),
        _Field("block_on_steps", "H"),
        _Field("block_off_steps", "H"),
        _Field("seed", "H"),
        _Field("metronome_spm", "H"),
        _Field("metronome_pulse_ms", "H"),
        _Field("rate_chz", "H"),
        _Field("stream_samples", "B"),
        _Field(None, "B"),
        _Field("imu_yaw_cdeg", "h"),
    )

    def first_bad_field(self) -> tuple[str, int] | None:
        """(name, payload offset) of the first field out of range, or None when all are valid."""
        for name, (offset, low, high) in SETTINGS_RANGES.items():
            value = getattr(self, name)
            if name == "side" and value is None:
                continue
            if not low <= value <= high:
                return name, offset
            if name == "cue_max_ms" and value < self.cue_duration_ms:
                return name, offset
        return None

    def problem(self) -> str | None:
        """Why the first bad field is refused, or None when all are valid."""
        bad = self.first_bad_field()
        if bad is None:
            return None
        name, _offset = bad
        value = getattr(self, name)
        low, high = SETTINGS_RANGES[name][1:]
        if name == "cue_max_ms" and low <= value <= high:
            return f"SETTINGS.cue_max_ms = {value} is below cue_duration_ms = {self.cue_duration_ms}"
        return f"SETTINGS.{name} = {value} is outside {low}..{high}"

    @classmethod
    def decode(cls, payload: bytes) -> Settings:
        """Decode and validate: any out-of-range field refuses the packet (BAD_VALUE)."""
        settings = super().decode(payload)
        bad = settings.first_bad_field()
        if bad is not None:
            raise _bad_value(settings.problem() or "", bad[1])
        return settings


@dataclass(frozen=True)
class Ack(_FixedBody):
    ref_type: int
    ref_command: int
    ref_seq: int

    TYPE: ClassVar[PacketType] = PacketType.ACK
    _FIELDS, _STRUCT = _layout(_Field("ref_type", "B"), _Field("ref_command", "B"), _Field("ref_seq", "H"))


@dataclass(frozen=True)
class Error(_FixedBody):
    ref_type: int
    ref_command: int
    ref_seq: int
    error: int  # ErrorCode
    detail: int

    TYPE: ClassVar[PacketType] = PacketType.ERROR
    _FIELDS, _STRUCT = _layout(
        _Field("ref_type", "B"),
        _Field("ref_command", "B"),
        _Field("ref_seq", "H"),
        _Field("error", "B"),
        _Field("detail", "B"),
    )


    def error_name(self) -> str:
        """The error code's name (e.g. "BAD_VALUE"), or "error N" for an unknown code."""
        try:
            return ErrorCode(self.error).name
        except ValueError:
            return f"error {self.error}"


@dataclass(frozen=True)
class Cue(_FixedBody):
    """One cue decision of the device: a cue issued, or an out-of-band step whose cue
    the schedule suppressed (``outcome``). Times are device times (ms, mod 2^30)."""

    step_number: int | None  # band: the step cued; metronome: beat number; test: None
    decision_index: int | None  # sample index when decided (metronome: samples so far)
    decision_ms: int  # device time the FPA became known (metronome: beat due; test: command)
    motor_start_ms: int | None  # device time the motor started; None when not cued
    latency_us: int | None  # decision to motor start, µs (saturates at 65534); None when not cued
    fpa_cdeg: int | None  # the step's foot progression angle, 0.01°
    target_cdeg: int | None  # band in force at the decision
    half_width_cdeg: int | None
    reason: int  # CueReason
    outcome: int  # CueOutcome
    pattern: int  # CuePattern
    duty_pct: int
    duration_ms: int  # of the pattern (played, or that would have been)
    out_of_band_steps: int | None  # out-of-band steps since the stream began, this one included

    TYPE: ClassVar[PacketType] = PacketType.CUE
    _FIELDS, _STRUCT = _layout(
        _Field("step_number", "I", na=True),
        _Field("decision_index", "I", na=True),
        _Field("decision_ms", "I"),
        _Field("motor_start_ms", "I", na=True),
        _Field("latency_us", "H", na=True),
        _Field("fpa_cdeg", "h", na=True),
        _Field("target_cdeg", "h", na=True),
        _Field("half_width_cdeg", "H", na=True),
        _Field("reason", "B"),
        _Field("outcome", "B"),
        _Field("pattern", "B"),
        _Field("duty_pct", "B"),
        _Field("duration_ms", "H"),
        _Field("out_of_band_steps", "H", na=True),
    )

    @property
    def cued(self) -> bool:
        return self.outcome == CueOutcome.CUED

    @property
    def latency_ms(self) -> float | None:
        return None if self.latency_us is None else self.latency_us / 1000.0

    @property
    def fpa_deg(self) -> float | None:
        return None if self.fpa_cdeg is None else self.fpa_cdeg / 100.0


@dataclass(frozen=True)
class BackfillEnd(_FixedBody):
    """Ends the answer to GET_EVENTS: how many packets were resent and which seqs of
    the range are gone for good (``lost_count`` seqs from ``lost_from``, wrapping)."""

    event_type: int  # PacketType of the request
    ref_seq: int  # seq of the GET_EVENTS command
    from_seq: int
    count: int
    resent: int
    lost_from: int
    lost_count: int
    next_seq: int  # the seq the device's next packet of event_type will carry

    TYPE: ClassVar[PacketType] = PacketType.BACKFILL_END
    _FIELDS, _STRUCT = _layout(
        _Field("event_type", "B"),
        _Field(None, "B"),
        _Field("ref_seq", "H"),
        _Field("from_seq", "H"),
        _Field("count", "H"),
        _Field("resent", "H"),
        _Field("lost_from", "H"),
        _Field("lost_count", "H"),
        _Field("next_seq", "H"),
    )

    def lost_seqs(self) -> list[int]:
        return [(self.lost_from + k) % U16_WRAP for k in range(self.lost_count)]


# --------------------------------------------------------------------------- variable-length bodies

_COMMAND_HEAD = struct.Struct("<BB")
_REPLAY_BEGIN_ARGS = struct.Struct("<HBBBB")  # rate_chz, n_pressure, imu, side, reserved
_CUE_TEST_ARGS = struct.Struct("<HBB")  # duration_ms, duty_pct, reserved
_GET_EVENTS_ARGS = struct.Struct("<BBHH")  # event_type, reserved, from_seq, count
# Argument names per command, in wire order (reserved bytes are not named).
COMMAND_ARGUMENTS: dict[int, tuple[str, ...]] = {
    CommandCode.REPLAY_BEGIN: ("rate_chz", "n_pressure", "imu", "side"),
    CommandCode.CUE_TEST: ("duration_ms", "duty_pct"),
    CommandCode.GET_EVENTS: ("event_type", "from_seq", "count"),
}
# Arguments that may be None (n/a) when their command carries them.
_OPTIONAL_ARGUMENTS = {"side"}
_ALL_ARGUMENTS = (
    "rate_chz", "n_pressure", "imu", "side", "duration_ms", "duty_pct", "event_type", "from_seq", "count",
)  # fmt: skip


CUE_TEST_MIN_MS = 10
CUE_TEST_MAX_MS = 2000


@dataclass(frozen=True)
class Command:
    """A COMMAND. Only the arguments of ``command`` are set; the others stay None.

    REPLAY_BEGIN's ``side`` may be None (n/a: the board keeps its own side).
    Decoding validates argument ranges like a device (BAD_VALUE, detail = payload
    offset): REPLAY_BEGIN rate_chz 5000..25000, n_pressure 0..16, imu 0/1 with
    pressure or IMU present, side 0/1/n/a; CUE_TEST duration_ms 10..2000, duty_pct 0..100;
    GET_EVENTS event_type SAMPLES/STEP/HEEL_RAISE/CUE, count 1..65535.
    """

    command: int  # CommandCode
    rate_chz: int | None = None  # REPLAY_BEGIN
    n_pressure: int | None = None  # REPLAY_BEGIN
    imu: int | None = None  # REPLAY_BEGIN
    side: int | None = None  # REPLAY_BEGIN: 0 left, 1 right, None n/a
    duration_ms: int | None = None  # CUE_TEST
    duty_pct: int | None = None  # CUE_TEST
    event_type: int | None = None  # GET_EVENTS: SAMPLES, STEP, HEEL_RAISE or CUE
    from_seq: int | None = None  # GET_EVENTS
    count: int | None = None  # GET_EVENTS: 1..65535 seqs from from_seq (wrapping)

    TYPE: ClassVar[PacketType] = PacketType.COMMAND

    @classmethod
    def replay_begin(cls, rate_chz: int, n_pressure: int, imu: int | bool, side: int | None = None) -> Command:
        return cls(CommandCode.REPLAY_BEGIN, rate_chz=rate_chz, n_pressure=n_pressure, imu=int(imu), side=side)

    @classmethod
    def cue_test(cls, duration_ms: int, duty_pct: int) -> Command:
        return cls(CommandCode.CUE_TEST, duration_ms=duration_ms, duty_pct=duty_pct)

    @classmethod
    def get_events(cls, event_type: int, from_seq: int, count: int) -> Command:
        return cls(CommandCode.GET_EVENTS, event_type=int(event_type), from_seq=from_seq % U16_WRAP, count=count)

    def arguments(self) -> dict[str, int | None]:
        """The arguments this command carries, by name (None for n/a)."""
        names = COMMAND_ARGUMENTS.get(self.command, ())
        return {name: getattr(self, name) for name in names}

    def payload(self) -> bytes:
        names = COMMAND_ARGUMENTS.get(self.command, ())
        for name in _ALL_ARGUMENTS:
            given = getattr(self, name) is not None
            if given and name not in names:
                raise ProtocolError(f"command {self.command:#04x} takes no argument {name!r}")
            if not given and name in names and name not in _OPTIONAL_ARGUMENTS:
                raise ProtocolError(f"command {self.command:#04x} needs the argument {name!r}")
        if not 0 <= self.command <= 0xFF:
            raise ProtocolError(f"command code {self.command} does not fit a u8")
        head = _COMMAND_HEAD.pack(self.command, 0)
        try:
            if self.command == CommandCode.REPLAY_BEGIN:
                if self.side == NA_U8:
                    raise ProtocolError("REPLAY_BEGIN side 0xFF is the n/a sentinel; pass None")
                side = NA_U8 if self.side is None else self.side
                return head + _REPLAY_BEGIN_ARGS.pack(self.rate_chz, self.n_pressure, self.imu, side, 0)
            if self.command == CommandCode.CUE_TEST:
                return head + _CUE_TEST_ARGS.pack(self.duration_ms, self.duty_pct, 0)
            if self.command == CommandCode.GET_EVENTS:
                return head + _GET_EVENTS_ARGS.pack(self.event_type, 0, self.from_seq, self.count)
        except struct.error as exc:
            raise ProtocolError(f"command {self.command:#04x}: argument out of range: {exc}") from exc
        return head

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Command:
        if len(payload) < _COMMAND_HEAD.size:
            raise _truncated(f"COMMAND payload is {len(payload)} bytes, shorter than its 2-byte head")
        code = payload[0]
        if code not in COMMAND_ARG_LEN:
            raise PacketError(f"unknown command {code:#04x}", ErrorCode.UNKNOWN_COMMAND, reason="unknown_command")
        expected = _COMMAND_HEAD.size + COMMAND_ARG_LEN[code]
        if len(payload) != expected:
            make = _truncated if len(payload) < expected else _bad_length
            raise make(f"COMMAND {CommandCode(code).name} payload is {len(payload)} bytes, expected {expected}")
        if code == CommandCode.REPLAY_BEGIN:
            rate_chz, n_pressure, imu, side, _reserved = _REPLAY_BEGIN_ARGS.unpack_from(payload, 2)
            if not 5000 <= rate_chz <= 25000:
                raise _bad_value(f"REPLAY_BEGIN rate_chz = {rate_chz} is outside 5000..25000", 2)
            if n_pressure > MAX_PRESSURE_CHANNELS:
                raise _bad_value(f"REPLAY_BEGIN n_pressure = {n_pressure}; at most {MAX_PRESSURE_CHANNELS}", 4)
            if imu > 1 or not (n_pressure or imu):
                raise _bad_value(f"REPLAY_BEGIN imu = {imu} with n_pressure = {n_pressure}: need 0/1 and some data", 5)
            if side not in (0, 1, NA_U8):
                raise _bad_value(f"REPLAY_BEGIN side = {side}; expected 0, 1 or n/a", 6)
            return cls(code, rate_chz=rate_chz, n_pressure=n_pressure, imu=imu, side=None if side == NA_U8 else side)
        if code == CommandCode.CUE_TEST:
            duration_ms, duty_pct, _reserved = _CUE_TEST_ARGS.unpack_from(payload, 2)
            if not CUE_TEST_MIN_MS <= duration_ms <= CUE_TEST_MAX_MS:
                raise _bad_value(
                    f"CUE_TEST duration_ms = {duration_ms} is outside {CUE_TEST_MIN_MS}..{CUE_TEST_MAX_MS}", 2
                )
            if duty_pct > 100:
                raise _bad_value(f"CUE_TEST duty_pct = {duty_pct} is outside 0..100", 4)
            return cls(code, duration_ms=duration_ms, duty_pct=duty_pct)
        if code == CommandCode.GET_EVENTS:
            event_type, reserved, from_seq, count = _GET_EVENTS_ARGS.unpack_from(payload, 2)
            if event_type not in BACKFILL_TYPES:
                raise _bad_value(
                    f"GET_EVENTS event_type = {event_type:#04x}; the logs keep SAMPLES, STEP, HEEL_RAISE and CUE", 2
                )
            if reserved:
                raise _bad_value(f"GET_EVENTS reserved byte = {reserved}; must be 0", 3)
            if count == 0:
                raise _bad_value("GET_EVENTS count = 0; expected 1..65535", 6)
            return cls(code, event_type=event_type, from_seq=from_seq, count=count)
        return cls(code)


@dataclass(frozen=True)
class Layout:
    """Sensor positions: ``x_mm`` toward the toes from the heel centre, ``y_mm`` to the left."""

    x_mm: tuple[int, ...]
    y_mm: tuple[int, ...]

    TYPE: ClassVar[PacketType] = PacketType.LAYOUT

    @property
    def n(self) -> int:
        return len(self.x_mm)

    def payload(self) -> bytes:
        if len(self.x_mm) != len(self.y_mm):
            raise ProtocolError(f"LAYOUT has {len(self.x_mm)} x_mm but {len(self.y_mm)} y_mm values")
        if self.n > MAX_PRESSURE_CHANNELS:
            raise ProtocolError(f"LAYOUT of {self.n} channels; at most {MAX_PRESSURE_CHANNELS}")
        xy = np.empty((self.n, 2), dtype=np.int64)
        xy[:, 0] = self.x_mm
        xy[:, 1] = self.y_mm
        if xy.size and (xy.min() < -32768 or xy.max() > 32767):
            raise ProtocolError("LAYOUT positions must fit i16 (-32768..32767 mm)")
        return bytes((self.n, 0)) + xy.astype("<i2").tobytes()

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Layout:
        if len(payload) < 2:
            raise _truncated(f"LAYOUT payload is {len(payload)} bytes, shorter than its 2-byte head")
        n = payload[0]
        if n > MAX_PRESSURE_CHANNELS:
            raise _bad_value(f"LAYOUT n = {n}; at most {MAX_PRESSURE_CHANNELS} channels", 0)
        expected = 2 + 4 * n
        if len(payload) != expected:
            make = _truncated if len(payload) < expected else _bad_length
            raise make(f"LAYOUT of {n} channels needs {expected} payload bytes, got {len(payload)}")
        xy = np.frombuffer(payload, dtype="<i2", offset=2).reshape(n, 2)
        return cls(tuple(int(v) for v in xy[:, 0]), tuple(int(v) for v in xy[:, 1]))


# --------------------------------------------------------------------------- SAMPLES

U16Array: TypeAlias = npt.NDArray[np.uint16]
I16Array: TypeAlias = npt.NDArray[np.int16]
U32Array: TypeAlias = npt.NDArray[np.uint32]
FloatArray: TypeAlias = npt.NDArray[np.float64]

_SAMPLES_HEAD = struct.Struct("<IBBBB")


def sample_record_len(n_pressure: int, imu: int | bool) -> int:
    return 2 * n_pressure + 12 * int(bool(imu))


def max_samples_per_packet(n_pressure: int, imu: int | bool) -> int:
    """Most samples one SAMPLES packet can carry within 1024 bytes (at most 255)."""
    record = sample_record_len(n_pressure, imu)
    if record == 0:
        raise ProtocolError("a sample record needs pressure channels or an IMU")
    return min(MAX_SAMPLES_PER_PACKET, (MAX_PACKET_LEN - HEADER_LEN - SAMPLES_HEADER_LEN) // record)


def _check_samples_head(count: int, n_pressure: int, imu: int, payload_len: int) -> None:
    """Structural checks shared by single and bulk decoding; offsets are payload offsets."""
    if count == 0:
        raise _bad_value("SAMPLES count is 0; expected 1..255", 4)
    if n_pressure > MAX_PRESSURE_CHANNELS:
        raise _bad_value(f"SAMPLES n_pressure = {n_pressure}; at most {MAX_PRESSURE_CHANNELS}", 5)
    if imu > 1:
        raise _bad_value(f"SAMPLES imu = {imu}; expected 0 or 1", 6)
    if n_pressure == 0 and imu == 0:
        raise _bad_value("SAMPLES with neither pressure channels nor IMU", 5)
    expected = SAMPLES_HEADER_LEN + count * sample_record_len(n_pressure, imu)
    if payload_len != expected:
        make = _truncated if payload_len < expected else _bad_length
        raise make(
            f"SAMPLES of {count} samples × {n_pressure} pressure + imu {imu} needs "
            f"{expected} payload bytes, got {payload_len}"
        )


@dataclass(frozen=True, eq=False)
class Samples:
    """One batch of samples in protocol counts (sentinels kept; see the physical helpers).

    ``pressure_counts`` is (count, n_pressure) uint16, ``imu_raw`` is (count, 6) int16
    in the order ax ay az (mg) gx gy gz (0.1 deg/s), or None without IMU.
    """

    first_index: int
    pressure_counts: U16Array
    imu_raw: I16Array | None

    TYPE: ClassVar[PacketType] = PacketType.SAMPLES

    def __post_init__(self) -> None:
        # Normalise dtypes so that equality and encoding are predictable.
        pressure = np.asarray(self.pressure_counts, dtype=np.uint16)
        if pressure.ndim != 2:
            raise ValueError(f"pressure_counts must be (count, n_pressure), got shape {pressure.shape}")
        object.__setattr__(self, "pressure_counts", pressure)
        if self.imu_raw is not None:
            imu = np.asarray(self.imu_raw, dtype=np.int16)
            if imu.ndim != 2 or imu.shape[1] != IMU_AXES or len(imu) != len(pressure):
                raise ValueError(f"imu_raw must be ({len(pressure)}, 6), got shape {imu.shape}")
            object.__setattr__(self, "imu_raw", imu)

    @property
    def count(self) -> int:
        return len(self.imu_raw) if self.imu_raw is not None else len(self.pressure_counts)

    @property
    def n_pressure(self) -> int:
        return int(self.pressure_counts.shape[1])

    @property
    def imu(self) -> int:
        return int(self.imu_raw is not None)

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        return self.first_index + np.arange(self.count, dtype=np.int64)

    def pressure(self, pressure_scale: float) -> FloatArray:
        return counts_to_pressure(self.pressure_counts, pressure_scale)

    def acc_ms2(self) -> FloatArray | None:
        return None if self.imu_raw is None else raw_to_acc_ms2(self.imu_raw[:, :3])

    def gyro_dps(self) -> FloatArray | None:
        return None if self.imu_raw is None else raw_to_gyro_dps(self.imu_raw[:, 3:])

    def payload(self) -> bytes:
        payloads = encode_sample_payloads(self.first_index, self.pressure_counts, self.imu_raw)
        if len(payloads) != 1:
            raise ProtocolError(
                f"{self.count} samples do not fit one SAMPLES packet "
                f"(at most {max_samples_per_packet(self.n_pressure, self.imu)}); use encode_samples()"
            )
        return payloads[0]

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Samples:
        indices, pressure, imu = decode_sample_batches([payload])
        return cls(int(indices[0]), pressure, imu)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Samples):
            return NotImplemented
        imu_equal = (self.imu_raw is None and other.imu_raw is None) or (
            self.imu_raw is not None and other.imu_raw is not None and np.array_equal(self.imu_raw, other.imu_raw)
        )
        return (
            self.first_index == other.first_index
            and np.array_equal(self.pressure_counts, other.pressure_counts)
            and imu_equal
        )

    __hash__ = None  # type: ignore[assignment]


def decode_sample_batches(
    payloads: Sequence[bytes], *, n_pressure: int | None = None, imu: int | bool | None = None
) -> tuple[U32Array, U16Array, I16Array | None]:
    """Decode many SAMPLES payloads (packet bytes after the 8-byte header) at once.

    Returns (sample indices u32 (n,), pressure counts uint16 (n, P), IMU raw int16 (n, 6)
    or None). All batches must share one ``n_pressure``/``imu`` (checked against the
    arguments when given; they also set the shape of an empty result). The records are
    decoded with one ``np.frombuffer`` over all batches: no Python loop per sample.
    """
    counts: list[int] = []
    firsts: list[int] = []
    records: list[bytes] = []
    shape: tuple[int, int] | None = None if n_pressure is None or imu is None else (n_pressure, int(bool(imu)))
    for payload in payloads:
        if len(payload) < SAMPLES_HEADER_LEN:
            raise _truncated(f"SAMPLES payload of {len(payload)} bytes is shorter than its 8-byte head")
        first_index, count, batch_pressure, batch_imu, _reserved = _SAMPLES_HEAD.unpack_from(payload)
        _check_samples_head(count, batch_pressure, batch_imu, len(payload))
        if shape is None:
            shape = (batch_pressure, batch_imu)
        elif shape != (batch_pressure, batch_imu):
            raise _bad_value(
                f"SAMPLES batch with n_pressure {batch_pressure}, imu {batch_imu} differs from "
                f"the stream's n_pressure {shape[0]}, imu {shape[1]}",
                5 if batch_pressure != shape[0] else 6,
            )
        counts.append(count)
        firsts.append(first_index)
        records.append(payload[SAMPLES_HEADER_LEN:])
    n_p, has_imu = shape if shape is not None else (0, 0)
    words_per_record = n_p + IMU_AXES * has_imu
    words = np.frombuffer(b"".join(records), dtype="<u2").reshape(-1, max(words_per_record, 1))
    if words_per_record == 0:
        words = words[:, :0]
    pressure = words[:, :n_p].astype(np.uint16)
    imu_raw = words[:, n_p:].view("<i2").astype(np.int16) if has_imu else None
    count_array = np.asarray(counts, dtype=np.int64)
    batch_starts = np.cumsum(count_array) - count_array
    offsets = np.arange(int(count_array.sum()), dtype=np.int64) - np.repeat(batch_starts, count_array)
    indices = (np.repeat(np.asarray(firsts, dtype=np.int64), count_array) + offsets) % U32_WRAP
    return indices.astype(np.uint32), pressure, imu_raw


def _sample_words(
    pressure_counts: npt.ArrayLike | None, imu_raw: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.uint16], int, int]:
    """Interleave pressure and IMU into one (n, P+6) little-endian u16 array of records."""
    pressure = None if pressure_counts is None else np.asarray(pressure_counts)
    imu = None if imu_raw is None else np.asarray(imu_raw)
    if pressure is not None and pressure.size == 0 and pressure.ndim < 2:
        pressure = None
    if pressure is not None:
        if pressure.ndim != 2 or pressure.shape[1] > MAX_PRESSURE_CHANNELS:
            raise ProtocolError(f"pressure counts must be (n, 0..{MAX_PRESSURE_CHANNELS}), got shape {pressure.shape}")
        if pressure.size and (pressure.min() < 0 or pressure.max() > NA_U16):
            raise ProtocolError("pressure counts must fit u16 (use pressure_to_counts to quantise)")
    if imu is not None:
        if imu.ndim != 2 or imu.shape[1] != IMU_AXES:
            raise ProtocolError(f"IMU raw values must be (n, 6), got shape {imu.shape}")
        if imu.size and (imu.min() < -32768 or imu.max() > 32767):
            raise ProtocolError("IMU raw values must fit i16 (use imu_to_raw to quantise)")
    if pressure is not None and imu is not None and len(pressure) != len(imu):
        raise ProtocolError(f"{len(pressure)} pressure rows but {len(imu)} IMU rows")
    n_p = 0 if pressure is None else pressure.shape[1]
    has_imu = int(imu is not None)
    if n_p == 0 and not has_imu:
        raise ProtocolError("samples need pressure channels or an IMU")
    n = len(imu) if imu is not None else len(pressure)  # type: ignore[arg-type]
    words = np.empty((n, n_p + IMU_AXES * has_imu), dtype="<u2")
    if n_p:
        words[:, :n_p] = pressure  # type: ignore[index]
    if has_imu:
        words[:, n_p:] = np.asarray(imu, dtype=np.int16).view(np.uint16)
    return words, n_p, has_imu


def encode_sample_payloads(
    first_index: int,
    pressure_counts: npt.ArrayLike | None,
    imu_raw: npt.ArrayLike | None,
    *,
    max_count: int | None = None,
) -> list[bytes]:
    """SAMPLES payloads for consecutive samples from ``first_index``, each batch as full as allowed."""
    words, n_p, has_imu = _sample_words(pressure_counts, imu_raw)
    limit = max_samples_per_packet(n_p, has_imu)
    per_batch = limit if max_count is None else min(limit, max_count)
    if per_batch < 1:
        raise ProtocolError(f"max_count must be at least 1, got {max_count}")
    if first_index < 0:
        raise ProtocolError(f"first_index must not be negative, got {first_index}")
    data = words.tobytes()
    record = sample_record_len(n_p, has_imu)
    payloads = []
    for start in range(0, len(words), per_batch):
        count = min(per_batch, len(words) - start)
        head = _SAMPLES_HEAD.pack((first_index + start) % U32_WRAP, count, n_p, has_imu, 0)
        payloads.append(head + data[start * record : (start + count) * record])
    return payloads


def encode_samples(
    first_index: int,
    pressure_counts: npt.ArrayLike | None,
    imu_raw: npt.ArrayLike | None,
    *,
    seq_start: int = 0,
    rate_hz: float | None = None,
    time_ms: int = 0,
    max_count: int | None = None,
) -> list[bytes]:
    """SAMPLES packets (header + payload) for consecutive samples, split to fit 1024 bytes.

    Packets are numbered ``seq_start``, ``seq_start + 1``, … (wrapping). With ``rate_hz``
    each packet's ``time_ms`` is ``time_ms`` plus the time just after its last sample
    (when a device would send it); without it every packet carries ``time_ms``.
    """
    payloads = encode_sample_payloads(first_index, pressure_counts, imu_raw, max_count=max_count)
    packets = []
    sent = 0
    for i, payload in enumerate(payloads):
        sent += payload[4]
        stamp = time_ms if rate_hz is None else time_ms + round(1000.0 * (first_index + sent) / rate_hz)
        packets.append(encode_packet(PacketType.SAMPLES, seq_start + i, stamp, payload))
    return packets


# --------------------------------------------------------------------------- decode_packet

Body: TypeAlias = Status | Samples | Step | HeelRaise | Settings | Command | Ack | Error | Layout | Cue | BackfillEnd

BODY_CLASSES: dict[int, Any] = {
    PacketType.STATUS: Status,
    PacketType.SAMPLES: Samples,
    PacketType.STEP: Step,
    PacketType.HEEL_RAISE: HeelRaise,
    PacketType.SETTINGS: Settings,
    PacketType.COMMAND: Command,
    PacketType.ACK: Ack,
    PacketType.ERROR: Error,
    PacketType.LAYOUT: Layout,
    PacketType.CUE: Cue,
    PacketType.BACKFILL_END: BackfillEnd,
}


@dataclass(frozen=True)
class DecodedPacket:
    """A decoded packet; ``stream`` and ``host_ms`` are set when it came from a recording."""

    header: Header
    body: Body
    stream: int | None = None
    host_ms: int | None = None

    @property
    def type(self) -> int:
        return self.header.type

    def to_fields(self) -> dict[str, Any]:
        """Header and body fields by their docs/protocol.md names (sentinels as None)."""
        out: dict[str, Any] = {
            "version": self.header.version,
            "type": self.header.type,
            "seq": self.header.seq,
            "time_ms": self.header.time_ms,
        }
        out.update(body_to_fields(self.body))
        return out


def decode_packet(data: bytes) -> DecodedPacket:
    """Decode one packet (no framing).

    Raises :class:`PacketVersionError` (an ``UnsupportedVersionError``) for another
    protocol version and :class:`PacketError` (a ``ProtocolError``) for a bad length,
    type, command or value; both carry the ERROR ``code`` a device would answer with.
    """
    header = decode_header(data)
    cls = BODY_CLASSES.get(header.type)
    if cls is None:
        raise PacketError(f"unknown packet type {header.type:#04x}", ErrorCode.UNKNOWN_TYPE, reason="unknown_type")
    return DecodedPacket(header, cls.decode(bytes(data[HEADER_LEN:])))


IMU_FIELD_NAMES = ("ax", "ay", "az", "gx", "gy", "gz")


def _with_none(values: npt.NDArray[Any], sentinel: int) -> list[Any]:
    """Array → nested lists with the n/a sentinel as None."""
    as_objects = values.astype(object)
    as_objects[values == sentinel] = None
    return as_objects.tolist()  # type: ignore[no-any-return]


def body_to_fields(body: Body) -> dict[str, Any]:
    """A body's fields by their docs/protocol.md names, sentinels as None.

    SAMPLES records become columns: ``p`` is a list of per-sample channel lists and
    ``ax`` … ``gz`` are per-sample lists (absent without IMU).
    """
    if isinstance(body, Samples):
        out: dict[str, Any] = {
            "first_index": body.first_index,
            "count": body.count,
            "n_pressure": body.n_pressure,
            "imu": body.imu,
            "p": _with_none(body.pressure_counts, NA_U16),
        }
        if body.imu_raw is not None:
            columns = _with_none(body.imu_raw.T, NA_I16)
            out.update(zip(IMU_FIELD_NAMES, columns))
        return out
    if isinstance(body, Layout):
        return {"n": body.n, "x_mm": list(body.x_mm), "y_mm": list(body.y_mm)}
    if isinstance(body, Command):
        return {"command": body.command, **body.arguments()}
    return {f.name: getattr(body, f.name) for f in fields(body)}


def _from_none(values: Any, sentinel: int, shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    if shape[0] * shape[1] == 0:
        return np.zeros(shape, dtype=np.int64)
    array = np.array(values, dtype=object).reshape(shape)
    array[np.equal(array, None)] = sentinel
    return array.astype(np.int64)


def body_from_fields(packet_type: int, values: dict[str, Any]) -> Body:
    """Inverse of :func:`body_to_fields` (header keys and ``count``/``n`` are implied)."""
    header_keys = {"version", "type", "seq", "time_ms"}
    values = {k: v for k, v in values.items() if k not in header_keys}
    if packet_type == PacketType.SAMPLES:
        count, n_p = int(values["count"]), int(values["n_pressure"])
        pressure = _from_none(values["p"], NA_U16, (count, n_p)).astype(np.uint16)
        imu = None
        if values["imu"]:
            imu = _from_none([values[name] for name in IMU_FIELD_NAMES], NA_I16, (IMU_AXES, count)).T
        return Samples(int(values["first_index"]), pressure, None if imu is None else imu.astype(np.int16))
    if packet_type == PacketType.LAYOUT:
        return Layout(tuple(values["x_mm"]), tuple(values["y_mm"]))
    cls = BODY_CLASSES.get(packet_type)
    if cls is None:
        raise ProtocolError(f"unknown packet type {packet_type:#04x}")
    return cls(**values)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- framing


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): 0x29B1 for b"123456789"."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(packet: bytes, prefix: bytes = b"") -> bytes:
    """``COBS(prefix ‖ packet ‖ crc16_le) ‖ 0x00``; the link uses no prefix."""
    body = bytes(prefix) + bytes(packet)
    return cobs.encode(body + crc16(body).to_bytes(2, "little")) + b"\x00"


def max_encoded_frame_len(prefix_len: int = 0) -> int:
    """Longest COBS-encoded frame (without the 0x00) a receiver has to buffer."""
    raw = prefix_len + MAX_PACKET_LEN + CRC_LEN
    return raw + raw // 254 + 1


class FrameDecoder:
    """Splits a byte stream into verified frames; never raises on garbage.

    ``feed(data)`` returns the frame contents (``prefix ‖ packet``, CRC stripped and
    checked) completed by ``data``. Bytes between delimiters that fail COBS, CRC or
    the length limits count as one bad frame each; ``skipped_bytes`` counts every byte
    that ended up in no frame. Partial frames are buffered across calls, at most one
    longest frame: older bytes of an over-long run are dropped and counted.

    With ``recover_glued`` (the default) a frame glued to preceding garbage (no 0x00 in
    between) is still found: when a run fails, the decoder looks for the longest tail
    of the run that is a valid frame. A receiver that only splits at 0x00 agrees on
    every stream where garbage is followed by a delimiter.
    """

    def __init__(self, prefix_len: int = 0, *, recover_glued: bool = True) -> None:
        self.prefix_len = prefix_len
        self.min_frame_len = prefix_len + HEADER_LEN + CRC_LEN
        self.max_frame_len = prefix_len + MAX_PACKET_LEN + CRC_LEN
        self.max_encoded_len = max_encoded_frame_len(prefix_len)
        self.recover_glued = recover_glued
        self.frames = 0
        self.bad_frames = 0
        self.skipped_bytes = 0
        self.bad_reasons: Counter[str] = Counter()
        self._buffer = bytearray()
        self._overflowed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame waiting for their 0x00 (a torn tail at end of input)."""
        return len(self._buffer)

    def reset(self) -> None:
        """Drop any partial frame (e.g. after reopening a link)."""
        self.skipped_bytes += len(self._buffer)
        self._buffer.clear()
        self._overflowed = False

    def feed(self, data: bytes) -> list[bytes]:
        parts = bytes(data).split(b"\x00")
        if len(parts) == 1:
            self._buffer += parts[0]
            self._trim_buffer()
            return []
        out: list[bytes] = []
        first = bytes(self._buffer) + parts[0]
        self._process_run(first, self._overflowed, out)
        for run in parts[1:-1]:
            self._process_run(run, False, out)
        self._buffer = bytearray(parts[-1])
        self._overflowed = False
        self._trim_buffer()
        return out

    def _trim_buffer(self) -> None:
        excess = len(self._buffer) - self.max_encoded_len
        if excess > 0:
            # Keep the newest bytes: a valid frame may still end this run.
            del self._buffer[:excess]
            self.skipped_bytes += excess
            self._overflowed = True

    def _check(self, encoded: bytes) -> tuple[bytes | None, str]:
        try:
            raw = cobs.decode(encoded)
        except cobs.DecodeError:
            return None, "bad_cobs"
        if len(raw) < self.min_frame_len:
            return None, "too_short"
        if len(raw) > self.max_frame_len:
            return None, "too_long"
        body = raw[:-CRC_LEN]
        if crc16(body) != int.from_bytes(raw[-CRC_LEN:], "little"):
            return None, "bad_crc"
        return body, "ok"

    def _process_run(self, run: bytes, overflowed: bool, out: list[bytes]) -> None:
        if not run:
            return  # empty run between two 0x00: harmless (senders may flush with 0x00)
        whole_checked = not overflowed and len(run) <= self.max_encoded_len
        if whole_checked:
            body, reason = self._check(run)
            if body is not None:
                self.frames += 1
                out.append(body)
                return
        else:
            reason = "too_long"
        self._count_bad(reason)
        recovered = self._recover_tail(run, 1 if whole_checked else 0) if self.recover_glued else None
        if recovered is None:
            self.skipped_bytes += len(run)
            return
        start, body = recovered
        self.skipped_bytes += start
        self.frames += 1
        out.append(body)

    def _count_bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] += 1

    def _recover_tail(self, run: bytes, first_start: int) -> tuple[int, bytes] | None:
        """(start, frame body) of the longest valid frame that ends ``run``, if any.

        A COBS frame is a chain of code bytes that lands exactly on its end; walking
        backwards marks every start whose chain does, and only those are tried.
        """
        n = len(run)
        lowest = max(first_start, n - self.max_encoded_len)
        lands = bytearray(n + 1)
        lands[n] = 1
        for i in range(n - 1, lowest - 1, -1):
            j = i + run[i]
            lands[i] = 1 if j <= n and lands[j] else 0
        for start in range(lowest, n - self.min_frame_len):
            if lands[start]:
                body, _reason = self._check(run[start:])
                if body is not None:
                    return start, body
        return None


class PacketStream:
    """Frames → decoded packets, counting every refusal by reason; never raises.

    ``bad_packets`` counts frames that passed the CRC but whose packet was refused,
    keyed by reason (``"unsupported_version"``, ``"bad_length"``, ``"truncated"``,
    ``"unknown_type"``, ``"unknown_command"``, ``"bad_value"``); ``last_error`` keeps
    the latest refusal for a message.
    """

    def __init__(self, prefix_len: int = 0, *, recover_glued: bool = True) -> None:
        self.decoder = FrameDecoder(prefix_len, recover_glued=recover_glued)
        self.bad_packets: Counter[str] = Counter()
        self.last_error: ProtocolError | None = None
        self.packets = 0

    @property
    def bad_frames(self) -> int:
        return self.decoder.bad_frames

    @property
    def unsupported_version(self) -> int:
        return self.bad_packets["unsupported_version"]

    def feed(self, data: bytes, on_frame: Callable[[bytes], None] | None = None) -> list[DecodedPacket]:
        """Decoded packets completed by ``data``. ``on_frame`` sees every verified frame
        body first, unchanged, whether or not its packet decodes (recorders keep those)."""
        out = []
        prefix_len = self.decoder.prefix_len
        for body in self.decoder.feed(data):
            if on_frame is not None:
                on_frame(body)
            try:
                out.append(decode_packet(body[prefix_len:]))
            except (PacketError, PacketVersionError) as exc:
                self.bad_packets[exc.reason] += 1
                self.last_error = exc
        self.packets += len(out)
        return out


# --------------------------------------------------------------------------- quantisation

MG_PER_MS2 = 1000.0 / STANDARD_GRAVITY_MS2
GYRO_COUNTS_PER_DPS = 10.0
I16_MAX_VALID = 32767


def _quantise_signed(values: npt.ArrayLike, counts_per_unit: float) -> I16Array:
    x = np.asarray(values, dtype=np.float64) * counts_per_unit
    nan = np.isnan(x)
    # Clip to ±32767 so a saturated value never turns into the -32768 sentinel.
    counts = np.clip(np.rint(np.where(nan, 0.0, x)), -I16_MAX_VALID, I16_MAX_VALID).astype(np.int16)
    counts[nan] = NA_I16
    return counts


def _dequantise_signed(raw: npt.ArrayLike, units_per_count: float) -> FloatArray:
    r = np.asarray(raw, dtype=np.int16)
    out = r.astype(np.float64) * units_per_count
    out[r == NA_I16] = np.nan
    return out


def acc_ms2_to_raw(acc_ms2: npt.ArrayLike) -> I16Array:
    """Specific force m/s² → mg counts, clipped to ±32767, NaN → sentinel."""
    return _quantise_signed(acc_ms2, MG_PER_MS2)


def raw_to_acc_ms2(raw: npt.ArrayLike) -> FloatArray:
    return _dequantise_signed(raw, 1.0 / MG_PER_MS2)


def gyro_dps_to_raw(gyro_dps: npt.ArrayLike) -> I16Array:
    """Angular rate deg/s → 0.1 deg/s counts, clipped to ±32767, NaN → sentinel."""
    return _quantise_signed(gyro_dps, GYRO_COUNTS_PER_DPS)


def raw_to_gyro_dps(raw: npt.ArrayLike) -> FloatArray:
    return _dequantise_signed(raw, 1.0 / GYRO_COUNTS_PER_DPS)


def imu_to_raw(acc_ms2: npt.ArrayLike, gyro_dps: npt.ArrayLike) -> I16Array:
    """(n, 3) acc + (n, 3) gyro in physical units → (n, 6) raw ``ax ay az gx gy gz``."""
    return np.concatenate([acc_ms2_to_raw(acc_ms2), gyro_dps_to_raw(gyro_dps)], axis=1)


def raw_to_imu(imu_raw: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(n, 6) raw → ((n, 3) acc m/s², (n, 3) gyro deg/s), NaN for sentinels."""
    raw = np.asarray(imu_raw, dtype=np.int16)
    return raw_to_acc_ms2(raw[:, :3]), raw_to_gyro_dps(raw[:, 3:])


def pressure_to_counts(pressure: npt.ArrayLike, pressure_scale: float) -> U16Array:
    """Physical pressure → counts (value / scale), clipped to 0..65534, NaN → 0xFFFF."""
    if not pressure_scale > 0:
        raise ValueError(f"pressure_scale must be positive, got {pressure_scale}")
    x = np.asarray(pressure, dtype=np.float64) / pressure_scale
    nan = np.isnan(x)
    counts = np.clip(np.rint(np.where(nan, 0.0, x)), 0, NA_U16 - 1).astype(np.uint16)
    counts[nan] = NA_U16
    return counts


def counts_to_pressure(counts: npt.ArrayLike, pressure_scale: float) -> FloatArray:
    c = np.asarray(counts, dtype=np.uint16)
    out = c.astype(np.float64) * pressure_scale
    out[c == NA_U16] = np.nan
    return out


def choose_pressure_scale(pressure: npt.ArrayLike, *, target_max_counts: float = 60000.0) -> float:
    """A round scale (1, 2 or 5 × 10^k) that puts the largest value at or below ~60000 counts."""
    x = np.asarray(pressure, dtype=np.float64)
    finite = x[np.isfinite(x)]
    peak = float(finite.max()) if finite.size else 0.0
    if peak <= 0.0:
        return 1.0
    wanted = peak / target_max_counts
    exponent = math.floor(math.log10(wanted))
    for mantissa in (1, 2, 5, 10):
        scale = float(f"{mantissa}e{exponent}")  # decimal literal: 0.001, not 0.0010000000000000002
        if scale >= wanted * (1 - 1e-12):
            return scale
    raise AssertionError("unreachable: 10 × 10^k ≥ wanted")


def rate_hz_to_chz(rate_hz: float) -> int:
    """Sampling rate in Hz → the protocol's 0.01 Hz units (204.8 Hz → 20480)."""
    return int(round(rate_hz * 100.0))


def chz_to_rate_hz(rate_chz: int) -> float:
    return rate_chz / 100.0


def unwrap_counter(values: Iterable[int], modulus: int) -> npt.NDArray[np.int64]:
    """Unwrap a wrapping counter (seq: 2^16, device time_ms: 2^30) into a monotonic int64 series.

    Each step is taken as the smallest forward-or-backward move modulo ``modulus``.
    """
    v = np.asarray(list(values), dtype=np.int64)
    if v.size == 0:
        return v
    steps = np.diff(v) % modulus
    steps = np.where(steps >= modulus // 2, steps - modulus, steps)
    return np.concatenate([v[:1], v[0] + np.cumsum(steps)])

