"""The report as one self-contained HTML file: tables of the JSON's numbers, figures as
embedded PNGs (``data:`` URLs), inline CSS, no script and nothing fetched from elsewhere."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from insole.analysis.results import SessionResults
from insole.report import plots
from insole.report.markup import figure_html, number, table
from insole.report.program import program_section

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 0.85em; }
.warning { color: #8a4b00; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
"""

MEASUREMENT_NOTE = (
    "This report describes measurements made by the insoles (steps, times, distances, angles, "
    "counts). It does not diagnose, grade or recommend."
)


def _median(stats: dict[str, Any], decimals: int = 2) -> str:
    return number(stats["median"], decimals)


def _session(results: SessionResults, m: dict[str, Any]) -> str:
    parts = [f'<section class="session" id="session-{html.escape(m["session"])}">']
    parts.append(f"<h2>Session {html.escape(m['session'])} · participant {html.escape(m['participant'])}</h2>")
    band = m["band"]
    band_text = (
        f"{band['target_deg']:g}° ± {band['half_width_deg']:g}° ({m['band_source']})"
        if band is not None
        else "none known (give --band TARGET:HALF_WIDTH)"
    )
    origin = "the insoles' own events" if m["events_from"] == "recording" else "a replay through the firmware"
    parts.append(
        table(
            ("", ""),
            [
                ("recording", m["recording"]),
                ("started (UTC)", m["start_time_utc"] or "unknown"),
                ("source", m["source"]),
                ("results from", origin),
                ("duration", number(m["duration_s"] / 60.0, 1, " min")),
                ("foot-angle band", band_text),
            ],
        )
    )
    walking = m["walking"]
    steps = m["steps"]
    parts.append("<h3>Walking</h3>")
    parts.append(
        table(
            ("measure", "value"),
            [
                ("steps (left + right)", f"{steps['total']} ({' + '.join(str(steps[s]) for s in m['sides'])})"),
                (
                    "steps forward / backward / unknown",
                    f"{steps['forward']} / {steps['backward']} / {steps['unknown']}",
                ),
                ("cadence, median of strides", number(walking["cadence_spm"], 1, " steps/min")),
                ("walking", number(walking["walking_min"], 2, " min")),
                ("backward walking", number(walking["backward_min"], 2, " min")),
                (f"at ≥ {walking['brisk_threshold_spm']:g} steps/min", number(walking["brisk_min"], 2, " min")),
                ("steps in band", number(m["foot_angle"]["in_band_pct"], 1, " %")),
            ],
        )
    )
    rows = []
    for name, label, decimals in (
        ("stance_s", "stance (s)", 3),
        ("swing_s", "swing (s)", 3),
        ("stride_time_s", "stride time (s)", 3),
        ("stride_length_m", "stride length (m)", 2),
        ("speed_ms", "speed (m/s)", 2),
        ("fpa_deg", "foot angle (°)", 1),
        ("medial_share_pct", "medial share of pressure (%)", 1),
    ):
        rows.append([label] + [_median(m["per_side"][side][name], decimals) for side in m["sides"]])
    rows.append(["steps in band (%)"] + [number(m["per_side"][s]["in_band_pct"], 1) for s in m["sides"]])
    parts.append("<h3>Per foot (medians)</h3>")
    parts.append(table(["measure", *m["sides"]], rows))
    symmetry = m["symmetry"]
    if symmetry["parameters"]:
        parts.append("<h3>Symmetry</h3>")
        parts.append(
            table(
                ("parameter", "left", "right", "LSI"),
                [
                    (name, number(p["left"], 3), number(p["right"], 3), number(p["lsi"], 3))
                    for name, p in symmetry["parameters"].items()
                ]
                + [("foot angle, left − right (°)", "", "", number(symmetry["fpa_difference_deg"], 1))],
            )
        )
        parts.append(
            "<p class=\"note\">LSI: the smaller side's value over the larger side's (1 = equal). "
            f"{html.escape(symmetry['marks_note'].capitalize())}.</p>"
        )
        parts.append(figure_html(plots.symmetry(m), "Limb symmetry index per parameter (dotted: 0.8 and 0.9)", "symmetry"))
    parts.append("<h3>Foot angle</h3>")
    parts.append(figure_html(plots.foot_angle(results, m), "Foot angle per step and its distribution; shaded: the band",
                         "foot_angle"))  # fmt: skip
    parts.append(figure_html(plots.in_band_over_time(m), f"Steps in band per {m['over_time']['bin_s']:g} s", "in_band"))
    parts.append("<h3>Cadence</h3>")
    parts.append(figure_html(plots.cadence(results), "Cadence per stride (hollow: backward)", "cadence"))
    cues = m["cues"]
    parts.append("<h3>Cues</h3>")
    if m["events_from"] == "replay":
        parts.append('<p class="note">Replayed recording: it holds no cue events, so no cues are listed.</p>')
    parts.append(
        table(
            ("cues", "count"),
            [("delivered", str(cues["delivered"]))]
            + [(f"delivered: {reason.replace('_', ' ')}", str(n)) for reason, n in cues["by_reason"].items()]
            + [(f"suppressed: {outcome.replace('_', ' ')}", str(n)) for outcome, n in cues["suppressed"].items()]
            + [("per 100 steps", number(cues["per_100_steps"], 1))],
        )
    )
    raises = m["heel_raises"]
    parts.append("<h3>Heel raises</h3>")
    raise_rows = [
        (side, str(s["set"]), str(s["reps"]), number(s["hold_mean_s"], 2), number(s["hold_max_s"], 2))
        for side, per_side in raises["per_side"].items()
        for s in per_side["sets"]
    ]
    parts.append(table(("foot", "set", "reps", "mean hold (s)", "longest hold (s)"), raise_rows)
                 if raise_rows else "<p>No heel raises.</p>")  # fmt: skip
    parts.append(figure_html(plots.heel_raises(results), "Hold per repetition", "heel_raises"))
    parts.append("<h3>Data quality</h3>")
    quality = m["data_quality"]
    parts.append(
        table(
            ("foot", "samples", "lost", "lost (%)", "backfilled sample packets", "backfilled events", "events lost"),
            [
                (
                    side,
                    str(q["samples"]),
                    str(q["lost_samples"]),
                    number(q["lost_pct"], 2),
                    str(q["backfilled_sample_packets"]),
                    str(q["backfilled_events"]),
                    str(q["lost_events"]),
                )
                for side, q in quality["streams"].items()
            ],
        )
    )
    refused = sum(quality["bad_packets"].values())
    parts.append(
        f"<p>Damaged frames: {quality['bad_frames']}; refused packets: {refused}; duplicate events: "
        f"{quality['duplicate_events']}; file ends mid-frame: {'yes' if quality['torn_tail'] else 'no'}.</p>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _trend(document_trend: dict[str, Any]) -> str:
    labels = document_trend["sessions"]
    rows = [
        [name.replace("_", " ")] + [number(v, 2) for v in values]
        for name, values in document_trend["measures"].items()
    ]
    return (
        '<section id="trend"><h2>Trend across sessions</h2>'
        + table(["measure", *labels], rows)
        + figure_html(plots.trend(document_trend), "The same measures, session by session", "trend")
        + "</section>"
    )


def render_html(document: dict[str, Any], results: Sequence[SessionResults]) -> str:
    """The whole report; ``document`` is the JSON document, ``results`` its sessions' results in the same order."""
    title = "Insole session report" if len(results) == 1 else f"Insole report, {len(results)} sessions"
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="note">{html.escape(MEASUREMENT_NOTE)}</p>']
    if document.get("program") is not None:
        body.append(program_section(document["program"]))
    if document["trend"] is not None:
        body.append(_trend(document["trend"]))
    for session_results, measures in zip(results, document["sessions"], strict=True):
        body.append(_session(session_results, measures))
    body.append(f'<p class="note">{html.escape(document["generated_by"])}, report schema '
                f'{document["schema"]} v{document["schema_version"]} (docs/report.md).</p>')  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
