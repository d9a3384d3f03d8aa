"""Packet bodies of protocol v1 except SAMPLES: one frozen dataclass per packet type.

The fixed-layout bodies (STATUS, STEP, HEEL_RAISE, SETTINGS, ACK, ERROR, CUE,
BACKFILL_END, PROGRAM_EVENT) are declared as offset tables (:class:`_Field`: struct
code, "n/a" sentinel); COMMAND, LAYOUT, BONDS and PROGRAM have a variable length. Each body has ``payload()``,
``encode(seq, time_ms)`` and ``decode(payload)``.

Decoding checks structure and the value ranges of what a device validates (SETTINGS
and PROGRAM fields, REPLAY_BEGIN, CUE_TEST, GET_EVENTS and OPEN_PAIRING arguments), with the device's
BAD_VALUE detail offsets. Fields of device reports (STATUS, STEP, …) are not
range-checked: a host shows what a device sends; only a STEP that names neither of its
stance's events (both indices n/a) is refused, as BAD_VALUE. Reserved bytes are written
0; in the packet types a device accepts (SETTINGS, COMMAND, LAYOUT, SAMPLES, PROGRAM) a non-zero
one is refused like a bad value (detail = its offset), in the others it is ignored when
read (docs/protocol.md, "Reserved bytes").
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

import numpy as np

from insole.errors import ProtocolError
from insole.protocol.constants import (
    BACKFILL_TYPES,
    BOND_ADDR_LEN,
    COMMAND_ARG_LEN,
    CUE_TEST_MAX_MS,
    CUE_TEST_MIN_MS,
    HEADER_LEN,
    MAX_PACKET_LEN,
    MAX_PRESSURE_CHANNELS,
    NA_I16,
    NA_U8,
    NA_U16,
    NA_U32,
    OPEN_PAIRING_MAX_S,
    OPEN_PAIRING_MIN_S,
    PROGRAM_BLOCK_LEN,
    PROGRAM_FLAG_GOAL_SECONDS,
    PROGRAM_FLAG_METRONOME,
    PROGRAM_HEAD_LEN,
    PROGRAM_MAX_BLOCKS,
    PROGRAM_MAX_ID,
    PROGRAM_VERSION,
    SETTINGS_VERSION,
    U16_WRAP,
    BlockKind,
    CommandCode,
    CueMode,
    CueOutcome,
    CuePattern,
    CueSchedule,
    Direction,
    ErrorCode,
    PacketType,
    ProgramEventKind,
)
from insole.protocol.header import PacketError, bad_length, bad_value, encode_packet, truncated


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
    def _first_nonzero_reserved(cls, payload: bytes) -> int | None:
        """Payload offset of the first reserved byte that is not 0, if any."""
        offset = 0
        for f in cls._FIELDS:
            size = struct.calcsize("<" + f.code)
            if f.name is None and any(payload[offset : offset + size]):
                return offset + next(k for k in range(size) if payload[offset + k])
            offset += size
        return None

    @classmethod
    def _decode_fixed(cls, payload: bytes) -> dict[str, int | None]:
        expected = cls._STRUCT.size
        if len(payload) != expected:
            make = truncated if len(payload) < expected else bad_length
            raise make(f"{cls.TYPE.name} payload is {len(payload)} bytes, expected {expected}")
        raw = cls._STRUCT.unpack(payload)
        out: dict[str, int | None] = {}
        for f, value in zip(cls._FIELDS, raw, strict=True):
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
    # The BLE link's health since boot (saturating at 65534; None: a board without radio):
    ble_irq_faults: int | None  # exceptions caught in its IRQ handler
    ble_refused: int | None  # connections it ended: not encrypted in time, or not bonded

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
        _Field("ble_irq_faults", "H", na=True),
        _Field("ble_refused", "H", na=True),
    )


@dataclass(frozen=True)
class Step(_FixedBody):
    """One stance phase. An IMU-only insole may report a stance in two halves (a partial
    stance, docs/protocol.md): ``to_index`` None when the foot came to rest in it (the
    toe-off comes later), ``ic_index`` None when its contact came before the stream or
    in a record with ``to_index`` None and the same ``step_number``. Never both."""

    ic_index: int | None  # None: the stance began before the device saw its contact
    to_index: int | None  # None: the foot came to rest; the toe-off follows in another record
    stance_ms: int | None  # None when either index is
    swing_ms: int | None
    fpa_cdeg: int | None  # 0.01°, positive = toe-out
    direction: int  # Direction
    flags: int
    peak_pressure: int | None
    medial_share: int | None  # 0.5 %
    stride_mm: int | None
    speed_mms: int | None
    step_number: int
    strike: int | None = None  # Strike: 1 heel, 2 midfoot, 3 forefoot first; None not measured

    TYPE: ClassVar[PacketType] = PacketType.STEP
    _FIELDS, _STRUCT = _layout(
        _Field("ic_index", "I", na=True),
        _Field("to_index", "I", na=True),
        _Field("stance_ms", "H", na=True),
        _Field("swing_ms", "H", na=True),
        _Field("fpa_cdeg", "h", na=True),
        _Field("direction", "B"),
        _Field("flags", "B"),
        _Field("peak_pressure", "H", na=True),
        _Field("medial_share", "B", na=True),
        _Field("strike", "B", na=True),
        _Field("stride_mm", "H", na=True),
        _Field("speed_mms", "H", na=True),
        _Field("step_number", "I"),
    )

    def __post_init__(self) -> None:
        if self.ic_index is None and self.to_index is None:
            raise ProtocolError(_NO_STANCE_EVENT)
        if self.strike == _STRIKE_NOT_MEASURED:
            raise ProtocolError("Step.strike = 0 is 'not measured' on the wire; pass None")

    @classmethod
    def decode(cls, payload: bytes) -> Step:
        """Decode; a record with neither event (both indices n/a) is refused as BAD_VALUE
        (detail 4, ``to_index``: the second of the two), a report that names no stance.
        ``strike`` 0 (the reserved byte of firmware before the field) reads as None."""
        if len(payload) == cls._STRUCT.size and payload[:_TO_INDEX_OFFSET + 4] == _BOTH_INDICES_NA:
            raise bad_value(_NO_STANCE_EVENT, _TO_INDEX_OFFSET)
        values = cls._decode_fixed(payload)
        if values["strike"] == _STRIKE_NOT_MEASURED:
            values["strike"] = None
        return cls(**values)  # type: ignore[arg-type]

    @property
    def partial(self) -> bool:
        """Whether this record holds one half of a stance (an index n/a)."""
        return self.ic_index is None or self.to_index is None

    @property
    def fpa_deg(self) -> float | None:
        return None if self.fpa_cdeg is None else self.fpa_cdeg / 100.0


_STRIKE_NOT_MEASURED = 0
_NO_STANCE_EVENT = "STEP with ic_index and to_index both n/a: a partial stance has one of its two events"
_TO_INDEX_OFFSET = 4
_BOTH_INDICES_NA = struct.pack("<II", NA_U32, NA_U32)


def join_stance_halves(first: Step, second: Step) -> Step | None:
    """One foot's two records of one stance (docs/protocol.md, "Partial stances") as one
    STEP with both indices, or None when they are not its two halves.

    ``first`` came to rest (``to_index`` n/a), ``second`` carries its toe-off (``ic_index``
    n/a, the same ``step_number``, a later sample). The joined stance keeps what the first
    half knew at contact (swing, foot angle, stride, speed; its direction unless unknown)
    and the second half's toe-off; ``stance_ms`` stays n/a: the stance held a rest, its
    length is no stance time.
    """
    if first.ic_index is None or first.to_index is not None or second.to_index is None:
        return None
    if second.ic_index is not None or first.step_number != second.step_number or second.to_index <= first.ic_index:
        return None
    direction = first.direction if first.direction != Direction.UNKNOWN else second.direction
    return dataclasses.replace(first, to_index=second.to_index, stance_ms=None, direction=direction)


def whole_stances(steps: Iterable[Step]) -> list[Step]:
    """One foot's STEPs, each stance once: the two halves of a stance joined
    (:func:`join_stance_halves`) where the first half was, whichever came first (a link's
    backfill may deliver the first half late). A half whose other half never came stays
    partial: a stream that began at rest, or ended (or lost the record) before the foot
    moved again. Whole stances pass unchanged, in their order."""
    given = list(steps)
    out: list[Step | None] = list(given)
    waiting: dict[tuple[bool, int], int] = {}  # (a first half?, step_number) → position of a half not yet joined
    for k, step in enumerate(given):
        if not step.partial:
            continue
        is_first = step.to_index is None
        other = waiting.get((not is_first, step.step_number))
        joined = None
        if other is not None:
            first, second = (step, given[other]) if is_first else (given[other], step)
            joined = join_stance_halves(first, second)
        if other is None or joined is None:
            waiting[(is_first, step.step_number)] = k
            continue
        del waiting[(not is_first, step.step_number)]
        out[k] = out[other] = None
        out[k if is_first else other] = joined
    return [step for step in out if step is not None]


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
    offset of the first bad field); :mod:`insole.settings` adds readable names and units.
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
        """Decode and validate: any out-of-range field, or a reserved byte that is not 0,
        refuses the packet (BAD_VALUE, detail = the first bad offset)."""
        settings = super().decode(payload)
        bad = settings.first_bad_field()
        reserved = cls._first_nonzero_reserved(payload)
        if reserved is not None and (bad is None or reserved < bad[1]):
            raise bad_value(f"SETTINGS reserved byte at offset {reserved} = {payload[reserved]}; must be 0", reserved)
        if bad is not None:
            raise bad_value(settings.problem() or "", bad[1])
        return settings


@dataclass(frozen=True)
class Ack(_FixedBody):
    ref_type: int
    ref_command: int
    ref_seq: int

    TYPE: ClassVar[PacketType] = PacketType.ACK
    _FIELDS, _STRUCT = _layout(_Field("ref_type", "B"), _Field("ref_command", "B"), _Field("ref_seq", "H"))


@dataclass(frozen=True)
class ErrorReply(_FixedBody):
    """The device's ERROR answer to a refused packet (``error`` is an ErrorCode)."""

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


