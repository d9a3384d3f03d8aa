"""The report's "Exercise program" section: the prescription against what was done per
program session and block, adherence, the trend over sessions and weeks, and symmetry
per block beside the 0.8 and 0.9 marks. Reads only the document's ``program`` object
(docs/report.md), so the page and the JSON hold the same numbers."""

from __future__ import annotations

import html
from typing import Any

from insole.report import plots
from insole.report.markup import figure_html, number, table

ENDED_TEXT = {"goal": "goal reached", "limit": "time limit", "interrupted": "interrupted", "not_ended": "not ended"}
# The device's result of each kind, as shown: (result key, label, decimals, unit).
RESULT_FIELDS: dict[str, tuple[tuple[str, str, int, str], ...]] = {
    "fpa_baseline": (("baseline_deg", "baseline", 2, "°"), ("steps_with_angle", "steps with an angle", 0, "")),
    "fpa_feedback": (("in_band_pct", "in band", 1, " %"), ("cues", "cues", 0, "")),
    "fpa_probe": (("in_band_pct", "in band", 1, " %"), ("steps_with_angle", "steps with an angle", 0, "")),
    "backward_walk": (("backward_s", "backward", 0, " s"), ("backward_steps", "backward steps", 0, ""),
                      ("forward_steps", "forward steps", 0, "")),
    "heel_raises": (("full_reps", "full reps", 0, ""), ("short_holds", "short holds", 0, ""), ("sets", "sets", 0, "")),
    "walk": (("steps", "steps", 0, ""), ("walking_s", "walking", 0, " s")),
}  # fmt: skip
TREND_ROWS = (
    ("backward_min", "backward walking (min)", 2),
    ("walking_min", "walking in walking blocks (min)", 2),
    ("walking_steps", "steps in walking blocks", 0),
    ("walk_goal", "walking goal", 0),
    ("baseline_deg", "foot-angle baseline (°)", 2),
    ("feedback_in_band_pct", "in band, feedback blocks (%)", 1),
    ("probe_in_band_pct", "in band, probe blocks (%)", 1),
    ("full_reps", "heel raises, full reps", 0),
    ("short_holds", "heel raises, short holds", 0),
    ("blocks_reached_goal", "blocks at their goal", 0),
    ("blocks_run", "blocks run", 0),
    ("walk_lsi_stance", "stance-time LSI, walking blocks", 3),
)


def _value(value: Any, decimals: int, unit: str = "") -> str:
    if value is None:
        return "–"
    if decimals == 0 and isinstance(value, float) and value.is_integer():
        value = int(value)
    return number(value, decimals, unit)


def prescription_text(p: dict[str, Any]) -> str:
    """The block as prescribed, in words: "5 steps; band 16.38° ± 3°; metronome 80 steps/min"."""
    parts = [f"{_value(p['goal'], 0)} {p['goal_unit']}"]
    if p.get("sets") is not None:
        parts.append(f"{p['sets']} sets, hold {p['hold_s']:g} s, rest {p['rest_s']} s")
    if p.get("change_deg") is not None:
        parts.append(f"band: baseline {p['change_deg']:+g}° ± {p['half_width_deg']:g}°")
    if p["band"] is not None:
        parts.append(f"band {p['band']['target_deg']:g}° ± {p['band']['half_width_deg']:g}°")
    if p.get("feedback_start_pct") is not None:
        parts.append(f"feedback {p['feedback_start_pct']} → {p['feedback_end_pct']} %")
    if p.get("progress_pct"):
        parts.append(f"+{p['progress_pct']} % after {p['progress_after']} sessions at goal")
    if p["metronome_spm"] is not None:
        parts.append(f"metronome {p['metronome_spm']} steps/min")
    if p["limit_s"] is not None:
        parts.append(f"limit {p['limit_s']} s")
    return "; ".join(parts)


def result_text(kind: str, results: dict[str, Any]) -> str:
    fields = RESULT_FIELDS.get(kind, ())
    return ", ".join(f"{label} {_value(results.get(key), decimals, unit)}" for key, label, decimals, unit in fields)


