#!/usr/bin/env python3
"""Derive the Moticon OpenGo (size 7) sensor layout from the vendor's own CoP, and check the IMU axes.

Moticon does not publish its cell positions, but every export row carries the 16
cell pressures p_i [N/cm²], the total force F [N] and the centre of pressure
(X, Y) in a normalised insole frame (−0.5…0.5). With cell areas a_i and positions
(x_i, y_i):

    F = Σ a_i p_i                    → least squares over all rows gives a_i
    F · X = Σ (a_i x_i) p_i          → least squares gives a_i x_i, so x_i
    F · Y = Σ (a_i y_i) p_i          → likewise y_i

Rows where the foot carries < 60 N are left out of the position fit (the vendor
reports CoP = 0 there). Both feet and both size-7 files are pooled after checking
that the feet give the same positions (Moticon's CoP frame is side-agnostic).
Conventions are read off the fit, not assumed: +X points to the toes if the cells
loaded first after the vendor's initial contacts have the most negative X, and +Y
is medial if the least-loaded midfoot cell (the arch) and the hallux lie at +Y.

Millimetres assume a size-7 insole of 290 mm × 100 mm (OpenGo size 7 taken as
about EU 44–45; the sum of the fitted cell areas, ~200 cm², fits that outline, and
the size-3 export's total-force/pressure ratio is 1.45× smaller, as an insole four
sizes smaller would be). x_mm = (X + 0.5) · 290 from the insole's rear end;
y_mm = −Y · 100 for the left foot (medial is −y there).

    .venv/bin/python tools/derive_moticon_layout.py            # print the fit and the checks
    .venv/bin/python tools/derive_moticon_layout.py --write    # also write hardware/layouts/moticon16.json
    .venv/bin/python tools/derive_moticon_layout.py --imu-evidence
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from insole.importers.moticon import MoticonRecording, read_moticon
from insole.model import FloatArray
from insole.resources import shared_data_dir

DATA_DIR = shared_data_dir() / "moticon_opengo"
LAYOUTS_DIR = Path(__file__).resolve().parents[1] / "hardware" / "layouts"
SIZE7_FILES = ("230927_102114.txt", "230927_102137.txt")
INSOLE_LENGTH_MM = 290.0
INSOLE_WIDTH_MM = 100.0
MIN_FORCE_FOR_COP_N = 60.0


def _rows(recordings: list[MoticonRecording], sides: tuple[str, ...]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(pressure, vendor force, vendor CoP) of all complete rows of the given feet."""
    p, f, c = [], [], []
    for rec in recordings:
        for stream in rec.streams:
            if stream.side not in sides or stream.pressure is None:
                continue
            force = rec.vendor_total_force_n[stream.side]
            cop = rec.vendor_cop_norm[stream.side]
            ok = ~np.isnan(stream.pressure).any(axis=1) & ~np.isnan(force) & ~np.isnan(cop).any(axis=1)
            p.append(stream.pressure[ok])
            f.append(force[ok])
            c.append(cop[ok])
    return np.vstack(p), np.concatenate(f), np.vstack(c)


def fit_layout(pressure: FloatArray, force_n: FloatArray, cop: FloatArray) -> dict[str, FloatArray]:
    loaded = pressure.sum(axis=1) > 0
    areas, *_ = np.linalg.lstsq(pressure[loaded], force_n[loaded], rcond=None)
    model_force = pressure @ areas
    use = model_force > MIN_FORCE_FOR_COP_N
    weighted_x, *_ = np.linalg.lstsq(pressure[use], (model_force * cop[:, 0])[use], rcond=None)
    weighted_y, *_ = np.linalg.lstsq(pressure[use], (model_force * cop[:, 1])[use], rcond=None)
    positions = np.column_stack([weighted_x / areas, weighted_y / areas])
    predicted = (pressure[use] * areas) @ positions / model_force[use, None]
    error = np.hypot(*(predicted - cop[use]).T)
    force_error = model_force[loaded] - force_n[loaded]
    return {
        "areas_cm2": areas,
        "positions_norm": positions,
        "cop_error": error,
        "force_rms_n": np.sqrt(np.mean(force_error**2)),
    }


