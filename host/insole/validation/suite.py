"""The rows of `insole validate`, by name, and the data each needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from insole.paths import SHARED_DATA_DIR
from insole.validation import pressure_cases, simulated
from insole.validation.table import Goal, Row

RowBuilder = Callable[[bool], list[Row]]  # quick -> rows


def _simulated_fpa(quick: bool) -> list[Row]:
    return [simulated.simulated_fpa_row(steps_per_value=10 if quick else 16)]


def _simulated_raises(quick: bool) -> list[Row]:
    return [simulated.simulated_heel_raise_row()]


GAITPDB_QUICK = ("GaCo01_01", "GaPt03_01", "GaPt13_10", "GaCo14_10")  # controls, PD, dual task


def _gaitpdb_files(quick: bool) -> list[Path]:
    files = sorted((SHARED_DATA_DIR / "gaitpdb").glob("Ga*_*.txt"))
    return [f for f in files if f.stem in GAITPDB_QUICK] if quick else files


def _moticon_files() -> list[Path]:
    return [SHARED_DATA_DIR / "moticon_opengo" / name for name in ("230927_102114.txt", "230927_102137.txt")]


def _event_row(data: str, reference: str, goals: tuple[Goal, ...], scores: dict[str, Any]) -> Row:
    row = Row(data=data, reference=reference, goals=goals)
    row.n_reference = int(scores["n_reference"])
    row.f1 = float(scores["f1"])
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
    files = _gaitpdb_files(quick)
    which = f"{len(files)} walks" if quick else "all 23 walks"
    reference = "force onset/offset, 2 % of the 95th pct"
    return [
        _event_row(f"gaitpdb, {which}, both feet", reference,
                   (Goal("f1", ">=", 0.995), Goal("ic_mae_ms", "<=", 10.0)),
                   pressure_cases.score_gaitpdb(files)),
        _event_row(f"gaitpdb time-reversed, {which}", reference + ", reversed",
                   (Goal("direction_pct", ">=", 95.0), Goal("f1", ">=", 0.95)),
                   pressure_cases.score_gaitpdb(files, reversed=True)),
    ]


def _moticon(quick: bool) -> list[Row]:
    files = _moticon_files()
    return [
        _event_row("Moticon, both files (pressure + IMU)", "vendor events",
                   (Goal("f1", ">=", 0.98), Goal("ic_mae_ms", "<=", 20.0), Goal("to_mae_ms", "<=", 20.0)),
                   pressure_cases.score_moticon(files, with_imu=True)),
        _event_row("Moticon time-reversed (pressure + IMU)", "vendor events, reversed",
                   (Goal("direction_pct", ">=", 95.0), Goal("f1", ">=", 0.95)),
                   pressure_cases.score_moticon(files, reversed=True, with_imu=True)),
    ]


# name -> (builder, folder under ../shared/data it needs, or None)
ROWS: dict[str, tuple[RowBuilder, str | None]] = {
    "gaitpdb": (_gaitpdb, "gaitpdb"),
    "moticon": (_moticon, "moticon_opengo"),
    "sim-fpa": (_simulated_fpa, None),
    "sim-raises": (_simulated_raises, None),
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
        if folder is not None and not (SHARED_DATA_DIR / folder).is_dir():
            missing.append((name, f"{SHARED_DATA_DIR / folder} not found"))
            continue
        if progress:
            progress(name)
        rows.extend(builder(quick))
    return rows, missing
