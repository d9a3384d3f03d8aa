"""Haptic cueing: the host's cue settings model, `insole cue show|set`, settings that
persist on the simulated insole, and cues the firmware issues on its own."""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from insole.commands import cue as cue_command
from insole.emulation.board import SimulatedBoard
from insole.errors import DeviceError, UserError
from insole.gait.cue import CueEngine, pattern_edges_ms, xorshift16
from insole.link import PendingRequest, SerialLink
from insole.protocol import (
    Command,
    CommandCode,
    Cue,
    CueMode,
    CueOutcome,
    CuePattern,
    CueReason,
    CueSchedule,
    DecodedPacket,
    ErrorCode,
    PacketType,
    Settings,
    Step,
    encode_packet,
    frame,
)
from insole.settings import (
    CueSettingsError,
    apply_cue_options,
    check_settings,
    describe,
    parse_band,
    parse_block,
)

# --------------------------------------------------------------------------- the host's model


def test_band_block_and_pattern_parsing() -> None:
    assert parse_band("-10:2") == (-10.0, 2.0)
    assert parse_band("5.5:1.25") == (5.5, 1.25)
    for bad in ("-10", "a:b", "1:2:3", ""):
        with pytest.raises(CueSettingsError, match="--band"):
            parse_band(bad)
    assert parse_block("40") == (40, 40)
    assert parse_block("40:20") == (40, 20)
    assert parse_block("off") == (1, 0)
    with pytest.raises(CueSettingsError, match="--block"):
        parse_block("many")


def test_options_become_settings_in_wire_units() -> None:
    s = apply_cue_options(
        Settings(), mode="band", band="-10:2", toe_in_pattern="triple", toe_out_pattern="4", duration_ms=200,
        scale_ms_per_deg=50, max_ms=600, duty_pct=70, probability_pct=40, seed=9, block="30:10", spm=120,
        pulse_ms=80, metronome_pattern="short-short",
    )  # fmt: skip
    assert (s.cue_mode, s.fpa_target_cdeg, s.fpa_half_width_cdeg) == (CueMode.FOOT_ANGLE, -1000, 200)
    assert (s.toe_in_pattern, s.toe_out_pattern, s.metronome_pattern) == (3, 4, 2)
    assert (s.cue_duration_ms, s.cue_ms_per_deg, s.cue_max_ms, s.cue_duty_pct) == (200, 50, 600, 70)
    assert (s.schedule, s.fade_probability_pct, s.seed) == (CueSchedule.PROBABILITY, 40, 9)
    assert (s.block_on_steps, s.block_off_steps, s.metronome_spm, s.metronome_pulse_ms) == (30, 10, 120, 80)
    assert apply_cue_options(s, every=3).schedule == CueSchedule.EVERY_KTH
    assert apply_cue_options(s, schedule="every-step").schedule == CueSchedule.EVERY_STEP
    # Options not given stay as they were.
    assert apply_cue_options(s) == s
    text = "\n".join(describe(s))
    assert "-10° ± 2°" in text and "triple (3)" in text and "probability 40 %" in text and "30 steps" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"band": "-10:25"}, r"--band \(half-width\) 25° is outside 0.5..20°"),
        ({"band": "45:2"}, r"--band \(target\) 45° is outside -30..30°"),
        ({"duty_pct": 150}, r"--duty 150% is outside 0..100%"),
        ({"duration_ms": 20}, r"--duration-ms 20 ms is outside 50..1000 ms"),
        ({"max_ms": 100}, r"--max-ms 100 ms is below --duration-ms 300 ms"),
        ({"every": 0}, r"--every 0 steps is outside 1..100"),
        ({"probability_pct": 101}, r"--probability 101% is outside 0..100%"),
        ({"spm": 300}, r"--spm 300 steps/min is outside 40..200"),
        ({"pulse_ms": 400}, r"--pulse-ms 400 ms is outside 20..250"),
        ({"block": "0:5"}, r"--block \(cued steps\) 0 steps is outside 1..1000"),
        ({"toe_in_pattern": "buzz"}, r"--toe-in-pattern 'buzz': no such pattern"),
        ({"mode": "loud"}, r"--mode 'loud': expected one of off, band, metronome"),
        ({"every": 2, "probability_pct": 50}, r"two different schedules"),
    ],
)
def test_bad_options_are_refused_in_their_own_words(options: dict[str, object], message: str) -> None:
    with pytest.raises(CueSettingsError, match=message):
        apply_cue_options(Settings(), **options)


def test_check_settings_agrees_with_the_protocol_validator() -> None:
    assert check_settings(Settings()) == Settings()
    with pytest.raises(CueSettingsError, match="offset 6"):
        check_settings(Settings(fpa_half_width_cdeg=10))


