"""The terminal view of a live session: both feet side by side (demo and monitor)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from insole.session.live import LiveSession, symmetry_index


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(session: LiveSession, title: str) -> Group:
    table = Table(title=title)
    for column in ("foot", "samples", "lost", "steps", "cadence (spm)", "stance (ms)", "FPA (°)", "direction",
                   "heel raises"):
        table.add_column(column, justify="right")
    for foot in session.feet:
        table.add_row(
            foot.side,
            str(foot.samples),
            str(foot.lost_samples),
            str(foot.step_count),
            _fmt(foot.cadence_spm(), ".0f"),
            _fmt(foot.mean_stance_ms(), ".0f"),
            _fmt(foot.mean_fpa_deg(), "+.1f"),
            foot.last_direction,
            str(len(foot.raises)),
        )
    stance = {f.side: f.mean_stance_ms() for f in session.feet}
    lsi = symmetry_index(stance.get("left"), stance.get("right"))
    return Group(table, Text(f"stance-time symmetry (LSI): {_fmt(lsi, '.2f')}"))