def _block_rows(session: dict[str, Any]) -> list[list[str]]:
    rows = []
    for block in session["blocks"]:
        p = block["prescription"]
        for side, foot in block["feet"].items():
            runs = f" (ran {foot['runs']}×)" if foot["runs"] > 1 else ""
            goal = foot["goal"]
            if goal is not None and p.get("sets") is not None:
                goal *= p["sets"]  # done counts full repetitions of all sets
            result = result_text(p["kind"], foot["results"])
            if foot["ended"] == "not_ended":
                result = f"no result logged; measured: {foot['measured']['steps']} steps"
            rows.append([
                f"{block['block'] + 1}. {p['kind'].replace('_', ' ')}",
                prescription_text(p),
                side,
                f"{_value(foot['done'], 0)} / {_value(goal, 0)}",
                ENDED_TEXT.get(foot["ended"], foot["ended"]) + runs,
                result,
                _value(foot["duration_s"], 0, " s"),
            ])  # fmt: skip
    return rows


def _symmetry_rows(session: dict[str, Any]) -> list[list[str]]:
    rows = []
    for block in session["blocks"]:
        symmetry, strike = block["symmetry"], block["strike"]
        rows.append([
            f"{block['block'] + 1}. {block['prescription']['kind'].replace('_', ' ')}",
            *(_value(symmetry.get(name, {}).get("lsi"), 3) for name in ("stance_s", "steps", "load")),
            *(_value(strike[f"{name}_pct"], 0, " %") for name in ("heel", "midfoot", "forefoot")),
        ])  # fmt: skip
    return rows


def _session(session: dict[str, Any]) -> str:
    state = "completed" if session["completed"] else "not completed"
    resumed = f", resumed {session['resumes']}×" if session["resumes"] else ""
    when = session["start_time_utc"] or "time unknown"
    return "".join([
        f'<h3 class="program-session">Program {session["program_id"]}, session {session["session"]}: {state}'
        f"{resumed}</h3>",
        f'<p class="note">{html.escape(when)} · {html.escape(", ".join(session["recordings"]))}</p>',
        table(("block", "prescribed", "foot", "done / goal", "ended", "result", "time"), _block_rows(session)),
        table(("block", "LSI stance", "LSI steps", "LSI load", "heel first", "midfoot first", "forefoot first"),
              _symmetry_rows(session)),
    ])  # fmt: skip


def _adherence(adherence: dict[str, Any]) -> str:
    prescribed = adherence["blocks_prescribed"]
    rows = [
        ("sessions started", str(adherence["sessions_started"])),
        ("sessions completed", str(adherence["sessions_completed"])),
        ("sessions resumed after a stop", str(adherence["sessions_resumed"])),
        ("blocks run" + ("" if prescribed is None else f" (of {prescribed} prescribed)"), str(adherence["blocks_run"])),
        ("blocks that reached their goal", str(adherence["blocks_reached_goal"])),
    ]
    weeks = [
        (week, str(w["sessions"]), str(w["completed"]), str(w["blocks_at_goal"]))
        for week, w in adherence["per_week"].items()
    ]
    return table(("adherence", ""), rows) + table(("week", "sessions", "completed", "blocks at goal"), weeks)


def _trend(trend: dict[str, Any]) -> str:
    labels = [label if week is None else f"{label} ({week})" for label, week in zip(trend["sessions"], trend["week"],
                                                                                     strict=True)]  # fmt: skip
    rows = [[title] + [_value(v, decimals) for v in trend["measures"][name]] for name, title, decimals in TREND_ROWS]
    return table(["measure", *labels], rows)


def program_section(program: dict[str, Any]) -> str:
    """The whole section (empty when the recordings hold no program)."""
    parts = [
        '<section id="program"><h2>Exercise program: prescribed and done</h2>',
        '<p class="note">Each insole runs the program on its own foot and reports what it did; '
        "the host measures the same blocks from the steps. "
        f"LSI: the smaller foot's value over the larger's (1 = equal). {html.escape(program['marks_note'].capitalize())}."
        "</p>",
        _adherence(program["adherence"]),
        "<h3>Over sessions</h3>",
        _trend(program["trend"]),
        figure_html(plots.program_trend(program["trend"]), "Program measures, session by session", "program_trend"),
        figure_html(plots.program_symmetry(program), "LSI per block (dotted: 0.8 and 0.9)", "program_symmetry"),
    ]
    parts += [_session(s) for s in program["sessions"]]
    parts.append("</section>")
    return "\n".join(parts)
