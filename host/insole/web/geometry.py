"""What the heat map is drawn on: each foot's cells and an insole outline, in mm.

The layouts (hardware/layouts) give the cell positions and the foot length (width where
known) but no outline; the outline here is one generic insole shape, a rounded heel,
the arch narrower on the medial side, the widest part at the metatarsal heads, scaled
to the layout's length and width. Frame as the layouts: x from the heel's rear end
toward the toes, y to the left; the right foot mirrors y (medial is −y on the left foot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insole.layouts import Layout

# Insole half-widths as shares of half the insole's width, along its length (0 heel, 1 toe),
# on the lateral and the medial side.
_ALONG = np.array([0.0, 0.02, 0.06, 0.12, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.75, 0.82, 0.88, 0.93, 0.97, 1.0])
_LATERAL = np.array([0.0, 0.45, 0.66, 0.74, 0.76, 0.78, 0.8, 0.84, 0.9, 0.94, 0.92, 0.82, 0.66, 0.48, 0.28, 0.0])
_MEDIAL = np.array([0.0, 0.45, 0.66, 0.74, 0.72, 0.56, 0.46, 0.6, 0.86, 0.98, 1.02, 0.98, 0.9, 0.74, 0.46, 0.0])
# Without a width in the layout: an adult insole is about 37 % as wide as it is long.
WIDTH_SHARE = 0.37
# Without a layout: the cells reach about 90 % of the insole's length.
CELL_REACH = 0.9


@dataclass(frozen=True)
class FootGeometry:
    side: str
    length_mm: float
    width_mm: float
    cells_mm: list[tuple[float, float]]
    outline_mm: list[tuple[float, float]]
    labels: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "side": self.side,
            "length_mm": self.length_mm,
            "width_mm": self.width_mm,
            "cells_mm": [list(c) for c in self.cells_mm],
            "outline_mm": [[round(x, 1), round(y, 1)] for x, y in self.outline_mm],
            "labels": self.labels,
        }


def insole_outline(length_mm: float, width_mm: float, side: str) -> list[tuple[float, float]]:
    """A closed outline (first point not repeated), lateral edge heel to toe, then medial back."""
    lateral_sign = 1.0 if side == "left" else -1.0  # y points left: a left foot's outside is +y
    half = width_mm / 2.0
    lateral = [(u * length_mm, lateral_sign * w * half) for u, w in zip(_ALONG, _LATERAL, strict=True)]
    medial = [(u * length_mm, -lateral_sign * w * half) for u, w in zip(_ALONG, _MEDIAL, strict=True)]
    return [(float(x), float(y)) for x, y in lateral + medial[-2:0:-1]]


def foot_geometry(side: str, cells_mm: np.ndarray | None, layout: Layout | None = None) -> FootGeometry:
    """The cells as the insole reports them (its LAYOUT, this foot's frame) on an outline of
    the named layout's size, or of a size estimated from the cells."""
    cells = [] if cells_mm is None else [(float(x), float(y)) for x, y in cells_mm]
    if layout is not None:
        length = layout.foot_length_mm
        width = layout.foot_width_mm or WIDTH_SHARE * length
        labels = [c.label for c in layout.channels] if layout.n_channels == len(cells) else []
    else:
        reach = max((x for x, _ in cells), default=0.0)
        length = reach / CELL_REACH if reach > 0 else 270.0
        width = WIDTH_SHARE * length
        labels = []
    return FootGeometry(side, float(length), float(width), cells, insole_outline(length, width, side),
                        labels or [f"p{k + 1}" for k in range(len(cells))])