def check_conventions(recordings: list[MoticonRecording], positions: FloatArray) -> tuple[int, int]:
    """(sign of X toward the toes, sign of Y toward medial), read off the data."""
    early = []
    stance = []
    for rec in recordings:
        for stream in rec.streams:
            assert stream.pressure is not None
            ic_s = rec.reference_events[stream.side].ic_s
            rows = np.round((ic_s - stream.t0_s) * stream.rate_hz).astype(int)
            rows = rows[(rows >= 0) & (rows + 4 < stream.n_samples)]
            early.append(np.nanmean(np.stack([stream.pressure[r : r + 4] for r in rows]), axis=(0, 1)))
            loaded = rec.vendor_total_force_n[stream.side] > 200
            stance.append(np.nanmean(stream.pressure[loaded], axis=0))
    early_mean = np.mean(early, axis=0)
    first_loaded = np.argsort(early_mean)[-4:]
    toes_sign = 1 if positions[first_loaded, 0].mean() < 0 else -1
    print(
        f"cells loaded first after initial contact: {sorted((first_loaded + 1).tolist())} at mean X "
        f"{positions[first_loaded, 0].mean():+.3f} → +X points to the {'toes' if toes_sign > 0 else 'heel'}"
    )
    stance_mean = np.mean(stance, axis=0)
    midfoot = np.flatnonzero(np.abs(positions[:, 0]) < 0.15)
    arch = midfoot[np.argmin(stance_mean[midfoot])]
    toe_cells = np.flatnonzero(positions[:, 0] > 0.3)
    hallux = toe_cells[np.argmax(stance_mean[toe_cells])]
    medial_sign = 1 if positions[arch, 1] > 0 else -1
    others = np.delete(stance_mean[midfoot], np.argmin(stance_mean[midfoot])).mean()
    print(
        f"midfoot cells {(midfoot + 1).tolist()}: least loaded (arch) is cell {arch + 1} at Y "
        f"{positions[arch, 1]:+.3f} ({stance_mean[arch]:.2f} N/cm² vs {others:.2f} for the others); "
        f"most loaded toe cell (hallux) is {hallux + 1} at Y {positions[hallux, 1]:+.3f}"
    )
    if np.sign(positions[hallux, 1]) != medial_sign:
        raise SystemExit("arch and hallux disagree about the medial side; not writing a layout")
    print(f"→ +Y is {'medial' if medial_sign > 0 else 'lateral'} (both feet: the vendor frame is side-agnostic)")
    return toes_sign, medial_sign


def layout_json(
    areas: FloatArray, positions: FloatArray, toes_sign: int, medial_sign: int, stats: str
) -> dict[str, Any]:
    along = positions[:, 0] * toes_sign  # heel → toes, −0.5…0.5
    medial = positions[:, 1] * medial_sign  # lateral → medial
    channels: list[dict[str, Any]] = []
    for k in range(len(areas)):
        x_mm = (along[k] + 0.5) * INSOLE_LENGTH_MM
        y_mm = -medial[k] * INSOLE_WIDTH_MM  # left foot: medial is −y
        region = (
            "heel" if along[k] < -0.2 else "midfoot" if along[k] < 0.1 else "forefoot" if along[k] < 0.35 else "toe"
        )
        side = "medial" if medial[k] > 0.08 else "lateral" if medial[k] < -0.08 else "central"
        channels.append({
            "label": f"cell {k + 1} {region} {side}",
            "x_mm": round(float(x_mm), 1),
            "y_mm": round(float(y_mm), 1),
            "region": region,
            "area_cm2": round(float(areas[k]), 2),
        })
    return {
        "name": "moticon16",
        "description": (
            "Moticon OpenGo sensor insole, size 7, 16 cells. Positions and areas DERIVED from the vendor's own "
            "centre of pressure and total force in the two size-7 sample exports (Apache-2.0, moticon-opengo 1.0.3) "
            "by least squares (tools/derive_moticon_layout.py): F = sum(a_i p_i), F*CoP = sum(a_i pos_i p_i). "
            f"{stats} Vendor CoP frame: X toward the toes, Y toward medial, both feet, -0.5..0.5 of the insole. "
            f"mm assume a {INSOLE_LENGTH_MM:g} x {INSOLE_WIDTH_MM:g} mm insole (size 7 taken as about EU 44-45; "
            "Moticon does not publish the outline): x_mm = (X + 0.5) * length from the insole's rear end, "
            "y_mm = -Y * width for the left foot. Moticon scales the layout with the insole size, so other sizes "
            "share the normalised positions but not the mm or the areas."
        ),
        "frame": (
            "x_mm from the heel centre toward the toes, y_mm to the left, given for the LEFT foot; "
            "the right foot mirrors y."
        ),
        "foot_length_mm": INSOLE_LENGTH_MM,
        "foot_width_mm": INSOLE_WIDTH_MM,
        "pressure_unit": "N/cm²",
        "channels": channels,
    }