@dataclass(frozen=True)
class ProgramEvent(_FixedBody):
    """One event of a running exercise program (docs/programs.md): a session or block
    starting or ending, or a signal given. Fields that do not apply are None (n/a)."""

    event: int  # ProgramEventKind
    block: int | None  # block index 0..7; None for session events
    kind: int | None  # the block's BlockKind; None for session events
    detail: int  # BLOCK_END: BlockEnd; SIGNAL: the ProgramSignal pattern; else 0
    sample_index: int  # the stream's sample index when it happened
    session: int  # 1-based
    program_id: int
    goal: int | None  # the block's goal in this session, in its unit
    done: int | None  # progress towards it when it happened
    value: int | None  # BLOCK_END: the kind's result
    value2: int | None  # BLOCK_END: the kind's second result
    target_cdeg: int | None  # the foot-angle band in force in an FPA block
    half_width_cdeg: int | None

    TYPE: ClassVar[PacketType] = PacketType.PROGRAM_EVENT
    _FIELDS, _STRUCT = _layout(
        _Field("event", "B"),
        _Field("block", "B", na=True),
        _Field("kind", "B", na=True),
        _Field("detail", "B"),
        _Field("sample_index", "I"),
        _Field("session", "H"),
        _Field("program_id", "H"),
        _Field("goal", "H", na=True),
        _Field("done", "H", na=True),
        _Field("value", "h", na=True),
        _Field("value2", "h", na=True),
        _Field("target_cdeg", "h", na=True),
        _Field("half_width_cdeg", "H", na=True),
    )

    @property
    def event_name(self) -> str:
        """"session_start", "block_end", … (or "event N" for a code this host does not know)."""
        return _code_name(ProgramEventKind, self.event, "event")

    @property
    def kind_name(self) -> str | None:
        """The block's kind as in program files ("fpa_baseline", …), None for session events."""
        return None if self.kind is None else block_kind_name(self.kind)


