"""Pressure-based gait events, walking direction and heel raises: firmware and host reference.

The firmware runs under the MicroPython unix port (``insole.hil.replay_recording``, one
simulated board per foot); the host twin (``insole.gait.contact`` and
``insole.gait.gait``) implements the same state machines and must agree with it. Floors
here are generous versions of the validation table's goals
(``insole.validation.pressure_cases`` computes the table's numbers on all recordings).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared_data
from insole.gait.gait import HeelRaiseDetection, PressureStepDetection, hold_missing
from insole.hil import FootReplay, replay_recording
from insole.importers.moticon import read_moticon
from insole.model import FootStream
from insole.protocol import NA_U16
from insole.quantise import choose_pressure_scale, stream_counts
from insole.sim import Segment, SensorModel, Stand, Subject, Walk, simulate_session
from insole.validation.metrics import match_events, time_reversed
from insole.validation.pressure_cases import agreement, pressure_only, score_gaitpdb, score_moticon, score_recordings
from insole.validation.references import ForceThresholdEvents, gaitpdb_reference, moticon_reference
from insole.validation.simulated import heel_raise_plan

GAITPDB_SUBSET = ("GaCo01_01.txt", "GaPt13_01.txt")  # a control and a Parkinsonian walk
MOTICON_FILES = ("230927_102114.txt", "230927_102137.txt")
SIM_RATE_HZ = 104.0


def _gaitpdb(name: str) -> Path:
    return require_shared_data("gaitpdb", name)


def _moticon(name: str) -> Path:
    return require_shared_data("moticon_opengo", name)


def _replay(streams: list[FootStream]) -> list[FootReplay]:
    return replay_recording(streams, [choose_pressure_scale(s.pressure) for s in streams])


def _pressure_steps(stream: FootStream) -> PressureStepDetection:
    """The host twin's steps on the stream's counts, as the firmware receives them."""
    return PressureStepDetection().detect(stream_counts(stream), stream.rate_hz)


def _heel_raises(stream: FootStream, use_pitch_rate: bool = True) -> HeelRaiseDetection:
    return HeelRaiseDetection(use_pitch_rate=use_pitch_rate).detect(stream_counts(stream), stream.rate_hz)


# --------------------------------------------------------------------------- hand-made sums


def test_slow_first_loading_backtracks_to_its_onset() -> None:
    # The host twin on firmware/tests/fwtest_contact.py's case: unloaded, then a foot
    # set down slowly (2 counts a sample). The stance is confirmed at sample 71, 31
    # samples after its onset at 40; the walk back is bounded by the 64 samples of
    # history before the confirming sample, not by sample 64 of the stream.
    from insole.gait.contact import PressureContact

    totals = [0] * 40 + list(range(2, 202, 2)) + [200] * 40
    contact = PressureContact(10000)
    events = [(index, contact.update(index, total, 0), contact.ic_index) for index, total in enumerate(totals)]
    assert [(index, ic) for index, event, ic in events if event == 1] == [(71, 40)]


# --------------------------------------------------------------------------- real recordings


@pytest.fixture(scope="module")
def gaitpdb_scores() -> dict:
    return score_gaitpdb([_gaitpdb(n) for n in GAITPDB_SUBSET], engine="firmware")


@pytest.fixture(scope="module")
def moticon_scores() -> dict:
    return score_moticon([_moticon(n) for n in MOTICON_FILES], engine="firmware")


@pytest.mark.micropython
def test_firmware_gaitpdb_events_against_force_reference(gaitpdb_scores: dict) -> None:
    s = gaitpdb_scores
    assert s["n_reference"] > 350
    assert s["ic_f1"] >= 0.99 and s["to_f1"] >= 0.98, s
    assert s["ic_mae_ms"] <= 10.0, s
    assert s["to_mae_ms"] <= 35.0, s  # toe-off at 10 % of the load: ~24 ms before force reaches 2 %
    assert s["direction_pct"] >= 95.0 and s["wrong_direction_pct"] <= 2.0, s


@pytest.mark.micropython
def test_firmware_moticon_events_against_vendor(moticon_scores: dict) -> None:
    s = moticon_scores
    assert s["n_reference"] == 32
    assert s["ic_f1"] >= 0.98 and s["to_f1"] >= 0.98, s
    assert s["ic_mae_ms"] <= 25.0 and s["to_mae_ms"] <= 20.0, s
    assert s["direction_pct"] >= 95.0, s


@pytest.mark.micropython
@pytest.mark.parametrize("scores", ["gaitpdb_scores", "moticon_scores"])
def test_firmware_and_host_reference_agree(scores: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(scores)
    if scores == "gaitpdb_scores":
        recordings = [gaitpdb_reference(_gaitpdb(n)) for n in GAITPDB_SUBSET]
    else:
        recordings = [moticon_reference(_moticon(n)) for n in MOTICON_FILES]
    streams = [pressure_only(s) for r in recordings for s in r.streams]
    totals = np.zeros(3)
    for stream, replay in zip(streams, result["replays"], strict=True):
        a = agreement(stream, replay)
        totals += (max(a.n_firmware, a.n_host), a.same_to, a.same_direction)
        assert a.n_firmware > 5
    steps, same_events, same_direction = totals
    assert same_events >= 0.98 * steps, totals
    assert same_direction >= 0.98 * steps, totals


def test_host_reference_on_every_gaitpdb_walk() -> None:
    require_shared_data("gaitpdb")
    files = sorted(_gaitpdb(".").glob("Ga*.txt"))
    assert len(files) == 23
    s = score_gaitpdb(files, engine="host")
    # GaCo13_10's right insole reads ~15-25 N in swing, at its reference threshold:
    # the reference merges most of its steps there (23 vs 51), so the pooled floor allows for it.
    assert s["ic_f1"] >= 0.99 and s["ic_mae_ms"] <= 10.0, s
    others = [f for f in s["per_file"] if not (f["recording"] == "GaCo13_10" and f["side"] == "right")]
    tp = sum(f["ic_f1"] * (f["n_detected"] + f["n_reference"]) / 2 for f in others)
    f1 = 2 * tp / sum(f["n_detected"] + f["n_reference"] for f in others)
    assert f1 >= 0.995, f1
    assert s["direction_pct"] >= 95.0, s


@pytest.mark.micropython
def test_time_reversed_walks_are_backward_by_roll_over() -> None:
    # Host reference on every walk, firmware on one: backward walking by construction.
    require_shared_data("gaitpdb")
    s = score_gaitpdb(sorted(_gaitpdb(".").glob("Ga*.txt")), reversed=True, engine="host")
    assert s["direction_pct"] >= 95.0 and s["wrong_direction_pct"] <= 2.0, s
    assert s["ic_f1"] >= 0.98 and s["to_f1"] >= 0.98, s
    fw = score_recordings([moticon_reference(_moticon(n)) for n in MOTICON_FILES], reversed=True)
    assert fw["direction_pct"] >= 95.0 and fw["ic_f1"] >= 0.98, fw
    fw = score_gaitpdb([_gaitpdb("GaPt13_01.txt")], reversed=True)
    assert fw["direction_pct"] >= 95.0 and fw["ic_f1"] >= 0.98, fw


def test_gaitpdb_reference_debounce() -> None:
    # Chatter at the threshold makes 1-sample "contacts"; the debounced reference drops them.
    force = np.zeros(200)
    force[20:22] = 30.0  # a 20 ms blip above the threshold (12 N)
    force[25:90] = 600.0
    force[130:190] = 600.0
    raw = ForceThresholdEvents(min_contact_s=0.0).detect(force)
    clean = ForceThresholdEvents().detect(force)
    assert list(raw.onset_index_) == [20, 25, 130]
    assert list(clean.onset_index_) == [25, 130] and list(clean.offset_index_) == [89, 189]


def test_medial_share_follows_the_vendor_centre_of_pressure() -> None:
    # Moticon's CoP y points medially on both feet; our medial share must rise with it.
    recording = read_moticon(_moticon("230927_102137.txt"))
    for stream in recording.streams:
        d = _pressure_steps(stream)
        cop_y = recording.vendor_cop_norm[stream.side][:, 1]
        force = recording.vendor_total_force_n[stream.side]
        per_step = [
            np.nansum(cop_y[a:b] * force[a:b]) / np.nansum(force[a:b]) for a, b in zip(d.ic_index_, d.to_index_, strict=True)
        ]
        assert np.corrcoef(d.medial_share_, per_step)[0, 1] > 0.8, stream.side


# --------------------------------------------------------------------------- robustness


def _with_pressure(stream: FootStream, pressure: np.ndarray) -> FootStream:
    return dataclasses.replace(stream, pressure=pressure)


def _ic_f1(stream: FootStream, reference_ic_s: np.ndarray) -> float:
    d = _pressure_steps(stream)
    return match_events(stream.t0_s + d.ic_index_ / stream.rate_hz, reference_ic_s).f1


@pytest.mark.parametrize("name", GAITPDB_SUBSET)
def test_thresholds_follow_load_and_sensor_drift(name: str) -> None:
    recording = gaitpdb_reference(_gaitpdb(name))
    for stream, reference in zip(recording.streams, recording.references, strict=True):
        p = stream.pressure
        assert p is not None
        ramp = np.linspace(0.0, 1.0, len(p))[:, None]
        p95 = np.percentile(p.sum(axis=1), 95)
        variants = {
            # every channel's baseline drifts from 0.5 % to 2.5 % of the load: 4..20 % in total
            "baseline drift": p + 0.01 * p95 * (0.5 + 2.0 * ramp),
            "gain halves": p * (1.0 - 0.5 * ramp),
            "gain doubles": p * (1.0 + ramp),
            "lighter person": p * 0.4,
        }
        for label, pressure in variants.items():
            assert _ic_f1(_with_pressure(stream, pressure), reference.ic_s) >= 0.98, (label, stream.side)


def test_foot_partly_off_the_sensors() -> None:
    recording = gaitpdb_reference(_gaitpdb("GaCo01_01.txt"))
    for stream, reference in zip(recording.streams, recording.references, strict=True):
        p = stream.pressure
        assert p is not None
        lateral_off = p * np.array([1, 0, 1, 0, 1, 0, 1, 1.0])  # sensors 2, 4, 6 read nothing
        assert _ic_f1(_with_pressure(stream, lateral_off), reference.ic_s) >= 0.98
        # No heel sensors: contact starts when the forefoot loads (later), but every
        # step is still found and toe-off is unaffected.
        heel_off = p * np.array([0, 0, 0, 0, 1, 1, 1, 1.0])
        d = _pressure_steps(_with_pressure(stream, heel_off))
        to = match_events(stream.t0_s + d.to_index_ / stream.rate_hz, reference.to_s)
        assert to.f1 >= 0.97 and abs(len(d.ic_index_) - len(reference.ic_s)) <= 3, stream.side


def test_sitting_between_walks_takes_no_steps() -> None:
    # 40 s of walking, 60 s seated (the foot rests at ~12 % of the walking load and is
    # lifted and set down now and then), then the rest of the walk.
    recording = gaitpdb_reference(_gaitpdb("GaCo01_01.txt"))
    rng = np.random.default_rng(1)
    for stream in recording.streams:
        p = stream.pressure
        assert p is not None
        rate = stream.rate_hz
        split = int(40 * rate)
        pattern = p[: int(20 * rate)].mean(axis=0)
        pattern /= pattern.sum()
        seated_total = 0.12 * np.percentile(p.sum(axis=1), 95)
        n = int(60 * rate)
        load = seated_total * (1.0 + 0.3 * np.sin(np.arange(n) / rate * 2 * np.pi / 7.0))
        for start in rng.integers(0, n - 300, 6):  # feet lifted for 1-2 s
            load[start : start + rng.integers(100, 200)] = 0.0
        seated = load[:, None] * pattern[None, :] + rng.normal(0.0, 0.3, (n, p.shape[1])).clip(0.0)
        pressure = np.vstack([p[:split], seated, p[split:]])
        d = _pressure_steps(_with_pressure(stream, pressure))
        ic_s = d.ic_index_ / rate
        assert not np.any((ic_s > 40.2) & (ic_s < 99.8)), ic_s[(ic_s > 40.2) & (ic_s < 99.8)]
        # the walking on both sides of the seated minute gives the steps it gives alone
        alone = _pressure_steps(stream).ic_index_ / rate
        before = alone[alone < 39.5]
        assert np.array_equal(ic_s[: len(before)], before)
        after = match_events(ic_s[ic_s >= 99.8], alone[alone > 40.5] + 60.0)
        assert after.f1 >= 0.98 and after.mae_ms < 1.0, after


def test_dropped_rows_do_not_split_stances() -> None:
    recording = gaitpdb_reference(_gaitpdb("GaCo01_01.txt"))
    stream = recording.streams[0]
    p = stream.pressure
    assert p is not None
    holes = p.copy()
    holes[np.arange(100, len(p), 37)] = np.nan  # one row in 37 missing, as Moticon exports drop rows
    a = _pressure_steps(stream)
    b = _pressure_steps(_with_pressure(stream, holes))
    assert len(a.ic_index_) == len(b.ic_index_)
    assert np.max(np.abs(a.ic_index_ - b.ic_index_)) <= 1
    counts = np.array([[1, NA_U16], [NA_U16, 5], [3, NA_U16]])
    assert hold_missing(counts).tolist() == [[1, 0], [1, 5], [3, 5]]


# --------------------------------------------------------------------------- simulated


def _sim_steps_plan() -> list:
    return [
        Stand(duration_s=15.0, weight_shift=True),
        Walk(n_steps=24, fpa_deg=10.0),
        Stand(duration_s=16.0, weight_shift=True),
        Walk(n_steps=24, direction="backward", cadence_spm=96.0, stride_length_m=0.7),
        Stand(duration_s=2.0),
        Walk(n_steps=12, turn_deg=90.0, stride_length_m=0.8),
        Stand(duration_s=2.0),
    ]


def _stand_windows_s(sim) -> list[tuple[float, float]]:
    """Spans where both feet stand: between the last TO of one bout and the first IC of the next."""
    contacts = sorted(sim.contacts, key=lambda c: c.ic_s if c.ic_s is not None else -1.0)
    ends = [c.to_s for c in contacts if c.to_s is not None]
    starts = [c.ic_s for c in contacts if c.ic_s is not None]
    windows = [(0.0, min(starts) - 0.2)]
    for t in ends:
        later = [s for s in starts if s > t]
        if later and min(later) - t > 3.0:
            windows.append((t + 0.5, min(later) - 0.2))
    return windows


@pytest.mark.parametrize("layout", ["insole8", "gaitpdb8", "moticon16", "generic4", "generic8", "generic16"])
def test_simulated_direction_and_contacts_on_every_layout(layout: str) -> None:
    sim = simulate_session(_sim_steps_plan(), rate_hz=SIM_RATE_HZ, seed=7, layout=layout)
    windows = _stand_windows_s(sim)
    correct = wrong = unknown = 0
    for stream in sim.streams:
        d = _pressure_steps(stream)
        ic_s = d.ic_index_ / SIM_RATE_HZ
        contacts = [c.ic_s for c in sim.contacts if c.side == stream.side and c.ic_s is not None]
        assert match_events(ic_s, contacts).f1 >= 0.9, layout
        for lo, hi in windows:  # weight shifts while standing: no steps
            assert not np.any((ic_s > lo) & (ic_s < hi)), (layout, lo, hi)
        truth = [t for t in sim.step_truth if t.side == stream.side]
        match = match_events(ic_s, [t.ic_s for t in truth])
        for i, j in zip(match.detected_index, match.reference_index, strict=True):
            found = d.direction_[int(i)]
            unknown += found == "unknown"
            correct += found == truth[int(j)].direction
            wrong += found not in ("unknown", truth[int(j)].direction)
        assert len(_heel_raises(stream).rep_) == 0, layout
    assert correct >= 0.99 * (correct + wrong), (layout, correct, wrong)
    # The steps that start and close each bout roll over little: those may be unknown.
    assert unknown <= 0.10 * (correct + wrong + unknown), (layout, unknown)


@pytest.mark.micropython
@pytest.mark.parametrize("layout", ["insole8", "generic4", "generic16"])
def test_firmware_matches_host_on_simulated_walks(layout: str) -> None:
    sim = simulate_session(_sim_steps_plan(), rate_hz=SIM_RATE_HZ, seed=8, layout=layout)
    streams = [pressure_only(s) for s in sim.streams]
    for stream, replay in zip(streams, _replay(streams), strict=True):
        a = agreement(stream, replay)
        assert a.n_firmware == a.n_host == a.same_to == a.same_direction, a
        assert not replay.raises
        host = _pressure_steps(stream)
        assert [s.peak_pressure for s in replay.steps] == host.peak_.tolist()
        assert [s.medial_share for s in replay.steps] == host.medial_share_code_


def test_medial_share_rises_with_medial_loading_on_both_feet() -> None:
    shares = {}
    for lateral_mm in (-10.0, 10.0):  # medial loading, lateral loading
        sim = simulate_session(
            [Stand(duration_s=1.0), Walk(n_steps=10), Stand(duration_s=1.0)],
            rate_hz=SIM_RATE_HZ,
            seed=2,
            subject=Subject(cop_lateral_mm=lateral_mm),
        )
        for stream in sim.streams:
            shares[(stream.side, lateral_mm)] = np.nanmean(_pressure_steps(stream).medial_share_)
    for side in ("left", "right"):
        assert shares[(side, -10.0)] > shares[(side, 10.0)] + 0.2, shares


@pytest.fixture(scope="module")
def heel_raise_session():
    sim = simulate_session(heel_raise_plan(), rate_hz=SIM_RATE_HZ, seed=5)
    return sim, _replay(sim.streams)


@pytest.mark.micropython
def test_heel_raises_counted_in_sets(heel_raise_session) -> None:
    sim, replays = heel_raise_session
    for stream, replay in zip(sim.streams, replays, strict=True):
        truth = [t for t in sim.raise_truth if t.side == stream.side]
        assert len(truth) == 21
        assert [(r.set, r.rep) for r in replay.raises] == [(t.set, t.rep) for t in truth]
        for r, t in zip(replay.raises, truth, strict=True):  # each raise where the truth has it
            assert abs(r.start_index / SIM_RATE_HZ - t.start_s) < 0.2
            assert abs(r.end_index / SIM_RATE_HZ - t.end_s) < 0.2
        # The walking and the weight shifts in between give no raises and no false steps.
        host = _heel_raises(stream, use_pitch_rate=False)
        assert host.start_index_.tolist() == [r.start_index for r in replay.raises]
        assert host.end_index_.tolist() == [r.end_index for r in replay.raises]


@pytest.mark.micropython  # its fixture replays the session through the firmware too
def test_heel_raise_hold_host_reference(heel_raise_session) -> None:
    sim, _ = heel_raise_session
    for stream in sim.streams:
        truth = [t for t in sim.raise_truth if t.side == stream.side]
        d = _heel_raises(stream)
        errors = [(h - t.hold_s) / t.hold_s for h, t in zip(d.hold_s_, truth, strict=True)]
        assert max(abs(e) for e in errors) <= 0.10, errors
        assert [(int(s), int(r)) for s, r in zip(d.set_, d.rep_, strict=True)] == [(t.set, t.rep) for t in truth]


@pytest.mark.micropython
def test_heel_raise_hold_firmware(heel_raise_session) -> None:
    sim, replays = heel_raise_session
    stream, replay = sim.streams[0], replays[0]
    holds = [r.hold_ms for r in replay.raises]
    without_imu = (_heel_raises(stream, use_pitch_rate=False).hold_s_ * 1000).round().tolist()
    assert holds != without_imu  # the firmware times the hold from the IMU, not the heel-up time
    with_imu = (_heel_raises(stream).hold_s_ * 1000).round().tolist()
    assert holds == with_imu
    truth = [t for t in sim.raise_truth if t.side == stream.side]
    assert max(abs(h / 1000 - t.hold_s) / t.hold_s for h, t in zip(holds, truth, strict=True)) <= 0.10


def test_ideal_sensors_give_the_same_steps_as_realistic_ones() -> None:
    # Noise, baseline offsets, drift and gain spread must not change what is detected.
    plan: list[Segment] = [Stand(duration_s=2.0), Walk(n_steps=16), Stand(duration_s=2.0)]
    ideal = simulate_session(plan, rate_hz=SIM_RATE_HZ, seed=3, sensors=SensorModel.ideal())
    real = simulate_session(plan, rate_hz=SIM_RATE_HZ, seed=3)
    for a, b in zip(ideal.streams, real.streams, strict=True):
        da, db = _pressure_steps(a), _pressure_steps(b)
        assert len(da.ic_index_) == len(db.ic_index_) >= 7
        assert np.max(np.abs(da.ic_index_ - db.ic_index_)) <= 3
        assert np.max(np.abs(da.to_index_ - db.to_index_)) <= 3


def test_moticon_time_reversal_keeps_steps() -> None:
    stream = moticon_reference(_moticon("230927_102114.txt")).streams[1]
    forward = _pressure_steps(stream)
    backward = _pressure_steps(time_reversed(stream))
    assert abs(len(forward.ic_index_) - len(backward.ic_index_)) <= 1
    assert backward.direction_.count("backward") >= 0.9 * len(backward.direction_)
