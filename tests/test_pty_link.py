"""The firmware on the unix port behind a real pty, driven by the host's pyserial link."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from insole.emulation.board import SimulatedBoard, write_sample_file
from insole.errors import DeviceError
from insole.link import PendingRequest, SerialLink
from insole.protocol import (
    Ack,
    Command,
    CommandCode,
    ErrorCode,
    ErrorReply,
    Layout,
    PacketType,
    Samples,
    Settings,
    Status,
    Step,
    encode_packet,
    frame,
)

pytestmark = pytest.mark.micropython


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimulatedBoard]:
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings", log_path=tmp_path / "fw.log") as b:
        yield b


@pytest.fixture
def link(board: SimulatedBoard) -> Iterator[SerialLink]:
    with SerialLink(board.port) as lk:
        lk.command(Command(CommandCode.PING), timeout_s=10)  # first answer also waits for start-up
        yield lk


def _status(link: SerialLink) -> Status:
    body = link.command(Command(CommandCode.GET_STATUS), PacketType.STATUS).body
    assert isinstance(body, Status)
    return body


def _walk_counts(n: int, rate_hz: float = 100.0) -> np.ndarray:
    """8-channel pressure of a simple periodic walk: 1 s strides, 60 % stance, heel first."""
    t = np.arange(n) / rate_hz
    phase = t % 1.0
    centres = 0.1 + 0.4 * np.arange(8) / 7
    load = np.clip(1 - np.abs(phase[:, None] - centres[None, :]) * 4, 0, None) * (phase[:, None] < 0.6)
    return (load * 20000 + 40).astype(np.uint16)


def _replay(link: SerialLink, counts: np.ndarray, side: int = 0) -> list[Step]:
    xs = tuple(int(v) for v in np.linspace(10, 250, 8))
    link.request(Layout(xs, tuple(20 if k % 2 else -20 for k in range(8))))
    link.command(Command(CommandCode.REPLAY_BEGIN, rate_chz=10000, n_pressure=8, imu=0, side=side))
    for start in range(0, len(counts), 50):
        link.request(Samples(start, counts[start : start + 50], None))
    link.command(Command(CommandCode.REPLAY_END))
    return [p.body for p in link.drain_inbox() if isinstance(p.body, Step)]


def test_status_round_trip(link: SerialLink) -> None:
    status = _status(link)
    assert (status.fw_major, status.fw_minor) == (0, 1)
    assert status.side == 0  # INSOLE_SIDE=left
    assert status.mode == 0
    assert status.free_heap is not None and status.free_heap > 20_000


def test_replay_finds_the_steps_of_a_periodic_walk(link: SerialLink) -> None:
    steps = _replay(link, _walk_counts(1000))
    # 10 strides; the first stance starts at sample 0 with no contact before it, so 9 or 10.
    assert len(steps) in (9, 10)
    ics = np.array([s.ic_index for s in steps])
    assert np.all(np.diff(ics) == 100)  # one step per 1 s stride at 100 Hz
    assert all(s.direction == 1 for s in steps)  # heel -> toe roll-over: forward
    assert all(50 <= (s.stance_ms or 0) <= 650 for s in steps)
    assert _status(link).sample_count == 1000


def test_garbage_and_truncated_frames_are_refused_and_change_nothing(link: SerialLink) -> None:
    before = _status(link)
    rng = random.Random(7)
    garbage = bytes(rng.randrange(1, 256) for _ in range(300)) + b"\x00"
    truncated = frame(Command(CommandCode.PING).encode(5, 0))[:-4] + b"\x00"
    bad_crc = bytearray(frame(Command(CommandCode.PING).encode(6, 0)))
    bad_crc[3] ^= 0x55
    link.write_raw(garbage + truncated + bytes(bad_crc))
    errors: list[ErrorReply] = []
    deadline = time.monotonic() + 3
    while len(errors) < 3 and time.monotonic() < deadline:
        errors += [p.body for p in link.poll(0.2) if isinstance(p.body, ErrorReply)]
    assert [e.error for e in errors] == [ErrorCode.BAD_FRAME] * 3
    # The link still works and the state is unchanged.
    after = _status(link)
    assert (after.mode, after.side, after.sample_count) == (before.mode, before.side, before.sample_count)
    assert len(_replay(link, _walk_counts(400))) >= 3


def test_unknown_version_is_refused_with_its_code(link: SerialLink) -> None:
    link.write_raw(frame(encode_packet(PacketType.COMMAND, 77, 0, bytes([CommandCode.PING, 0]), version=2)))
    with pytest.raises(DeviceError) as info:
        link.wait_for(PendingRequest(PacketType.COMMAND, 77))
    assert info.value.code == ErrorCode.UNSUPPORTED_VERSION


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (bytes([0x7F, 0]), ErrorCode.UNKNOWN_COMMAND),
        (bytes([CommandCode.PING, 0, 1]), ErrorCode.BAD_LENGTH),
        (bytes([CommandCode.REPLAY_BEGIN, 0, 0x10, 0x27, 99, 0, 0, 0]), ErrorCode.BAD_VALUE),
        (bytes([CommandCode.REPLAY_END, 0]), ErrorCode.BAD_STATE),
        (bytes([CommandCode.START_STREAM, 0]), ErrorCode.BAD_STATE),  # no live sensors configured
    ],
)
def test_bad_commands_get_error_codes_and_keep_state(link: SerialLink, payload: bytes, code: int) -> None:
    link.write_raw(frame(encode_packet(PacketType.COMMAND, 1000, 0, payload)))
    with pytest.raises(DeviceError) as info:
        link.wait_for(PendingRequest(PacketType.COMMAND, 1000))
    assert info.value.code == code
    assert _status(link).mode == 0


def test_samples_outside_replay_are_refused(link: SerialLink) -> None:
    with pytest.raises(DeviceError) as info:
        link.request(Samples(0, np.zeros((3, 8), np.uint16), None))
    assert info.value.code == ErrorCode.BAD_STATE


def test_settings_are_validated_and_persist_across_restart(tmp_path: Path) -> None:
    settings_dir = tmp_path / "settings"
    good = Settings(
        side=1, cue_mode=1, cue_duty_pct=70, fpa_target_cdeg=-1000, fpa_half_width_cdeg=200, toe_in_pattern=3,
        cue_duration_ms=300, schedule=2, fade_probability_pct=40, seed=77, metronome_spm=110, rate_chz=10000,
        stream_samples=1,
    )
    with SimulatedBoard(settings_dir=settings_dir) as board, SerialLink(board.port) as link:
        link.command(Command(CommandCode.PING), timeout_s=10)
        link.request(good)
        bad = good.payload()[:6] + (5000).to_bytes(2, "little") + good.payload()[8:]  # half-width 50°: out of range
        seq = _raw_settings(link, bad)
        with pytest.raises(DeviceError) as info:
            link.wait_for(PendingRequest(PacketType.SETTINGS, seq))
        assert info.value.code == ErrorCode.BAD_VALUE and info.value.detail == 6
    with SimulatedBoard(settings_dir=settings_dir) as board, SerialLink(board.port) as link:
        link.command(Command(CommandCode.PING), timeout_s=10)
        stored = link.command(Command(CommandCode.GET_SETTINGS), PacketType.SETTINGS).body
        assert stored == good
        assert _status(link).side == 1


def _raw_settings(link: SerialLink, payload: bytes) -> int:
    """Writes a SETTINGS packet that the host encoder would refuse; returns its seq."""
    seq = 4242
    link.write_raw(frame(encode_packet(PacketType.SETTINGS, seq, 0, payload)))
    return seq


def test_live_stream_from_the_simulated_sensors(tmp_path: Path) -> None:
    samples = tmp_path / "walk.ismp"
    write_sample_file(samples, 10000, _walk_counts(300), None)
    with SimulatedBoard(side="right", samples_file=samples) as board, SerialLink(board.port) as link:
        link.command(Command(CommandCode.PING), timeout_s=10)
        xs = tuple(int(v) for v in np.linspace(10, 250, 8))
        link.request(Layout(xs, tuple(20 if k % 2 else -20 for k in range(8))))
        link.command(Command(CommandCode.START_STREAM))
        batches: list[Samples] = []
        steps: list[Step] = []
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            for packet in link.poll(0.2):
                if isinstance(packet.body, Samples):
                    batches.append(packet.body)
                elif isinstance(packet.body, Step):
                    steps.append(packet.body)
        link.command(Command(CommandCode.STOP_STREAM))
        # ~3 s of live samples at 100 Hz, contiguous, with step events sent in between
        # and not one packet damaged by them.
        received = sum(b.count for b in batches)
        assert received >= 250
        assert [b.first_index for b in batches] == list(np.cumsum([0] + [b.count for b in batches[:-1]]))
        assert len(steps) >= 2
        assert not link.stream.bad_packets and link.stream.bad_frames == 0
        assert isinstance(link.command(Command(CommandCode.PING)).body, Ack)
