"""Properties of the wire protocol on the host, for any input (hypothesis).

The frame decoder: every packet survives framing; garbage never raises, and what follows
the next 0x00 is found; however the stream is cut into feed() calls, the result is the
same. The packet decoder: every packet type round-trips for any field values in the
documented ranges (docs/protocol.md); any bytes either decode or raise the documented
refusal (PacketError or PacketVersionError), never IndexError, struct.error, KeyError.

Bounded in time: fixed example counts, derandomized, no example database.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insole.protocol import (
    BACKFILL_TYPES,
    BLOCK_FIELD_OFFSETS,
    BLOCK_PARAMETERS,
    COMMAND_ARG_LEN,
    CUE_TEST_MAX_MS,
    CUE_TEST_MIN_MS,
    HEADER_LEN,
    MAX_PACKET_LEN,
    MAX_PRESSURE_CHANNELS,
    OPEN_PAIRING_MAX_S,
    OPEN_PAIRING_MIN_S,
    PROGRAM_FLAG_GOAL_SECONDS,
    PROGRAM_FLAG_METRONOME,
    PROGRAM_GOAL_RANGE,
    PROGRAM_LIMIT_RANGE_S,
    PROGRAM_MAX_BLOCKS,
    PROGRAM_MAX_ID,
    PROGRAM_REST_RANGE_S,
    PROGRAM_SPM_RANGE,
    SETTINGS_RANGES,
    Ack,
    BackfillEnd,
    BlockKind,
    Body,
    BondedPeer,
    Bonds,
    Command,
    CommandCode,
    Cue,
    ErrorCode,
    ErrorReply,
    FrameDecoder,
    HeelRaise,
    Layout,
    PacketError,
    PacketType,
    PacketVersionError,
    Program,
    ProgramBlock,
    ProgramEvent,
    Samples,
    Settings,
    Status,
    Step,
    Strike,
    decode_packet,
    encode_packet,
    frame,
    max_encoded_frame_len,
    max_samples_per_packet,
)

BOUNDED = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# --------------------------------------------------------------------------- frame decoder

packets = st.binary(min_size=HEADER_LEN, max_size=MAX_PACKET_LEN)
garbage = st.binary(max_size=600)


@BOUNDED
@given(packet=packets, prefix_len=st.sampled_from([0, 5]), data=st.data())
def test_any_packet_survives_framing(packet: bytes, prefix_len: int, data: st.DataObject) -> None:
    prefix = data.draw(st.binary(min_size=prefix_len, max_size=prefix_len))
    decoder = FrameDecoder(prefix_len)
    assert decoder.feed(frame(packet, prefix)) == [prefix + packet]
    assert (decoder.frames, decoder.bad_frames, decoder.skipped_bytes, decoder.pending_bytes) == (1, 0, 0, 0)


@BOUNDED
@given(junk=st.lists(garbage, max_size=4), following=st.lists(packets, min_size=1, max_size=3))
def test_garbage_never_raises_and_the_frames_after_it_are_found(junk: list[bytes], following: list[bytes]) -> None:
    decoder = FrameDecoder()
    found: list[bytes] = []
    for piece in junk:
        found += decoder.feed(piece)
        assert decoder.pending_bytes <= max_encoded_frame_len()
    found += decoder.feed(b"\x00" + b"".join(frame(p) for p in following))
    assert found[len(found) - len(following) :] == following
    assert decoder.pending_bytes == 0
    assert decoder.frames == len(found)
    assert decoder.bad_frames == sum(decoder.bad_reasons.values())


def _stream_pieces() -> st.SearchStrategy[list[bytes]]:
    """Frames, junk, torn frames and runs of 0x00, in any order."""
    framed = packets.map(frame)
    torn = st.tuples(packets, st.floats(0.05, 0.95)).map(lambda pf: frame(pf[0])[: max(1, int(len(frame(pf[0])) * pf[1]))])
    header_like = st.integers(1, 40).map(lambda n: (b"\x03\x01\x02" * n)[: n + 2])
    zeros = st.integers(1, 80).map(bytes)
    return st.lists(st.one_of(framed, garbage, torn, header_like, zeros), max_size=12)


def _stream_pieces_with_long_runs() -> st.SearchStrategy[list[bytes]]:
    """As _stream_pieces, with long runs whose every byte could start a tail."""
    long_runs = st.tuples(st.sampled_from([b"\x01", b"\x02", b"\x03\x01\x02", b"\x01\x01\x05"]), st.integers(1, 1200))
    return st.lists(
        st.one_of(packets.map(frame), garbage, long_runs.map(lambda unit_n: unit_n[0] * unit_n[1] + b"\x00")), max_size=8
    )


def _decode_in(pieces: list[bytes], prefix_len: int) -> tuple[Any, ...]:
    decoder = FrameDecoder(prefix_len)
    found = [body for piece in pieces for body in decoder.feed(piece)]
    return found, decoder.frames, decoder.bad_frames, decoder.skipped_bytes, dict(decoder.bad_reasons), decoder.pending_bytes


@FEW
@given(pieces=_stream_pieces(), cuts=st.lists(st.integers(0, 1 << 16), max_size=8), prefix_len=st.sampled_from([0, 5]))
def test_any_chunking_of_a_stream_gives_the_same_frames_and_counts(
    pieces: list[bytes], cuts: list[int], prefix_len: int
) -> None:
    stream = b"".join(pieces)
    at = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunked = [stream[a:b] for a, b in itertools.pairwise(at)]
    whole = _decode_in([stream], prefix_len)
    assert _decode_in(chunked, prefix_len) == whole
    # Byte by byte: a feed() never sees more than one 0x00, so this takes the per-run path.
    assert _decode_in([stream[k : k + 1] for k in range(len(stream))], prefix_len) == whole


@FEW
@given(pieces=_stream_pieces_with_long_runs())
def test_decoding_work_is_linear_in_the_bytes_fed(pieces: list[bytes]) -> None:
    # Counted, not timed: every byte handed to COBS decoding (whole runs and the tails
    # tried for a glued frame). The old glued-frame search decoded every candidate tail.
    stream = b"".join(pieces)
    decoded = 0

    def counting_decode(encoded: bytes) -> bytes:
        nonlocal decoded
        decoded += len(encoded)
        return cobs.decode(encoded)

    counting = SimpleNamespace(decode=counting_decode, encode=cobs.encode, DecodeError=cobs.DecodeError)
    with patch("insole.protocol.framing.cobs", counting):
        FrameDecoder().feed(stream)
    assert decoded <= 3 * len(stream)


# --------------------------------------------------------------------------- packet decoder

u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
i16 = st.integers(-32768, 32767)


def _or_na(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), values)


# Fields by their docs/protocol.md ranges; "n/a" fields may be None, never their sentinel.
statuses = st.builds(
    Status, u8, u8, u8, _or_na(st.integers(0, 1)), st.integers(0, 2), st.integers(0, MAX_PRESSURE_CHANNELS),
    st.integers(0, 1), _or_na(st.integers(0, 100)), st.integers(5000, 25000), _or_na(st.integers(0, 65534)), u32, u32,
    _or_na(st.integers(0, 0xFFFFFFFE)), _or_na(st.integers(0, 65534)), _or_na(st.integers(0, 65534)),
)  # fmt: skip
# A partial stance (docs/protocol.md) has one of its two indices n/a, never both.
stance_indices = st.tuples(_or_na(st.integers(0, 0xFFFFFFFE)), _or_na(st.integers(0, 0xFFFFFFFE))).filter(
    lambda indices: indices != (None, None)
)
steps = stance_indices.flatmap(
    lambda indices: st.builds(
        Step, st.just(indices[0]), st.just(indices[1]), _or_na(st.integers(0, 65534)), _or_na(st.integers(0, 65534)),
        _or_na(st.integers(-9000, 9000)), st.integers(0, 2), st.integers(0, 3), _or_na(st.integers(0, 65534)),
        _or_na(st.integers(0, 200)), _or_na(st.integers(0, 65534)), _or_na(st.integers(0, 65534)), u32,
        _or_na(st.sampled_from(list(Strike))),
    )
)  # fmt: skip
heel_raises = st.builds(HeelRaise, u32, u32, _or_na(st.integers(0, 65534)), u16, u16)
cues = st.builds(
    Cue, _or_na(st.integers(0, 0xFFFFFFFE)), _or_na(st.integers(0, 0xFFFFFFFE)), st.integers(0, 0x3FFFFFFF),
    _or_na(st.integers(0, 0x3FFFFFFF)), _or_na(st.integers(0, 65534)), _or_na(st.integers(-9000, 9000)),
    _or_na(st.integers(-3000, 3000)), _or_na(st.integers(50, 2000)), st.integers(1, 4), st.integers(0, 3),
    st.integers(1, 4), st.integers(0, 100), st.integers(0, 2000), _or_na(st.integers(0, 65534)),
)  # fmt: skip
backfill_ends = st.builds(BackfillEnd, st.sampled_from(BACKFILL_TYPES), u16, u16, st.integers(1, 0xFFFF), u16, u16, u16, u16)
acks = st.builds(Ack, u8, u8, u16)
errors = st.builds(ErrorReply, u8, u8, u16, u8, u8)


@st.composite
def settings_bodies(draw: st.DrawFn) -> Settings:
    values = {name: draw(st.integers(low, high)) for name, (_offset, low, high) in SETTINGS_RANGES.items()}
    del values["side"]  # 0, 1 or n/a (None)
    # cue_max_ms is at least cue_duration_ms
    values["cue_duration_ms"] = draw(st.integers(SETTINGS_RANGES["cue_duration_ms"][1], min(values["cue_max_ms"], 1000)))
    return Settings(side=draw(_or_na(st.integers(0, 1))), **values)


@st.composite
def commands(draw: st.DrawFn) -> Command:
    code = draw(st.sampled_from(list(CommandCode)))
    if code == CommandCode.REPLAY_BEGIN:
        n_pressure = draw(st.integers(0, MAX_PRESSURE_CHANNELS))
        imu = draw(st.integers(0 if n_pressure else 1, 1))
        return Command.replay_begin(draw(st.integers(5000, 25000)), n_pressure, imu, draw(_or_na(st.integers(0, 1))))
    if code == CommandCode.CUE_TEST:
        return Command.cue_test(draw(st.integers(CUE_TEST_MIN_MS, CUE_TEST_MAX_MS)), draw(st.integers(0, 100)))
    if code == CommandCode.GET_EVENTS:
        return Command.get_events(draw(st.sampled_from(BACKFILL_TYPES)), draw(u16), draw(st.integers(1, 0xFFFF)))
    if code == CommandCode.OPEN_PAIRING:
        return Command.open_pairing(draw(st.integers(OPEN_PAIRING_MIN_S, OPEN_PAIRING_MAX_S)))
    return Command(code)


@st.composite
def program_blocks(draw: st.DrawFn) -> ProgramBlock:
    """A block the device accepts: each kind's a and b in their ranges (docs/programs.md)."""
    kind = draw(st.sampled_from(list(BlockKind)))
    seconds_goal = kind == BlockKind.WALK and draw(st.booleans())
    metronome = draw(st.booleans())
    values = []
    for parameter in BLOCK_PARAMETERS[kind]:
        values.append(0 if parameter is None else draw(st.integers(parameter.low, parameter.high)))
    if kind == BlockKind.WALK and values[0] == 0:
        values[1] = 0  # no progression: progress_after 0
    return ProgramBlock(
        kind,
        flags=(PROGRAM_FLAG_METRONOME if metronome else 0) | (PROGRAM_FLAG_GOAL_SECONDS if seconds_goal else 0),
        goal=draw(st.integers(*PROGRAM_GOAL_RANGE)),
        spm=draw(st.integers(*PROGRAM_SPM_RANGE)) if metronome else 0,
        a=values[0],
        b=values[1],
        rest_s=draw(st.integers(*PROGRAM_REST_RANGE_S)) if kind == BlockKind.HEEL_RAISES else 0,
        limit_s=draw(st.one_of(st.just(0), st.integers(*PROGRAM_LIMIT_RANGE_S))),
    )