def test_pattern_edges_and_prng() -> None:
    assert pattern_edges_ms(CuePattern.LONG, 300) == [300]
    assert pattern_edges_ms(CuePattern.SHORT_SHORT, 300) == [100, 200, 300]
    assert pattern_edges_ms(CuePattern.TRIPLE, 250) == [50, 100, 150, 200, 250]
    assert pattern_edges_ms(CuePattern.LONG_SHORT, 400) == [200, 300, 400]
    x, period = 1, 0
    while True:
        x = xorshift16(x)
        period += 1
        if x == 1:
            break
    assert period == 65535


def test_reference_decisions_follow_band_schedule_and_blocks() -> None:
    settings = apply_cue_options(Settings(), mode="band", band="5:2", every=2, block="3:2")
    steps = list(range(1, 11))
    fpas = [2000, 2000, 500, 2000, -100, 2000, 2000, 2000, 650, 2000]
    run = CueEngine(settings).decide(steps, fpas)
    reasons = [d.reason for d in run.decisions_]
    assert reasons == [1, 1, 0, 1, 2, 1, 1, 1, 0, 1]
    outcomes = [d.outcome for d in run.decisions_]
    # blocks: steps 1-3 and 6-8 give feedback, 4-5 and 9-10 do not; every 2nd eligible step cued
    assert outcomes == [1, 0, None, 3, 3, 1, 0, 1, None, 3]
    assert run.cued_steps_ == [2, 7]
    scaled = apply_cue_options(Settings(), band="0:2", duration_ms=200, scale_ms_per_deg=50, max_ms=600)
    durations = [d.duration_ms for d in CueEngine(scaled).decide([1, 2, 3], [700, -500, 3000]).decisions_]
    assert durations == [450, 350, 600]


# --------------------------------------------------------------------------- `insole cue`


def _cli(argv: list[str]) -> int:
    """`insole cue ...` through the command's own parser (as insole.cli registers it)."""
    parser = argparse.ArgumentParser(prog="insole")
    cue_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.mark.micropython
def test_cue_set_persists_on_the_insole_and_show_reads_it_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--simulate", "--settings-dir", str(tmp_path / "settings")]
    assert _cli(["cue", "set", *sim, "--mode", "band", "--band", "-10:2", "--toe-in-pattern", "triple",
                 "--every", "3", "--block", "40", "--duty", "75", "--side", "left"]) == 0  # fmt: skip
    written = capsys.readouterr().out
    assert "band:        -10° ± 2°" in written and "triple (3)" in written and "side:        left" in written
    # A new firmware process on the same settings directory: the settings survived.
    assert _cli(["cue", "show", *sim]) == 0
    assert capsys.readouterr().out == written
    with pytest.raises(CueSettingsError, match="half-width"):
        _cli(["cue", "set", *sim, "--band", "-10:25"])
    with pytest.raises(UserError, match="nothing to set"):
        _cli(["cue", "set", *sim])
    assert _cli(["cue", "show", *sim]) == 0
    assert capsys.readouterr().out == written  # the refused change left everything as it was


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    return tmp_path / "settings"


@pytest.fixture
def link(settings_dir: Path) -> Iterator[SerialLink]:
    with SimulatedBoard(side="left", settings_dir=settings_dir) as board, SerialLink(board.port) as lk:
        lk.command(Command(CommandCode.PING), timeout_s=10)
        yield lk


def _settings(link: SerialLink) -> Settings:
    body = link.command(Command(CommandCode.GET_SETTINGS), PacketType.SETTINGS).body
    assert isinstance(body, Settings)
    return body


@pytest.mark.micropython
def test_device_defaults_match_the_host_defaults(link: SerialLink) -> None:
    assert _settings(link) == Settings()


@pytest.mark.micropython
def test_device_refuses_bad_settings_keeps_the_old_and_persists_nothing(link: SerialLink, settings_dir: Path) -> None:
    good = apply_cue_options(Settings(), mode="band", band="4:3", probability_pct=30, seed=5)
    link.request(good)
    stored = (settings_dir / "settings.bin").read_bytes()
    assert len(stored) == 36 + 2
    for offset, value in ((14, (100).to_bytes(2, "little")), (8, b"\x07"), (0, b"\x01")):
        payload = bytearray(good.payload())
        payload[offset : offset + len(value)] = value
        link.write_raw(frame(encode_packet(PacketType.SETTINGS, 900 + offset, 0, bytes(payload))))
        with pytest.raises(DeviceError) as info:
            link.wait_for(PendingRequest(PacketType.SETTINGS, 900 + offset))
        assert (info.value.code, info.value.detail) == (ErrorCode.BAD_VALUE, offset)
    assert _settings(link) == good
    assert (settings_dir / "settings.bin").read_bytes() == stored
    assert sorted(p.name for p in settings_dir.iterdir()) == ["settings.bin"]  # no temporary file left


