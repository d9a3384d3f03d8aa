"""The terminal view of a live session (demo and monitor): one column per foot, one row
per measure, so that it fits an 80-column terminal; the foot angle against the cue
band, the cue state, stride length and speed, and how to stop."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from insole.protocol import CueMode, CueOutcome, CueReason
from insole.session.live import FootState, LiveSession, symmetry_index

CUE_MODES: dict[int, str] = {CueMode.OFF: "off", CueMode.FOOT_ANGLE: "foot-angle band", CueMode.METRONOME: "metronome"}
CUE_REASONS: dict[int, str] = {CueReason.TOE_IN: "toe in", CueReason.TOE_OUT: "toe out", CueReason.METRONOME: "beat",
               CueReason.TEST: "test"}  # fmt: skip
CUE_OUTCOMES: dict[int, str] = {CueOutcome.CUED: "played", CueOutcome.FADED_EVERY_KTH: "faded (k-th)",
                CueOutcome.FADED_PROBABILITY: "faded (chance)", CueOutcome.NO_FEEDBACK_BLOCK: "no-feedback block"}  # fmt: skip


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _foot_angle(foot: FootState) -> Text:
    step = foot.last_step
    fpa = step.fpa_deg if step else None
    if fpa is None:
        return Text("-")
    in_band = foot.in_band(fpa)
    if in_band is None or foot.settings is None or foot.settings.cue_mode != CueMode.FOOT_ANGLE:
        return Text(f"{fpa:+.1f}")
    return Text(f"{fpa:+.1f} in band", style="green") if in_band else Text(f"{fpa:+.1f} OUT", style="bold red")


def _band(foot: FootState) -> str:
    band = foot.band_deg()
    if band is None or foot.settings is None:
        return "-"
    return f"{band[0]:+.1f}…{band[1]:+.1f} ({CUE_MODES.get(foot.settings.cue_mode, '?')})"


def _cue(foot: FootState) -> str:
    cue = foot.last_cue
    if cue is None:
        return f"{foot.cued_count} played"
    last = f"{CUE_REASONS.get(cue.reason, '?')} {CUE_OUTCOMES.get(cue.outcome, '?')}"
    return f"{foot.cued_count} played; last {last}"


def _raises(foot: FootState) -> str:
    if not foot.raises:
        return "0"
    last = foot.raises[-1]
    return f"{len(foot.raises)}, hold {_fmt(last.hold_ms, '.1f', 0.001)} s"


def _samples(foot: FootState) -> str:
    battery = foot.status.battery_pct if foot.status else None
    text = f"{foot.samples} ({foot.lost_samples} lost, {foot.backfilled_samples} backfilled)"
    return text if battery is None else f"{text}, {battery} %"


def _stance(foot: FootState) -> str:
    typical = _fmt(foot.recent("stance_ms"), ".0f")
    step = foot.last_step
    # The foot came to rest in its last stance (docs/protocol.md): the wearer stands.
    return f"{typical}, standing" if step is not None and step.to_index is None else typical


ROWS = (
    ("samples, battery", _samples),
    ("steps", lambda f: str(f.step_count)),
    ("cadence (steps/min)", lambda f: _fmt(f.cadence_spm(), ".0f")),
    ("stance (ms)", _stance),
    ("foot angle (°)", _foot_angle),
    ("band (°)", _band),
    ("cues", _cue),
    ("stride length (m)", lambda f: _fmt(f.recent("stride_mm"), ".2f", 0.001)),
    ("speed (m/s)", lambda f: _fmt(f.recent("speed_mms"), ".2f", 0.001)),
    ("direction", lambda f: f.last_direction),
    ("heel raises", _raises),
)


def render(session: LiveSession, title: str, *, footer: str = "") -> Group:
    """The view; ``footer`` adds a line (the dashboard's address, the recording)."""
    table = Table(title=title, title_justify="left", width=80)
    table.add_column("", no_wrap=True)
    for foot in session.feet:
        table.add_column(f"{foot.side} ({foot.connection()})", overflow="fold")
    for label, cell in ROWS:
        table.add_row(label, *(cell(foot) for foot in session.feet))
    stance = {f.side: f.recent("stance_ms") for f in session.feet}
    lsi = symmetry_index(stance.get("left"), stance.get("right"))
    lines = [Text(f"stance-time symmetry (LSI, smaller/larger side): {_fmt(lsi, '.0%')}")]
    if footer:
        lines.append(Text(footer))
    if session.recording_path is not None:
        lines.append(Text(f"recording to {session.recording_path}"))
    lines.append(Text("Ctrl-C to stop", style="bold"))
    return Group(table, *lines)


def run_view(
    session: LiveSession,
    console: Console,
    title: Callable[[float], str],
    *,
    duration_s: float | None,
    tick: Callable[[], None] | None = None,
    footer: str = "",
) -> None:
    """Polls a started session and shows it until ``duration_s`` (None: until Ctrl-C);
    ``tick`` runs after every poll, on this thread (the dashboard's frames and requests)."""
    started = time.monotonic()
    with Live(render(session, title(0.0), footer=footer), console=console, refresh_per_second=4) as live:
        while duration_s is None or time.monotonic() - started < duration_s:
            session.poll(0.1)
            if tick is not None:
                tick()
            live.update(render(session, title(time.monotonic() - started), footer=footer))
