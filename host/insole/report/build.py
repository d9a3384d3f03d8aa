"""Results of one or more sessions → the report's JSON document and HTML page."""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from insole.analysis.measures import report_document, session_measures
from insole.analysis.program import ProgramAnalysis, program_json, recording_records
from insole.analysis.results import SessionResults
from insole.errors import UserError


def _generator() -> str:
    try:
        return f"insole {importlib.metadata.version('insole')}"
    except importlib.metadata.PackageNotFoundError:
        return "insole"


def chronological(results: Sequence[SessionResults]) -> list[SessionResults]:
    """Sessions by start time when every one has it, else in the order given."""
    if all(r.start_time_utc for r in results):
        return sorted(results, key=lambda r: str(r.start_time_utc))
    return list(results)


def build_report(results: Sequence[SessionResults]) -> tuple[dict[str, Any], str]:
    """(JSON document, HTML text) of the sessions, in chronological order."""
    from insole.report.html import render_html  # lazy: matplotlib loads only for the page

    ordered = chronological(results)
    program = None
    if any(r.has_program for r in ordered):
        program = program_json(ProgramAnalysis().analyse([recording_records(r) for r in ordered]))
    document = report_document([session_measures(r) for r in ordered], _generator(), program)
    return document, render_html(document, ordered)


def json_path_for(html_path: Path) -> Path:
    """OUT.html → OUT.json (the same numbers)."""
    return html_path.with_suffix(".json")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_report(results: Sequence[SessionResults], html_path: Path) -> tuple[dict[str, Any], Path]:
    """Write OUT.html and OUT.json; returns the document and the JSON's path."""
    document, page = build_report(results)
    json_path = json_path_for(html_path)
    _write_atomically(json_path, json.dumps(document, indent=1, allow_nan=False) + "\n")
    _write_atomically(html_path, page)
    return document, json_path