programs = st.builds(
    Program, st.integers(0, PROGRAM_MAX_ID), st.lists(program_blocks(), min_size=1, max_size=PROGRAM_MAX_BLOCKS).map(tuple)
)
program_events = st.builds(
    ProgramEvent, st.integers(1, 6), _or_na(st.integers(0, 7)), _or_na(st.integers(1, 6)), st.integers(0, 9), u32, u16,
    u16, _or_na(st.integers(0, 65534)), _or_na(st.integers(0, 65534)), _or_na(st.integers(-32767, 32767)),
    _or_na(st.integers(-32767, 32767)), _or_na(st.integers(-3000, 3000)), _or_na(st.integers(0, 2000)),
)  # fmt: skip


layouts = st.integers(0, MAX_PRESSURE_CHANNELS).flatmap(
    lambda n: st.builds(Layout, st.tuples(*[i16] * n), st.tuples(*[i16] * n))
)
bonded_peers = st.builds(
    BondedPeer, st.integers(0, 1), st.binary(min_size=6, max_size=6).map(lambda a: ":".join(f"{b:02X}" for b in a))
)
bonds = st.lists(bonded_peers, max_size=12).map(lambda peers: Bonds(tuple(peers)))


@st.composite
def samples(draw: st.DrawFn) -> Samples:
    n_pressure = draw(st.integers(0, MAX_PRESSURE_CHANNELS))
    imu = draw(st.booleans()) or n_pressure == 0
    count = draw(st.integers(1, max_samples_per_packet(n_pressure, imu)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pressure = rng.integers(0, 0x10000, (count, n_pressure)).astype(np.uint16)
    imu_raw = rng.integers(-32768, 32768, (count, 6)).astype(np.int16) if imu else None
    return Samples(draw(u32), pressure, imu_raw)


bodies: st.SearchStrategy[Body] = st.one_of(
    statuses, steps, heel_raises, cues, backfill_ends, acks, errors, settings_bodies(), commands(), layouts, bonds,
    samples(), programs, program_events,
)  # fmt: skip


def test_the_strategies_cover_every_packet_type() -> None:
    covered = [Status, Step, HeelRaise, Cue, BackfillEnd, Ack, ErrorReply, Settings, Command, Layout, Bonds, Samples,
               Program, ProgramEvent]  # fmt: skip
    assert {int(cls.TYPE) for cls in covered} == {int(t) for t in PacketType}  # type: ignore[attr-defined]


@BOUNDED
@given(body=bodies, seq=u16, time_ms=u32)
def test_every_packet_round_trips(body: Body, seq: int, time_ms: int) -> None:
    decoded = decode_packet(body.encode(seq, time_ms))
    assert (decoded.header.version, decoded.type, decoded.header.seq, decoded.header.time_ms) == (
        1, int(body.TYPE), seq, time_ms,
    )  # fmt: skip
    assert decoded.body == body


# Reserved bytes of the packets a device accepts (payload offsets): they must be 0.
_RESERVED_OFFSETS: dict[int, tuple[int, ...]] = {
    PacketType.SETTINGS: (33,),
    PacketType.LAYOUT: (1,),
    PacketType.SAMPLES: (7,),
}
_COMMAND_RESERVED_OFFSETS: dict[int, tuple[int, ...]] = {CommandCode.REPLAY_BEGIN: (1, 7), CommandCode.CUE_TEST: (1, 5), CommandCode.GET_EVENTS: (1, 3)}


@BOUNDED
@given(program=programs, data=st.data())
def test_a_program_with_one_bad_field_is_refused_at_that_offset(program: Program, data: st.DataObject) -> None:
    # Whatever the other blocks hold, one value just beyond a field's range is refused
    # with that field's payload offset, and the host names the same field.
    k = data.draw(st.integers(0, program.n_blocks - 1))
    block = program.blocks[k]
    field, value = data.draw(st.sampled_from(_beyond_ranges(block)))
    bad = dataclasses.replace(program, blocks=(*program.blocks[:k], dataclasses.replace(block, **{field: value}),
                                               *program.blocks[k + 1 :]))  # fmt: skip
    offset = 4 + 16 * k + BLOCK_FIELD_OFFSETS[field]
    fault = bad.first_fault()
    assert fault is not None and fault.offset == offset and fault.block == k
    with pytest.raises(PacketError) as info:
        decode_packet(bad.encode())
    assert (info.value.code, info.value.detail) == (ErrorCode.BAD_VALUE, offset)


def _beyond_ranges(block: ProgramBlock) -> list[tuple[str, int]]:
    """(field, value) pairs just outside what this block's kind allows."""
    out = [("kind", 0), ("kind", 7), ("goal", 0), ("goal", 65535), ("limit_s", 9), ("limit_s", 65535)]
    out.append(("spm", 39 if block.metronome else 1))
    for field, parameter in zip(("a", "b"), BLOCK_PARAMETERS[block.kind], strict=True):
        if parameter is None:
            out.append((field, 1))
        elif not (field == "b" and block.kind == BlockKind.WALK and block.a == 0):
            out += [(field, parameter.low - 1), (field, parameter.high + 1)]
    out.append(("rest_s", 601 if block.kind == BlockKind.HEEL_RAISES else 1))
    return out


@BOUNDED
@given(body=st.one_of(settings_bodies(), commands(), layouts, samples(), programs), value=st.integers(1, 0xFF), data=st.data())
def test_a_reserved_byte_that_is_not_0_is_refused_at_its_offset(body: Body, value: int, data: st.DataObject) -> None:
    # docs/protocol.md: in the packet types the device accepts, reserved bytes must be 0
    # (BAD_VALUE, detail = the offset), as the firmware checks them.
    payload = bytearray(body.payload())
    if isinstance(body, Command):
        offsets = _COMMAND_RESERVED_OFFSETS.get(CommandCode(body.command), (1,))
    elif isinstance(body, Program):
        offsets = tuple(4 + 16 * k + 14 + byte for k in range(body.n_blocks) for byte in (0, 1))
    else:
        offsets = _RESERVED_OFFSETS[int(body.TYPE)]
    offset = data.draw(st.sampled_from(offsets))
    payload[offset] = value
    try:
        decode_packet(encode_packet(body.TYPE, 0, 0, bytes(payload)))
    except PacketError as exc:
        assert (exc.code, exc.detail) == (ErrorCode.BAD_VALUE, offset)
    else:
        raise AssertionError(f"{type(body).__name__} with reserved byte {offset} = {value} was accepted")


def _assert_decodes_or_is_refused(data: bytes) -> None:
    try:
        decode_packet(data)
    except (PacketError, PacketVersionError) as exc:
        assert exc.code in set(ErrorCode)
        assert exc.reason in {"truncated", "bad_length", "unknown_type", "unknown_command", "bad_value", "unsupported_version"}


@BOUNDED
@given(data=st.binary(max_size=MAX_PACKET_LEN + 8))
def test_any_bytes_decode_or_are_refused_as_documented(data: bytes) -> None:
    _assert_decodes_or_is_refused(data)


@BOUNDED
@given(
    packet_type=st.sampled_from([int(t) for t in PacketType]),
    head=st.binary(min_size=0, max_size=16),
    rest=st.binary(max_size=300),
    code=st.sampled_from(list(COMMAND_ARG_LEN)),
)
def test_any_payload_of_a_known_type_decodes_or_is_refused_as_documented(
    packet_type: int, head: bytes, rest: bytes, code: int
) -> None:
    # Past the header check, with payload heads a decoder must read fields from: the
    # SAMPLES counts and a COMMAND code drawn from those that exist.
    payload = (bytes([code]) + head if packet_type == PacketType.COMMAND else head) + rest
    _assert_decodes_or_is_refused(encode_packet(packet_type, 0, 0, payload[: MAX_PACKET_LEN - HEADER_LEN]))
    if packet_type == PacketType.SAMPLES and len(head) >= 8:
        first, count, n_pressure, imu = struct.unpack_from("<IBBB", head)
        valid_head = struct.pack("<IBBBB", first, max(count, 1), n_pressure % 17, imu % 2 or not n_pressure % 17, 0)
        _assert_decodes_or_is_refused(encode_packet(packet_type, 0, 0, (valid_head + rest)[: MAX_PACKET_LEN - HEADER_LEN]))
