"""The rows of `insole validate`, by name, and the data each needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from insole.resources import DATA_DIR_ENV, shared_data_dir
from insole.validation import imu_cases, pressure_cases, simulated, voisard_cases
from insole.validation.gaitmap import load_gaitmap_walk
from insole.validation.references import gaitpdb_walk_files, moticon_walk_files
from insole.validation.table import Goal, Row
from insole.validation.voisard import load_voisard_trial, voisard_trial_names

RowBuilder = Callable[[bool], list[Row]]  # quick -> rows


def _simulated_fpa(quick: bool) -> list[Row]:
    return [simulated.simulated_fpa_row(steps_per_value=10 if quick else 16)]


def _simulated_raises(quick: bool) -> list[Row]:
    return [simulated.simulated_heel_raise_row()]


# The time-reversed row's walks in a quick run: controls, PD, dual task. The forward row
# always scores all 23: a subset would leave out GaCo13_10, the walk that makes it miss
# its F1 goal (README), and CI must show that miss.
GAITPDB_REVERSED_QUICK = ("GaCo01_01", "GaPt03_01", "GaPt13_10", "GaCo14_10")


def _event_row(data: str, reference: str, goals: tuple[Goal, ...], scores: dict[str, Any]) -> Row:
    row = Row(data=data, reference=reference, goals=goals)
    row.n_reference = int(scores["n_reference"])
    row.f1 = float(scores["f1"])
    row.to_f1 = float(scores.get("to_f1", float("nan")))
    row.ic_mae_ms = float(scores["ic_mae_ms"])
    row.to_mae_ms = float(scores["to_mae_ms"])
    row.direction_pct = float(scores["direction_pct"])
    row.notes.append(
        f"{scores['n_detected']} steps detected; direction unknown {scores['unknown_pct']:.1f} %, "
        f"wrong {scores['wrong_direction_pct']:.1f} %; IC bias {scores['ic_bias_ms']:+.1f} ms, "
        f"TO bias {scores['to_bias_ms']:+.1f} ms"
    )
    return row


def _gaitpdb(quick: bool) -> list[Row]:
    files = gaitpdb_walk_files()
    reversed_files = [f for f in files if f.stem in GAITPDB_REVERSED_QUICK] if quick else files
    reversed_walks = f"{len(reversed_files)} walks" if quick else f"all {len(files)} walks"
    reference = "force onset/offset, 2 % of the 95th pct"
    return [
        _event_row(f"gaitpdb, all {len(files)} walks, both feet", reference,
                   (Goal("f1", ">=", 0.995), Goal("ic_mae_ms", "<=", 10.0)),
                   pressure_cases.score_gaitpdb(files)),
        _event_row(f"gaitpdb time-reversed, {reversed_walks}", reference + ", reversed",
                   (Goal("direction_pct", ">=", 95.0), Goal("f1", ">=", 0.95)),
                   pressure_cases.score_gaitpdb(reversed_files, reversed=True)),
    ]


def _moticon(quick: bool) -> list[Row]:
    files = moticon_walk_files()
    return [
        _event_row("Moticon, both files (pressure + IMU)", "vendor events",
                   (Goal("f1", ">=", 0.98), Goal("ic_mae_ms", "<=", 20.0), Goal("to_mae_ms", "<=", 20.0)),
                   pressure_cases.score_moticon(files, with_imu=True)),
        _event_row("Moticon time-reversed (pressure + IMU)", "vendor events, reversed",
                   (Goal("direction_pct", ">=", 95.0), Goal("f1", ">=", 0.95)),
                   pressure_cases.score_moticon(files, reversed=True, with_imu=True)),
    ]


def _gaitmap(quick: bool) -> list[Row]:
    walk = load_gaitmap_walk()
    rows = [
        _event_row("gaitmap, IMU only, both feet", "motion-capture IC/TC",
                   (Goal("f1", ">=", 0.98), Goal("to_f1", ">=", 0.98), Goal("ic_mae_ms", "<=", 20.0),
                    Goal("to_mae_ms", "<=", 20.0)),
                   imu_cases.score_gaitmap_events(walk)),
        _event_row("gaitmap time-reversed, IMU only", "motion-capture IC/TC, reversed",
                   (Goal("direction_pct", ">=", 95.0), Goal("f1", ">=", 0.95)),
                   imu_cases.score_gaitmap_events(walk, reversed=True)),
    ]
    fpa = imu_cases.score_gaitmap_fpa(walk)
    offsets = ", ".join(f"{side} {deg:+.1f}°" for side, deg in fpa["offset_deg"].items())
    project = Row(
        data="gaitmap FPA, straight strides, IMU only",
        reference="mocap markers: stance foot axis vs displacement into it",
        goals=(Goal("fpa_mae_deg", "<=", 2.0),),
        n_reference=int(fpa["project_n"]),
        fpa_mae_deg=float(fpa["project_cal_mae_deg"]),
        fpa_n=int(fpa["project_n"]),
    )
    project.notes.append(
        f"after a per-foot mounting-yaw calibration learnt on the other 20 m bout (sensor yaw {offsets}); "
        f"uncalibrated {fpa['project_mae_deg']:.2f}°; stride length MAE {100 * fpa['stride_mae_m']:.1f} cm"
    )
    derived = Row(
        data="gaitmap FPA, straight strides, IMU only",
        reference="DERIVED_fpa_reference_from_mocap.csv (axis at stride start)",
        goals=(Goal("fpa_mae_deg", "<=", 2.0),),
        n_reference=int(fpa["start_n"]),
        fpa_mae_deg=float(fpa["start_cal_mae_deg"]),
        fpa_n=int(fpa["start_n"]),
    )
    derived.notes.append(
        f"same calibration; paired with the step of the stride's start stance (same foot axis, displacement into "
        f"it rather than out of it); paired by the end stance instead: {fpa['end_cal_mae_deg']:.2f}°"
    )
    return rows + [project, derived]


def _moticon_imu(quick: bool) -> list[Row]:
    return [
        _event_row("Moticon time-reversed, IMU only", "vendor events, reversed",
                   (Goal("direction_pct", ">=", 95.0),),
                   imu_cases.score_moticon_imu(moticon_walk_files(), reversed=True)),
    ]


def _simulated_imu(quick: bool) -> list[Row]:
    rows = []
    for kind, tilt, label in (("backward", None, "backward walking"), ("turns", None, "turns (90°, 180°)"),
                              ("sweep", (45.0, 90.0), "FPA sweep, IMU tilted 45°")):
        scores = imu_cases.score_simulated(kind, tilt=tilt, steps_per_value=8 if quick else 12)
        goals = (Goal("direction_pct", ">=", 99.0),) if kind == "backward" else (Goal("fpa_mae_deg", "<=", 1.0),)
        row = Row(data=f"simulated {label}, IMU only", reference="exact (simulator)", goals=goals,
                  n_reference=int(scores["n"]), fpa_mae_deg=float(scores["fpa_mae_deg"]),
                  fpa_n=int(scores["fpa_n"]), direction_pct=float(scores["direction_pct"]))
        if kind == "turns":
            row.goals = (Goal("turning_backward", "==", 0),)
            row.turning_backward = int(scores["turning_backward"])
            row.notes.append(f"{scores['turning_backward']} of {scores['turning_n']} turning steps read as backward")
        rows.append(row)
    return rows


VOISARD_REFERENCE = "hand-checked labels (gyro detectors)"
IMU_EVENT_GOALS = (Goal("f1", ">=", 0.90), Goal("to_f1", ">=", 0.90), Goal("ic_scatter_ms", "<=", 15.0),
                   Goal("turning_backward", "==", 0))
BACKWARD_F1_WITHIN = 0.05  # of walking forward (issue 12)


def _voisard_row(data: str, reference: str, goals: tuple[Goal, ...], scores: dict[str, Any]) -> Row:
    row = Row(data=data, reference=reference, goals=goals, n_reference=int(scores["n_reference"]),
              f1=float(scores["ic_f1"]), to_f1=float(scores["to_f1"]), direction_pct=float(scores["direction_pct"]),
              wrong_direction_pct=float(scores["wrong_direction_pct"]), turning_backward=int(scores["turning_backward"]))
    for kind in voisard_cases.EVENT_KINDS:
        setattr(row, f"{kind}_offset_ms", float(scores[f"{kind}_offset_ms"]))
        setattr(row, f"{kind}_scatter_ms", float(scores[f"{kind}_scatter_ms"]))
        for category in voisard_cases.CATEGORIES:
            setattr(row, f"{category}_{kind}_recall", float(scores[f"{kind}_recall_{category}"]))
    counts = ", ".join(f"{c} {scores[f'n_{c}']}" for c in voisard_cases.CATEGORIES)
    directions = "; ".join(
        f"{c}: " + ", ".join(f"{n} {d}" for d, n in by_direction.items()) for c, by_direction in scores["directions"].items()
    )
    row.notes.append(f"{scores['n_detected']} ICs detected; labelled swings {counts}; directions of the steps matched "
                     f"by their IC, {directions}")
    return row


def _fold_note(fold: voisard_cases.Fold) -> str:
    p = fold.parameters
    return (f"subject {fold.subject}: {p.stance_gyr_threshold_dps:.0f} / {p.stance_pitch_threshold_dps:.0f} deg/s "
            f"(objective {fold.train_objective:.3f}, offsets IC {1000 * fold.ic_offset_s:+.0f} ms, "
            f"TO {1000 * fold.to_offset_s:+.0f} ms)")


def _voisard(quick: bool) -> list[Row]:
    trials = [load_voisard_trial(name) for name in voisard_trial_names()]
    subjects = len({t.subject for t in trials})
    loso = voisard_cases.leave_one_subject_out(trials)
    held_out = _voisard_row(f"voisard, {subjects} walkers held out in turn, IMU only (host twin)", VOISARD_REFERENCE,
                            IMU_EVENT_GOALS, loso)
    held_out.notes.append(
        "each walker scored with the stance thresholds (|g| L1 / |gy|) and IC/TO offsets chosen on the other "
        "four (mean of their IC and TO F1), its scatter around those offsets; per fold: "
        + "; ".join(_fold_note(f) for f in loso["folds"])
    )
    forward = voisard_cases.score_all(trials)
    backward_goals = (Goal("direction_pct", ">=", 95.0), Goal("wrong_direction_pct", "<=", 1.0),
                      Goal("f1", ">=", round(forward["ic_f1"] - BACKWARD_F1_WITHIN, 6)),
                      Goal("to_f1", ">=", round(forward["to_f1"] - BACKWARD_F1_WITHIN, 6)),
                      Goal("turning_backward", "==", 0))
    rows = [
        held_out,
        _voisard_row(f"voisard, all {subjects} walkers, IMU only", VOISARD_REFERENCE, IMU_EVENT_GOALS, forward),
        _voisard_row(f"voisard time-reversed, all {subjects} walkers, IMU only", VOISARD_REFERENCE + ", reversed",
                     backward_goals, voisard_cases.score_all(trials, reversed=True)),
    ]
    rows[1].notes.append("the shipped constants, tuned on these walkers: a fit, not a generalisation; "
                         "scatter around the row's own offset")
    rows[2].notes.append(f"F1 goals: within {BACKWARD_F1_WITHIN} of walking forward (the row above); "
                         "scatter around the row's own offset")
    return rows


# name -> (builder, folder under ../shared/data it needs, or None)
ROWS: dict[str, tuple[RowBuilder, str | None]] = {
    "gaitpdb": (_gaitpdb, "gaitpdb"),
    "moticon": (_moticon, "moticon_opengo"),
    "moticon-imu": (_moticon_imu, "moticon_opengo"),
    "gaitmap": (_gaitmap, "gaitmap_example"),
    "sim-fpa": (_simulated_fpa, None),
    "sim-raises": (_simulated_raises, None),
    "sim-imu": (_simulated_imu, None),
    "voisard": (_voisard, "voisard_dev"),
}
ROW_NAMES = tuple(ROWS)


def build_rows(
    names: list[str], *, quick: bool = False, progress: Callable[[str], None] | None = None
) -> tuple[list[Row], list[tuple[str, str]]]:
    """The rows asked for, and (name, reason) for those whose data is missing."""
    rows: list[Row] = []
    missing: list[tuple[str, str]] = []
    for name in names:
        builder, folder = ROWS[name]
        if folder is not None and not (shared_data_dir() / folder).is_dir():
            missing.append((name, f"{shared_data_dir() / folder} not found (set {DATA_DIR_ENV} to the data folder)"))
            continue
        if progress:
            progress(name)
        rows.extend(builder(quick))
    return rows, missing