@pytest.mark.micropython
@pytest.mark.parametrize(
    "content",
    [b"", b"\x01" * 18, Settings(cue_mode=1).payload()[:16] + b"\x00\x00", Settings(cue_mode=1).payload() + b"\x12\x34"],
    ids=["empty", "v1-length", "truncated", "bad-crc"],
)
def test_old_or_corrupt_settings_file_falls_back_to_defaults(settings_dir: Path, content: bytes) -> None:
    settings_dir.mkdir()
    (settings_dir / "settings.bin").write_bytes(content)
    with SimulatedBoard(settings_dir=settings_dir) as board, SerialLink(board.port) as lk:
        lk.command(Command(CommandCode.PING), timeout_s=10)
        assert _settings(lk) == Settings()


def _cues(packets: Sequence[DecodedPacket]) -> list[Cue]:
    return [p.body for p in packets if isinstance(p.body, Cue)]


@pytest.mark.micropython
def test_cue_test_command_is_logged_with_its_latency(link: SerialLink) -> None:
    link.command(Command.cue_test(150, 40))
    deadline = time.monotonic() + 3
    cues: list[Cue] = []
    while not cues and time.monotonic() < deadline:
        cues = _cues(list(link.inbox) + link.poll(0.2))
    (cue,) = cues
    assert (cue.reason, cue.outcome, cue.pattern, cue.duty_pct, cue.duration_ms) == (CueReason.TEST, 0, 1, 40, 150)
    assert cue.step_number is None and cue.latency_us is not None and cue.latency_us <= 10_000


@pytest.mark.micropython
def test_metronome_beats_at_the_set_rate_while_streaming(link: SerialLink) -> None:
    link.request(apply_cue_options(Settings(), mode="metronome", spm=120, pulse_ms=80, metronome_pattern="long"))
    link.command(Command.replay_begin(10000, 0, 1, side=0))
    received: list[tuple[float, Cue]] = []
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline:
        received += [(time.monotonic(), c) for c in _cues(link.poll(0.05))]
    link.command(Command(CommandCode.REPLAY_END))
    beats = [c for _, c in received]
    assert len(beats) >= 3
    assert [b.step_number for b in beats] == list(range(1, len(beats) + 1))
    assert all(b.reason == CueReason.METRONOME and b.duration_ms == 80 and b.cued for b in beats)
    due = [b.decision_ms for b in beats]
    assert all(later - earlier == 500 for earlier, later in itertools.pairwise(due)), due  # 120 steps/min
    assert all(b.motor_start_ms is not None and b.motor_start_ms - b.decision_ms <= 10 for b in beats)
    arrivals = [t for t, _ in received]
    assert all(0.35 < later - earlier < 0.65 for earlier, later in itertools.pairwise(arrivals))
    # Idle again: no more beats.
    time.sleep(0.6)
    assert not _cues(link.poll(0.1))


# --------------------------------------------------------------------------- a replayed walk


@pytest.mark.micropython
def test_replayed_walk_outside_the_band_is_cued_on_the_device(link: SerialLink) -> None:
    """Toes out 20° against a band of 5° ± 2°: every step with a foot angle needs "toe in"."""
    from insole.hil import replay_foot
    from insole.quantise import choose_pressure_scale
    from insole.sim import SensorModel, Walk, simulate_session

    session = simulate_session([Walk(n_steps=16, fpa_deg=20.0, fpa_sd_deg=0.5)], seed=4, sensors=SensorModel.ideal())
    stream = session.streams[0]
    assert stream.pressure is not None
    settings = apply_cue_options(Settings(), mode="band", band="5:2", toe_in_pattern="long", toe_out_pattern="triple")
    link.request(settings)
    replay = replay_foot(link, stream, choose_pressure_scale(stream.pressure))
    cues = _cues(link.drain_inbox())
    steps: list[Step] = replay.steps
    with_fpa = [s for s in steps if s.fpa_cdeg is not None]
    assert len(with_fpa) >= len(steps) // 2, "the firmware reported no foot progression angle for most steps"
    assert cues, "out-of-band steps but no cue"
    by_step = {s.step_number: s for s in steps}
    assert not any(s.partial for s in steps), "pressure stances are always whole"
    last_to = max(s.to_index or 0 for s in steps)
    for cue in cues:
        step = by_step.get(cue.step_number or 0)  # the CUE's step followed at its toe-off...
        if step is None:
            # ...unless its stance was the last one, still standing when the recording ended.
            assert cue is cues[-1] and (cue.decision_index or 0) > last_to, cue
            continue
        assert cue.fpa_cdeg == step.fpa_cdeg
        assert (step.ic_index or 0) <= (cue.decision_index or 0) <= (step.to_index or 0)  # decided during that stance
    for cue in cues:
        assert (cue.target_cdeg, cue.half_width_cdeg) == (500, 200)
        expected_reason = CueReason.TOE_IN if (cue.fpa_cdeg or 0) > 700 else CueReason.TOE_OUT
        assert cue.reason == expected_reason
        assert cue.pattern == (CuePattern.LONG if expected_reason == CueReason.TOE_IN else CuePattern.TRIPLE)
        assert cue.outcome == CueOutcome.CUED and cue.latency_us is not None and cue.latency_us <= 10_000
        assert cue.motor_start_ms is not None and cue.motor_start_ms - cue.decision_ms <= 10
    # Exactly the steps the host's reference model picks (out of band, every step).
    expected = CueEngine(settings).decide([s.step_number for s in with_fpa], [s.fpa_cdeg or 0 for s in with_fpa])
    assert [c.step_number for c in cues if c.step_number in by_step] == expected.cued_steps_
    assert sum(c.reason == CueReason.TOE_IN for c in cues) >= len(cues) * 0.8