def _code_name(enum: type[IntEnum], code: int, what: str) -> str:
    try:
        return enum(code).name.lower()
    except ValueError:
        return f"{what} {code}"


def block_kind_name(kind: int) -> str:
    """A block kind as program files and reports spell it: "fpa_baseline" … "walk"."""
    return _code_name(BlockKind, kind, "kind")


# --------------------------------------------------------------------------- variable-length bodies

_COMMAND_HEAD = struct.Struct("<BB")
_REPLAY_BEGIN_ARGS = struct.Struct("<HBBBB")  # rate_chz, n_pressure, imu, side, reserved
_CUE_TEST_ARGS = struct.Struct("<HBB")  # duration_ms, duty_pct, reserved
_GET_EVENTS_ARGS = struct.Struct("<BBHH")  # event_type, reserved, from_seq, count
_OPEN_PAIRING_ARGS = struct.Struct("<H")  # seconds
# Argument names per command, in wire order (reserved bytes are not named).
COMMAND_ARGUMENTS: dict[int, tuple[str, ...]] = {
    CommandCode.REPLAY_BEGIN: ("rate_chz", "n_pressure", "imu", "side"),
    CommandCode.CUE_TEST: ("duration_ms", "duty_pct"),
    CommandCode.GET_EVENTS: ("event_type", "from_seq", "count"),
    CommandCode.OPEN_PAIRING: ("seconds",),
}
# Arguments that may be None (n/a) when their command carries them.
_OPTIONAL_ARGUMENTS = {"side"}
_ALL_ARGUMENTS = (
    "rate_chz", "n_pressure", "imu", "side", "duration_ms", "duty_pct", "event_type", "from_seq", "count",
    "seconds",
)  # fmt: skip



