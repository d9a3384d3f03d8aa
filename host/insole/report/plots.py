"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes.

Colours are fixed per foot (left blue, right orange) across every figure; backward
strides are drawn hollow. Each function draws one figure from a session's results and
measures (or the trend) and closes it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: reports are written by a command line

from matplotlib.figure import Figure

from insole.analysis.measures import BRISK_CADENCE_SPM, LSI_MARKS, step_strides
from insole.analysis.results import SessionResults

SIDE_COLOURS = {"left": "#1f77b4", "right": "#ff7f0e"}
BAND_COLOUR = "#2ca02c"
DPI = 100


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # the constrained layout fits it: no second "tight" pass
    return buffer.getvalue()


def _figure(width: float = 8.0, height: float = 3.0) -> Figure:
    # A Figure of its own (not pyplot's global state): safe in threads, nothing to close.
    return Figure(figsize=(width, height), layout="constrained")


def _minutes(values: Sequence[float]) -> list[float]:
    return [v / 60.0 for v in values]


def foot_angle(results: SessionResults, measures: dict[str, Any]) -> bytes:
    """Each step's foot angle over time against the band, and the distribution per foot."""
    figure = _figure(9.0, 3.2)
    over_time, distribution = figure.subplots(1, 2, width_ratios=(3, 1), sharey=True)
    band = measures["band"]
    for axes in (over_time, distribution):
        if band is not None:
            low, high = band["target_deg"] - band["half_width_deg"], band["target_deg"] + band["half_width_deg"]
            axes.axhspan(low, high, color=BAND_COLOUR, alpha=0.18, label="target band")
    for side in results.sides:
        own = [s for s in results.steps if s.side == side and s.fpa_deg is not None]
        forward = [s for s in own if s.direction != "backward"]
        backward = [s for s in own if s.direction == "backward"]
        colour = SIDE_COLOURS[side]
        over_time.scatter(_minutes([s.t_s for s in forward]), [s.fpa_deg for s in forward], s=12, color=colour,
                          label=side)  # fmt: skip
        if backward:
            over_time.scatter(_minutes([s.t_s for s in backward]), [s.fpa_deg for s in backward], s=12,
                              facecolors="none", edgecolors=colour, label=f"{side}, backward")  # fmt: skip
        histogram = measures["foot_angle"]["histogram"]
        edges = histogram["edges_deg"]
        if edges:
            centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            distribution.barh(centres, histogram[side], height=0.9, color=colour, alpha=0.6)
    over_time.set_xlabel("time (min)")
    over_time.set_ylabel("foot angle (°, + toe-out)")
    over_time.legend(loc="upper right", fontsize=7, ncols=2)
    distribution.set_xlabel("steps")
    return _png(figure)


def in_band_over_time(measures: dict[str, Any]) -> bytes:
    """The share of steps in the band, per time bin."""
    over_time = measures["over_time"]
    figure = _figure()
    axes = figure.subplots()
    starts = _minutes(over_time["start_s"])
    width = over_time["bin_s"] / 60.0
    shares = over_time["in_band_pct"]
    present = [(t, v) for t, v in zip(starts, shares, strict=True) if v is not None]
    if present:
        axes.bar([t for t, _ in present], [v for _, v in present], width=width * 0.9, align="edge", color=BAND_COLOUR)
    axes.set_ylim(0, 100)
    axes.set_xlabel("time (min)")
    axes.set_ylabel("steps in band (%)")
    if measures["band"] is None:
        axes.text(0.5, 0.5, "no target band known", transform=axes.transAxes, ha="center")
    return _png(figure)


def cadence(results: SessionResults) -> bytes:
    """Each stride's cadence over time, with the brisk-cadence line."""
    figure = _figure()
    axes = figure.subplots()
    for side in results.sides:
        own = [s for s in step_strides(results.steps) if s.side == side]
        colour = SIDE_COLOURS[side]
        forward = [s for s in own if s.direction != "backward"]
        backward = [s for s in own if s.direction == "backward"]
        axes.scatter(_minutes([s.end_s for s in forward]), [s.cadence_spm for s in forward], s=10, color=colour,
                     label=side)  # fmt: skip
        if backward:
            axes.scatter(_minutes([s.end_s for s in backward]), [s.cadence_spm for s in backward], s=10,
                         facecolors="none", edgecolors=colour, label=f"{side}, backward")  # fmt: skip
    axes.axhline(BRISK_CADENCE_SPM, color="grey", linestyle="--", linewidth=1, label=f"{BRISK_CADENCE_SPM:g} steps/min")
    axes.set_xlim(0, max(results.duration_s / 60.0, 1e-3))
    axes.set_xlabel("time (min)")
    axes.set_ylabel("cadence (steps/min)")
    axes.legend(loc="lower right", fontsize=7, ncols=3)
    return _png(figure)


def symmetry(measures: dict[str, Any]) -> bytes | None:
    """LSI per parameter, with the 0.8 and 0.9 reference lines."""
    parameters = measures["symmetry"]["parameters"]
    rows = [(name, p["lsi"]) for name, p in parameters.items() if p["lsi"] is not None]
    if not rows:
        return None
    figure = _figure(8.0, 0.35 * len(rows) + 1.0)
    axes = figure.subplots()
    axes.barh([name for name, _ in rows], [value for _, value in rows], color="#7f7f7f")
    for mark in measures["symmetry"]["marks"]:
        axes.axvline(mark, color="black", linestyle=":", linewidth=1)
    axes.set_xlim(0, 1.02)
    axes.invert_yaxis()
    axes.set_xlabel("LSI (smaller side / larger side; 1 = equal)")
    return _png(figure)


