"""Moticon OpenGo text export → FootStreams (layout ``moticon16``), vendor events, gait reports.

The export is UTF-8 text: header lines start with ``#`` (``Start time``, ``Size``,
``Sensor insoles``…), the last of them holds the tab-separated column names, then one
row per 10 ms. Per foot: ``pressure 1..16`` [N/cm²], ``acceleration X/Y/Z`` [g],
``angular X/Y/Z`` [dps], ``total force`` [N], ``center of pressure X/Y``
[−0.5…0.5], then sparse event columns. Cells of a foot are empty while its insole
is not streaming (the left one starts ~0.6 s late in the sample files) or drops
out; those become NaN, and leading/trailing empty rows are trimmed per foot so each
stream's ``t0_s`` is the time of its first sample.

IMU axes. Moticon reports both feet in one side-agnostic frame: X toward the toes,
Y toward the MEDIAL side, Z up (specific force, +1 g at rest). For the right foot
that is our foot frame (y left = medial); for the left foot it is our frame mirrored
in y, with the gyroscope mirrored as an axial vector, so on the left foot we negate
acc Y, gyro X and gyro Z. Evidence from the data (``tools/derive_moticon_layout.py
--imu-evidence`` prints it after conversion; tests re-check it):

* Z is up: gravity at rest reads (−0.19, ±0.04, +0.97) g on both feet. The
  large-swing gyro axis (sagittal rotation) is Y, so X is the long axis.
* X points to the toes: while the foot is loaded, the accelerometer pitch (toes-down
  if X points to the toes) rises as the vendor CoP moves toward the toes
  (r = +0.44…+0.65 on the four size-7 foot recordings, +0.24/+0.43 on the size-3 one).
* One foot is mirrored: over the mean stride, acc Y and gyro X/Z of the left foot
  correlate positively with the right foot's as exported (r = +0.73…+0.94; a
  common left/right frame gives r ≈ −0.9, e.g. on foot-mounted IMU reference data),
  while gyro Y correlates +0.96…+0.99.
* The mirror is axial-vector style: integrating the gyroscope over 120 ms
  quasi-static windows predicts the measured gravity direction with the right-hand
  rule (median error 0.7–1.3°) and not the left-hand rule (7.6–12.9°), on every
  foot of all three files. So on one foot the export is a proper right-handed frame
  (X toes, Z up, hence Y left) and on the other Y points right.
* Which one: +Y is medial. Standing calmly, the vendor CoP (whose +Y is medial: the
  unloaded arch cell and the hallux cell lie at +Y) moves toward the edge the insole
  tilts down to, as the shoe sole compresses under load: corr(CoP Y, tilt with +Y
  up) = −0.24…−0.77 on all four size-7 foot recordings, which needs IMU +Y medial
  too. Medial is left on the right foot, so the right foot is the unmirrored one.
  (At rest both feet then tilt the same anatomical way, medial edge ~2° up.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from insole.errors import UserError
from insole.importers import TextTable, grid_indices, read_text_table, trim_all_nan_rows
from insole.model import SIDES, STANDARD_GRAVITY_MS2, FloatArray, FootStream, Side, as_side

LAYOUT_NAME = "moticon16"
RATE_HZ = 100.0
PRESSURE_UNIT = "N/cm²"

# Per-foot sign flips from the vendor's side-agnostic frame (module docstring).
_ACC_SIGNS: dict[Side, FloatArray] = {"left": np.array([1.0, -1.0, 1.0]), "right": np.array([1.0, 1.0, 1.0])}
_GYRO_SIGNS: dict[Side, FloatArray] = {"left": np.array([-1.0, 1.0, -1.0]), "right": np.array([1.0, 1.0, 1.0])}

# Vendor step detections in the "steps[]" columns.
_STEP_CODES: dict[int, tuple[Side, str]] = {
    11: ("left", "ic"),
    15: ("left", "to"),
    21: ("right", "ic"),
    25: ("right", "to"),
}
# Hand-placed events in the "Events[]" columns: 1 heel strike, 2 total-force minimum at mid-stance.
_MANUAL_CODES = {1: "ic", 2: "midstance"}

_PRESSURE = re.compile(r"^(left|right) pressure (\d+)\[(.*)\]$")
_VECTOR = re.compile(r"^(left|right) (acceleration|angular) ([XYZ])\[(.*)\]$")
_STEPS = re.compile(r"^(left|right) steps\[\]$", re.IGNORECASE)
_EVENTS = re.compile(r"^(left|right) events\[\]$", re.IGNORECASE)


class ReferenceEvents(NamedTuple):
    """Event times of one foot in the export's time base [s], sorted."""

    ic_s: FloatArray
    to_s: FloatArray