@pytest.mark.micropython
def test_faded_schedule_on_the_device_matches_the_reference_model(link: SerialLink) -> None:
    """Probability 50 % (seeded) inside no-feedback blocks: the device logs every
    out-of-band step with its outcome, and the host's model predicts each one."""
    from insole.hil import replay_foot
    from insole.quantise import choose_pressure_scale
    from insole.sim import SensorModel, Walk, simulate_session

    session = simulate_session([Walk(n_steps=24, fpa_deg=20.0, fpa_sd_deg=0.5)], seed=5, sensors=SensorModel.ideal())
    stream = session.streams[1]
    assert stream.pressure is not None
    settings = apply_cue_options(Settings(), mode="band", band="5:2", probability_pct=50, seed=321, block="3:2")
    link.request(settings)
    replay = replay_foot(link, stream, choose_pressure_scale(stream.pressure))
    cues = _cues(link.drain_inbox())
    assert any(s.fpa_cdeg is not None for s in replay.steps), "the firmware reported no foot progression angle"
    decided = [c for c in cues if c.step_number is not None]
    expected = CueEngine(settings).decide([c.step_number or 0 for c in decided], [c.fpa_cdeg or 0 for c in decided])
    assert [c.outcome for c in decided] == [d.outcome for d in expected.decisions_]
    outcomes = {c.outcome for c in decided}
    assert CueOutcome.NO_FEEDBACK_BLOCK in outcomes and CueOutcome.CUED in outcomes
    assert all((c.motor_start_ms is None) == (c.outcome != CueOutcome.CUED) for c in decided)


# --------------------------------------------------------------------------- the unix board's clock


@pytest.mark.micropython
@pytest.mark.parametrize("ppm", [0.0, 100_000.0, -50_000.0])
def test_unix_board_clock_runs_off_by_insole_clock_ppm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ppm: float) -> None:
    """INSOLE_CLOCK_PPM skews the simulated device's clock (packet time_ms) for clock-sync tests."""
    monkeypatch.setenv("INSOLE_CLOCK_PPM", str(ppm))
    with SimulatedBoard(settings_dir=tmp_path / "settings") as board, SerialLink(board.port) as lk:
        lk.command(Command(CommandCode.PING), timeout_s=10)
        first = lk.command(Command(CommandCode.PING))
        t0 = time.monotonic()
        time.sleep(1.0)
        last = lk.command(Command(CommandCode.PING))
        host_ms = (time.monotonic() - t0) * 1000
    device_ms = last.header.time_ms - first.header.time_ms
    assert device_ms == pytest.approx(host_ms * (1 + ppm * 1e-6), abs=15)


@pytest.mark.micropython
def test_mount_yaw_is_set_kept_and_range_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from insole.cli import main

    settings_dir = tmp_path / "settings"
    assert main(["cue", "set", "--simulate", "--settings-dir", str(settings_dir), "--mount-yaw", "-7.5"]) == 0
    assert main(["cue", "show", "--simulate", "--settings-dir", str(settings_dir)]) == 0
    assert "IMU yaw:     -7.5°" in capsys.readouterr().out
    assert main(["cue", "set", "--simulate", "--settings-dir", str(settings_dir), "--mount-yaw", "31"]) == 2
    assert "--mount-yaw 31° is outside -30..30°" in capsys.readouterr().err