def heel_raises(results: SessionResults) -> bytes | None:
    """Each repetition's hold on the forefoot, per foot, in order."""
    if not results.raises:
        return None
    figure = _figure()
    axes = figure.subplots()
    for side in results.sides:
        own = [r for r in results.raises if r.side == side]
        axes.plot(range(1, len(own) + 1), [r.hold_s if r.hold_s is not None else float("nan") for r in own],
                  marker="o", color=SIDE_COLOURS[side], label=side)  # fmt: skip
    axes.set_xlabel("repetition")
    axes.set_ylabel("hold (s)")
    holds = [r.hold_s for r in results.raises if r.hold_s is not None]
    axes.set_ylim(0, 1.25 * max(holds, default=1.0))
    axes.legend(fontsize=7)
    return _png(figure)


TREND_PANELS = (
    ("steps", "steps"),
    ("cadence_spm", "cadence (steps/min)"),
    ("in_band_pct", "steps in band (%)"),
    ("backward_min", "backward walking (min)"),
    ("brisk_min", f"brisk walking ≥ {BRISK_CADENCE_SPM:g} steps/min (min)"),
    ("heel_raise_reps", "heel-raise repetitions"),
)


def trend(document_trend: dict[str, Any]) -> bytes:
    """The trend measures across sessions, one small panel each."""
    figure = _figure(9.0, 5.0)
    grid = figure.subplots(2, 3)
    labels = document_trend["sessions"]
    positions = list(range(1, len(labels) + 1))
    for axes, (name, title) in zip(grid.flat, TREND_PANELS, strict=True):
        values = [float("nan") if v is None else float(v) for v in document_trend["measures"][name]]
        axes.plot(positions, values, marker="o", color="#444444")
        axes.set_title(title, fontsize=8)
        axes.set_xticks(positions, labels, fontsize=6, rotation=30)
        axes.tick_params(axis="y", labelsize=7)
    return _png(figure)


PROGRAM_TREND_PANELS = (
    ("backward_min", "backward walking (min)"),
    ("walking_min", "walking in walking blocks (min)"),
    ("feedback_in_band_pct", "in band: feedback (●) and probe (○) (%)"),
    ("full_reps", "heel raises, full reps"),
    ("blocks_reached_goal", "blocks at their goal"),
    ("walk_lsi_stance", "stance-time LSI, walking blocks"),
)


def program_trend(program_trend: dict[str, Any]) -> bytes | None:
    """The program's measures across its sessions, one small panel each (None for one session)."""
    labels = program_trend["sessions"]
    if len(labels) < 2:
        return None
    figure = _figure(9.0, 5.0)
    grid = figure.subplots(2, 3)
    positions = list(range(1, len(labels) + 1))
    measures = program_trend["measures"]

    def values(name: str) -> list[float]:
        return [float("nan") if v is None else float(v) for v in measures[name]]

    for axes, (name, title) in zip(grid.flat, PROGRAM_TREND_PANELS, strict=True):
        axes.plot(positions, values(name), marker="o", color="#444444")
        if name == "feedback_in_band_pct":
            axes.plot(positions, values("probe_in_band_pct"), marker="o", markerfacecolor="none", color="#444444",
                      linestyle="--")  # fmt: skip
        if name == "walk_lsi_stance":
            for mark in LSI_MARKS:
                axes.axhline(mark, color="black", linestyle=":", linewidth=1)
        axes.set_title(title, fontsize=8)
        axes.set_xticks(positions, labels, fontsize=6, rotation=30)
        axes.tick_params(axis="y", labelsize=7)
    return _png(figure)


def program_symmetry(program: dict[str, Any]) -> bytes | None:
    """Each block's LSIs (stance time, steps, load) with the 0.8 and 0.9 reference lines."""
    rows = [
        (f"{s['label']} {b['block'] + 1}. {b['prescription']['kind'].replace('_', ' ')}", b["symmetry"])
        for s in program["sessions"]
        for b in s["blocks"]
        if b["symmetry"]
    ]
    if not rows:
        return None
    figure = _figure(8.0, 0.45 * len(rows) + 1.2)
    axes = figure.subplots()
    height = 0.25
    for k, (name, colour) in enumerate((("stance_s", "#7f7f7f"), ("steps", "#2ca02c"), ("load", "#9467bd"))):
        lsis = [float("nan") if s[name]["lsi"] is None else s[name]["lsi"] for _, s in rows]
        axes.barh([i + (k - 1) * height for i in range(len(rows))], lsis, height=height, color=colour,
                  label={"stance_s": "stance time", "steps": "steps", "load": "load"}[name])  # fmt: skip
    for mark in LSI_MARKS:
        axes.axvline(mark, color="black", linestyle=":", linewidth=1)
    axes.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    axes.set_xlim(0, 1.02)
    axes.invert_yaxis()
    axes.set_xlabel("LSI (smaller foot / larger foot; 1 = equal)")
    axes.legend(fontsize=7, loc="lower left")
    return _png(figure)
