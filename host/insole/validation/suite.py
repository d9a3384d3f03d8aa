"""The rows of `insole validate`, by name, and the data each needs."""

from __future__ import annotations

from collections.abc import Callable

from insole.paths import SHARED_DATA_DIR
from insole.validation import simulated
from insole.validation.table import Row

RowBuilder = Callable[[bool], list[Row]]  # quick -> rows


def _simulated_fpa(quick: bool) -> list[Row]:
    return [simulated.simulated_fpa_row(steps_per_value=10 if quick else 16)]


def _simulated_raises(quick: bool) -> list[Row]:
    return [simulated.simulated_heel_raise_row()]


# name -> (builder, folder under ../shared/data it needs, or None)
ROWS: dict[str, tuple[RowBuilder, str | None]] = {
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