def imu_evidence(recordings: list[MoticonRecording]) -> None:
    """The checks behind the axis conversion in insole.importers.moticon, in OUR frame after import."""
    for rec in recordings:
        print(f"== {rec.path.name}")
        profiles = {}
        for s in rec.streams:
            assert s.acc_ms2 is not None and s.gyro_dps is not None
            acc, gyro = s.acc_ms2, s.gyro_dps
            force = rec.vendor_total_force_n[s.side]
            cop = rec.vendor_cop_norm[s.side]
            rate = np.linalg.norm(gyro, axis=1)
            quiet = (rate < 5) & (force > 200)
            stance = force > 200
            calm_stance = (rate < 15) & (force > 200)
            toes_down = np.degrees(np.arctan2(-acc[:, 0], acc[:, 2]))
            medial_up = np.degrees(np.arctan2(acc[:, 1] * (-1 if s.side == "left" else 1), acc[:, 2]))
            rest = np.round(np.nanmean(acc[quiet], axis=0), 2) if quiet.any() else "no quiet moment"
            print(f"  {s.side:5s} at rest (n={quiet.sum()}): acc {rest} m/s²")
            print(f"        corr(CoP toward toes, toes-down pitch) in stance: "
                  f"{np.corrcoef(cop[stance, 0], toes_down[stance])[0, 1]:+.2f} (> 0: x points to the toes)")
            print(f"        corr(CoP medial, medial edge up) standing calmly: "
                  f"{np.corrcoef(cop[calm_stance, 1], medial_up[calm_stance])[0, 1]:+.2f} "
                  "(< 0: load moves to the lower edge)")
            right, left = hand_rule_errors_deg(acc, gyro, s.rate_hz)
            print(f"        gravity predicted by integrated gyro, median error: "
                  f"right-hand rule {right:.2f}°, left-hand {left:.2f}°")
            ic = rec.reference_events[s.side].ic_s
            rows = np.round((ic - s.t0_s) * s.rate_hz).astype(int)
            profiles[s.side] = stride_profile(np.column_stack([acc, gyro]), rows)
        if len(profiles) == 2:
            corr = [np.corrcoef(profiles["left"][:, k], profiles["right"][:, k])[0, 1] for k in range(6)]
            print("  left vs right mean-stride correlation (ax ay az gx gy gz): "
                  + " ".join(f"{c:+.2f}" for c in corr) + "  (common frame: ay, gx, gz < 0)")


