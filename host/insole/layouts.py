"""Pressure-sensor layouts: where each channel sits under the foot.

A layout is a JSON file in ``hardware/layouts/<name>.json`` (schema: see
``hardware/layouts/README.md``). Positions are given for the LEFT foot in the foot
frame (x from the heel centre toward the toes, y to the left, mm); the right foot is
the mirror image, so :meth:`Layout.positions_mm` negates y for it. Medial is therefore
−y on the left foot and +y on the right (:meth:`Layout.medial_sign`).

Besides the files there are built-in layouts ``generic1`` … ``generic16`` for data
whose sensor positions are unknown (the generic CSV importer): N channels evenly
spaced on the foot's long axis (y = 0) from 10 % to 90 % of a 260 mm foot, one
channel at mid-foot when N = 1. They support "where along the foot" reasoning
(heel vs. forefoot) but carry no medial/lateral information.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insole.errors import UserError
from insole.model import FloatArray, Side
from insole.protocol import Layout as LayoutPacket
from insole.resources import LAYOUTS_DIR

MAX_CHANNELS = 16
GENERIC_FOOT_LENGTH_MM = 260.0
_GENERIC_NAME = re.compile(r"^generic([1-9][0-9]*)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class LayoutChannel:
    """One pressure channel; position for the LEFT foot."""

    label: str
    x_mm: float
    y_mm: float
    region: str
    area_cm2: float | None = None  # sensing area, where known (turns N/cm² into N)


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    foot_length_mm: float
    pressure_unit: str
    channels: tuple[LayoutChannel, ...]
    foot_width_mm: float | None = None  # only where a layout needs it (normalised CoP)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def positions_mm(self, side: Side) -> FloatArray:
        """(n, 2) array of (x_mm, y_mm) in the foot frame of `side` (right foot: y mirrored)."""
        positions = np.array([(c.x_mm, c.y_mm) for c in self.channels], dtype=np.float64)
        if side == "right":
            positions[:, 1] *= -1.0
        elif side != "left":
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        return positions

    def medial_sign(self, side: Side) -> int:
        """Sign of y that points medially: −1 on the left foot, +1 on the right."""
        if side == "left":
            return -1
        if side == "right":
            return 1
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")

    def areas_cm2(self) -> FloatArray | None:
        """Per-channel sensing areas, or None unless every channel has one."""
        areas = [c.area_cm2 for c in self.channels]
        if any(a is None for a in areas):
            return None
        return np.array(areas, dtype=np.float64)


def _number(value: object, where: str) -> float:
    # bool is an int subclass; "true" is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def layout_from_dict(data: object, name: str, source: str = "") -> Layout:
    """Validate the parsed JSON of a layout; `source` names the file in error messages."""
    where = source or f"layout {name!r}"
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object")
    for key in ("name", "foot_length_mm", "pressure_unit", "channels"):
        if key not in data:
            raise UserError(f"{where}: missing field {key!r}")
    if data["name"] != name:
        raise UserError(f"{where}: 'name' is {data['name']!r} but the file is called {name!r}")
    foot_length_mm = _number(data["foot_length_mm"], f"{where}: foot_length_mm")
    if not 50.0 <= foot_length_mm <= 400.0:
        raise UserError(f"{where}: foot_length_mm {foot_length_mm} is not a plausible foot (50..400 mm)")
    foot_width_mm = None
    if data.get("foot_width_mm") is not None:
        foot_width_mm = _number(data["foot_width_mm"], f"{where}: foot_width_mm")
        if not 0.0 < foot_width_mm < foot_length_mm:
            raise UserError(f"{where}: foot_width_mm {foot_width_mm} must be between 0 and foot_length_mm")
    if not isinstance(data["pressure_unit"], str) or not data["pressure_unit"]:
        raise UserError(f"{where}: pressure_unit must be a non-empty string")
    raw_channels = data["channels"]
    if not isinstance(raw_channels, list) or not 1 <= len(raw_channels) <= MAX_CHANNELS:
        count = len(raw_channels) if isinstance(raw_channels, list) else "no list of"
        raise UserError(f"{where}: {count} channels, expected a list of 1..{MAX_CHANNELS}")
    channels = []
    for k, raw in enumerate(raw_channels):
        cw = f"{where}: channel {k + 1}"
        if not isinstance(raw, dict):
            raise UserError(f"{cw}: expected an object")
        x_mm = _number(raw.get("x_mm"), f"{cw}: x_mm")
        y_mm = _number(raw.get("y_mm"), f"{cw}: y_mm")
        # Generous bounds: a little behind the heel/past the toes, and within a foot's width.
        if not -0.1 * foot_length_mm <= x_mm <= 1.1 * foot_length_mm:
            raise UserError(f"{cw}: x_mm {x_mm} lies outside the foot (0..{foot_length_mm:g} mm)")
        if abs(y_mm) > 0.3 * foot_length_mm:
            raise UserError(f"{cw}: |y_mm| {abs(y_mm)} is wider than a foot")
        area = raw.get("area_cm2")
        area_cm2 = None if area is None else _number(area, f"{cw}: area_cm2")
        if area_cm2 is not None and area_cm2 <= 0:
            raise UserError(f"{cw}: area_cm2 must be positive")
        channels.append(
            LayoutChannel(
                label=str(raw.get("label", f"p{k + 1}")),
                x_mm=x_mm,
                y_mm=y_mm,
                region=str(raw.get("region", "")),
                area_cm2=area_cm2,
            )
        )
    return Layout(
        name=name,
        description=str(data.get("description", "")),
        foot_length_mm=foot_length_mm,
        pressure_unit=data["pressure_unit"],
        channels=tuple(channels),
        foot_width_mm=foot_width_mm,
    )


def generic_layout(n_channels: int) -> Layout:
    """Built-in ``generic<N>``: N channels on the foot's long axis, heel (10 %) to toes (90 %)."""
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise UserError(f"generic layouts have 1..{MAX_CHANNELS} channels, not {n_channels}")
    if n_channels == 1:
        fractions = np.array([0.5])
    else:
        fractions = np.linspace(0.1, 0.9, n_channels)
    channels = tuple(
        LayoutChannel(label=f"p{k + 1}", x_mm=round(float(f) * GENERIC_FOOT_LENGTH_MM, 1), y_mm=0.0, region="unknown")
        for k, f in enumerate(fractions)
    )
    return Layout(
        name=f"generic{n_channels}",
        description=(
            f"Built-in: {n_channels} channel(s) of unknown position, spread evenly on the long axis "
            f"of a {GENERIC_FOOT_LENGTH_MM:g} mm foot (10..90 % of its length, y = 0)."
        ),
        foot_length_mm=GENERIC_FOOT_LENGTH_MM,
        pressure_unit="a.u.",
        channels=channels,
    )


