"""Wire protocol v1 on the host: golden vectors, hand-checked bytes, framing robustness, quantisation."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import struct
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cobs import cobs

from conftest import PROTOCOL_VECTORS, REPO_ROOT
from insole.emulation.board import SimulatedBoard
from insole.errors import ProtocolError, UnsupportedVersionError
from insole.link import SerialLink
from insole.link.base import BadFrameError
from insole.link.clocksync import unwrap_counter
from insole.protocol import (
    MAX_PACKET_LEN,
    NA_I16,
    NA_U8,
    NA_U16,
    Ack,
    BackfillEnd,
    BlockEnd,
    BlockKind,
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
    PacketStream,
    PacketType,
    PacketVersionError,
    Program,
    ProgramBlock,
    ProgramEvent,
    ProgramEventKind,
    Samples,
    Settings,
    Status,
    Step,
    Strike,
    body_from_fields,
    crc16,
    decode_packet,
    decode_sample_batches,
    encode_packet,
    encode_samples,
    frame,
    join_stance_halves,
    max_encoded_frame_len,
    max_samples_per_packet,
    whole_stances,
)
from insole.quantise import (
    acc_ms2_to_raw,
    choose_pressure_scale,
    counts_to_pressure,
    gyro_dps_to_raw,
    imu_to_raw,
    pressure_to_counts,
    raw_to_acc_ms2,
    raw_to_gyro_dps,
    raw_to_imu,
)

# --------------------------------------------------------------------------- golden vectors


@cache
def vectors() -> dict[str, Any]:
    return json.loads(PROTOCOL_VECTORS.read_text(encoding="utf-8"))


def cases(kind: str, ok: bool | None = None) -> list[dict[str, Any]]:
    selected = [c for c in vectors()["cases"] if c["kind"] == kind]
    if ok is not None:
        selected = [c for c in selected if (c["expect"] == "ok") == ok]
    return selected


def ids(selected: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in selected]


def test_vectors_file_is_generated_and_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_protocol_vectors", REPO_ROOT / "tools" / "make_protocol_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert PROTOCOL_VECTORS.read_text(encoding="utf-8") == module.render(module.build_vectors()), (
        "docs/protocol-vectors.json is stale: run .venv/bin/python tools/make_protocol_vectors.py"
    )


def test_vectors_schema_and_coverage() -> None:
    data = vectors()
    assert "schema" in data and data["protocol_version"] == 1
    names = [c["name"] for c in data["cases"]]
    assert len(names) == len(set(names))
    for case in data["cases"]:
        assert case["hex"] == case["hex"].lower() and " " not in case["hex"]
        assert case["kind"] in data["schema"]["kind"]
        assert case["expect"] in data["schema"]["expect"]
    ok_types = {c["fields"]["type"] for c in cases("packet", ok=True)}
    assert ok_types == {int(t) for t in PacketType}
    # A refused PROGRAM vector for every field of a block, by its offset within the block.
    program_offsets = {(c["detail"] - 4) % 16 for c in cases("packet", ok=False) if c["name"].startswith("program_bad_")}
    assert program_offsets >= {0, 1, 2, 4, 6, 8, 10, 12, 14}
    refused = {c["expect"] for c in cases("packet", ok=False)}
    assert refused == {"truncated", "bad_length", "unsupported_version", "unknown_type", "unknown_command", "bad_value"}
    assert {c["expect"] for c in cases("frame", ok=False)} >= {"bad_crc", "bad_cobs", "too_short", "too_long"}
    for name in ("samples_pressure_only", "samples_imu_only", "samples_pressure_and_imu", "samples_16_channels"):
        assert name in names
    assert len(cases("stream")) >= 3
    # Every packet type has min/max/sentinel coverage where it has such fields.
    prefixes = ("status", "step", "heel_raise", "settings", "ack", "error", "cue", "backfill_end", "bonds", "program",
                "program_event")  # fmt: skip
    for prefix in prefixes:
        assert f"{prefix}_min" in names and f"{prefix}_max" in names


@pytest.mark.parametrize("case", cases("packet", ok=True), ids=ids(cases("packet", ok=True)))
def test_packet_vector_decodes_to_fields_and_reencodes(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    decoded = decode_packet(data)
    assert decoded.to_fields() == case["fields"]
    fields = case["fields"]
    body = body_from_fields(fields["type"], fields)
    assert body.encode(fields["seq"], fields["time_ms"]).hex() == case["hex"]


@pytest.mark.parametrize("case", cases("packet", ok=False), ids=ids(cases("packet", ok=False)))
def test_packet_vector_is_refused_with_its_error(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_packet(bytes.fromhex(case["hex"]))
    exc = info.value
    assert isinstance(exc, (PacketError, PacketVersionError))
    assert exc.reason == case["expect"]
    assert int(exc.code) == case["error"]
    assert exc.detail == case["detail"]
    if case["expect"] == "unsupported_version":
        assert isinstance(exc, UnsupportedVersionError)
        assert str(exc) == case["message"]


@pytest.mark.parametrize("case", cases("frame"), ids=ids(cases("frame")))
@pytest.mark.parametrize("recover_glued", [False, True])
def test_frame_vector(case: dict[str, Any], recover_glued: bool) -> None:
    data = bytes.fromhex(case["hex"])
    decoder = FrameDecoder(recover_glued=recover_glued)
    bodies = decoder.feed(data)
    if "packet" in case:
        assert bodies == [bytes.fromhex(case["packet"])]
        assert frame(bytes.fromhex(case["packet"])) == data
        assert decoder.bad_frames == 0
    else:
        assert bodies == []
        assert decoder.bad_frames == 1
        assert dict(decoder.bad_reasons) == {case["expect"]: 1}
        assert case["error"] == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("case", cases("record"), ids=ids(cases("record")))
def test_record_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    (body,) = FrameDecoder(prefix_len=5).feed(data)
    stream_id, host_ms = struct.unpack_from("<BI", body)
    assert (stream_id, host_ms) == (case["stream_id"], case["host_ms"])
    assert body[5:].hex() == case["packet"]
    assert decode_packet(body[5:]).to_fields() == case["fields"]


@pytest.mark.parametrize("case", cases("stream"), ids=ids(cases("stream")))
@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_stream_vector(case: dict[str, Any], chunk: int) -> None:
    data = bytes.fromhex(case["hex"])
    decoder = FrameDecoder()
    if chunk == 0:
        bodies = decoder.feed(data)
    else:
        bodies = [b for i in range(0, len(data), chunk) for b in decoder.feed(data[i : i + chunk])]
    assert [b.hex() for b in bodies] == case["packets"]
    assert decoder.bad_frames == case["bad_frames"]
    assert decoder.pending_bytes == case["pending"]


@pytest.mark.parametrize("case", cases("crc"), ids=ids(cases("crc")))
def test_crc_vector(case: dict[str, Any]) -> None:
    assert crc16(bytes.fromhex(case["hex"])) == case["crc"]


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


# --------------------------------------------------------------------------- hand-checked bytes (docs/protocol.md tables)


def test_step_bytes_by_hand() -> None:
    step = Step(
        ic_index=0x01020304, to_index=1587, stance_ms=640, swing_ms=None, fpa_cdeg=-850, direction=2, flags=3,
        peak_pressure=41000, medial_share=None, stride_mm=1380, speed_mms=1210, step_number=12, strike=Strike.FOREFOOT,
    )  # fmt: skip
    expected = (
        "01" "03" "0b00" "80" "3e" "00" "00"  # version 1, STEP, seq 11, time_ms 16000 = 0x3e80
        "04030201"  # ic_index
        "33060000"  # to_index 1587 = 0x633
        "8002"  # stance_ms 640
        "ffff"  # swing_ms n/a
        "aefc"  # fpa_cdeg -850 = 0xfcae
        "02" "03"  # direction backward, flags
        "28a0"  # peak_pressure 41000 = 0xa028
        "ff" "03"  # medial_share n/a, strike forefoot
        "6405"  # stride_mm 1380
        "ba04"  # speed_mms 1210
        "0c000000"  # step_number
    )  # fmt: skip
    packet = step.encode(seq=11, time_ms=16000)
    assert packet.hex() == expected
    assert len(packet) == 8 + 28
    assert decode_packet(bytes.fromhex(expected)).body == step


def test_heel_raise_ack_cue_and_backfill_end_bytes_by_hand() -> None:
    # Written from the offset tables in docs/protocol.md, not from the codec: the host
    # side stands on its own, without the firmware's vectors.
    cases = [
        (
            HeelRaise(start_index=300, end_index=812, hold_ms=None, rep=3, set=2),
            "0104" "0700" "e8030000"  # HEEL_RAISE, seq 7, time_ms 1000
            "2c010000" "2c030000"  # start_index 300, end_index 812
            "ffff" "0300" "0200" "0000",  # hold_ms n/a, rep 3, set 2, reserved
            7, 1000,
        ),
        (
            Ack(ref_type=PacketType.SETTINGS, ref_command=0, ref_seq=0x1234),
            "0107" "0100" "02000000" "05" "00" "3412",  # ACK, seq 1, 2 ms: SETTINGS #0x1234
            1, 2,
        ),
        (
            Cue(step_number=12, decision_index=4000, decision_ms=65536, motor_start_ms=65537, latency_us=480,
                fpa_cdeg=-850, target_cdeg=-500, half_width_cdeg=200, reason=2, outcome=0, pattern=2, duty_pct=70,
                duration_ms=300, out_of_band_steps=None),
            "010a" "0300" "10270000"  # CUE, seq 3, time_ms 10000
            "0c000000" "a00f0000"  # step_number 12, decision_index 4000
            "00000100" "01000100"  # decision_ms 65536, motor_start_ms 65537
            "e001" "aefc" "0cfe" "c800"  # latency 480 us, fpa -850, target -500, half-width 200
            "02" "00" "02" "46" "2c01" "ffff",  # toe-out needed, cued, pattern 2, 70 %, 300 ms, n/a
            3, 10000,
        ),
        (
            BackfillEnd(event_type=PacketType.STEP, ref_seq=9, from_seq=65530, count=16, resent=10, lost_from=65530,
                        lost_count=6, next_seq=10),
            "010b" "0000" "00000000"  # BACKFILL_END, seq 0, time 0
            "03" "00" "0900" "faff" "1000" "0a00" "faff" "0600" "0a00",  # STEP; wraps past 65535
            0, 0,
        ),
    ]  # fmt: skip
    for body, expected, seq, time_ms in cases:
        assert body.encode(seq=seq, time_ms=time_ms).hex() == expected, type(body).__name__
        assert decode_packet(bytes.fromhex(expected)).body == body


def test_samples_bytes_by_hand() -> None:
    samples = Samples(
        first_index=258,
        pressure_counts=np.array([[1, 0xFFFF], [0x1234, 0]], dtype=np.uint16),
        imu_raw=np.array([[-1, 2, 1000, NA_I16, -3276, 0], [0, 0, 0, 1, 1, 1]], dtype=np.int16),
    )
    expected = (
        "01" "02" "0500" "0a000000"  # header: SAMPLES, seq 5, time_ms 10
        "02010000" "02" "02" "01" "00"  # first_index 258, count 2, n_pressure 2, imu 1, reserved
        "0100" "ffff" "ffff" "0200" "e803" "0080" "34f3" "0000"  # sample 0: p0 p1 ax ay az gx gy gz
        "3412" "0000" "0000" "0000" "0000" "0100" "0100" "0100"  # sample 1
    )  # fmt: skip
    assert samples.encode(seq=5, time_ms=10).hex() == expected
    decoded = decode_packet(bytes.fromhex(expected))
    assert decoded.body == samples
    fields = decoded.to_fields()
    assert fields["p"] == [[1, None], [0x1234, 0]]
    assert fields["gx"] == [None, 1] and fields["ax"] == [-1, 0]


def test_status_settings_layout_command_bytes_by_hand() -> None:
    status = Status(1, 2, 3, None, 1, 8, 1, 55, 20480, 3700, 5, 70000, None, 7, 0x0102)
    assert status.payload().hex() == (
        "010203ff01080137"  # fw 1.2.3, side n/a, live, 8 channels, IMU, battery 55 %
        "0050" "740e"  # 204.8 Hz, 3700 mV
        "05000000" "70110100" "ffffffff"  # 5 dropped, 70000 samples, free heap n/a
        "0700" "0201"  # BLE: 7 IRQ faults, 258 connections refused
    )  # fmt: skip
    saturated = Status.decode(bytes.fromhex("00" * 24 + "ffff" "feff"))
    assert (saturated.ble_irq_faults, saturated.ble_refused) == (None, 0xFFFE)  # no radio; 65534 or more
    settings = Settings(
        side=1, cue_mode=1, cue_duty_pct=60, fpa_target_cdeg=-500, fpa_half_width_cdeg=300, toe_in_pattern=3,
        toe_out_pattern=2, cue_duration_ms=200, cue_ms_per_deg=40, cue_max_ms=600, schedule=2, fade_every=3,
        fade_probability_pct=70, metronome_pattern=4, block_on_steps=40, block_off_steps=20, seed=0xBEEF,
        metronome_spm=110, metronome_pulse_ms=120, rate_chz=10000, stream_samples=1,
    )  # fmt: skip
    assert settings.payload().hex() == (
        "02" "01" "01" "3c"  # settings_version 2, side right, band mode, duty 60 %
        "0cfe" "2c01"  # target -500, half-width 300
        "03" "02"  # toe-in triple, toe-out short-short
        "c800" "2800" "5802"  # duration 200 ms, 40 ms/deg, max 600 ms
        "02" "03" "46" "04"  # schedule probability, every 3, 70 %, metronome pattern 4
        "2800" "1400" "efbe"  # blocks 40 on / 20 off, seed 0xBEEF
        "6e00" "7800" "1027"  # 110 steps/min, pulse 120 ms, rate 100 Hz
        "01" "00" "0000"  # stream_samples, reserved
    )  # fmt: skip
    cue = Cue(7, 0x0102, 1000, 1001, 250, 1850, 500, 300, 1, 0, 1, 60, 453, 5)
    assert cue.payload().hex() == (
        "07000000" "02010000" "e8030000" "e9030000"  # step, decision index, decision / motor start ms
        "fa00" "3a07" "f401" "2c01"  # latency 250 us, fpa 18.5°, target 5°, half-width 3°
        "01" "00" "01" "3c" "c501" "0500"  # toe-in, cued, long, 60 %, 453 ms, 5 out of band
    )  # fmt: skip
    gone = BackfillEnd(10, 7, 65530, 10, 4, 65530, 6, 2)
    assert gone.payload().hex() == "0a00" "0700" "faff" "0a00" "0400" "faff" "0600" "0200"
    assert gone.lost_seqs() == [65530, 65531, 65532, 65533, 65534, 65535]
    assert Command.get_events(PacketType.CUE, -6, 10).payload().hex() == "0b00" "0a" "00" "faff" "0a00"
    layout = Layout((15, -1), (-12, 300))
    assert layout.payload().hex() == "0200" "0f00" "f4ff" "ffff" "2c01"
    assert Command.replay_begin(20480, 8, 1, side=1).payload().hex() == "0600" "0050" "08" "01" "01" "00"
    assert Command.replay_begin(10000, 0, 1).payload().hex() == "0600" "1027" "00" "01" "ff" "00"  # side n/a
    assert Command.cue_test(200, 75).payload().hex() == "0900" "c800" "4b" "00"
    assert HeelRaise(1, 2, None, 3, 4).payload().hex() == "01000000" "02000000" "ffff" "0300" "0400" "0000"
    assert Ack(6, 4, 513).encode(1, 2).hex() == "0107" "0100" "02000000" "060401" "02"


def test_maintenance_packets_bytes_by_hand() -> None:
    # BONDS: count, reserved, then per bond the address type and the 6 address bytes
    # least significant first (as NimBLE keys a bond); the host prints them MSB first.
    bonds = Bonds((BondedPeer(1, "C0:15:01:00:00:01"), BondedPeer(0, "00:1a:7d:da:71:13")))
    expected = (
        "01" "0c" "0300" "581b0000"  # version 1, BONDS, seq 3, time_ms 7000 = 0x1b58
        "02" "00"  # 2 bonds, reserved
        "01" "010000" "0115c0"  # random C0:15:01:00:00:01
        "00" "1371da" "7d1a00"  # public 00:1A:7D:DA:71:13
    )  # fmt: skip
    assert bonds.encode(seq=3, time_ms=7000).hex() == expected
    decoded = decode_packet(bytes.fromhex(expected)).body
    assert decoded == bonds
    assert isinstance(decoded, Bonds) and [p.address for p in decoded.peers] == ["C0:15:01:00:00:01", "00:1A:7D:DA:71:13"]
    assert [p.type_name for p in decoded.peers] == ["random", "public"]
    assert decode_packet(bytes.fromhex("010c" "0000" "00000000" "0000")).body == Bonds(())
    # The new commands: codes 0x0C..0x0F; OPEN_PAIRING carries seconds u16.
    commands = {
        "0c00": Command(CommandCode.LIST_BONDS),
        "0d00": Command(CommandCode.CLEAR_BONDS),
        "0e00": Command(CommandCode.FACTORY_RESET),
        "0f00" "3c00": Command.open_pairing(60),
        "0f00" "5802": Command.open_pairing(600),
    }  # fmt: skip
    for payload, command in commands.items():
        assert command.payload().hex() == payload
        assert decode_packet(encode_packet(PacketType.COMMAND, 0, 0, bytes.fromhex(payload))).body == command
    # A maintenance command over BLE: ERROR NOT_PERMITTED (10) naming it.
    refused = "0108" "0200" "78050000" "06" "0a" "0800" "0a" "00"  # ERROR seq 2, 1400 ms; COMMAND EXIT_TO_REPL #8
    assert ErrorReply(PacketType.COMMAND, CommandCode.EXIT_TO_REPL, 8, ErrorCode.NOT_PERMITTED, 0).encode(2, 1400).hex() == refused
    assert decode_packet(bytes.fromhex(refused)).body == ErrorReply(6, 0x0A, 8, 10, 0)


def test_bond_addresses_are_checked() -> None:
    with pytest.raises(ProtocolError, match="six hex bytes"):
        Bonds((BondedPeer(0, "C0:15:01:00:00"),)).payload()
    with pytest.raises(ProtocolError, match="at most 144"):
        Bonds(tuple(BondedPeer(0, "C0:15:01:00:00:01") for _ in range(145))).payload()
    with pytest.raises(PacketError) as info:
        decode_packet(encode_packet(PacketType.COMMAND, 0, 0, bytes.fromhex("0f00" "0000")))
    assert (info.value.code, info.value.detail) == (ErrorCode.BAD_VALUE, 2)


# --------------------------------------------------------------------------- decode errors


def test_unsupported_version_message() -> None:
    packet = encode_packet(PacketType.COMMAND, 0, 0, b"\x01\x00", version=2)
    with pytest.raises(UnsupportedVersionError, match=r"^protocol version 2 is not supported; this side speaks version 1$"):
        decode_packet(packet)


def test_partial_step_bytes_by_hand() -> None:
    # docs/protocol.md, "Partial stances": the foot came to rest (to_index n/a), then the
    # same stance's toe-off (ic_index n/a, the same step_number).
    came_to_rest = Step(0x2A0, None, None, 410, 500, 1, 2, None, None, 1300, 1100, 7)
    left_rest = Step(None, 0x4B0, None, None, None, 0, 2, None, None, None, None, 7)
    assert came_to_rest.payload().hex() == (
        "a0020000" "ffffffff"  # ic_index 672, to_index n/a
        "ffff" "9a01" "f401"  # stance_ms n/a, swing_ms 410, fpa_cdeg 500
        "01" "02" "ffff" "ff" "ff"  # forward, IMU contact, peak n/a, medial n/a, strike n/a
        "1405" "4c04" "07000000"  # stride 1300, speed 1100, step 7
    )  # fmt: skip
    assert left_rest.payload()[:8].hex() == "ffffffff" "b0040000"
    for step in (came_to_rest, left_rest):
        decoded = decode_packet(step.encode(3, 4)).body
        assert decoded == step and isinstance(decoded, Step) and decoded.partial
    assert not Step(1, 2, 10, None, None, 0, 2, None, None, None, None, 1).partial


def _imu_step(ic: int | None, to: int | None, number: int, fpa_cdeg: int | None = None, direction: int = 1) -> Step:
    stance_ms = None if ic is None or to is None else (to - ic) * 10
    return Step(ic, to, stance_ms, None, fpa_cdeg, direction, 2, None, None, None, None, number)


def test_the_halves_of_a_stance_are_joined_once_whatever_their_order() -> None:
    first_toe_off = _imu_step(None, 40, 1, direction=0)  # the stream began at rest
    walking = _imu_step(140, 200, 2, 450)
    came_to_rest = _imu_step(300, None, 3, 520)
    left_rest = _imu_step(None, 900, 3, direction=0)
    after = _imu_step(1000, 1060, 4, 480)
    last = _imu_step(1160, None, 5, 470)  # the stream ended standing
    joined = join_stance_halves(came_to_rest, left_rest)
    assert joined == Step(300, 900, None, None, 520, 1, 2, None, None, None, None, 3)
    in_order = [first_toe_off, walking, came_to_rest, left_rest, after, last]
    assert whole_stances(in_order) == [first_toe_off, walking, joined, after, last]
    # A backfill delivers the first half after the second: joined where the first half is.
    late = [first_toe_off, walking, left_rest, after, came_to_rest, last]
    assert whole_stances(late) == [first_toe_off, walking, after, joined, last]
    # Not halves of one stance: another step number, the wrong order of events, whole steps.
    assert join_stance_halves(came_to_rest, _imu_step(None, 900, 4)) is None
    assert join_stance_halves(came_to_rest, _imu_step(None, 250, 3)) is None
    assert join_stance_halves(left_rest, came_to_rest) is None
    assert join_stance_halves(walking, after) is None
    assert whole_stances([came_to_rest, _imu_step(None, 250, 3)]) == [came_to_rest, _imu_step(None, 250, 3)]


def test_program_and_program_event_bytes_by_hand() -> None:
    # docs/protocol.md, PROGRAM and PROGRAM_EVENT.
    program = Program(
        0x0107,
        (
            ProgramBlock.fpa_baseline(60, change_cdeg=-500, half_width_cdeg=200, limit_s=600),
            ProgramBlock.heel_raises(10, sets=3, hold_ms=3000, rest_s=60),
            ProgramBlock.walk(1800, goal_in_seconds=True, spm=110, progress_pct=10, progress_after=3),
        ),
    )
    assert program.payload().hex() == (
        "01" "03" "0701"  # program_version 1, 3 blocks, program_id 0x107
        "01" "00" "3c00" "0000" "0cfe" "c800" "0000" "5802" "0000"  # baseline 60 steps, -5°, ±2°, limit 600 s
        "05" "00" "0a00" "0000" "0300" "b80b" "3c00" "0000" "0000"  # heel raises 3 × 10, hold 3000 ms, rest 60 s
        "06" "03" "0807" "6e00" "0a00" "0300" "0000" "0000" "0000"  # walk 1800 s, metronome 110, +10 % after 3
    )  # fmt: skip
    assert decode_packet(program.encode(1, 2)).body == program
    assert [block.kind_name for block in program.blocks] == ["fpa_baseline", "heel_raises", "walk"]
    heel = program.blocks[1]
    assert (heel.sets, heel.hold_ms, heel.change_cdeg, heel.goal_in_seconds) == (3, 3000, None, False)
    assert program.blocks[2].goal_in_seconds and program.blocks[2].metronome and program.blocks[2].progress_after == 3
    assert ProgramBlock.backward_walk(300).goal_in_seconds
    none = Program.none_stored()
    assert none.payload().hex() == "01000000" and decode_packet(none.encode()).body == none and not none.stored
    event = ProgramEvent(
        ProgramEventKind.BLOCK_END, 1, BlockKind.HEEL_RAISES, BlockEnd.GOAL, 0x12345, 3, 7, 10, 10, 2, 3, None, None
    )
    assert event.payload().hex() == (
        "04" "01" "05" "01"  # BLOCK_END, block 1, heel raises, goal reached
        "45230100" "0300" "0700"  # sample_index, session 3, program 7
        "0a00" "0a00" "0200" "0300"  # goal, done, value, value2
        "0080" "ffff"  # target_cdeg and half_width_cdeg n/a
    )  # fmt: skip
    assert decode_packet(event.encode(0, 0)).body == event
    assert (event.event_name, event.kind_name) == ("block_end", "heel_raises")


def test_a_refused_program_field_is_named_in_its_kinds_words() -> None:
    program = Program(7, (ProgramBlock.fpa_probe(60), ProgramBlock.heel_raises(10, sets=3, hold_ms=300, rest_s=60)))
    fault = program.first_fault()
    assert fault is not None and (fault.offset, fault.block) == (4 + 16 + 8, 1)
    assert fault.describe() == "block 2 (heel_raises) hold_ms = 300 is outside 500..10000"
    with pytest.raises(PacketError, match="hold_ms") as info:
        decode_packet(program.encode())
    assert (info.value.reason, info.value.detail) == ("bad_value", fault.offset)
    # Any offset a device may name, also inside a field and in the head.
    assert program.field_at(2) == program.field_at(3) == "program_id"
    assert program.field_at(4 + 16 + 7) == "block 2 (heel_raises) sets"
    assert program.field_at(4 + 6) == "block 1 (fpa_probe) a"
    assert program.field_at(4 + 32 + 2) == "block 3 goal"
    # A write needs a block; a report may have none.
    empty = Program(7, ())
    assert empty.first_fault() is not None and empty.first_fault(report=True) is None


def test_strike_0_of_firmware_before_the_field_reads_as_not_measured() -> None:
    # Offset 19 was reserved (written 0); it is now the strike pattern, n/a 0xFF.
    step = Step(100, 160, 600, None, None, 1, 1, None, None, None, None, 2)
    older = bytearray(step.payload())
    older[19] = 0
    assert Step.decode(bytes(older)) == step and step.payload()[19] == NA_U8
    for code in Strike:
        assert Step.decode(dataclasses.replace(step, strike=code).payload()).strike == code
    with pytest.raises(ProtocolError, match="not measured"):
        dataclasses.replace(step, strike=0)


def test_a_step_with_neither_index_is_refused_as_a_bad_value() -> None:
    payload = bytes.fromhex("ffffffff" "ffffffff") + bytes(20)
    with pytest.raises(PacketError, match="both n/a") as info:
        decode_packet(encode_packet(PacketType.STEP, 0, 0, payload))
    assert (info.value.code, info.value.reason, info.value.detail) == (ErrorCode.BAD_VALUE, "bad_value", 4)
    # A receiving stream counts it with the other refusals and goes on.
    stream = PacketStream()
    good = Step(None, 90, None, None, None, 0, 2, None, None, None, None, 1).encode(1, 2)
    packets = stream.feed(frame(encode_packet(PacketType.STEP, 0, 0, payload)) + frame(good))
    assert [p.body for p in packets] == [decode_packet(good).body]
    assert stream.bad_packets == {"bad_value": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x03", "truncated"),
        (encode_packet(PacketType.STEP, 0, 0, bytes(27)), "truncated"),
        (encode_packet(PacketType.ACK, 0, 0, bytes(5)), "bad_length"),
        (encode_packet(0x42, 0, 0, b""), "unknown_type"),
        (encode_packet(PacketType.COMMAND, 0, 0, b"\x77\x00"), "unknown_command"),
    ],
)
def test_decode_errors_name_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError) as info:
        decode_packet(data)
    assert info.value.reason == reason
    assert str(info.value)  # a message for humans


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ProtocolError, match="sentinel"):
        Status(0, 0, 0, 0, 0, 0, 0, 0, 0, NA_U16, 0, 0, 0, 0, 0).payload()
    with pytest.raises(ProtocolError, match="sentinel"):
        Status(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NA_U16).payload()  # a saturated count is 0xFFFE
    with pytest.raises(ProtocolError, match="no n/a"):
        HeelRaise(None, 0, 0, 1, 1).payload()  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="sentinel"):
        Step(0xFFFFFFFF, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1).payload()  # n/a is None
    with pytest.raises(ProtocolError, match="both n/a"):
        Step(None, None, None, None, None, 0, 2, None, None, None, None, 1)  # a stance without an event
    with pytest.raises(ProtocolError, match="does not fit"):
        Step(0, 0, 0, 0, 40000, 0, 0, 0, 0, 0, 0, 1).payload()
    with pytest.raises(ProtocolError, match="needs the argument"):
        Command(CommandCode.REPLAY_BEGIN).payload()
    with pytest.raises(ProtocolError, match="takes no argument"):
        Command(CommandCode.PING, rate_chz=1).payload()
    with pytest.raises(ProtocolError, match="sentinel"):
        Command.replay_begin(10000, 8, 1, side=0xFF).payload()
    with pytest.raises(ProtocolError, match="1024"):
        encode_packet(PacketType.LAYOUT, 0, 0, bytes(MAX_PACKET_LEN - 7))
    with pytest.raises(ProtocolError, match="do not fit one SAMPLES"):
        Samples(0, np.zeros((256, 1), np.uint16), None).payload()


def test_settings_validation_reports_first_bad_field() -> None:
    good = Settings(cue_mode=1, fpa_target_cdeg=500, fpa_half_width_cdeg=300)
    assert good.first_bad_field() is None and good.problem() is None
    bad = Settings(cue_mode=1, fpa_half_width_cdeg=10, rate_chz=100)
    assert bad.first_bad_field() == ("fpa_half_width_cdeg", 6)
    with pytest.raises(PacketError) as info:
        decode_packet(bad.encode())  # encodes (a host may test the device with it), decoding refuses
    assert (info.value.code, info.value.detail) == (ErrorCode.BAD_VALUE, 6)
    # A cap below the base duration is refused at the cap's offset, with a reason.
    capped = Settings(cue_duration_ms=400, cue_max_ms=300)
    assert capped.first_bad_field() == ("cue_max_ms", 14)
    assert capped.problem() == "SETTINGS.cue_max_ms = 300 is below cue_duration_ms = 400"


def test_cue_body_helpers() -> None:
    cued = Cue(3, 300, 100, 101, 1500, -250, 500, 300, 2, 0, 2, 60, 300, 1)
    assert cued.cued and cued.latency_ms == 1.5 and cued.fpa_deg == -2.5
    faded = Cue(4, 400, 200, None, None, 1000, 500, 300, 1, 1, 1, 60, 300, 2)
    assert not faded.cued and faded.latency_ms is None
    assert decode_packet(faded.encode(2, 3)).body == faded


def test_step_foot_angle_in_degrees() -> None:
    toe_in = Step(3, 21, 180, None, -250, 1, 1, 30000, 100, None, None, 1)
    assert toe_in.fpa_deg == -2.5
    no_angle = Step(3, 21, 180, None, None, 1, 1, 30000, 100, None, None, 1)
    assert no_angle.fpa_deg is None


def test_seq_and_time_wrap() -> None:
    packet = Ack(1, 1, 1).encode(seq=65536 + 3, time_ms=(1 << 32) + 5)
    header = decode_packet(packet).header
    assert (header.seq, header.time_ms) == (3, 5)
    assert unwrap_counter([65534, 65535, 0, 1], 1 << 16).tolist() == [65534, 65535, 65536, 65537]
    assert unwrap_counter([(1 << 30) - 10, 5], 1 << 30).tolist() == [(1 << 30) - 10, (1 << 30) + 5]


# --------------------------------------------------------------------------- SAMPLES in bulk


def test_encode_samples_splits_to_fit_and_decodes_in_bulk() -> None:
    rng = np.random.default_rng(1)
    n = 1000
    pressure = rng.integers(0, 65535, (n, 16)).astype(np.uint16)
    imu = rng.integers(-32768, 32768, (n, 6)).astype(np.int16)
    packets = encode_samples(500, pressure, imu, seq_start=65534, rate_hz=100.0)
    per_packet = max_samples_per_packet(16, 1)
    assert per_packet == (1024 - 16) // 44 == 22
    assert len(packets) == math.ceil(n / per_packet)
    assert all(len(p) <= MAX_PACKET_LEN for p in packets)
    headers = [decode_packet(p).header for p in packets]
    assert [h.seq for h in headers[:3]] == [65534, 65535, 0]
    assert headers[0].time_ms == round(1000 * (500 + 22) / 100.0)
    indices, p_out, imu_out = decode_sample_batches([p[8:] for p in packets])
    assert indices.dtype == np.uint32 and p_out.dtype == np.uint16 and imu_out is not None and imu_out.dtype == np.int16
    np.testing.assert_array_equal(indices, np.arange(500, 500 + n))
    np.testing.assert_array_equal(p_out, pressure)
    np.testing.assert_array_equal(imu_out, imu)


def test_decode_sample_batches_pressure_only_imu_only_and_mismatch() -> None:
    p_packets = encode_samples(0, np.ones((300, 3), np.uint16), None)  # 6-byte records: 168 fit
    assert [decode_packet(p).body.count for p in p_packets] == [168, 132]  # type: ignore[union-attr]
    assert [decode_packet(p).body.count for p in encode_samples(0, np.ones((300, 1)), None)] == [255, 45]  # type: ignore[union-attr]
    indices, pressure, imu = decode_sample_batches([p[8:] for p in p_packets])
    assert pressure.shape == (300, 3) and imu is None and indices[-1] == 299
    i_packets = encode_samples(10, None, np.full((5, 6), -7, np.int16))
    indices, pressure, imu = decode_sample_batches([p[8:] for p in i_packets])
    assert pressure.shape == (5, 0) and imu is not None and imu.shape == (5, 6) and indices.tolist() == list(range(10, 15))
    with pytest.raises(PacketError, match="differs"):
        decode_sample_batches([p_packets[0][8:], i_packets[0][8:]])
    indices, pressure, imu = decode_sample_batches([], n_pressure=8, imu=True)
    assert indices.shape == (0,) and pressure.shape == (0, 8) and imu is not None and imu.shape == (0, 6)


def test_a_batch_of_another_shape_is_refused_at_the_field_that_differs() -> None:
    # SAMPLES payload offsets (docs/protocol.md): 5 is n_pressure, 6 is imu.
    eight_with_imu = encode_samples(0, np.ones((4, 8), np.uint16), np.zeros((4, 6), np.int16))[0][8:]
    four_with_imu = encode_samples(4, np.ones((4, 4), np.uint16), np.zeros((4, 6), np.int16))[0][8:]
    eight_without_imu = encode_samples(4, np.ones((4, 8), np.uint16), None)[0][8:]
    for other, field in ((four_with_imu, 5), (eight_without_imu, 6)):
        with pytest.raises(PacketError, match="differs") as info:
            decode_sample_batches([eight_with_imu, other])
        assert (info.value.code, info.value.detail) == (ErrorCode.BAD_VALUE, field)


# --------------------------------------------------------------------------- framing robustness


def _valid_packets(rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            count = int(rng.integers(1, 37))
            out += encode_samples(i, rng.integers(0, 65535, (count, 8)), rng.integers(-32767, 32768, (count, 6)), seq_start=i)
        elif kind == 1:
            out.append(Step(i, i + 50, 600, None, int(rng.integers(-9000, 9001)), 1, 3, 500, 100, None, None, i).encode(i, i))
        elif kind == 2:
            out.append(Ack(2, 0, i).encode(i, 7 * i))
        else:
            out.append(Command(CommandCode.PING).encode(i, 0))
    return out


def test_random_garbage_between_frames_loses_no_frame() -> None:
    rng = np.random.default_rng(12345)
    packets = _valid_packets(rng, 300)
    pieces = []
    garbage_total = 0
    for packet in packets:
        size = int(rng.integers(0, 60))
        garbage = rng.integers(0, 256, size).astype(np.uint8).tobytes()
        garbage_total += size
        pieces.append(garbage)  # often without 0x00: glued to the next frame
        pieces.append(frame(packet))
    stream = b"".join(pieces)
    assert garbage_total > 5000
    decoder = FrameDecoder()
    recovered: list[bytes] = []
    position = 0
    while position < len(stream):  # random feed sizes: frames split across calls
        step = int(rng.integers(1, 300))
        recovered += decoder.feed(stream[position : position + step])
        position += step
    assert recovered == packets
    assert decoder.bad_frames > 0 and decoder.skipped_bytes > 0
    assert decoder.pending_bytes == 0


def test_plain_splitting_recovers_frames_after_a_delimiter() -> None:
    rng = np.random.default_rng(99)
    packets = _valid_packets(rng, 80)
    stream = b"".join(rng.integers(1, 256, 20).astype(np.uint8).tobytes() + b"\x00" + frame(p) for p in packets)
    decoder = FrameDecoder(recover_glued=False)
    assert decoder.feed(stream) == packets
    assert decoder.bad_frames == len(packets)


def test_pure_random_bytes_never_raise_and_stay_bounded() -> None:
    rng = np.random.default_rng(2024)
    stream = PacketStream()
    for _ in range(50):
        stream.feed(rng.integers(0, 256, int(rng.integers(1, 4000))).astype(np.uint8).tobytes())
        assert stream.decoder.pending_bytes <= max_encoded_frame_len()
    assert stream.bad_frames > 0
    # Long runs without a delimiter: the buffer stays bounded and the next frame still decodes.
    decoder = FrameDecoder()
    assert decoder.feed(b"\x55" * 100_000) == []
    assert decoder.pending_bytes <= max_encoded_frame_len()
    ping = Command(CommandCode.PING).encode(1, 2)
    assert decoder.feed(b"\x00" + frame(ping)) == [ping]
    assert decoder.bad_frames == 1 and decoder.skipped_bytes == 100_000
    # ... and a frame glued to the end of an over-long run is found too.
    decoder = FrameDecoder()
    assert decoder.feed(b"\x55" * 5000 + frame(ping)) == [ping]
    assert decoder.bad_reasons["too_long"] == 1


def _worst_case_runs() -> dict[str, bytes]:
    """Garbage that made the glued-frame search quadratic: runs of the longest frame
    length where every start is a candidate tail, or looks like a packet header."""
    longest = max_encoded_frame_len()
    bad_crc = bytearray(frame(encode_samples(0, np.full((36, 8), 0x0101), np.full((36, 6), 0x0102))[0]))
    bad_crc[-2] ^= 0x04
    return {
        "0x01 runs": b"\x01" * longest + b"\x00",
        "0x02 runs": b"\x02" * longest + b"\x00",
        "header-like runs": (b"\x03\x01\x02" * 400)[:longest] + b"\x00",
        "short header-like runs": b"\x03\x01\x02" * 7 + b"\x00",
        "over-long runs": b"\x01" * 3 * longest + b"\x00",
        "frames with a bad CRC": bytes(bad_crc),
    }


@pytest.mark.parametrize("kind", list(_worst_case_runs()))
def test_decoder_work_stays_linear_on_worst_case_garbage(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Work counted, not timed (tools/bench_decoder.py prints the MB/s): every byte
    # handed to COBS decoding. The glued-frame search used to decode every candidate
    # tail of a failed run, ~500 bytes per byte fed on runs of 0x01.
    data = _worst_case_runs()[kind] * 40
    decoded = 0

    def counting_decode(encoded: bytes) -> bytes:
        nonlocal decoded
        decoded += len(encoded)
        return cobs.decode(encoded)

    counting = SimpleNamespace(decode=counting_decode, encode=cobs.encode, DecodeError=cobs.DecodeError)
    monkeypatch.setattr("insole.protocol.framing.cobs", counting)
    decoder = FrameDecoder()
    assert decoder.feed(data) == []
    assert decoder.bad_frames == 40
    assert decoded <= 3 * len(data), f"{decoded / len(data):.1f} bytes decoded per byte fed"
    assert decoder.pending_bytes == 0


def test_glued_frame_after_header_like_garbage_is_found() -> None:
    # The search tries the tails that start like a packet header, longest first: a
    # frame glued to garbage that holds a header-like pair of bytes is still found.
    ping = Command(CommandCode.PING).encode(1, 2)
    step = Step(1523, 1587, 640, 410, 850, 1, 3, 41000, 118, 1380, 1210, 12).encode(3, 4)
    for garbage in (b"\x03\x01\x02\x05\x07", b"\x44\x03\x01\x06\x09\x09", bytes(range(1, 40))):
        decoder = FrameDecoder()
        assert decoder.feed(garbage + frame(ping) + garbage + frame(step)) == [ping, step]
        assert decoder.bad_frames == 2 and decoder.skipped_bytes == 2 * len(garbage)


def test_bad_crc_frames_are_counted_not_raised() -> None:
    ack = Ack(6, 1, 9).encode(3, 4)
    good = frame(ack)
    bad = bytearray(good)
    bad[3] ^= 0x10
    decoder = FrameDecoder()
    assert decoder.feed(bytes(bad) + good + bytes(bad)) == [ack]
    assert decoder.bad_frames == 2 and decoder.bad_reasons["bad_crc"] == 2


def test_packet_stream_counts_refusals_by_reason() -> None:
    ping = Command(CommandCode.PING).encode(1, 0)
    data = b"".join(
        [
            frame(ping),
            frame(encode_packet(PacketType.COMMAND, 2, 0, b"\x01\x00", version=2)),
            frame(encode_packet(0x33, 3, 0, b"")),
            frame(encode_packet(PacketType.STEP, 4, 0, bytes(3))),
            b"\x01\x02\x03\x00",
            frame(ping),
        ]
    )
    stream = PacketStream()
    decoded = stream.feed(data)
    assert [d.header.seq for d in decoded] == [1, 1]
    assert stream.unsupported_version == 1
    assert stream.bad_packets == {"unsupported_version": 1, "unknown_type": 1, "truncated": 1}
    assert stream.bad_frames == 1
    assert isinstance(stream.last_error, PacketError) and stream.last_error.reason == "truncated"


# --------------------------------------------------------------------------- the link after a host died mid-frame


def _half_frame() -> bytes:
    """The first half of a GET_STATUS frame: what a host killed while writing leaves."""
    whole = frame(Command(CommandCode.GET_STATUS).encode(7, 0))
    return whole[: len(whole) // 2]


@pytest.mark.micropython
def test_first_command_after_a_host_died_mid_frame_is_answered(tmp_path: Path) -> None:
    # Issue 10: the insole kept the dead host's half frame, glued the next host's first
    # request to it and answered BAD_FRAME, which the host did not recognise: a timeout.
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings", log_path=tmp_path / "fw.log") as board:
        with SerialLink(board.port) as dying:
            dying.ping(timeout_s=10)  # the firmware is up
            dying.write_raw(_half_frame())
        with SerialLink(board.port) as fresh:
            status = fresh.get_status(timeout_s=2)  # the old link timed out here
            assert status.side == 0
            # The insole's BAD_FRAME for the half frame is accounted for, not left as noise.
            assert not [p for p in fresh.drain_inbox() if isinstance(p.body, ErrorReply)]
            assert fresh.bad_frames_reported == 1
            # Junk glued to a request on an open link (no 0x00 between): re-sent once.
            fresh.write_raw(b"\x13\x37")
            fresh.ping(timeout_s=2)
            assert fresh.bad_frames_reported == 2


class _MangledStatusLink(SerialLink):
    """Writes every GET_STATUS glued to junk, so that the insole refuses each as BAD_FRAME."""

    def write_raw(self, data: bytes) -> None:
        super().write_raw(b"\x13\x37" + data if _is_get_status(data) else data)


def _is_get_status(data: bytes) -> bool:
    if not data.endswith(b"\x00") or len(data) < 11:
        return False
    packet = cobs.decode(data[:-1])[:-2]
    return packet[1] == PacketType.COMMAND and packet[8] == CommandCode.GET_STATUS


@pytest.mark.micropython
def test_a_request_refused_as_bad_frame_twice_is_a_typed_error_not_a_timeout(tmp_path: Path) -> None:
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings", log_path=tmp_path / "fw.log") as board:
        with _MangledStatusLink(board.port) as link:
            link.ping(timeout_s=10)
            with pytest.raises(BadFrameError) as info:
                link.get_status(timeout_s=3)
            assert info.value.code == ErrorCode.BAD_FRAME and info.value.advice
            assert link.bad_frames_reported == 2  # the request and its one re-send
            link.ping(timeout_s=2)  # the link goes on


# --------------------------------------------------------------------------- quantisation


def test_quantisation_round_trip_and_sentinels() -> None:
    acc = np.array([[0.0, 9.80665, -9.80665], [np.nan, 1e9, -1e9]])
    raw = acc_ms2_to_raw(acc)
    assert raw.tolist() == [[0, 1000, -1000], [NA_I16, 32767, -32767]]  # clipped, never the sentinel
    back = raw_to_acc_ms2(raw)
    assert np.isnan(back[1, 0]) and back[0, 1] == pytest.approx(9.80665)
    gyro = np.array([[123.44, -0.05, np.nan]])
    assert gyro_dps_to_raw(gyro).tolist() == [[1234, 0, NA_I16]]
    assert np.isnan(raw_to_gyro_dps(gyro_dps_to_raw(gyro))[0, 2])
    pressure = np.array([0.0, 1.2344, -3.0, np.nan, 1e12])
    counts = pressure_to_counts(pressure, 0.001)
    assert counts.tolist() == [0, 1234, 0, NA_U16, 65534]  # negative clips to 0, huge to 65534 (not n/a)
    back_p = counts_to_pressure(counts, 0.001)
    assert back_p[1] == pytest.approx(1.234) and np.isnan(back_p[3])
    rng = np.random.default_rng(3)
    a, g = rng.normal(0, 30, (100, 3)), rng.normal(0, 400, (100, 3))
    a2, g2 = raw_to_imu(imu_to_raw(a, g))
    assert np.max(np.abs(a2 - a)) <= 0.5 * 9.80665 / 1000 + 1e-12
    assert np.max(np.abs(g2 - g)) <= 0.05 + 1e-12


def test_choose_pressure_scale_is_round_and_fits() -> None:
    assert choose_pressure_scale(np.array([40.0])) == 0.001
    assert choose_pressure_scale(np.array([1500.0, np.nan])) == 0.05
    assert choose_pressure_scale(np.array([60000.0])) == 1.0
    assert choose_pressure_scale(np.array([120001.0])) == 5.0
    assert choose_pressure_scale(np.array([np.nan])) == 1.0
    for peak in (0.3, 7.0, 999.0, 4095.0, 3e6):
        scale = choose_pressure_scale(np.array([peak]))
        assert peak / scale <= 60000 and peak / scale > 6000
