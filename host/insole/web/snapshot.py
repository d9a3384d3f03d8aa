"""What the dashboard page shows, as JSON: the session's state at one moment.

Built on the polling thread (it reads the session's running summaries), a few times a
second; the page draws whatever the last frame says. Units are the page's: metres,
seconds, degrees; a value the insoles have not measured yet is null.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from insole.protocol import Cue, CueMode
from insole.session.live import FootState, LiveSession, symmetry_index
from insole.session.terminal import CUE_MODES, CUE_OUTCOMES, CUE_REASONS
from insole.web.form import form_values

# The centre-of-pressure trail drawn: the last this many seconds of loaded samples.
COP_TRAIL_S = 1.5
# Points per foot in the foot-angle trend; longer sessions are averaged into this many bins.
TREND_POINTS = 300
# Cues listed per foot, newest first.
CUE_LOG = 6
# Measures compared between the feet (STEP fields, the median of the last steps).
SYMMETRY_MEASURES = (
    ("stance time", "stance_ms", 0.001, "s"),
    ("swing time", "swing_ms", 0.001, "s"),
    ("stride length", "stride_mm", 0.001, "m"),
    ("speed", "speed_mms", 0.001, "m/s"),
)


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _scaled(value: int | None, scale: float, digits: int = 3) -> float | None:
    return None if value is None else _num(value * scale, digits)


def trend_points(history: list[tuple[float, float]], max_points: int = TREND_POINTS) -> list[list[float]]:
    """(time s, foot angle °) per step; a longer history as means of equal runs of steps."""
    if len(history) <= max_points:
        return [[round(t, 2), round(fpa, 2)] for t, fpa in history]
    runs = np.array_split(np.asarray(history, dtype=np.float64), max_points)
    return [[round(float(run[:, 0].mean()), 2), round(float(run[:, 1].mean()), 2)] for run in runs]


def _recent(foot: FootState, attribute: str) -> float | None:
    """A STEP field in thousandths (ms, mm, mm/s), typical of the last steps, in units."""
    typical = foot.recent(attribute)
    return None if typical is None else _num(typical / 1000)


def _cue(foot: FootState, cue: Cue) -> dict[str, Any]:
    return {
        "t_s": _num(None if cue.decision_index is None else cue.decision_index / foot.rate_hz, 2),
        "step": cue.step_number,
        "reason": CUE_REASONS.get(cue.reason, str(cue.reason)),
        "outcome": CUE_OUTCOMES.get(cue.outcome, str(cue.outcome)),
        "played": cue.cued,
        "fpa_deg": cue.fpa_deg,
        "duration_ms": cue.duration_ms,
    }


def _pressure(foot: FootState) -> list[float | None]:
    if foot.pressure is None or foot.max_cell_counts <= 0:
        return []
    return [None if math.isnan(v) else round(v / foot.max_cell_counts, 3) for v in foot.pressure]


def _cop_trail(foot: FootState) -> list[list[float]]:
    if not foot.cop_trail:
        return []
    newest = foot.next_index - 1
    oldest = newest - COP_TRAIL_S * foot.rate_hz
    return [[round(x, 1), round(y, 1)] for index, x, y in foot.cop_trail if index >= oldest]


def program_frame(foot: FootState) -> dict[str, Any] | None:
    """The program block this insole runs (or ran last), null without a program event yet."""
    live = foot.program
    block = live.block
    if live.session is None and block is None:
        return None
    n_blocks = None if live.program is None else len(live.program.blocks)
    return {
        "session": live.session,
        "resumed": live.resumed,
        "session_done": live.session_done,
        "blocks": n_blocks,
        "block": None if block is None else {
            "number": block.block + 1,
            "kind": block.kind_name,
            "goal": block.goal,
            "done": block.done(foot.rate_hz),
            "unit": block.goal_unit,
            "band_deg": None if block.band_cdeg is None else [
                round((block.band_cdeg[0] - block.band_cdeg[1]) / 100.0, 2),
                round((block.band_cdeg[0] + block.band_cdeg[1]) / 100.0, 2),
            ],
            "ended": block.ended,
            "last_signal": block.last_signal,
        },
    }  # fmt: skip


def foot_frame(foot: FootState) -> dict[str, Any]:
    step = foot.last_step
    band = foot.band_deg()
    settings = foot.settings
    status = foot.status
    last_raise = foot.raises[-1] if foot.raises else None
    return {
        "side": foot.side,
        "port": foot.link.port,
        "connection": foot.connection(),
        "battery_pct": status.battery_pct if status else None,
        "rate_hz": foot.rate_hz,
        "samples": foot.samples,
        "lost_samples": foot.lost_samples,
        "backfilled_samples": foot.backfilled_samples,
        "dropped_samples": status.dropped_samples if status else None,
        "pressure": _pressure(foot),
        "cop_mm": _cop_trail(foot),
        "steps": foot.step_count,
        "cadence_spm": _num(foot.cadence_spm(), 1),
        "band_deg": None if band is None else [band[0], band[1]],
        "cue_mode": CUE_MODES.get(settings.cue_mode, "?") if settings else None,
        "cueing": bool(settings and settings.cue_mode == CueMode.FOOT_ANGLE),
        "last_step": None if step is None else {
            "number": step.step_number,
            # The foot came to rest in this stance (docs/protocol.md: its toe-off comes later).
            "standing": step.to_index is None,
            "fpa_deg": step.fpa_deg,
            "in_band": foot.in_band(step.fpa_deg),
            "stance_s": _scaled(step.stance_ms, 0.001),
            "swing_s": _scaled(step.swing_ms, 0.001),
            "stride_m": _scaled(step.stride_mm, 0.001),
            "speed_ms": _scaled(step.speed_mms, 0.001),
            "direction": foot.last_direction,
        },
        "typical_stance_s": _recent(foot, "stance_ms"),
        "typical_stride_m": _recent(foot, "stride_mm"),
        "typical_speed_ms": _recent(foot, "speed_mms"),
        "heel_raises": {
            "count": len(foot.raises),
            "last_hold_s": None if last_raise is None else _scaled(last_raise.hold_ms, 0.001, 2),
            "set": None if last_raise is None else last_raise.set,
            "rep": None if last_raise is None else last_raise.rep,
        },
        "cues": {
            "decisions": foot.cue_count,
            "played": foot.cued_count,
            "recent": [_cue(foot, c) for c in list(foot.cues)[-CUE_LOG:][::-1]],
        },
        "settings": None if settings is None else form_values(settings),
        "program": program_frame(foot),
    }


def symmetry(session: LiveSession) -> list[dict[str, Any]]:
    feet = {f.side: f for f in session.feet}
    rows = []
    for label, attribute, scale, unit in SYMMETRY_MEASURES:
        left = feet["left"].recent(attribute) if "left" in feet else None
        right = feet["right"].recent(attribute) if "right" in feet else None
        lsi = symmetry_index(left, right)
        rows.append({
            "measure": label,
            "unit": unit,
            "left": None if left is None else _num(left * scale),
            "right": None if right is None else _num(right * scale),
            "lsi_pct": None if lsi is None else _num(100 * lsi, 1),
        })  # fmt: skip
    return rows


def session_frame(session: LiveSession) -> dict[str, Any]:
    recording = session.recording_path
    return {
        "type": "frame",
        "elapsed_s": round(session.elapsed_s, 1),
        "recording": None if recording is None else str(recording),
        "feet": [foot_frame(foot) for foot in session.feet],
        "symmetry": symmetry(session),
        "trend": {foot.side: trend_points(foot.fpa_history) for foot in session.feet},
    }
