"""Importers: third-party recordings → `FootStream`s in physical units, foot frame.

One module per source, each with a function returning ``list[FootStream]``:

* :func:`insole.importers.moticon.import_moticon` — Moticon OpenGo text export
  (:func:`~insole.importers.moticon.read_moticon` also returns the vendor's events);
* :func:`insole.importers.gaitpdb.import_gaitpdb` — PhysioNet gaitpdb;
* :func:`insole.importers.csv_generic.import_csv` — one CSV per foot.

This module holds what they share: reading a delimited text table with the file line
of every row kept for error messages, strict numeric conversion, the check that a
time column is uniformly sampled (:func:`check_uniform_timing`) or, for sources
that drop rows, the placement of rows on the sample grid (:func:`grid_indices`). Problems in the input raise
:class:`insole.errors.UserError` naming the file and line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from insole.errors import UserError
from insole.model import FloatArray

# A time step may differ from the median step by this fraction before it counts as a
# gap, a duplicate or jitter (ms-rounded time stamps at 250 Hz differ by 25 %).
STEP_TOLERANCE = 0.3
# Time stamps may wander from the fitted uniform grid by this many sample periods.
GRID_TOLERANCE_SAMPLES = 0.5


class TextTable:
    """Rows of a delimited text file, with the file line of every row for error messages.

    Cells are split into strings only when a column is asked for with :meth:`numbers`;
    :meth:`all_numbers` converts a fully numeric table in one C-level pass.
    """

    def __init__(
        self,
        path: Path,
        columns: list[str],
        data_lines: npt.NDArray[np.str_],
        line_numbers: npt.NDArray[np.int64],
        delimiter: str,
    ) -> None:
        self.path = path
        self.columns = columns  # header names, or "column 1".. when the file has none
        self.data_lines = data_lines
        self.line_numbers = line_numbers  # 1-based line in the file of each row
        self.delimiter = delimiter
        self._cells: npt.NDArray[np.str_] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.data_lines)

    @property
    def cells(self) -> npt.NDArray[np.str_]:
        """(n_rows, n_columns) stripped strings; field counts were checked when reading."""
        if self._cells is None:
            # One split of the joined text instead of one per line.
            joined = self.delimiter.join(self.data_lines.tolist())
            cells = np.array(joined.split(self.delimiter), dtype=np.str_)
            self._cells = np.char.strip(cells.reshape(self.n_rows, len(self.columns)))
        return self._cells

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.line_numbers[row])}"

    def all_numbers(self) -> FloatArray:
        """The whole table as float64 (no empty cells allowed); the first bad cell → UserError."""
        try:
            values = np.loadtxt(
                self.data_lines, delimiter=self.delimiter, dtype=np.float64, comments=None, ndmin=2
            )
        except ValueError:
            values = None
        if values is not None and not np.isinf(values).any():
            return values
        # Slow path, only for a bad file: find and name the offending cell.
        return np.column_stack([self.numbers(k, allow_empty=False) for k in range(len(self.columns))])

    def numbers(self, column: int, *, allow_empty: bool = True) -> FloatArray:
        """Column `column` as float64; empty cells → NaN (if allowed); anything else non-numeric → UserError."""
        raw = self.cells[:, column]
        empty = raw == ""
        if empty.any() and not allow_empty:
            row = int(np.flatnonzero(empty)[0])
            raise UserError(f"{self.where(row)}: column {self.columns[column]!r} is empty")
        try:
            values = np.where(empty, "nan", raw).astype(np.float64)
        except ValueError:
            values = None
        if values is not None:
            # "nan" written out counts as missing; "inf" is not a measurement.
            bad = np.isinf(values)
            if not bad.any():
                return values
            row = int(np.flatnonzero(bad)[0])
        else:
            row = self._first_non_number(raw)
        raise UserError(f"{self.where(row)}: column {self.columns[column]!r}: {str(raw[row])!r} is not a number")

    @staticmethod
    def _first_non_number(raw: npt.NDArray[np.str_]) -> int:
        for row, text in enumerate(raw):  # error path only: find the cell to report
            if text == "":
                continue
            try:
                value = float(text)
            except ValueError:
                return row
            if math.isinf(value):
                return row
        raise AssertionError("numpy refused a column that Python parses")


def read_text_table(
    path: Path,
    *,
    delimiter: str,
    header: str,
    source: str,
    n_columns: int | None = None,
) -> TextTable:
    """Read a delimited file whose rows all have the same number of fields.

    ``header`` says where the column names are: ``"first"`` (the first non-blank
    line), ``"last-comment"`` (the last line starting with ``#``, Moticon) or
    ``"none"``. Blank lines are skipped; with ``"last-comment"`` so are all lines
    starting with ``#``. ``source`` names the format in error messages. Without a
    header, every row must have ``n_columns`` fields (default: as many as the first).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({source} expected)") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    lines = np.array(text.splitlines() or [""], dtype=np.str_)
    blank = np.char.strip(lines) == ""
    data_mask = ~blank
    columns: list[str] | None = None
    if header == "last-comment":
        comment = np.char.startswith(lines, "#")
        comment_rows = np.flatnonzero(comment)
        if not comment_rows.size:
            raise UserError(f"{path}: no '#' header lines; not a {source} file")
        columns = [c.strip() for c in str(lines[comment_rows[-1]])[1:].split(delimiter)]
        data_mask &= ~comment
    elif header == "first":
        nonblank = np.flatnonzero(data_mask)
        if not nonblank.size:
            raise UserError(f"{path}: the file is empty")
        columns = [c.strip() for c in str(lines[nonblank[0]]).split(delimiter)]
        data_mask[nonblank[0]] = False
    elif header != "none":
        raise ValueError(f"unknown header mode {header!r}")
    data_rows = np.flatnonzero(data_mask)
    line_numbers = data_rows.astype(np.int64) + 1
    if not data_rows.size:
        raise UserError(f"{path}: no data rows")
    data_lines = lines[data_rows]
    field_counts = np.char.count(data_lines, delimiter) + 1
    if columns is not None:
        n_columns, reference = len(columns), "as in the header"
    elif n_columns is not None:
        reference = f"for a {source}"
    else:
        n_columns, reference = int(field_counts[0]), "as in the first row"
    wrong = np.flatnonzero(field_counts != n_columns)
    if wrong.size:
        row = int(wrong[0])
        raise UserError(
            f"{path}:{line_numbers[row]}: {field_counts[row]} fields, expected {n_columns} "
            f"(separated by {delimiter!r}) {reference}"
        )
    if columns is None:
        columns = [f"column {k + 1}" for k in range(n_columns)]
    return TextTable(path, columns, data_lines, line_numbers, delimiter)


def check_uniform_timing(
    times_s: FloatArray,
    table: TextTable,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    nominal_rate_hz: float | None = None,
    rate_tolerance: float = 1e-3,
) -> float:
    """The sampling rate of a time column, after checking the samples are uniformly spaced.

    Refuses (UserError naming the line) a missing or non-finite time, a step that
    differs from the median step by more than ``STEP_TOLERANCE`` (a gap, duplicate,
    out-of-order stamp or jitter), and time stamps wandering more than
    ``GRID_TOLERANCE_SAMPLES`` from a least-squares uniform grid. The rate is the
    slope of that fit (robust to rounded stamps); with ``nominal_rate_hz`` the
    documented rate is returned instead, provided the fit agrees within
    ``rate_tolerance`` (relative). ``rows`` maps entries of ``times_s`` to table rows.
    """
    row_of = np.arange(len(times_s)) if rows is None else rows
    if len(times_s) < 2:
        raise UserError(f"{table.path}: {len(times_s)} sample(s); need at least 2 to know the rate")
    not_finite = np.flatnonzero(~np.isfinite(times_s))
    if not_finite.size:
        raise UserError(f"{table.where(int(row_of[not_finite[0]]))}: time is missing or not a number")
    steps = np.diff(times_s)
    median_step = float(np.median(steps))
    if median_step <= 0:
        raise UserError(f"{table.path}: time does not increase (median step {median_step} s)")
    odd = np.flatnonzero(np.abs(steps - median_step) > STEP_TOLERANCE * median_step)
    if odd.size:
        k = int(odd[0])
        raise UserError(
            f"{table.where(int(row_of[k + 1]))}: time step {steps[k] * 1e3:.2f} ms from the previous row, "
            f"expected about {median_step * 1e3:.2f} ms: irregular timing (gap, duplicate or jitter)"
        )
    index = np.arange(len(times_s), dtype=np.float64)
    slope, intercept = np.polyfit(index, times_s - times_s[0], 1)
    residual = times_s - times_s[0] - (intercept + slope * index)
    worst = int(np.argmax(np.abs(residual)))
    if abs(residual[worst]) > GRID_TOLERANCE_SAMPLES * slope:
        raise UserError(
            f"{table.where(int(row_of[worst]))}: time stamp is {residual[worst] * 1e3:+.2f} ms off a uniform "
            f"{1 / slope:.3f} Hz grid: irregular timing"
        )
    rate_hz = 1.0 / float(slope)
    if nominal_rate_hz is not None:
        if abs(rate_hz / nominal_rate_hz - 1.0) > rate_tolerance:
            raise UserError(f"{table.path}: time column gives {rate_hz:.3f} Hz, expected {nominal_rate_hz:g} Hz")
        return float(nominal_rate_hz)
    return rate_hz


def grid_indices(
    times_s: FloatArray,
    table: TextTable,
    *,
    rate_hz: float,
    max_gap_s: float = 2.0,
) -> tuple[npt.NDArray[np.int64], int]:
    """Sample index of every row on the grid ``t_first + k / rate_hz``, and the grid length.

    For sources that drop rows now and then (Moticon skips a 10 ms row when a packet is
    lost): the caller places rows at these indices and leaves the missing ones NaN.
    Refuses stamps off the grid by more than a quarter period, duplicates, time going
    backwards and gaps longer than ``max_gap_s``.
    """
    not_finite = np.flatnonzero(~np.isfinite(times_s))
    if not_finite.size:
        raise UserError(f"{table.where(int(not_finite[0]))}: time is missing or not a number")
    if len(times_s) < 2:
        raise UserError(f"{table.path}: {len(times_s)} sample(s); need at least 2")
    position = (times_s - times_s[0]) * rate_hz
    indices = np.round(position).astype(np.int64)
    off = np.flatnonzero(np.abs(position - indices) > 0.25)
    if off.size:
        row = int(off[0])
        raise UserError(f"{table.where(row)}: time {times_s[row]} s is off the {rate_hz:g} Hz sample grid")
    steps = np.diff(indices)
    bad = np.flatnonzero((steps < 1) | (steps > max_gap_s * rate_hz))
    if bad.size:
        row = int(bad[0]) + 1
        what = "repeats or goes back" if steps[bad[0]] < 1 else f"jumps {steps[bad[0]] / rate_hz:.2f} s"
        raise UserError(
            f"{table.where(row)}: time {what} (previous row {times_s[row - 1]} s, this row {times_s[row]} s)"
        )
    return indices, int(indices[-1]) + 1


def trim_all_nan_rows(columns: list[FloatArray]) -> tuple[int, int] | None:
    """(first, stop) of the rows where any of `columns` (each (n,) or (n, k)) has a value; None if none."""
    present = np.zeros(len(columns[0]), dtype=bool)
    for c in columns:
        values = c.reshape(len(c), -1)
        present |= ~np.isnan(values).all(axis=1)
    rows = np.flatnonzero(present)
    if not rows.size:
        return None
    return int(rows[0]), int(rows[-1]) + 1