def load_layout(name: str, layouts_dir: Path = LAYOUTS_DIR) -> Layout:
    """The layout called `name`: ``<layouts_dir>/<name>.json``, or a built-in ``generic<N>``."""
    if not _NAME.match(name):
        raise UserError(f"invalid layout name {name!r}")
    path = layouts_dir / f"{name}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON: {exc}") from exc
        return layout_from_dict(data, name, str(path))
    generic = _GENERIC_NAME.match(name)
    if generic:
        return generic_layout(int(generic.group(1)))
    known = ", ".join(list_layouts(layouts_dir, include_generic=False))
    raise UserError(f"no layout named {name!r} (files in {layouts_dir}: {known}; built-in: generic1..generic16)")


def list_layouts(layouts_dir: Path = LAYOUTS_DIR, include_generic: bool = True) -> list[str]:
    """Names of the layout files, then (optionally) the built-in generic ones."""
    names = sorted(p.stem for p in layouts_dir.glob("*.json"))
    if include_generic:
        names += [f"generic{n}" for n in range(1, MAX_CHANNELS + 1) if f"generic{n}" not in names]
    return names


def layout_packet(layout: str, side: Side, n_pressure: int) -> LayoutPacket:
    """The LAYOUT packet that tells the firmware where a stream's ``n_pressure`` sensors
    are (whole mm, the foot's frame); ValueError when the layout has another count."""
    positions = load_layout(layout).positions_mm(side)
    if len(positions) != n_pressure:
        raise ValueError(f"layout {layout} has {len(positions)} channels, the stream {n_pressure}")
    xy = np.rint(positions).astype(int)
    return LayoutPacket(tuple(int(v) for v in xy[:, 0]), tuple(int(v) for v in xy[:, 1]))
