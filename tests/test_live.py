"""`insole record --simulate` and `insole demo`: live streaming from simulated insoles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from insole.cli import main
from insole.recording import read_recording


@pytest.mark.micropython
def test_record_simulated_insoles_keeps_every_sample(tmp_path: Path) -> None:
    out = tmp_path / "live.insole"
    assert main(["record", "--simulate", "-o", str(out), "--duration-s", "3"]) == 0
    recording = read_recording(out)
    assert [s.side for s in recording.streams] == ["left", "right"]
    assert recording.bad_frames == 0 and not recording.torn_tail
    for stream, lost in zip(recording.streams, recording.lost_samples, strict=True):
        assert lost == 0
        assert stream.n_samples >= 200  # ~3 s at 100 Hz
        assert stream.pressure is not None and not np.isnan(stream.pressure).any()


def test_record_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "exists.insole"
    out.write_bytes(b"")
    assert main(["record", "--simulate", "-o", str(out)]) == 2


@pytest.mark.micropython
def test_demo_runs_and_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.insole"
    assert main(["demo", "--duration-s", "2", "-o", str(out), "--web", "--no-browser"]) == 0
    assert read_recording(out).streams[0].n_samples >= 100
    assert "dashboard: http://127.0.0.1:" in capsys.readouterr().out  # served on loopback, without a token


def test_demo_walk_shows_walking_cues_and_heel_raises() -> None:
    from insole.commands.demo import DEMO_BAND_DEG, live_demo_plan
    from insole.sim import simulate_session

    sim = simulate_session(live_demo_plan(), rate_hz=100.0, seed=1)
    low, high = DEMO_BAND_DEG[0] - DEMO_BAND_DEG[1], DEMO_BAND_DEG[0] + DEMO_BAND_DEG[1]
    for side in ("left", "right"):
        angles = [a for s in sim.steps if s.side == side and (a := s.fpa_deg) is not None]
        cued = [a for a in angles if not low <= a <= high]
        assert len(cued) >= 4 and len(angles) - len(cued) >= 3, (side, angles)  # cues fire, then stop
        assert sum(r.side == side for r in sim.raises) == 3
    assert sim.streams[0].n_samples / sim.streams[0].rate_hz <= 35  # a demo, not a session


def test_terminal_view_fits_80_columns_and_says_how_to_stop() -> None:
    from rich.console import Console

    from insole.link import InsoleLink
    from insole.protocol import CueMode, DecodedPacket, Settings, Step
    from insole.session.live import LiveSession
    from insole.session.terminal import render

    class Quiet(InsoleLink):
        port = "quiet"
        on_packet_bytes = None

        def request(self, body, answer=None, timeout_s=0.0):
            raise AssertionError("the view asks the insoles nothing")

        def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
            return []

        def drain_inbox(self) -> list[DecodedPacket]:
            return []

    session = LiveSession([("left", Quiet()), ("right", Quiet())])
    for k, foot in enumerate(session.feet):
        foot.settings = Settings(cue_mode=CueMode.FOOT_ANGLE, fpa_target_cdeg=500, fpa_half_width_cdeg=300)
        foot.steps.append(Step(ic_index=100, to_index=160, stance_ms=610, swing_ms=470, fpa_cdeg=1430 - 900 * k,
                               direction=1, flags=3, peak_pressure=None, medial_share=None, stride_mm=1300,
                               speed_mms=1210, step_number=1))
    console = Console(width=80, record=True, color_system=None)
    console.print(render(session, "insole demo: simulated walk, 12.0 s of 30 s (ble)", footer="dashboard: http://127.0.0.1:8080/"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for shown in ("Ctrl-C to stop", "+14.3 OUT", "+5.3 in band", "+2.0…+8.0", "cues", "1.30", "1.21"):
        assert shown in text, shown


@pytest.mark.micropython
def test_mount_yaw_setting_is_taken_off_live_foot_angles() -> None:
    import time
    from contextlib import ExitStack

    from insole.emulation.insoles import open_simulated_insoles
    from insole.protocol import Settings
    from insole.session.live import LiveSession
    from insole.sim import Stand, Walk, simulate_session

    sim = simulate_session([Stand(duration_s=1.0), Walk(duration_s=40.0, fpa_deg=10.0)], rate_hz=104.0, seed=2)
    medians = []
    for yaw_cdeg in (0, 500):
        with ExitStack() as stack:
            insoles = open_simulated_insoles(stack, sim.streams[:1])
            insoles.links[0][1].request(Settings(imu_yaw_cdeg=yaw_cdeg))
            session = LiveSession(insoles.links, layouts=insoles.layouts)
            session.start()
            started = time.monotonic()
            while time.monotonic() - started < 7.0:
                session.poll(0.1)
            session.stop()
            angles = [s.fpa_deg for s in session.feet[0].steps if s.fpa_deg is not None]
            assert len(angles) >= 3
            medians.append(float(np.median(angles)))
    assert abs(medians[0] - 10.0) < 1.5
    assert abs((medians[0] - medians[1]) - 5.0) < 0.5  # left foot: FPA − δ


def test_live_session_counts_a_partial_stance_once_and_shows_the_wearer_standing() -> None:
    # IMU-only insoles report the stances at a walk's edges in halves (docs/protocol.md).
    from collections import deque

    from rich.console import Console

    from insole.link import InsoleLink
    from insole.protocol import DecodedPacket, Step, decode_packet
    from insole.session.live import FootState, LiveSession
    from insole.session.terminal import render
    from insole.web.snapshot import foot_frame
    from partial_stances import LEFT_RECORDS, LEFT_STANCES, RIGHT_RECORDS, RIGHT_STANCES

    class Replaying(InsoleLink):
        port = "replaying"
        on_packet_bytes = None

        def __init__(self, records: tuple[Step, ...]) -> None:
            self.waiting = deque(decode_packet(step.encode(seq)) for seq, step in enumerate(records))

        def request(self, body, answer=None, timeout_s=0.0):
            raise AssertionError("the session asks the insoles nothing here")

        def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
            return [self.waiting.popleft()] if self.waiting else []  # one STEP per poll

        def drain_inbox(self) -> list[DecodedPacket]:
            return []

    session = LiveSession([("left", Replaying(LEFT_RECORDS)), ("right", Replaying(RIGHT_RECORDS))])
    left, right = session.feet
    for _ in range(4):  # left: up to the stance it came to rest in
        session.poll(0.0)
    assert (left.step_count, left.last_step) == (4, LEFT_RECORDS[3])
    assert foot_frame(left)["last_step"]["standing"] is True
    console = Console(width=80, record=True, color_system=None)
    console.print(render(session, "partial stances"))
    assert "600, standing" in console.export_text()  # typical stance 600 ms, and standing now
    session.poll(0.0)  # its toe-off: the same step
    assert left.step_count == 4 and left.last_step is not None and left.last_step.to_index == 900
    assert foot_frame(left)["last_step"]["standing"] is False
    for _ in range(4):
        session.poll(0.0)
    assert (left.step_count, right.step_count) == (LEFT_STANCES, RIGHT_STANCES)
    assert foot_frame(left)["steps"] == LEFT_STANCES and foot_frame(left)["last_step"]["standing"] is True
    assert [t for t, _fpa in left.fpa_history] == [1.4, 2.5, 3.6, 10.0, 11.1]  # one angle per stance
    assert left.cadence_spm() == pytest.approx(120.0 / 1.1)  # strides between the contacts seen
    assert left.recent("stance_ms") == 600.0

    # A backfill may bring a stance's first half after its second: still one step.
    late = FootState("left", Replaying(()), 0)
    late.add_step(LEFT_RECORDS[4])
    late.add_step(LEFT_RECORDS[3])
    assert late.step_count == 1 and list(late.steps) == [Step(360, 900, None, 500, 520, 1, 2, None, None, 1290, 1190, 4)]
    assert late.fpa_history == [(3.6, 5.2)]


def test_live_program_block_per_foot_with_progress_as_it_happens() -> None:
    # One insole's program session (tests/program_course.py) arriving as the device sends
    # it: each record at its sample index, a STEP before the BLOCK_END it causes.
    from collections import deque

    from insole.link import InsoleLink
    from insole.protocol import DecodedPacket, HeelRaise, Program, ProgramEvent, Step, decode_packet
    from insole.session.live import LiveSession
    from insole.web.snapshot import foot_frame
    from program_course import PROGRAM, session_one

    def index(body: Step | HeelRaise | ProgramEvent) -> tuple[int, int]:
        if isinstance(body, Step):
            return (body.to_index if body.to_index is not None else body.ic_index or 0), 0
        if isinstance(body, HeelRaise):
            return body.end_index, 0
        assert isinstance(body, ProgramEvent)
        return body.sample_index, 1

    records = session_one("left")
    logged: list[Step | HeelRaise | ProgramEvent] = [*records.steps, *records.raises, *records.program_events]
    bodies: list[Program | Step | HeelRaise | ProgramEvent] = [PROGRAM, *sorted(logged, key=index)]

    class Replaying(InsoleLink):
        port = "replaying"
        on_packet_bytes = None

        def __init__(self) -> None:
            self.waiting = deque(decode_packet(body.encode(seq)) for seq, body in enumerate(bodies))

        def request(self, body, answer=None, timeout_s=0.0):
            raise AssertionError("the session asks the insole nothing here")

        def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
            return [self.waiting.popleft()] if self.waiting else []

        def drain_inbox(self) -> list[DecodedPacket]:
            return []

    session = LiveSession([("left", Replaying())])
    (left,) = session.feet

    def poll_until(done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while left.program.block is None or not done(foot_frame(left)["program"]):
            assert session.feet[0].link.waiting, "the records ran out"  # type: ignore[attr-defined]
            session.poll(0.0)
        return foot_frame(left)["program"]

    assert foot_frame(left)["program"] is None  # no program event yet
    shown = poll_until(lambda p: p["block"]["done"] == 2)
    assert shown["session"] == 1 and shown["blocks"] == 5 and not shown["resumed"]
    assert shown["block"] == {"number": 1, "kind": "fpa_baseline", "goal": 4, "done": 2, "unit": "steps",
                              "band_deg": None, "ended": None, "last_signal": None}  # fmt: skip
    shown = poll_until(lambda p: p["block"]["ended"] == "goal")
    assert shown["block"]["done"] == 4 and shown["block"]["band_deg"] == [13.38, 19.38]  # the band it set
    shown = poll_until(lambda p: p["block"]["kind"] == "backward_walk" and p["block"]["done"] == 2)
    assert shown["block"]["unit"] == "s"  # counted live: contacts 900, 1000, 1100 (two 1-s gaps)
    shown = poll_until(lambda p: p["block"]["last_signal"] == "hold_reached")
    assert (shown["block"]["kind"], shown["block"]["done"], shown["block"]["unit"]) == ("heel_raises", 1, "reps per set")
    shown = poll_until(lambda p: p["session_done"])
    assert shown["block"]["kind"] == "walk" and (shown["block"]["done"], shown["block"]["ended"]) == (5, "goal")