@dataclass(frozen=True)
class Command:
    """A COMMAND. Only the arguments of ``command`` are set; the others stay None.

    REPLAY_BEGIN's ``side`` may be None (n/a: the board keeps its own side).
    Decoding validates argument ranges like a device (BAD_VALUE, detail = payload
    offset): REPLAY_BEGIN rate_chz 5000..25000, n_pressure 0..16, imu 0/1 with
    pressure or IMU present, side 0/1/n/a; CUE_TEST duration_ms 10..2000, duty_pct 0..100;
    GET_EVENTS event_type SAMPLES/STEP/HEEL_RAISE/CUE/PROGRAM_EVENT, count 1..65535; OPEN_PAIRING seconds 1..600;
    every reserved byte 0 (the head's, detail 1, before any argument).
    """

    command: int  # CommandCode
    rate_chz: int | None = None  # REPLAY_BEGIN
    n_pressure: int | None = None  # REPLAY_BEGIN
    imu: int | None = None  # REPLAY_BEGIN
    side: int | None = None  # REPLAY_BEGIN: 0 left, 1 right, None n/a
    duration_ms: int | None = None  # CUE_TEST
    duty_pct: int | None = None  # CUE_TEST
    event_type: int | None = None  # GET_EVENTS: SAMPLES, STEP, HEEL_RAISE, CUE or PROGRAM_EVENT
    from_seq: int | None = None  # GET_EVENTS
    count: int | None = None  # GET_EVENTS: 1..65535 seqs from from_seq (wrapping)
    seconds: int | None = None  # OPEN_PAIRING: how long the pairing window stays open, 1..600 s

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

    @classmethod
    def open_pairing(cls, seconds: int) -> Command:
        return cls(CommandCode.OPEN_PAIRING, seconds=seconds)

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
            if self.command == CommandCode.OPEN_PAIRING:
                return head + _OPEN_PAIRING_ARGS.pack(self.seconds)
        except struct.error as exc:
            raise ProtocolError(f"command {self.command:#04x}: argument out of range: {exc}") from exc
        return head

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Command:
        if len(payload) < _COMMAND_HEAD.size:
            raise truncated(f"COMMAND payload is {len(payload)} bytes, shorter than its 2-byte head")
        code = payload[0]
        if code not in COMMAND_ARG_LEN:
            raise PacketError(f"unknown command {code:#04x}", ErrorCode.UNKNOWN_COMMAND, reason="unknown_command")
        expected = _COMMAND_HEAD.size + COMMAND_ARG_LEN[code]
        if len(payload) != expected:
            make = truncated if len(payload) < expected else bad_length
            raise make(f"COMMAND {CommandCode(code).name} payload is {len(payload)} bytes, expected {expected}")
        if payload[1]:
            raise bad_value(f"COMMAND reserved byte = {payload[1]}; must be 0", 1)
        if code == CommandCode.REPLAY_BEGIN:
            rate_chz, n_pressure, imu, side, reserved = _REPLAY_BEGIN_ARGS.unpack_from(payload, 2)
            if not 5000 <= rate_chz <= 25000:
                raise bad_value(f"REPLAY_BEGIN rate_chz = {rate_chz} is outside 5000..25000", 2)
            if n_pressure > MAX_PRESSURE_CHANNELS:
                raise bad_value(f"REPLAY_BEGIN n_pressure = {n_pressure}; at most {MAX_PRESSURE_CHANNELS}", 4)
            if imu > 1 or not (n_pressure or imu):
                raise bad_value(f"REPLAY_BEGIN imu = {imu} with n_pressure = {n_pressure}: need 0/1 and some data", 5)
            if side not in (0, 1, NA_U8):
                raise bad_value(f"REPLAY_BEGIN side = {side}; expected 0, 1 or n/a", 6)
            if reserved:
                raise bad_value(f"REPLAY_BEGIN reserved byte = {reserved}; must be 0", 7)
            return cls(code, rate_chz=rate_chz, n_pressure=n_pressure, imu=imu, side=None if side == NA_U8 else side)
        if code == CommandCode.CUE_TEST:
            duration_ms, duty_pct, reserved = _CUE_TEST_ARGS.unpack_from(payload, 2)
            if not CUE_TEST_MIN_MS <= duration_ms <= CUE_TEST_MAX_MS:
                raise bad_value(
                    f"CUE_TEST duration_ms = {duration_ms} is outside {CUE_TEST_MIN_MS}..{CUE_TEST_MAX_MS}", 2
                )
            if duty_pct > 100:
                raise bad_value(f"CUE_TEST duty_pct = {duty_pct} is outside 0..100", 4)
            if reserved:
                raise bad_value(f"CUE_TEST reserved byte = {reserved}; must be 0", 5)
            return cls(code, duration_ms=duration_ms, duty_pct=duty_pct)
        if code == CommandCode.GET_EVENTS:
            event_type, reserved, from_seq, count = _GET_EVENTS_ARGS.unpack_from(payload, 2)
            if event_type not in BACKFILL_TYPES:
                kept = ", ".join(PacketType(t).name for t in BACKFILL_TYPES)
                raise bad_value(f"GET_EVENTS event_type = {event_type:#04x}; the logs keep {kept}", 2)
            if reserved:
                raise bad_value(f"GET_EVENTS reserved byte = {reserved}; must be 0", 3)
            if count == 0:
                raise bad_value("GET_EVENTS count = 0; expected 1..65535", 6)
            return cls(code, event_type=event_type, from_seq=from_seq, count=count)
        if code == CommandCode.OPEN_PAIRING:
            (seconds,) = _OPEN_PAIRING_ARGS.unpack_from(payload, 2)
            if not OPEN_PAIRING_MIN_S <= seconds <= OPEN_PAIRING_MAX_S:
                raise bad_value(
                    f"OPEN_PAIRING seconds = {seconds} is outside {OPEN_PAIRING_MIN_S}..{OPEN_PAIRING_MAX_S}", 2
                )
            return cls(code, seconds=seconds)
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
            raise truncated(f"LAYOUT payload is {len(payload)} bytes, shorter than its 2-byte head")
        n = payload[0]
        if n > MAX_PRESSURE_CHANNELS:
            raise bad_value(f"LAYOUT n = {n}; at most {MAX_PRESSURE_CHANNELS} channels", 0)
        expected = 2 + 4 * n
        if len(payload) != expected:
            make = truncated if len(payload) < expected else bad_length
            raise make(f"LAYOUT of {n} channels needs {expected} payload bytes, got {len(payload)}")
        if payload[1]:
            raise bad_value(f"LAYOUT reserved byte = {payload[1]}; must be 0", 1)
        xy = np.frombuffer(payload, dtype="<i2", offset=2).reshape(n, 2)
        return cls(tuple(int(v) for v in xy[:, 0]), tuple(int(v) for v in xy[:, 1]))