def hand_rule_errors_deg(acc: FloatArray, gyro_dps: FloatArray, rate_hz: float, lag: int = 12) -> tuple[float, float]:
    """Median angle between measured and gyro-propagated gravity over quasi-static windows, (right, left) rule.

    Windows of `lag` samples whose both ends read |acc| within 5 % of g and that rotate
    by more than 3°; NaN if there are fewer than 10 such windows.
    """
    g = np.linalg.norm(acc, axis=1)
    still = np.abs(g / 9.80665 - 1) < 0.05
    theta = np.cumsum(np.nan_to_num(np.radians(gyro_dps)) / rate_hz, axis=0)
    i = np.flatnonzero(still[:-lag] & still[lag:])
    rotation = theta[i + lag] - theta[i]  # small-angle composition over `lag` samples
    angle = np.linalg.norm(rotation, axis=1)
    keep = angle > np.radians(3)
    i, rotation, angle = i[keep], rotation[keep], angle[keep]
    if len(i) < 10:
        return float("nan"), float("nan")
    axis = rotation / angle[:, None]
    v, target = acc[i], acc[i + lag]
    errors = []
    for sign in (1.0, -1.0):
        k = axis * sign
        # v in the rotated body frame: R^T v with R = exp(angle [k]x)
        predicted = (v * np.cos(angle)[:, None] - np.cross(k, v) * np.sin(angle)[:, None]
                     + k * np.sum(k * v, axis=1, keepdims=True) * (1 - np.cos(angle))[:, None])
        cos = np.sum(predicted * target, axis=1) / np.linalg.norm(predicted, axis=1) / np.linalg.norm(target, axis=1)
        errors.append(float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1))))))
    return errors[0], errors[1]


def stride_profile(signal: FloatArray, ic_rows: np.ndarray, points: int = 100) -> FloatArray:
    """Mean of the strides between consecutive initial contacts, time-normalised."""
    strides = []
    for a, b in itertools.pairwise(ic_rows):
        segment = signal[a:b]
        if 50 <= b - a <= 300 and a >= 0 and not np.isnan(segment).any():
            x = np.linspace(0, 1, len(segment))
            strides.append(np.column_stack([np.interp(np.linspace(0, 1, points), x, col) for col in segment.T]))
    return np.asarray(np.mean(strides, axis=0), dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {LAYOUTS_DIR / 'moticon16.json'}")
    parser.add_argument("--imu-evidence", action="store_true", help="print the IMU axis checks")
    args = parser.parse_args(argv)
    recordings = [read_moticon(DATA_DIR / name) for name in SIZE7_FILES]
    if args.imu_evidence:
        imu_evidence(recordings + [read_moticon(DATA_DIR / "walk_data_with_events" / "text_export.txt")])
        return 0

    per_side = {side: fit_layout(*_rows(recordings, (side,))) for side in ("left", "right")}
    spread = np.abs(per_side["left"]["positions_norm"] - per_side["right"]["positions_norm"]).max()
    print(f"left vs right fitted positions differ by at most {spread:.4f} (normalised): one side-agnostic frame")
    fit = fit_layout(*_rows(recordings, ("left", "right")))
    error = fit["cop_error"]
    stats = (f"Fit over {len(error)} loaded rows: CoP reproduced with median error {np.median(error):.5f}, "
             f"99th percentile {np.percentile(error, 99):.5f}; total force rms error {fit['force_rms_n']:.2f} N.")
    print(stats)
    for k, ((x, y), a) in enumerate(zip(fit["positions_norm"], fit["areas_cm2"], strict=True)):
        print(f"  cell {k + 1:2d}: X {x:+.4f}  Y {y:+.4f}  area {a:6.2f} cm²")
    toes_sign, medial_sign = check_conventions(recordings, fit["positions_norm"])
    layout = layout_json(fit["areas_cm2"], fit["positions_norm"], toes_sign, medial_sign, stats)
    if args.write:
        path = LAYOUTS_DIR / "moticon16.json"
        lines = ",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in layout["channels"])
        head = json.dumps({k: v for k, v in layout.items() if k != "channels"}, indent=2, ensure_ascii=False)
        path.write_text(head[:-2] + ',\n  "channels": [\n' + lines + "\n  ]\n}\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