@dataclass
class MoticonRecording:
    """One export: the streams plus what the vendor (or an annotator) added.

    ``vendor_total_force_n`` and ``vendor_cop_norm`` are row-aligned with the stream
    of that side (NaN where the foot had no data). ``vendor_cop_norm[:, 0]`` runs
    heel → toes and ``[:, 1]`` lateral → medial, both −0.5…0.5 of the insole; the
    vendor reports 0 while the foot carries less than about 50 N.
    """

    path: Path
    streams: list[FootStream]
    reference_events: dict[Side, ReferenceEvents]
    midstance_s: dict[Side, FloatArray]  # hand-placed exports only
    event_source: str  # "vendor" (steps columns), "manual" (Events columns) or "none"
    start_time_utc: str | None
    start_time_local: str | None
    insole_size: int | None
    serials: dict[Side, str]
    header: dict[str, str]
    vendor_total_force_n: dict[Side, FloatArray] = field(default_factory=dict)
    vendor_cop_norm: dict[Side, FloatArray] = field(default_factory=dict)
    unknown_event_codes: dict[int, int] = field(default_factory=dict)
    skipped_rows: int = 0  # 10 ms rows absent from the export (filled with NaN)

    def stream(self, side: Side) -> FootStream:
        for s in self.streams:
            if s.side == side:
                return s
        raise KeyError(f"no {side} stream in {self.path}")