# Address types of a bonded central, as NimBLE keys its bonds (identity addresses).
BOND_ADDRESS_TYPES: dict[int, str] = {0: "public", 1: "random"}
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


@dataclass(frozen=True)
class BondedPeer:
    """One bonded central: its identity address as NimBLE keys the bond."""

    addr_type: int  # 0 public, 1 random (static)
    address: str  # "C0:15:01:00:00:01", most significant byte first (as printed everywhere)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.upper())  # one spelling: equal peers compare equal

    @property
    def type_name(self) -> str:
        return BOND_ADDRESS_TYPES.get(self.addr_type, f"type {self.addr_type}")

    def to_bytes(self) -> bytes:
        """The 7 bytes on the wire: address type, then the address least significant byte first."""
        address = self.address
        if not _ADDRESS.match(address):
            raise ProtocolError(f"bond address {self.address!r} is not six hex bytes like C0:15:01:00:00:01")
        if not 0 <= self.addr_type <= 0xFF:
            raise ProtocolError(f"bond address type {self.addr_type} does not fit a u8")
        return bytes((self.addr_type,)) + bytes.fromhex(address.replace(":", ""))[::-1]

    @classmethod
    def from_bytes(cls, data: bytes) -> BondedPeer:
        return cls(data[0], ":".join(f"{b:02X}" for b in reversed(data[1:BOND_ADDR_LEN])))


MAX_BONDS_LISTED = (MAX_PACKET_LEN - HEADER_LEN - 2) // BOND_ADDR_LEN  # what one BONDS packet can hold


@dataclass(frozen=True)
class Bonds:
    """The device's answer to LIST_BONDS: its bonded centrals, most recently used first."""

    peers: tuple[BondedPeer, ...]

    TYPE: ClassVar[PacketType] = PacketType.BONDS

    @property
    def count(self) -> int:
        return len(self.peers)

    def payload(self) -> bytes:
        if self.count > MAX_BONDS_LISTED:
            raise ProtocolError(f"BONDS of {self.count} peers; one packet lists at most {MAX_BONDS_LISTED}")
        return bytes((self.count, 0)) + b"".join(peer.to_bytes() for peer in self.peers)

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Bonds:
        if len(payload) < 2:
            raise truncated(f"BONDS payload is {len(payload)} bytes, shorter than its 2-byte head")
        count = payload[0]
        expected = 2 + BOND_ADDR_LEN * count
        if len(payload) != expected:
            make = truncated if len(payload) < expected else bad_length
            raise make(f"BONDS of {count} peers needs {expected} payload bytes, got {len(payload)}")
        return cls(
            tuple(
                BondedPeer.from_bytes(payload[2 + BOND_ADDR_LEN * k : 2 + BOND_ADDR_LEN * (k + 1)])
                for k in range(count)
            )
        )


# --------------------------------------------------------------------------- PROGRAM

_PROGRAM_HEAD = struct.Struct("<BBH")  # program_version, n_blocks, program_id
_PROGRAM_BLOCK = struct.Struct("<BBHHhhHHH")  # kind flags goal spm a b rest_s limit_s reserved
_BLOCK_RESERVED_OFFSET = 14
_PROGRAM_HEAD_FIELDS = ("program_version", "n_blocks", "program_id", "program_id")
_PROGRAM_FLAGS = PROGRAM_FLAG_METRONOME | PROGRAM_FLAG_GOAL_SECONDS
PROGRAM_SPM_RANGE = (40, 200)
PROGRAM_GOAL_RANGE = (1, 65534)
PROGRAM_LIMIT_RANGE_S = (10, 65534)  # or 0: no limit
PROGRAM_REST_RANGE_S = (0, 600)  # heel raises only


@dataclass(frozen=True)
class BlockParameter:
    """What a block kind calls its ``a`` or ``b`` field, and the values it allows."""

    name: str
    low: int
    high: int


