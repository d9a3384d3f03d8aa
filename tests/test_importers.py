"""Importers (Moticon OpenGo, PhysioNet gaitpdb, generic CSV), sensor layouts and `insole import`."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import require_shared_data
from insole.errors import UserError
from insole.importers.csv_generic import import_csv, read_foot_csv
from insole.importers.gaitpdb import read_gaitpdb
from insole.importers.moticon import MoticonRecording, read_gait_report, read_moticon
from insole.layouts import Layout, generic_layout, list_layouts, load_layout
from insole.model import STANDARD_GRAVITY_MS2, FloatArray, FootStream
from insole.recording import read_recording

MOTICON_FILES = ("230927_102114.txt", "230927_102137.txt", "walk_data_with_events/text_export.txt")
SIZE7_FILES = MOTICON_FILES[:2]


# --------------------------------------------------------------------------- layouts



def present(values: FloatArray | None) -> FloatArray:
    """The array of a stream field the test knows is there (the check is part of the test)."""
    assert values is not None
    return values

def test_every_layout_file_loads_and_validates() -> None:
    names = list_layouts(include_generic=False)
    assert {"insole8", "gaitpdb8", "moticon16"} <= set(names)
    for name in names:
        layout = load_layout(name)
        assert layout.name == name
        assert 1 <= layout.n_channels <= 16
        assert layout.positions_mm("left").shape == (layout.n_channels, 2)


def test_right_foot_mirrors_y_and_medial_sign_follows() -> None:
    layout = load_layout("insole8")
    left, right = layout.positions_mm("left"), layout.positions_mm("right")
    np.testing.assert_array_equal(right[:, 0], left[:, 0])
    np.testing.assert_array_equal(right[:, 1], -left[:, 1])
    assert (layout.medial_sign("left"), layout.medial_sign("right")) == (-1, 1)
    # The hallux and MTH1 are medial on both feet once the sign is applied.
    medial = [k for k, c in enumerate(layout.channels) if c.label in ("hallux", "MTH1")]
    for side in ("left", "right"):
        assert (layout.positions_mm(side)[medial, 1] * layout.medial_sign(side) > 0).all()


def test_gaitpdb_layout_puts_odd_pair_sensors_medially() -> None:
    layout = load_layout("gaitpdb8")
    assert layout.pressure_unit == "N" and layout.foot_length_mm == 260
    x = layout.positions_mm("left")[:, 0]
    assert x[0] == x.min() and x[7] == x.max()  # heel first, toe last
    for side in ("left", "right"):
        medial = layout.positions_mm(side)[:, 1] * layout.medial_sign(side)
        assert (medial[[2, 4, 6]] > 0).all() and (medial[[1, 3, 5]] < 0).all()  # format.txt: X=-300 is medial (left)


def test_generic_layouts_are_built_in_and_spread_along_the_foot() -> None:
    assert load_layout("generic1").positions_mm("left").tolist() == [[130.0, 0.0]]
    g16 = load_layout("generic16")
    x = g16.positions_mm("left")[:, 0]
    assert g16.n_channels == 16 and np.all(np.diff(x) > 0)
    assert x[0] == pytest.approx(26.0) and x[-1] == pytest.approx(234.0)
    assert np.all(g16.positions_mm("right")[:, 1] == 0)
    assert "generic8" in list_layouts()
    with pytest.raises(UserError, match=r"1..16"):
        generic_layout(17)
    with pytest.raises(UserError, match=r"generic layouts have 1..16 channels, not 17"):
        load_layout("generic17")
    with pytest.raises(UserError, match="no layout named"):
        load_layout("nonexistent")


def _write_layout(directory: Path, file_stem: str, **changes: object) -> None:
    data: dict[str, object] = {
        "name": file_stem,
        "foot_length_mm": 260,
        "pressure_unit": "N",
        "channels": [{"label": "a", "x_mm": 20, "y_mm": 5}, {"label": "b", "x_mm": 200, "y_mm": -20}],
    }
    data.update(changes)
    (directory / f"{file_stem}.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channels": [{"x_mm": 10 * k, "y_mm": 0} for k in range(17)]}, "17 channels"),
        ({"channels": []}, "0 channels"),
        ({"channels": [{"x_mm": "10", "y_mm": 0}]}, "x_mm: expected a finite number"),
        ({"channels": [{"x_mm": 10, "y_mm": True}]}, "y_mm: expected a finite number"),
        ({"channels": [{"x_mm": 10}]}, "y_mm: expected a finite number"),
        ({"channels": [{"x_mm": 900, "y_mm": 0}]}, "outside the foot"),
        ({"channels": [{"x_mm": 10, "y_mm": 120}]}, "wider than a foot"),
        ({"name": "other"}, "file is called"),
        ({"foot_length_mm": 5}, "plausible foot"),
    ],
)
def test_invalid_layouts_are_refused(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    _write_layout(tmp_path, "bad", **changes)
    with pytest.raises(UserError, match=message):
        load_layout("bad", tmp_path)


def test_layout_with_areas(tmp_path: Path) -> None:
    _write_layout(tmp_path, "ok", channels=[{"x_mm": 20, "y_mm": 5, "area_cm2": 2.5}])
    layout = load_layout("ok", tmp_path)
    assert isinstance(layout, Layout)
    np.testing.assert_array_equal(layout.areas_cm2(), [2.5])
    assert load_layout("insole8").areas_cm2() is None


# --------------------------------------------------------------------------- Moticon


@pytest.fixture(scope="module")
def moticon() -> dict[str, MoticonRecording]:
    return {name: read_moticon(require_shared_data("moticon_opengo", name)) for name in MOTICON_FILES}


def _raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Independent plain-Python reading of an export, for cross-checks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#")][-1][1:].strip().split("\t")
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return header, rows


@pytest.mark.parametrize("name", MOTICON_FILES)
def test_moticon_files_parse_with_shapes_rates_and_t0(moticon: dict[str, MoticonRecording], name: str) -> None:
    recording = moticon[name]
    header, rows = _raw_rows(recording.path)
    time_s = np.array([float(r[0]) for r in rows])
    assert [s.side for s in recording.streams] == ["left", "right"]
    for stream in recording.streams:
        assert stream.rate_hz == 100.0 and stream.layout == "moticon16" and stream.pressure_unit == "N/cm²"
        assert stream.pressure is not None and stream.pressure.shape == (stream.n_samples, 16)
        assert stream.acc_ms2 is not None and stream.acc_ms2.shape == (stream.n_samples, 3)
        assert stream.gyro_dps is not None and stream.gyro_dps.shape == (stream.n_samples, 3)
        column = header.index(f"{stream.side} pressure 1[N/cm²]")
        valid = [k for k, r in enumerate(rows) if r[column] != ""]
        assert stream.t0_s == pytest.approx(time_s[valid[0]])
        # The stream ends at the foot's last sample; rows are on the 10 ms grid.
        assert stream.t0_s + (stream.n_samples - 1) / 100 == pytest.approx(time_s[valid[-1]])
        first = [float(rows[valid[0]][header.index(f"{stream.side} pressure {k}[N/cm²]")]) for k in range(1, 17)]
        np.testing.assert_array_equal(stream.pressure[0], first)
        assert not np.isnan(stream.pressure[0]).any() and not np.isnan(stream.pressure[-1]).any()


def test_moticon_left_insole_starts_late(moticon: dict[str, MoticonRecording]) -> None:
    for name, t0_s in (("230927_102114.txt", 0.50), ("230927_102137.txt", 0.59)):
        recording = moticon[name]
        assert recording.stream("left").t0_s == pytest.approx(t0_s)
        assert recording.stream("right").t0_s == 0.0
        # Same time base: both streams end at the same export time (± the right's trailing rows).
        left, right = recording.stream("left"), recording.stream("right")
        assert left.times_s()[-1] == pytest.approx(right.times_s()[-1], abs=0.06)


def test_moticon_skipped_row_is_nan_and_later_rows_keep_their_time(moticon: dict[str, MoticonRecording]) -> None:
    recording = moticon["230927_102114.txt"]  # the export has no row at 16.44 s
    assert recording.skipped_rows == 1
    header, rows = _raw_rows(recording.path)
    row_1645 = next(r for r in rows if r[0] == "16.45")
    for stream in recording.streams:
        assert stream.pressure is not None
        k_missing = round((16.44 - stream.t0_s) * 100)
        assert np.isnan(stream.pressure[k_missing]).all()
        k = round((16.45 - stream.t0_s) * 100)
        cells = [row_1645[header.index(f"{stream.side} pressure {c}[N/cm²]")] for c in range(1, 17)]
        expected = [float(c) if c else np.nan for c in cells]  # the right foot dropped out at 16.45 s
        np.testing.assert_array_equal(stream.pressure[k], expected)
        assert not np.isnan(stream.pressure[k + 1]).any()


def _quiet(recording: MoticonRecording, stream: FootStream) -> np.ndarray:
    assert stream.gyro_dps is not None
    return (np.linalg.norm(stream.gyro_dps, axis=1) < 5) & (recording.vendor_total_force_n[stream.side] > 200)


@pytest.mark.parametrize("name", SIZE7_FILES)
def test_moticon_at_rest_gravity_is_plus_z_on_both_feet(moticon: dict[str, MoticonRecording], name: str) -> None:
    recording = moticon[name]
    for stream in recording.streams:
        quiet = _quiet(recording, stream)
        assert quiet.sum() > 200  # standing before and after the walk
        assert stream.acc_ms2 is not None
        mean = np.nanmean(stream.acc_ms2[quiet], axis=0)
        assert mean[2] == pytest.approx(STANDARD_GRAVITY_MS2, abs=0.5)
        assert np.linalg.norm(mean) == pytest.approx(STANDARD_GRAVITY_MS2, abs=0.3)
        # Medial edge ~2° up on both feet: the same anatomical tilt, opposite y.
        medial_up = mean[1] * (-1 if stream.side == "left" else 1)
        assert 0.1 < medial_up < 1.0


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


@pytest.mark.parametrize("name", MOTICON_FILES)
def test_moticon_x_points_to_the_toes(moticon: dict[str, MoticonRecording], name: str) -> None:
    """Loaded foot: toes-down pitch (from acc, valid if x → toes) grows as the vendor CoP moves to the toes."""
    recording = moticon[name]
    for stream in recording.streams:
        assert stream.acc_ms2 is not None
        stance = recording.vendor_total_force_n[stream.side] > 200
        toes_down = np.arctan2(-stream.acc_ms2[:, 0], stream.acc_ms2[:, 2])
        assert _corr(recording.vendor_cop_norm[stream.side][stance, 0], toes_down[stance]) > 0.2


@pytest.mark.parametrize("name", SIZE7_FILES)
def test_moticon_y_medial_sign_matches_pressure(moticon: dict[str, MoticonRecording], name: str) -> None:
    """Standing calmly, load moves to the edge the insole tilts down to (vendor CoP +Y is medial)."""
    recording = moticon[name]
    for stream in recording.streams:
        assert stream.acc_ms2 is not None and stream.gyro_dps is not None
        calm = (np.linalg.norm(stream.gyro_dps, axis=1) < 15) & (recording.vendor_total_force_n[stream.side] > 200)
        medial_up = np.arctan2(stream.acc_ms2[:, 1] * (-1 if stream.side == "left" else 1), stream.acc_ms2[:, 2])
        assert _corr(recording.vendor_cop_norm[stream.side][calm, 1], medial_up[calm]) < -0.15


def _gravity_errors_deg(stream: FootStream, lag: int = 12) -> tuple[float, float]:
    """Median error of gyro-propagated gravity over quasi-static windows: (right-hand, left-hand rule)."""
    assert stream.acc_ms2 is not None and stream.gyro_dps is not None
    acc = stream.acc_ms2
    still = np.abs(np.linalg.norm(acc, axis=1) / STANDARD_GRAVITY_MS2 - 1) < 0.05
    theta = np.cumsum(np.nan_to_num(np.radians(stream.gyro_dps)) / stream.rate_hz, axis=0)
    i = np.flatnonzero(still[:-lag] & still[lag:])
    rotation = theta[i + lag] - theta[i]
    angle = np.linalg.norm(rotation, axis=1)
    keep = angle > np.radians(3)
    i, rotation, angle = i[keep], rotation[keep], angle[keep, None]
    assert len(i) >= 10
    result = []
    for sign in (1.0, -1.0):
        k = sign * rotation / angle
        v = acc[i]
        # Rodrigues: v expressed in the body frame after rotating by `angle` about `k`.
        along = k * (k * v).sum(1, keepdims=True)
        predicted = v * np.cos(angle) - np.cross(k, v) * np.sin(angle) + along * (1 - np.cos(angle))
        target = acc[i + lag]
        cos = (predicted * target).sum(1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(target, axis=1)
        result.append(float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1))))))
    return result[0], result[1]


@pytest.mark.parametrize("name", MOTICON_FILES)
def test_moticon_gyro_is_right_handed_about_the_acc_axes(moticon: dict[str, MoticonRecording], name: str) -> None:
    for stream in moticon[name].streams:
        right_hand, left_hand = _gravity_errors_deg(stream)
        assert right_hand < 2.0 < 5.0 < left_hand


def _stride_profile(signal: np.ndarray, ic_rows: np.ndarray) -> np.ndarray:
    strides = []
    for a, b in itertools.pairwise(ic_rows):
        if a >= 0 and 50 <= b - a <= 300 and not np.isnan(signal[a:b]).any():
            x = np.linspace(0, 1, b - a)
            strides.append(np.column_stack([np.interp(np.linspace(0, 1, 100), x, col) for col in signal[a:b].T]))
    return np.mean(strides, axis=0)


@pytest.mark.parametrize("name", SIZE7_FILES)
def test_moticon_feet_share_one_frame_after_conversion(moticon: dict[str, MoticonRecording], name: str) -> None:
    """In a common left/right frame the lateral/roll/yaw patterns of the two feet are mirror images."""
    recording = moticon[name]
    profiles = {}
    for stream in recording.streams:
        assert stream.acc_ms2 is not None and stream.gyro_dps is not None
        ic = recording.reference_events[stream.side].ic_s
        rows = np.round((ic - stream.t0_s) * stream.rate_hz).astype(int)
        profiles[stream.side] = _stride_profile(np.column_stack([stream.acc_ms2, stream.gyro_dps]), rows)
    correlation = [np.corrcoef(profiles["left"][:, k], profiles["right"][:, k])[0, 1] for k in range(6)]
    assert correlation[4] > 0.9  # pitch rate: same sign on both feet
    assert correlation[1] < -0.5 and correlation[3] < -0.5 and correlation[5] < -0.5  # ay, gx, gz mirrored


@pytest.mark.parametrize("name", MOTICON_FILES)
def test_moticon16_layout_reproduces_vendor_cop_and_force(moticon: dict[str, MoticonRecording], name: str) -> None:
    """The derived positions/areas, mapped back to the vendor's normalised frame, give the vendor CoP.

    The size-3 export was not used in the fit: Moticon scales its layout with the size,
    so the normalised positions carry over and only the areas shrink (by one factor).
    """
    layout = load_layout("moticon16")
    areas = layout.areas_cm2()
    assert areas is not None and layout.foot_width_mm is not None
    recording = moticon[name]
    for stream in recording.streams:
        assert stream.pressure is not None
        position = layout.positions_mm(stream.side)
        normalised = np.column_stack(
            [
                position[:, 0] / layout.foot_length_mm - 0.5,
                position[:, 1] * layout.medial_sign(stream.side) / layout.foot_width_mm,
            ]
        )
        force = recording.vendor_total_force_n[stream.side]
        loaded = force > 100
        weights = stream.pressure[loaded] * areas
        cop = weights @ normalised / weights.sum(axis=1, keepdims=True)
        error = np.hypot(*(cop - recording.vendor_cop_norm[stream.side][loaded]).T)
        assert loaded.sum() > 250
        assert np.median(error) < 0.002 and np.percentile(error, 99) < 0.005
        ratio = force[loaded] / (stream.pressure[loaded] @ areas)
        assert np.std(ratio) < 0.01 * np.mean(ratio)  # one area scale per insole size
        if recording.insole_size == 7:
            assert np.mean(ratio) == pytest.approx(1.0, abs=0.01)


def test_moticon_vendor_events_match_the_gait_report(moticon: dict[str, MoticonRecording]) -> None:
    for name, report_name in (("230927_102114.txt", "gait_report_230927_10_21_14.xlsx"),
                              ("230927_102137.txt", "gait_report_230927_10_21_37.xlsx")):
        recording = moticon[name]
        assert recording.event_source == "vendor" and recording.insole_size == 7
        report = read_gait_report(require_shared_data("moticon_opengo", report_name))
        for side in ("left", "right"):
            events = recording.reference_events[side]
            assert len(events.ic_s) == len(events.to_s) >= 5
            assert np.all(events.to_s - events.ic_s > 0.5)  # stance ~0.75-0.97 s
            steps = report[side]
            assert len(steps) >= 5
            for times, reported in ((events.ic_s, steps.ic_s), (events.to_s, steps.to_s)):
                nearest = np.abs(times[None, :] - reported[:, None]).min(axis=1)
                assert nearest.max() < 0.015


def test_moticon_hand_placed_events(moticon: dict[str, MoticonRecording]) -> None:
    recording = moticon["walk_data_with_events/text_export.txt"]
    assert recording.event_source == "manual" and recording.insole_size == 3
    assert recording.start_time_utc == "2022-09-15T13:58:36.241Z"
    for side in ("left", "right"):
        events = recording.reference_events[side]
        midstance = recording.midstance_s[side]
        assert len(events.ic_s) == 4 and len(events.to_s) == 0 and len(midstance) == 4
        assert np.all((midstance - events.ic_s > 0.2) & (midstance - events.ic_s < 0.5))
    np.testing.assert_allclose(recording.reference_events["left"].ic_s, [0.21, 1.33, 2.44, 3.52], atol=1e-9)


def _moticon_text(sides: tuple[str, ...], n: int, empty_rows: dict[str, range]) -> str:
    names = ["time"]
    for side in sides:
        names += [f"{side} pressure {k}[N/cm²]" for k in range(1, 17)]
        names += [f"{side} acceleration {a}[g]" for a in "XYZ"] + [f"{side} angular {a}[dps]" for a in "XYZ"]
        names += [f"{side} total force[N]", f"{side} center of pressure X[-0.5...+0.5]"]
        names += [f"{side} center of pressure Y[-0.5...+0.5]"]
    names += ["right steps[]", "left steps[]"]
    lines = ["# Start time: 01.02.2024 10:00:00.000", "# Size: 7", "# " + "\t".join(names)]
    for i in range(n):
        cells = [f"{i / 100:.2f}"]
        for side in sides:
            foot = [f"{(k + i) % 9 * 0.25:.2f}" for k in range(16)] + ["-0.2", "0.05", "0.97", "1.5", "-20.0", "3.0"]
            foot += ["500.00", "0.1", "-0.1"]
            cells += [""] * len(foot) if i in empty_rows.get(side, range(0)) else foot
        code = "11.00" if i == 30 and "left" in sides else "21.00" if i == 40 else ""
        cells += ["21.00" if code == "21.00" else "", "11.00" if code == "11.00" else ""]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def test_moticon_synthetic_late_start_dropout_and_axes(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text(_moticon_text(("left", "right"), 200, {"left": range(0, 60), "right": range(190, 200)}))
    recording = read_moticon(path)
    left, right = recording.stream("left"), recording.stream("right")
    assert (left.t0_s, left.n_samples) == (0.6, 140)
    assert (right.t0_s, right.n_samples) == (0.0, 190)
    assert left.pressure is not None and left.pressure[0, 1] == ((1 + 60) % 9) * 0.25
    g = STANDARD_GRAVITY_MS2
    # Vendor frame (x toes, y medial, z up) → ours: the left foot's y and its x/z rates change sign.
    np.testing.assert_allclose(present(left.acc_ms2)[0], [-0.2 * g, -0.05 * g, 0.97 * g])
    np.testing.assert_allclose(present(right.acc_ms2)[0], [-0.2 * g, 0.05 * g, 0.97 * g])
    np.testing.assert_allclose(present(left.gyro_dps)[0], [-1.5, -20.0, -3.0])
    np.testing.assert_allclose(present(right.gyro_dps)[0], [1.5, -20.0, 3.0])
    assert recording.reference_events["left"].ic_s.tolist() == [0.3]
    assert recording.reference_events["right"].ic_s.tolist() == [0.4]
    assert recording.start_time_local == "2024-02-01T10:00:00.000" and recording.start_time_utc is None

    path.write_text(_moticon_text(("right",), 50, {}))
    assert [s.side for s in read_moticon(path).streams] == ["right"]  # one insole only
    path.write_text(_moticon_text(("left", "right"), 50, {"left": range(50), "right": range(50)}))
    with pytest.raises(UserError, match="neither foot has any data"):
        read_moticon(path)
    text = _moticon_text(("left", "right"), 50, {}).splitlines()
    del text[20]  # the row at 0.17 s: a missing 10 ms row is filled with NaN ...
    path.write_text("\n".join(text) + "\n")
    filled = read_moticon(path)
    assert filled.skipped_rows == 1 and filled.stream("left").n_samples == 50
    assert np.isnan(filled.stream("left").pressure[17]).all()  # type: ignore[index]
    assert not np.isnan(filled.stream("left").pressure[18]).any()  # type: ignore[index]
    # ... but a time stamp that repeats or goes back is refused.
    path.write_text("\n".join(text[:30] + [text[25]] + text[30:]) + "\n")
    with pytest.raises(UserError, match=r"export.txt:31: time repeats or goes back"):
        read_moticon(path)


def test_moticon_refuses_a_non_moticon_file(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("1\t2\n3\t4\n")
    with pytest.raises(UserError, match="no '#' header"):
        read_moticon(path)
    path.write_text("# a: b\n# time\tleft pressure 1[kPa]\n0.00\t1\n")
    with pytest.raises(UserError, match="unit 'kPa'"):
        read_moticon(path)


# --------------------------------------------------------------------------- gaitpdb


@pytest.fixture(scope="module")
def gaitpdb_files() -> list[Path]:
    files = sorted(require_shared_data("gaitpdb").glob("Ga*.txt"))
    assert len(files) == 23
    return files


def test_every_gaitpdb_walk_parses_and_totals_are_the_column_sums(gaitpdb_files: list[Path]) -> None:
    layout = load_layout("gaitpdb8")
    arch_unloaded = []  # per walk and foot: is the medial mid-foot sensor less loaded than the lateral one?
    for number, path in enumerate(gaitpdb_files):
        walk = read_gaitpdb(path)
        assert [s.side for s in walk.streams] == ["left", "right"]
        for stream in walk.streams:
            assert stream.rate_hz == 100.0 and stream.t0_s == 0.0 and stream.layout == "gaitpdb8"
            assert stream.pressure is not None and stream.pressure.shape[1] == 8
            assert stream.n_samples in (11548, 12119)  # ~2 minutes; one walk is shorter
            assert not stream.has_imu and stream.pressure_unit == "N"
            # Columns 18/19 as given in the file vs the sum of the 8 sensors (2-decimal rounding).
            np.testing.assert_allclose(stream.pressure.sum(axis=1), walk.total_force_n[stream.side], atol=0.011)
            position = layout.positions_mm(stream.side)
            middle = np.flatnonzero(position[:, 0] == 130.0)
            medial = middle[position[middle, 1] * layout.medial_sign(stream.side) > 0]
            lateral = middle[position[middle, 1] * layout.medial_sign(stream.side) < 0]
            load = stream.pressure[stream.pressure.sum(axis=1) > 100].mean(axis=0)
            arch_unloaded.append(load[medial].item() < load[lateral].item())
        if number % 10 == 0:  # an independent reading of a few files, column for column
            raw = np.loadtxt(path)
            for k, stream in enumerate(walk.streams):
                np.testing.assert_array_equal(stream.pressure, raw[:, 1 + 8 * k : 9 + 8 * k])
                np.testing.assert_array_equal(walk.total_force_n[stream.side], raw[:, 17 + k])
    # The medial arch carries little load: checks the medial/lateral reading of format.txt.
    assert np.mean(arch_unloaded) > 0.8


def _gaitpdb_text(times_s: np.ndarray) -> str:
    rows = []
    for t in times_s:
        left = [10.0, 20, 30, 40, 50, 60, 70, 80.5]
        right = [1.0, 2, 3, 4, 5, 6, 7, 8]
        rows.append("\t".join(f"{v:g}" for v in [t, *left, *right, sum(left), sum(right)]))
    return "\n".join(rows) + "\n"


def test_gaitpdb_synthetic_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "walk.txt"
    path.write_text(_gaitpdb_text(np.arange(300) / 100))
    walk = read_gaitpdb(path)
    assert walk.streams[0].n_samples == 300
    np.testing.assert_array_equal(walk.total_force_n["left"], 360.5)

    path.write_text(_gaitpdb_text(np.delete(np.arange(300) / 100, 150)))  # a lost row
    with pytest.raises(UserError, match=r"walk.txt:151: time step 20.00 ms.*irregular"):
        read_gaitpdb(path)
    path.write_text(_gaitpdb_text(np.arange(300) / 50))  # 50 Hz is not this format
    with pytest.raises(UserError, match="expected 100 Hz"):
        read_gaitpdb(path)
    path.write_text(_gaitpdb_text(np.arange(10) / 100).replace("\t80.5\t", "\t81.5\t", 1))
    with pytest.raises(UserError, match=r"walk.txt:1: left total 360.5 N differs"):
        read_gaitpdb(path)
    path.write_text("0\t1\t2\n")
    with pytest.raises(UserError, match=r"walk.txt:1: 3 fields, expected 19 .* for a PhysioNet gaitpdb walk"):
        read_gaitpdb(path)


# --------------------------------------------------------------------------- generic CSV


def _write_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _foot_rows(rate_hz: float, n: int, *, pressure: int = 0, imu: bool = False) -> tuple[list[str], list[list[Any]]]:
    columns = ["t_s"] + [f"p{k + 1}" for k in range(pressure)] + (["ax", "ay", "az", "gx", "gy", "gz"] if imu else [])
    rows: list[list[Any]] = []
    for i in range(n):
        row: list[object] = [f"{1.5 + i / rate_hz:.6f}"]
        row += [float(10 * k + i % 7) for k in range(pressure)]
        row += [0.1 * (i % 5), -0.2, 9.81, 1.0, -2.0, float(i % 3)] if imu else []
        rows.append(row)
    return columns, rows


@pytest.mark.parametrize("rate_hz", [50.0, 100.0, 204.8, 250.0])
@pytest.mark.parametrize(("pressure", "imu"), [(4, False), (0, True), (8, True), (16, False)])
def test_csv_valid_files(tmp_path: Path, rate_hz: float, pressure: int, imu: bool) -> None:
    columns, rows = _foot_rows(rate_hz, 400, pressure=pressure, imu=imu)
    stream = read_foot_csv(_write_csv(tmp_path / "l.csv", columns, rows), "left")
    assert stream.rate_hz == pytest.approx(rate_hz, rel=1e-4)
    assert stream.t0_s == 1.5 and stream.n_samples == 400
    assert stream.n_pressure == pressure and stream.has_imu == imu
    if pressure:
        assert stream.layout == f"generic{pressure}" and stream.pressure_unit == "a.u."
        np.testing.assert_array_equal(present(stream.pressure)[5], [10 * k + 5 for k in range(pressure)])
    if imu:
        np.testing.assert_allclose(present(stream.acc_ms2)[2], [0.2, -0.2, 9.81])
        np.testing.assert_allclose(present(stream.gyro_dps)[2], [1.0, -2.0, 2.0])


def test_csv_both_feet_layout_unit_and_ms_rounded_stamps(tmp_path: Path) -> None:
    columns, rows = _foot_rows(204.8, 300, pressure=8)
    for row in rows:
        row[0] = f"{float(row[0]):.3f}"  # ms-rounded time stamps at 204.8 Hz: steps of 4 or 5 ms
    left = _write_csv(tmp_path / "L.csv", columns, rows)
    right = _write_csv(tmp_path / "R.csv", *_foot_rows(100, 50, imu=True))
    streams = import_csv(left, right, layout="insole8", pressure_unit="kPa")
    assert [s.side for s in streams] == ["left", "right"]
    assert streams[0].layout == "insole8" and streams[0].pressure_unit == "kPa"
    assert streams[0].rate_hz == pytest.approx(204.8, abs=0.05)
    assert streams[1].layout == "" and streams[1].n_pressure == 0  # IMU-only: no layout needed
    with pytest.raises(UserError, match="8 pressure columns but layout 'moticon16' has 16 channels"):
        import_csv(left, layout="moticon16")
    with pytest.raises(UserError, match="at least one of --left/--right"):
        import_csv()


def test_csv_empty_cells_are_missing_values(tmp_path: Path) -> None:
    columns, rows = _foot_rows(100, 100, pressure=2, imu=True)
    rows[10][1] = ""
    rows[11][3] = "nan"
    stream = read_foot_csv(_write_csv(tmp_path / "x.csv", columns, rows), "right")
    assert np.isnan(stream.pressure[10, 0]) and np.isnan(stream.acc_ms2[11, 0])  # type: ignore[index]
    assert np.isfinite(stream.pressure[12]).all()  # type: ignore[index]


@pytest.mark.parametrize(
    ("columns", "edit", "message"),
    [
        (["time", "p1"], None, r"x.csv:1: no 't_s' column"),
        (["t_s", "p1", "ax", "ay", "az"], None, r"x.csv:1: partial IMU columns: has ax,ay,az but not gx,gy,gz"),
        (["t_s", "p1", "p3"], None, r"x.csv:1: pressure columns p1, p3 must be p1..pN without gaps"),
        (["t_s"] + [f"p{k}" for k in range(1, 18)], None, r"x.csv:1: 17 pressure columns; at most 16"),
        (["t_s", "p1", "bogus"], None, r"x.csv:1: unknown column 'bogus'"),
        (["t_s", "p1", "P1"], None, r"x.csv:1: column 'p1' appears twice"),
        (["t_s"], None, r"x.csv:1: no data columns"),
        (["t_s", "p1"], ("cell", 7, 1, "12,5"), r"x.csv:9: 3 fields, expected 2"),
        (["t_s", "p1"], ("cell", 7, 1, "high"), r"x.csv:9: column 'p1': 'high' is not a number"),
        (["t_s", "p1"], ("cell", 7, 1, "inf"), r"x.csv:9: column 'p1': 'inf' is not a number"),
        (["t_s", "p1"], ("cell", 20, 0, ""), r"x.csv:22: column 't_s' is empty"),
        (["t_s", "p1"], ("drop", 30), r"x.csv:32: time step 20.00 ms .* irregular timing"),
        (["t_s", "p1"], ("cell", 40, 0, "0.1"), r"x.csv:42: time step .* irregular timing"),
        (["t_s", "p1"], ("rate", 30.0), r"sampling rate 30.00 Hz .* outside 50..250 Hz"),
        (["t_s", "p1"], ("rate", 300.0), r"sampling rate 300.00 Hz .* outside 50..250 Hz"),
        (["t_s", "p1"], ("rate", 100.0), None),  # control: the same file at 100 Hz is fine
        (["t_s", "p1"], ("rows", 0), r"x.csv: no data rows"),
        (["t_s", "p1"], ("rows", 1), r"x.csv: 1 sample\(s\); need at least 2"),
    ],
)
def test_csv_invalid_files_give_clear_errors(
    tmp_path: Path, columns: list[str], edit: tuple[Any, ...] | None, message: str | None
) -> None:
    rate_hz = float(edit[1]) if edit and edit[0] == "rate" else 100.0
    n = int(edit[1]) if edit and edit[0] == "rows" else 100
    rows: list[list[Any]] = [[f"{i / rate_hz:.5f}"] + [1.0] * (len(columns) - 1) for i in range(n)]
    if edit and edit[0] == "cell":
        _, row, col, value = edit
        rows[row][col] = value
    if edit and edit[0] == "drop":
        del rows[int(edit[1])]
    path = tmp_path / "x.csv"
    if edit and edit[0] == "cell" and "," in str(edit[3]):
        _write_csv(path, columns, [])
        with open(path, "a") as f:  # a raw, unquoted comma: one field too many
            f.writelines(",".join(str(v) for v in r) + "\n" for r in rows)
    else:
        _write_csv(path, columns, rows)
    if message is None:
        assert read_foot_csv(path, "left").rate_hz == pytest.approx(rate_hz)
        return
    with pytest.raises(UserError, match=message):
        read_foot_csv(path, "left")


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_foot_csv(tmp_path / "absent.csv", "left")


# --------------------------------------------------------------------------- the command


def _run(argv: list[str]) -> int:
    from insole.commands import import_

    parser = argparse.ArgumentParser(prog="insole")
    import_.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_import_csv_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    left = _write_csv(tmp_path / "L.csv", *_foot_rows(100, 250, pressure=3, imu=True))
    out = tmp_path / "walk.insole"
    assert _run(["import", "csv", "--left", str(left), "--pressure-unit", "N", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    back = read_recording(out)
    assert back.header["source"] == "csv" and back.header["source_file"] == "L.csv"
    stream = back.stream("left")
    assert stream.layout == "generic3" and stream.n_samples == 250 and stream.t0_s == 1.5
    expected = read_foot_csv(left, "left")
    np.testing.assert_allclose(present(stream.pressure), present(expected.pressure), atol=1e-3)
    np.testing.assert_allclose(present(stream.acc_ms2), present(expected.acc_ms2), atol=0.01)  # mg resolution
    np.testing.assert_allclose(present(stream.gyro_dps), present(expected.gyro_dps), atol=0.05)  # 0.1 deg/s
    with pytest.raises(UserError, match="exists; use -f/--force"):
        _run(["import", "csv", "--left", str(left), "-o", str(out)])
    with pytest.raises(UserError, match="at least one of --left"):
        _run(["import", "csv", "-o", str(tmp_path / "x.insole")])


def test_import_moticon_command_end_to_end(tmp_path: Path, moticon: dict[str, MoticonRecording]) -> None:
    source = moticon["230927_102114.txt"]
    out = tmp_path / "moticon.insole"
    assert _run(["import", "moticon", str(source.path), "-o", str(out)]) == 0
    back = read_recording(out)
    assert back.header["source"] == "moticon"
    for original in source.streams:
        stream = back.stream(original.side)
        assert stream.t0_s == pytest.approx(original.t0_s) and stream.layout == "moticon16"
        np.testing.assert_allclose(present(stream.pressure), present(original.pressure), atol=1e-6)  # 0.25 N/cm² steps survive
        np.testing.assert_allclose(present(stream.acc_ms2), present(original.acc_ms2), atol=0.01)
    from insole.export.events_csv import read_steps_csv

    steps = read_steps_csv(tmp_path / "moticon.vendor-steps.csv")
    assert sum(s.side == "left" for s in steps) == len(source.reference_events["left"].ic_s)
    assert all(0.5 < s.to_s - s.ic_s < 1.2 for s in steps)


def test_import_gaitpdb_command_end_to_end(tmp_path: Path) -> None:
    path = require_shared_data("gaitpdb", "GaCo13_10.txt")
    out = tmp_path / "gait.insole"
    assert _run(["import", "gaitpdb", str(path), "-o", str(out)]) == 0
    back = read_recording(out)
    original = read_gaitpdb(path)
    for k, side in enumerate(("left", "right")):
        stream = back.stream(side)
        scale = back.header["streams"][k]["pressure_scale"]
        np.testing.assert_allclose(present(stream.pressure), present(original.streams[k].pressure), atol=scale / 2 + 1e-9)
        assert not stream.has_imu and stream.layout == "gaitpdb8"


@pytest.mark.micropython
def test_gaitmap_import_then_hil_writes_foot_angles(tmp_path: Path) -> None:
    from insole.cli import main

    source = require_shared_data("gaitmap_example", "imu_sample.csv")
    out = tmp_path / "gaitmap.insole"
    assert main(["import", "gaitmap", str(source), "-o", str(out)]) == 0
    steps = tmp_path / "steps.csv"
    assert main(["hil", str(out), "--steps", str(steps)]) == 0
    rows = steps.read_text().splitlines()[1:]
    angles = [float(r.split(",")[3]) for r in rows if r.split(",")[3]]
    assert len(rows) >= 50 and len(angles) >= 40
    assert sum(r.endswith(",forward") for r in rows) >= 0.8 * len(rows)
    assert 0.0 < sorted(angles)[len(angles) // 2] < 25.0  # toe-out, as the subject walks


# Every IMU file of gaitmap's example data: (file, feet, rate in Hz, first sample).
GAITMAP_FILES = [
    ("imu_sample.csv", ("left", "right"), 204.8, 0),
    ("imu_sample_not_rotated.csv", ("left", "right"), 204.8, 0),
    ("imu_sample_healthy_stair_up.csv", ("left", "right"), 204.8, 0),
    ("imu_sample_healthy_stair_down.csv", ("left", "right"), 204.8, 0),
    ("imu_sample_ic_stride.csv", ("left", "right"), 102.4, 0),
    ("imu_sample_ms_left.csv", ("left",), 102.4, 23000),
    ("imu_sample_ms_right.csv", ("right",), 102.4, 23000),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "feet", "rate_hz", "first_sample"), GAITMAP_FILES)
def test_import_gaitmap_takes_every_example_file(
    tmp_path: Path, name: str, feet: tuple[str, ...], rate_hz: float, first_sample: int
) -> None:
    path = require_shared_data("gaitmap_example", name)
    out = tmp_path / "walk.insole"
    argv = ["import", "gaitmap", str(path), "-o", str(out)]
    if "not_rotated" in name:
        with pytest.raises(UserError, match="sensor frame"):  # only when asked for
            _run(argv)
        argv.append("--sensor-frame")
    assert _run(argv) == 0
    back = read_recording(out)
    assert tuple(s.side for s in back.streams) == feet
    text = path.read_text().splitlines()
    n_rows = len(text) - (1 if len(feet) == 1 else 2)
    for stream in back.streams:
        assert stream.rate_hz == pytest.approx(rate_hz, abs=0.01)
        assert stream.n_samples == n_rows
        assert stream.t0_s == pytest.approx(first_sample / rate_hz, abs=1e-3)
        # At rest the foot reads gravity (m/s², as we store it).
        assert stream.acc_ms2 is not None and stream.gyro_dps is not None
        still = np.linalg.norm(stream.gyro_dps, axis=1) < 5.0
        assert 9.0 < float(np.median(np.linalg.norm(stream.acc_ms2[still], axis=1))) < 10.6