def _header_fields(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, sep, value = line[1:].partition(":")
            if sep and "\t" not in key:
                fields[key.strip()] = value.strip()
    return fields


def _start_times(fields: dict[str, str]) -> tuple[str | None, str | None]:
    """(UTC from 'Start timestamp' in ms, local wall time from 'Start time'), ISO 8601."""
    utc = local = None
    stamp = fields.get("Start timestamp", "")
    if stamp.isdigit():
        utc = datetime.fromtimestamp(int(stamp) / 1000.0, tz=UTC).isoformat(timespec="milliseconds")
        utc = utc.replace("+00:00", "Z")
    text = fields.get("Start time", "")
    for fmt in ("%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S"):
        try:
            local = datetime.strptime(text, fmt).isoformat(timespec="milliseconds")
            break
        except ValueError:
            continue
    return utc, local


def _serials(fields: dict[str, str]) -> dict[Side, str]:
    found = dict(re.findall(r"(Left|Right)\s+([^\s,;]+)", fields.get("Sensor insoles", "")))
    return {side: found[side.capitalize()] for side in SIDES if side.capitalize() in found}


def _column_map(table: TextTable) -> dict[str, int]:
    """Check the columns a foot needs and their units; map our names to column indices."""
    found: dict[str, int] = {}
    for index, name in enumerate(table.columns):
        pressure = _PRESSURE.match(name)
        vector = _VECTOR.match(name)
        if pressure:
            side, channel, unit = pressure.groups()
            if unit != PRESSURE_UNIT:
                raise UserError(f"{table.path}: column {name!r}: unit {unit!r}, expected {PRESSURE_UNIT}")
            found[f"{side} p{int(channel)}"] = index
        elif vector:
            side, kind, axis, unit = vector.groups()
            expected = "g" if kind == "acceleration" else "dps"
            if unit != expected:
                raise UserError(f"{table.path}: column {name!r}: unit {unit!r}, expected {expected}")
            found[f"{side} {kind} {axis}"] = index
        elif name.startswith(("left ", "right ")) and "total force[N]" in name:
            found[f"{name.split()[0]} force"] = index
        elif re.match(r"^(left|right) center of pressure [XY]\[", name):
            found[f"{name.split()[0]} cop {name.split()[4][0]}"] = index
    if "time" not in table.columns:
        raise UserError(f"{table.path}: no 'time' column; not a Moticon OpenGo text export")
    found["time"] = table.columns.index("time")
    return found


def _pressure_channels(columns: dict[str, int], side: Side, path: Path) -> list[int]:
    channels = sorted(int(key.split("p")[-1]) for key in columns if key.startswith(f"{side} p"))
    if channels != list(range(1, len(channels) + 1)) or not 1 <= len(channels) <= 16:
        raise UserError(f"{path}: {side} pressure columns are numbered {channels}, expected 1..16 without gaps")
    return [columns[f"{side} p{k}"] for k in channels]


def _on_grid(values: FloatArray, indices: npt.NDArray[np.int64], n_rows: int) -> FloatArray:
    """Rows placed at their sample index; rows the export skipped stay NaN."""
    out = np.full((n_rows,) + values.shape[1:], np.nan)
    out[indices] = values
    return out


def _foot(
    table: TextTable,
    columns: dict[str, int],
    side: Side,
    grid: tuple[float, npt.NDArray[np.int64], int],
    serial: str,
    size: int | None,
) -> tuple[FootStream, FloatArray, FloatArray] | None:
    """The stream of one foot (trimmed to its data), its vendor force and CoP; None if the foot is empty.

    ``grid`` is (time of grid index 0, row → grid index, grid length).
    """
    t_first, indices, n_rows = grid
    needed = [f"{side} {kind} {axis}" for kind in ("acceleration", "angular") for axis in "XYZ"]
    needed += [f"{side} force", f"{side} cop X", f"{side} cop Y"]
    missing = [n for n in needed if n not in columns]
    if missing:
        raise UserError(f"{table.path}: missing columns for the {side} foot: {', '.join(missing)}")

    def read(names: list[int]) -> FloatArray:
        return _on_grid(np.column_stack([table.numbers(c) for c in names]), indices, n_rows)

    pressure = read(_pressure_channels(columns, side, table.path))
    acc_g = read([columns[f"{side} acceleration {a}"] for a in "XYZ"])
    gyro_dps = read([columns[f"{side} angular {a}"] for a in "XYZ"])
    force_n = read([columns[f"{side} force"]])[:, 0]
    cop = read([columns[f"{side} cop {a}"] for a in "XY"])
    span = trim_all_nan_rows([pressure, acc_g, gyro_dps])
    if span is None:
        return None
    first, stop = span
    stream = FootStream(
        side=side,
        rate_hz=RATE_HZ,
        t0_s=round(t_first + first / RATE_HZ, 9),  # 0.01 + 5/100 → 0.06, not 0.060000000000000005
        layout=LAYOUT_NAME,
        pressure=pressure[first:stop],
        pressure_unit=PRESSURE_UNIT,
        acc_ms2=acc_g[first:stop] * _ACC_SIGNS[side] * STANDARD_GRAVITY_MS2,
        gyro_dps=gyro_dps[first:stop] * _GYRO_SIGNS[side],
        device=f"Moticon OpenGo {serial}".strip(),
        extra={"insole_size": size} if size is not None else {},
    )
    return stream, force_n[first:stop], cop[first:stop]


def _events(
    table: TextTable, times_s: FloatArray
) -> tuple[dict[Side, ReferenceEvents], dict[Side, FloatArray], str, dict[int, int]]:
    found: dict[Side, dict[str, list[FloatArray]]] = {s: {"ic": [], "to": [], "midstance": []} for s in SIDES}
    unknown: dict[int, int] = {}
    source = "none"
    for index, name in enumerate(table.columns):
        steps = _STEPS.match(name)
        manual = _EVENTS.match(name)
        if not (steps or manual):
            continue
        codes = table.numbers(index)
        rows = np.flatnonzero(~np.isnan(codes) & (codes != 0))
        for code in np.unique(codes[rows]).astype(int):
            at = times_s[rows[codes[rows] == code]]
            if steps and code in _STEP_CODES:
                side, kind = _STEP_CODES[code]
                source = "vendor"
            elif manual and code in _MANUAL_CODES:
                side, kind = as_side(manual.group(1).lower()), _MANUAL_CODES[code]
                source = "manual" if source == "none" else source
            else:
                unknown[int(code)] = unknown.get(int(code), 0) + len(at)
                continue
            found[side][kind].append(at)

    def merged(parts: list[FloatArray]) -> FloatArray:
        return np.sort(np.concatenate(parts)) if parts else np.empty(0)

    reference = {s: ReferenceEvents(merged(found[s]["ic"]), merged(found[s]["to"])) for s in SIDES}
    midstance = {s: merged(found[s]["midstance"]) for s in SIDES}
    return reference, midstance, source, unknown


def read_moticon(path: Path) -> MoticonRecording:
    """Parse a Moticon OpenGo text export (both feet, vendor or hand-placed events)."""
    path = Path(path)
    table = read_text_table(path, delimiter="\t", header="last-comment", source="Moticon OpenGo text export")
    columns = _column_map(table)
    fields = _header_fields(path)
    size = int(fields["Size"]) if fields.get("Size", "").isdigit() else None
    serials = _serials(fields)
    times_s = table.numbers(columns["time"], allow_empty=False)
    indices, n_rows = grid_indices(times_s, table, rate_hz=RATE_HZ)
    grid = (float(times_s[0]), indices, n_rows)
    streams: list[FootStream] = []
    force: dict[Side, FloatArray] = {}
    cop: dict[Side, FloatArray] = {}
    for side in SIDES:
        if not any(key.startswith(f"{side} ") for key in columns):
            continue  # an export of one insole only
        foot = _foot(table, columns, side, grid, serials.get(side, ""), size)
        if foot is not None:
            streams.append(foot[0])
            force[side], cop[side] = foot[1], foot[2]
    if not streams:
        raise UserError(f"{path}: neither foot has any data")
    reference, midstance, event_source, unknown = _events(table, times_s)
    utc, local = _start_times(fields)
    return MoticonRecording(
        path=path,
        streams=streams,
        reference_events=reference,
        midstance_s=midstance,
        event_source=event_source,
        start_time_utc=utc,
        start_time_local=local,
        insole_size=size,
        serials=serials,
        header=fields,
        vendor_total_force_n=force,
        vendor_cop_norm=cop,
        unknown_event_codes=unknown,
        skipped_rows=n_rows - len(times_s),
    )


def import_moticon(path: Path) -> list[FootStream]:
    """The streams of a Moticon OpenGo text export (see :func:`read_moticon` for events)."""
    return read_moticon(path).streams


# --------------------------------------------------------------------------- gait report


@dataclass(frozen=True)
class GaitReportSteps:
    """One foot's per-step table of a vendor gait report; NaN where the report says 'NaN'."""

    columns: dict[str, FloatArray]

    @property
    def ic_s(self) -> FloatArray:
        return self.columns["Initial contact (s)"]

    @property
    def to_s(self) -> FloatArray:
        return self.columns["Toe off (s)"]

    def __len__(self) -> int:
        return len(self.ic_s)


def read_gait_report(path: Path) -> dict[Side, GaitReportSteps]:
    """Sheets "Left Steps"/"Right Steps" of a Moticon gait report (.xlsx), one column per field."""
    import openpyxl  # only this reader needs it

    path = Path(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except Exception as exc:  # openpyxl raises several unrelated types for non-xlsx input
        raise UserError(f"{path}: not a readable .xlsx gait report: {exc}") from exc
    try:
        result: dict[Side, GaitReportSteps] = {}
        for side in SIDES:
            sheet_name = f"{side.capitalize()} Steps"
            if sheet_name not in workbook.sheetnames:
                raise UserError(f"{path}: no sheet {sheet_name!r}")
            rows = [r for r in workbook[sheet_name].iter_rows(values_only=True) if any(v is not None for v in r)]
            if not rows:
                raise UserError(f"{path}: sheet {sheet_name!r} is empty")
            names = [str(v) for v in rows[0]]
            for required in ("Initial contact (s)", "Toe off (s)"):
                if required not in names:
                    raise UserError(f"{path}: sheet {sheet_name!r} has no column {required!r}")
            try:
                body = np.array(
                    [[np.nan if v is None or v == "NaN" else v for v in r[: len(names)]] for r in rows[1:]],
                    dtype=np.float64,
                ).reshape(len(rows) - 1, len(names))
            except ValueError as exc:
                raise UserError(f"{path}: sheet {sheet_name!r} holds a non-numeric cell: {exc}") from exc
            result[side] = GaitReportSteps({name: body[:, k] for k, name in enumerate(names)})
        return result
    finally:
        workbook.close()