# Per kind: the meaning of ``a`` and ``b`` (None: must be 0). Walking's ``b``
# (progress_after) must be 0 when ``a`` (progress_pct) is 0: checked apart.
BLOCK_PARAMETERS: dict[int, tuple[BlockParameter | None, BlockParameter | None]] = {
    BlockKind.FPA_BASELINE: (BlockParameter("change_cdeg", -3000, 3000), BlockParameter("half_width_cdeg", 50, 2000)),
    BlockKind.FPA_FEEDBACK: (BlockParameter("feedback_start_pct", 0, 100), BlockParameter("feedback_end_pct", 0, 100)),
    BlockKind.FPA_PROBE: (None, None),
    BlockKind.BACKWARD_WALK: (None, None),
    BlockKind.HEEL_RAISES: (BlockParameter("sets", 1, 20), BlockParameter("hold_ms", 500, 10000)),
    BlockKind.WALK: (BlockParameter("progress_pct", 0, 100), BlockParameter("progress_after", 1, 10)),
}
# Offsets of a block's fields within its 16 bytes (a refused field's ERROR detail is
# 4 + 16 × block + this).
BLOCK_FIELD_OFFSETS: dict[str, int] = {
    "kind": 0, "flags": 1, "goal": 2, "spm": 4, "a": 6, "b": 8, "rest_s": 10, "limit_s": 12, "reserved": 14,
}  # fmt: skip


@dataclass(frozen=True)
class ProgramBlock:
    """One block of a PROGRAM, as on the wire: ``a`` and ``b`` mean what its kind says
    (:data:`BLOCK_PARAMETERS`; the named properties read them). The constructors
    (:meth:`fpa_baseline` …) take the named values."""

    kind: int  # BlockKind
    flags: int = 0  # PROGRAM_FLAG_METRONOME, PROGRAM_FLAG_GOAL_SECONDS (walking only)
    goal: int = 1  # in the kind's unit: steps, seconds or repetitions per set
    spm: int = 0  # metronome cadence with the metronome flag, else 0
    a: int = 0
    b: int = 0
    rest_s: int = 0  # heel raises: rest between sets
    limit_s: int = 0  # 0: none; else the block ends after this long even below its goal

    @classmethod
    def fpa_baseline(cls, steps: int, change_cdeg: int, half_width_cdeg: int, *, limit_s: int = 0) -> ProgramBlock:
        return cls(BlockKind.FPA_BASELINE, goal=steps, a=change_cdeg, b=half_width_cdeg, limit_s=limit_s)

    @classmethod
    def fpa_feedback(
        cls, steps: int, feedback_start_pct: int, feedback_end_pct: int, *, limit_s: int = 0
    ) -> ProgramBlock:
        return cls(BlockKind.FPA_FEEDBACK, goal=steps, a=feedback_start_pct, b=feedback_end_pct, limit_s=limit_s)

    @classmethod
    def fpa_probe(cls, steps: int, *, limit_s: int = 0) -> ProgramBlock:
        return cls(BlockKind.FPA_PROBE, goal=steps, limit_s=limit_s)

    @classmethod
    def backward_walk(cls, seconds: int, *, spm: int | None = None, limit_s: int = 0) -> ProgramBlock:
        flags, cadence = _metronome(spm)
        return cls(BlockKind.BACKWARD_WALK, flags=flags, goal=seconds, spm=cadence, limit_s=limit_s)

    @classmethod
    def heel_raises(
        cls, repetitions: int, sets: int, hold_ms: int, rest_s: int, *, limit_s: int = 0
    ) -> ProgramBlock:
        return cls(BlockKind.HEEL_RAISES, goal=repetitions, a=sets, b=hold_ms, rest_s=rest_s, limit_s=limit_s)

    @classmethod
    def walk(
        cls, goal: int, *, goal_in_seconds: bool = False, spm: int | None = None, progress_pct: int = 0,
        progress_after: int = 0, limit_s: int = 0,
    ) -> ProgramBlock:  # fmt: skip
        flags, cadence = _metronome(spm)
        flags |= PROGRAM_FLAG_GOAL_SECONDS if goal_in_seconds else 0
        return cls(
            BlockKind.WALK, flags=flags, goal=goal, spm=cadence, a=progress_pct, b=progress_after, limit_s=limit_s
        )

    @property
    def kind_name(self) -> str:
        return block_kind_name(self.kind)

    @property
    def metronome(self) -> bool:
        return bool(self.flags & PROGRAM_FLAG_METRONOME)

    @property
    def goal_in_seconds(self) -> bool:
        """Whether the goal counts seconds: backward walking always, walking with the flag."""
        return self.kind == BlockKind.BACKWARD_WALK or (
            self.kind == BlockKind.WALK and bool(self.flags & PROGRAM_FLAG_GOAL_SECONDS)
        )

    def parameter(self, name: str) -> int | None:
        """``a`` or ``b`` by the kind's name for it (e.g. "hold_ms"); None when this kind has no such value."""
        for parameter, value in zip(BLOCK_PARAMETERS.get(self.kind, (None, None)), (self.a, self.b), strict=True):
            if parameter is not None and parameter.name == name:
                return value
        return None

    @property
    def change_cdeg(self) -> int | None:
        return self.parameter("change_cdeg")

    @property
    def half_width_cdeg(self) -> int | None:
        return self.parameter("half_width_cdeg")

    @property
    def feedback_start_pct(self) -> int | None:
        return self.parameter("feedback_start_pct")

    @property
    def feedback_end_pct(self) -> int | None:
        return self.parameter("feedback_end_pct")

    @property
    def sets(self) -> int | None:
        return self.parameter("sets")

    @property
    def hold_ms(self) -> int | None:
        return self.parameter("hold_ms")

    @property
    def progress_pct(self) -> int | None:
        return self.parameter("progress_pct")

    @property
    def progress_after(self) -> int | None:
        return self.parameter("progress_after")

    def field_name(self, field: str) -> str:
        """A wire field's name in this kind's words: ``a`` of heel raises is "sets"."""
        if field in ("a", "b"):
            parameter = BLOCK_PARAMETERS.get(self.kind, (None, None))["ab".index(field)]
            if parameter is not None:
                return parameter.name
        return field

    def to_bytes(self) -> bytes:
        """The block's 16 bytes; values are not range-checked here (a host may send a bad
        block on purpose), only whether they fit their fields."""
        values = (self.kind, self.flags, self.goal, self.spm, self.a, self.b, self.rest_s, self.limit_s, 0)
        try:
            return _PROGRAM_BLOCK.pack(*values)
        except struct.error as exc:
            raise ProtocolError(f"program block {self}: a value does not fit its field: {exc}") from exc

    def first_bad_field(self) -> tuple[str, str] | None:
        """(wire field, why) of the first field the device would refuse, or None."""
        for field, check in _BLOCK_CHECKS:
            why = check(self)
            if why is not None:
                return field, why
        return None


