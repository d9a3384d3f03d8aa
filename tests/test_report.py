"""`insole report`: a simulated session's numbers against its exact ground truth, and the
HTML page rendered in Chromium and checked by its pixels.

One simulated session (forward walking, backward walking, two sets of heel raises) is
replayed through the firmware once for the module; a second recording carries that
replay's events as packets (with a SETTINGS band and the CUE decisions the device
would log), so the report's event path is tested without a second firmware run.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from insole import cli
from insole.analysis import Band, SessionResults, session_measures, session_results
from insole.analysis.measures import strides, walking_minutes
from insole.gait.cue import CueEngine
from insole.hil import FootReplay, replay_recording
from insole.protocol import Cue, CueMode, CuePattern, Settings
from insole.recording import RecordingWriter, write_recording
from insole.sim import HeelRaises, SessionPlan, SimulatedSession, Stand, Walk, simulate_session

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.micropython, pytest.mark.ui]

PRESSURE_SCALE = 0.01
# The feet walk 12° and 4°: with a band of 10° ± 3° every left step is in it, every right
# step below it, at least a degree away from either edge.
BAND = Band(10.0, 3.0)
PLAN = SessionPlan(
    [
        Stand(duration_s=2.0),
        Walk(n_steps=24, fpa_deg=(12.0, 4.0), fpa_sd_deg=0.3, cadence_spm=110.0),
        Stand(duration_s=2.0),
        Walk(
            n_steps=12, direction="backward", fpa_deg=(12.0, 4.0), fpa_sd_deg=0.3, cadence_spm=90.0, stride_length_m=0.7
        ),
        Stand(duration_s=2.0),
        # Sets 16 s apart: the device starts a new set after 15 s without a repetition.
        HeelRaises(reps=3, hold_s=1.5, rest_s=1.0, sets=2, set_rest_s=16.0),
        Stand(duration_s=2.0),
    ]
)


@dataclass
class Session:
    simulated: SimulatedSession
    samples_only: Path  # a simulated recording: no events, results from a replay
    with_events: Path  # the same samples and the replay's events as packets
    replays: list[FootReplay]


def _cue_packets(replay: FootReplay, settings: Settings) -> list[bytes]:
    """The CUE packets the device logs in band mode for this foot's steps (insole.gait.cue's twin)."""
    steps = [s for s in replay.steps if s.fpa_cdeg is not None]
    engine = CueEngine(settings).decide([s.step_number for s in steps], [int(s.fpa_cdeg or 0) for s in steps])
    packets: list[bytes] = []
    for step, decision in zip(steps, engine.decisions_, strict=True):
        if decision.outcome is None:
            continue  # in band: no CUE
        cue = Cue(step_number=step.step_number, decision_index=step.to_index, decision_ms=0, motor_start_ms=0,
                  latency_us=800, fpa_cdeg=step.fpa_cdeg, target_cdeg=settings.fpa_target_cdeg,
                  half_width_cdeg=settings.fpa_half_width_cdeg, reason=decision.reason, outcome=decision.outcome,
                  pattern=decision.pattern or CuePattern.LONG, duty_pct=60, duration_ms=decision.duration_ms or 300,
                  out_of_band_steps=None)  # fmt: skip
        packets.append(cue.encode(seq=len(packets)))
    return packets


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("report")
    simulated = simulate_session(PLAN, seed=5)
    samples_only = folder / "walk.insole"
    write_recording(samples_only, simulated.streams, source="simulated", pressure_scales=[PRESSURE_SCALE] * 2)
    replays = replay_recording(simulated.streams, [PRESSURE_SCALE] * 2)
    with_events = folder / "worn.insole"
    write_recording(with_events, simulated.streams, source="device", pressure_scales=[PRESSURE_SCALE] * 2)
    settings = Settings(cue_mode=CueMode.FOOT_ANGLE, fpa_target_cdeg=1000, fpa_half_width_cdeg=300)
    with RecordingWriter(with_events, {}, append=True) as writer:
        for stream_id, replay in enumerate(replays):
            writer.append(stream_id, settings.encode(), 0)
            for seq, step in enumerate(replay.steps):
                writer.append(stream_id, step.encode(seq=seq), 0)
            for packet in _cue_packets(replay, settings):
                writer.append(stream_id, packet, 0)
            for seq, heel_raise in enumerate(replay.raises):
                writer.append(stream_id, heel_raise.encode(seq=seq), 0)
    yield Session(simulated, samples_only, with_events, replays)


@pytest.fixture(scope="module")
def replayed(session: Session) -> SessionResults:
    return session_results(session.samples_only, band=BAND)


def test_replayed_results_match_the_ground_truth(session: Session, replayed: SessionResults) -> None:
    truth = session.simulated
    assert replayed.events_from == "replay"
    # Exact where the simulation is: steps and heel raises, per foot, sets and reps.
    for side in ("left", "right"):
        assert sum(s.side == side for s in replayed.steps) == sum(s.side == side for s in truth.steps)
        mine = [(r.set, r.rep) for r in replayed.raises if r.side == side]
        assert mine == [(r.set, r.rep) for r in truth.raise_truth if r.side == side]
    m = session_measures(replayed)
    assert m["steps"]["total"] == len(truth.steps) == 36 - 2 * 3 + 6  # footfalls minus each bout's first and closing
    assert m["heel_raises"]["sets"] == 2 and m["heel_raises"]["reps"] == 6
    for per_side in m["heel_raises"]["per_side"].values():
        assert [s["reps"] for s in per_side["sets"]] == [3, 3]
        assert per_side["hold_s"]["median"] == pytest.approx(1.5, abs=0.2)
    # Walking minutes measured as the truth's own contacts give them (the same stride rule).
    exact = walking_minutes(strides([(s.side, s.ic_s, s.direction) for s in truth.steps]), ["left", "right"])
    for key in ("walking_min", "backward_min", "brisk_min"):
        assert m["walking"][key] == pytest.approx(exact[key], abs=0.01), key
    backward_plan_min = 12 * 60.0 / 90.0 / 60.0  # the plan's backward bout: 12 footfalls at 90 steps/min
    assert m["walking"]["backward_min"] == pytest.approx(backward_plan_min, abs=0.05)
    assert m["walking"]["brisk_min"] == pytest.approx(m["walking"]["walking_min"] - exact["backward_min"], abs=0.01)
    # The band: every left step in it, every right step below it.
    assert m["per_side"]["left"]["in_band_pct"] == 100.0 and m["per_side"]["right"]["in_band_pct"] == 0.0
    assert m["foot_angle"]["in_band_pct"] == pytest.approx(50.0)
    assert m["symmetry"]["parameters"]["steps"]["lsi"] == 1.0
    assert m["symmetry"]["fpa_difference_deg"] == pytest.approx(8.0, abs=0.5)
    directions = sum(
        mine.direction == exact_step.direction
        for mine, exact_step in zip(replayed.steps, sorted(truth.steps, key=lambda s: (s.ic_s, s.side)), strict=True)
    )
    assert directions >= len(truth.steps) - 2
    assert m["cues"]["delivered"] == 0  # a replay delivers no cues


def test_events_give_the_replays_numbers_and_the_cues(session: Session, replayed: SessionResults) -> None:
    worn = session_results(session.with_events)  # the band from its SETTINGS packets
    assert worn.events_from == "recording" and worn.band_source == "recording"
    assert [(s.side, s.ic_index, s.fpa_deg, s.in_band) for s in worn.steps] == [
        (s.side, s.ic_index, s.fpa_deg, s.in_band) for s in replayed.steps
    ]
    measures = session_measures(worn)
    right_steps = sum(1 for s in worn.steps if s.side == "right")
    # Every right step is out of band (toes too far in: a toe-out cue), every left one in it.
    assert measures["cues"]["delivered"] == right_steps
    assert measures["cues"]["by_reason"] == {"toe_out": right_steps}
    assert measures["cues"]["by_side"] == {"left": 0, "right": right_steps}
    assert measures["walking"] == session_measures(replayed)["walking"]


def _external_references(page: str) -> list[str]:
    return [url for url in re.findall(r'(?:src|href)="([^"]*)"', page) if not url.startswith(("data:", "#"))]


def _side_pixels(png: bytes) -> dict[str, int]:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)

    def near(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(rgb)).sum(axis=1) < 60).sum())

    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    return {"left": near((31, 119, 180)), "right": near((255, 127, 14)), "colours": len(np.unique(packed))}


def test_report_command_html_in_chromium(
    session: Session, tmp_path: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium: Browser = browser
    second = tmp_path / "worn-2.insole"
    second.write_bytes(session.with_events.read_bytes())
    out = tmp_path / "course.html"
    assert cli.main(["report", str(session.with_events), str(second), "-o", str(out)]) == 0
    assert "2 session(s)" in capsys.readouterr().out
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["schema"] == "insole-report" and [s["session"] for s in document["sessions"]] == ["worn", "worn-2"]
    assert document["sessions"][0] == json.loads(json.dumps(session_measures(session_results(session.with_events))))
    assert document["trend"]["measures"]["steps"] == [document["sessions"][0]["steps"]["total"]] * 2
    assert document["program"] is None  # no PROGRAM_EVENTs: no Program section
    page_text = out.read_text()
    assert _external_references(page_text) == []
    assert "diagnos" in page_text  # the page says it makes no diagnosis

    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(out.as_uri())
        plots = page.locator("img.plot")
        names = [plots.nth(k).get_attribute("data-plot") for k in range(plots.count())]
        assert names == ["trend"] + ["symmetry", "foot_angle", "in_band", "cadence", "heel_raises"] * 2
        for k, name in enumerate(names):
            image = plots.nth(k)
            assert image.evaluate("img => img.complete && img.naturalWidth > 0"), name
            if k > 5:
                continue  # the second session's figures are the first's again: loaded is enough
            counts = _side_pixels(image.screenshot())
            assert counts["colours"] > 20, name  # drawn, not blank
            if name in ("foot_angle", "cadence", "heel_raises"):
                assert counts["left"] > 30 and counts["right"] > 30, (name, counts)  # both feet's marks
        page.locator("img.plot[data-plot=foot_angle]").first.scroll_into_view_if_needed()
        shown = _side_pixels(page.screenshot())  # the page as shown, with the figure in view
        assert shown["left"] > 100 and shown["right"] > 100
    finally:
        page.close()


def test_report_refuses_bad_input(session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    assert cli.main(["report", str(session.with_events), "-o", str(out)]) == 2
    assert "use -f/--force" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "missing.insole"), "-o", str(tmp_path / "x.html")]) == 2
    assert cli.main(["report", str(session.with_events), "-o", str(tmp_path / "y.html"), "--band", "10"]) == 2
    assert cli.main(["report", str(session.with_events), "-o", str(tmp_path / "z.json")]) == 2
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


def test_partial_stances_count_once_and_skip_what_they_miss(tmp_path: Path) -> None:
    # IMU-only insoles report the stances at a walk's edges in halves (docs/protocol.md):
    # a step is counted once, its missing times stay out of the statistics.
    from partial_stances import LEFT_STANCES, RIGHT_STANCES, write_partial_stance_recording

    path = tmp_path / "edges.insole"
    write_partial_stance_recording(path)
    results = session_results(path)
    assert [(s.side, s.ic_index, s.to_index) for s in results.steps][:3] == [
        ("left", None, 40), ("left", 140, 200), ("right", 195, 255),
    ]  # fmt: skip
    out = tmp_path / "edges.html"
    assert cli.main(["report", str(path), "-o", str(out)]) == 0
    m = json.loads(out.with_suffix(".json").read_text())["sessions"][0]
    assert m == json.loads(json.dumps(session_measures(results)))
    assert m["steps"] == {
        "total": LEFT_STANCES + RIGHT_STANCES, "left": LEFT_STANCES, "right": RIGHT_STANCES,
        "forward": 9, "backward": 0, "unknown": 1,
    }  # fmt: skip
    assert sum(m["over_time"]["steps"]) == LEFT_STANCES + RIGHT_STANCES
    left = m["per_side"]["left"]
    assert (left["stance_s"]["n"], left["stance_s"]["max"]) == (3, pytest.approx(0.6))  # not the rest 360..900
    assert (left["swing_s"]["n"], m["per_side"]["right"]["swing_s"]["n"]) == (5, 2)
    assert m["walking"]["strides"] == 6  # between the contacts seen: 3 per foot
    assert m["foot_angle"]["steps_with_angle"] == 9
    assert m["foot_angle"]["in_band_pct"] == pytest.approx(100.0 * 8 / 9)


def test_program_section_from_the_insoles_program_events(
    tmp_path: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three recordings of a synthetic course (tests/program_course.py): one session done
    # whole, one interrupted and resumed; the JSON's program object is the analysis's.
    from insole.analysis.program import ProgramAnalysis, program_json, recording_records
    from program_course import course, write_course_recording

    paths = []
    for recording in course():
        paths.append(tmp_path / f"{recording.name}.insole")
        write_course_recording(paths[-1], recording)
    out = tmp_path / "program.html"
    assert cli.main(["report", *map(str, paths), "-o", str(out)]) == 0
    assert "3 session(s)" in capsys.readouterr().out
    program = json.loads(out.with_suffix(".json").read_text())["program"]
    expected = ProgramAnalysis().analyse([recording_records(session_results(p)) for p in paths])
    assert program == json.loads(json.dumps(program_json(expected)))
    assert [s["label"] for s in program["sessions"]] == ["7/1", "7/2"]
    assert program["adherence"]["sessions_completed"] == 1 and program["adherence"]["blocks_reached_goal"] == 5
    assert program["trend"]["measures"]["full_reps"] == [4, None]

    chromium: Browser = browser
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(out.as_uri())
        section = page.locator("section#program")
        assert section.locator("h3.program-session").all_inner_texts() == [
            "Program 7, session 1: completed", "Program 7, session 2: not completed, resumed 1×",
        ]  # fmt: skip
        rows = section.locator("h3.program-session + p + table tbody tr")
        cells = [rows.nth(k).locator("td").all_inner_texts() for k in range(rows.count())]
        raises = [row for row in cells if row[0] == "4. heel raises"]
        assert [row[2:5] for row in raises] == [["left", "4 / 4", "goal reached"], ["right", "4 / 4", "goal reached"]]
        assert raises[0][5] == "full reps 4, short holds 1, sets 2"
        assert cells[-1][4] == "not ended (ran 2×)"
        for name in ("program_trend", "program_symmetry"):
            image = section.locator(f"img.plot[data-plot={name}]")
            assert image.evaluate("img => img.complete && img.naturalWidth > 0"), name
            assert _side_pixels(image.screenshot())["colours"] > 20, name  # drawn, not blank
    finally:
        page.close()