def _metronome(spm: int | None) -> tuple[int, int]:
    return (0, 0) if spm is None else (PROGRAM_FLAG_METRONOME, spm)


def _outside(value: int, low: int, high: int) -> str | None:
    return None if low <= value <= high else f"{value} is outside {low}..{high}"


def _check_kind(block: ProgramBlock) -> str | None:
    return None if block.kind in BLOCK_PARAMETERS else f"{block.kind} is no block kind (1..{len(BLOCK_PARAMETERS)})"


def _check_flags(block: ProgramBlock) -> str | None:
    if block.flags & ~_PROGRAM_FLAGS:
        return f"{block.flags:#04x} sets bits other than 0 (metronome) and 1 (goal in seconds)"
    if block.flags & PROGRAM_FLAG_GOAL_SECONDS and block.kind != BlockKind.WALK:
        return "bit 1 (goal in seconds) is for walking blocks only"
    return None


def _check_goal(block: ProgramBlock) -> str | None:
    return _outside(block.goal, *PROGRAM_GOAL_RANGE)


def _check_spm(block: ProgramBlock) -> str | None:
    if block.metronome:
        return _outside(block.spm, *PROGRAM_SPM_RANGE)
    return None if block.spm == 0 else f"{block.spm} without the metronome flag; must be 0"


def _check_parameter(index: int) -> Callable[[ProgramBlock], str | None]:
    def check(block: ProgramBlock) -> str | None:
        value = (block.a, block.b)[index]
        parameter = BLOCK_PARAMETERS[block.kind][index]
        if parameter is None:
            return None if value == 0 else f"{value}; this kind has no such value, must be 0"
        if block.kind == BlockKind.WALK and index == 1 and block.a == 0:
            return None if value == 0 else f"{value} with progress_pct 0 (no progression); must be 0"
        return _outside(value, parameter.low, parameter.high)

    return check


def _check_rest(block: ProgramBlock) -> str | None:
    if block.kind == BlockKind.HEEL_RAISES:
        return _outside(block.rest_s, *PROGRAM_REST_RANGE_S)
    return None if block.rest_s == 0 else f"{block.rest_s}; only heel raises rest, must be 0"


def _check_limit(block: ProgramBlock) -> str | None:
    return None if block.limit_s == 0 else _outside(block.limit_s, *PROGRAM_LIMIT_RANGE_S)


# In offset order: the first that fails is the one the device names. The kind comes
# first, so the others are only checked against a known kind.
_BLOCK_CHECKS: tuple[tuple[str, Callable[[ProgramBlock], str | None]], ...] = (
    ("kind", _check_kind),
    ("flags", _check_flags),
    ("goal", _check_goal),
    ("spm", _check_spm),
    ("a", _check_parameter(0)),
    ("b", _check_parameter(1)),
    ("rest_s", _check_rest),
    ("limit_s", _check_limit),
)


@dataclass(frozen=True)
class ProgramFault:
    """The first field of a PROGRAM a device refuses: its payload offset (the ERROR
    detail), the block it is in (0-based; None: the head), its name in the words of the
    block's kind ("block 2 (heel_raises) hold_ms") and why."""

    offset: int
    block: int | None
    where: str
    why: str

    def describe(self) -> str:
        return f"{self.where} = {self.why}"


@dataclass(frozen=True)
class Program:
    """An exercise program (docs/programs.md): 1–8 blocks run in order each session.

    A report with no blocks means "no program stored" (the answer to GET_PROGRAM);
    a host never writes one. Decoding validates every field like the device
    (BAD_VALUE, detail = the payload offset of the first bad field)."""

    program_id: int  # the host's label for this prescription, 0..65534
    blocks: tuple[ProgramBlock, ...]
    program_version: int = PROGRAM_VERSION

    TYPE: ClassVar[PacketType] = PacketType.PROGRAM

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def stored(self) -> bool:
        """False for the report of an insole that holds no program."""
        return bool(self.blocks)

    @classmethod
    def none_stored(cls) -> Program:
        return cls(0, ())

    def payload(self) -> bytes:
        try:
            head = _PROGRAM_HEAD.pack(self.program_version, self.n_blocks, self.program_id)
        except struct.error as exc:
            raise ProtocolError(f"PROGRAM head does not fit its fields: {exc}") from exc
        if len(head) + PROGRAM_BLOCK_LEN * self.n_blocks > MAX_PACKET_LEN - HEADER_LEN:
            raise ProtocolError(f"PROGRAM of {self.n_blocks} blocks does not fit one packet")
        return head + b"".join(block.to_bytes() for block in self.blocks)

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    def first_fault(self, *, report: bool = False) -> ProgramFault | None:
        """The first field the device would refuse in a write (``report``: as a device's
        report, where no blocks means none stored), or None when the program is valid."""
        if self.program_version != PROGRAM_VERSION:
            why = f"{self.program_version}; this host speaks {PROGRAM_VERSION}"
            return ProgramFault(0, None, "program_version", why)
        if not (0 if report else 1) <= self.n_blocks <= PROGRAM_MAX_BLOCKS:
            return ProgramFault(1, None, "n_blocks", f"{self.n_blocks} is outside 1..{PROGRAM_MAX_BLOCKS}")
        if not 0 <= self.program_id <= PROGRAM_MAX_ID:
            return ProgramFault(2, None, "program_id", f"{self.program_id} is outside 0..{PROGRAM_MAX_ID}")
        for k, block in enumerate(self.blocks):
            bad = block.first_bad_field()
            if bad is not None:
                field, why = bad
                offset = PROGRAM_HEAD_LEN + PROGRAM_BLOCK_LEN * k + BLOCK_FIELD_OFFSETS[field]
                return ProgramFault(offset, k, self.field_at(offset), why)
        return None

    def field_at(self, offset: int) -> str:
        """Names the field at a payload offset (a device's BAD_VALUE detail) in the words
        of its block's kind: "program_id", "block 2 (heel_raises) hold_ms" (blocks 1-based)."""
        if offset < PROGRAM_HEAD_LEN:
            return _PROGRAM_HEAD_FIELDS[offset]
        k, within = divmod(offset - PROGRAM_HEAD_LEN, PROGRAM_BLOCK_LEN)
        field = max((name for name, at in BLOCK_FIELD_OFFSETS.items() if at <= within), key=BLOCK_FIELD_OFFSETS.__getitem__)
        if k >= self.n_blocks:
            return f"block {k + 1} {field}"
        block = self.blocks[k]
        return f"block {k + 1} ({block.kind_name}) {block.field_name(field)}"

    @classmethod
    def decode(cls, payload: bytes) -> Program:
        if len(payload) < _PROGRAM_HEAD.size:
            raise truncated(f"PROGRAM payload is {len(payload)} bytes, shorter than its {_PROGRAM_HEAD.size}-byte head")
        version, n_blocks, program_id = _PROGRAM_HEAD.unpack_from(payload)
        if version != PROGRAM_VERSION:
            raise bad_value(f"PROGRAM program_version = {version}; this side speaks {PROGRAM_VERSION}", 0)
        if n_blocks > PROGRAM_MAX_BLOCKS:
            raise bad_value(f"PROGRAM n_blocks = {n_blocks} is outside 1..{PROGRAM_MAX_BLOCKS}", 1)
        expected = PROGRAM_HEAD_LEN + PROGRAM_BLOCK_LEN * n_blocks
        if len(payload) != expected:
            make = truncated if len(payload) < expected else bad_length
            raise make(f"PROGRAM of {n_blocks} blocks needs {expected} payload bytes, got {len(payload)}")
        blocks = []
        reserved_offset = None
        for k in range(n_blocks):
            start = PROGRAM_HEAD_LEN + PROGRAM_BLOCK_LEN * k
            *values, reserved = _PROGRAM_BLOCK.unpack_from(payload, start)
            blocks.append(ProgramBlock(*values))
            if reserved and reserved_offset is None:
                reserved_offset = start + _BLOCK_RESERVED_OFFSET + (0 if payload[start + _BLOCK_RESERVED_OFFSET] else 1)
        program = cls(program_id, tuple(blocks), version)
        fault = program.first_fault(report=True)
        if reserved_offset is not None and (fault is None or reserved_offset < fault.offset):
            raise bad_value(f"PROGRAM reserved bytes at offset {reserved_offset} must be 0", reserved_offset)
        if fault is not None:
            raise bad_value(f"PROGRAM {fault.describe()}", fault.offset)
        return program
