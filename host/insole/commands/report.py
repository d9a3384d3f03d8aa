"""`insole report`: one or more recordings → a self-contained HTML report and a JSON file with the same numbers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from insole.analysis.results import EVENT_SOURCES, Band, SessionResults, session_results
from insole.commands.options import add_force, check_outputs, per_side_degrees
from insole.errors import UserError
from insole.settings import parse_band


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a session report (HTML with plots, and JSON) from one or more recordings",
        description=(
            "Per session: steps, cadence, stance and swing, symmetry (LSI) per parameter, the foot angle "
            "against the target band and the share of steps in band over time, cues by reason, stride length "
            "and speed, backward and brisk (>= 100 steps/min) walking minutes, heel-raise sets, reps and "
            "holds, data quality. Several recordings add a trend section. Results come from the insoles' own "
            "events in the recording, or (a recording without events: simulated, imported) from a replay "
            "through the firmware. The report describes measurements; it makes no diagnosis. "
            "Writes OUT.html and OUT.json (docs/report.md)."
        ),
    )
    parser.add_argument("recordings", type=Path, nargs="+", metavar="REC", help=".insole recordings, one per session")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.html", help="the HTML report to write")
    add_results_options(parser)
    add_force(parser)
    parser.set_defaults(func=run)


def add_results_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose how a recording's results are taken (shared with `insole export`)."""
    parser.add_argument(
        "--band",
        metavar="TARGET:HALF",
        help="foot-angle target band in degrees, e.g. 10:3 (default: the band the recording reports, if any)",
    )
    parser.add_argument(
        "--events-from",
        choices=EVENT_SOURCES,
        default="auto",
        help="recording: the insoles' own events; replay: replay the samples through the firmware; "
        "auto (default): the recording's events when it has any, else a replay",
    )
    parser.add_argument(
        "--mount-yaw",
        type=per_side_degrees,
        default={},
        metavar="DEG|left=DEG,right=DEG",
        help="a replay takes this mounting yaw (insole calibrate) off its foot angles, as the insole would",
    )
    parser.add_argument("--participant", help="participant id when the recording does not name one (default: unknown)")
    parser.add_argument("--session", help="session id when the recording does not name one (default: the file's stem)")


def band_option(text: str | None) -> Band | None:
    """--band TARGET:HALF as a Band (None when not given)."""
    if text is None:
        return None
    target, half = parse_band(text)
    if half <= 0:
        raise UserError(f"--band {text!r}: the half-width must be positive")
    return Band(target, half)


def load_results(args: argparse.Namespace, path: Path) -> SessionResults:
    """The results of one recording, as the options ask."""
    if not path.is_file():
        raise UserError(f"{path}: no such recording")
    return session_results(
        path,
        band=band_option(args.band),
        events_from=args.events_from,
        participant=args.participant,
        session=args.session,
        mount_yaw_deg=args.mount_yaw,
    )


def run(args: argparse.Namespace) -> int:
    from insole.report import json_path_for, write_report  # lazy: matplotlib

    output: Path = args.output
    if output.suffix.lower() == ".json":
        raise UserError(f"-o {output}: give the HTML file's name; the JSON is written beside it")
    check_outputs(args.force, output, json_path_for(output))
    if args.session is not None and len(args.recordings) > 1:
        raise UserError("--session names one session; with several recordings each takes its file's stem")
    band_option(args.band)  # a bad band fails before any replay
    missing = [p for p in args.recordings if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: no such recording")
    started = time.perf_counter()
    results: list[SessionResults] = []
    for path in args.recordings:
        result = load_results(args, path)
        for problem in result.quality.problems():
            print(f"insole report: {path}: {problem}", file=sys.stderr)
        results.append(result)
    sessions = [r.session for r in results]
    if len(set(sessions)) != len(sessions):
        raise UserError(f"two recordings have the same session id ({', '.join(sessions)}); rename one")
    _document, json_path = write_report(results, output)
    print(f"wrote {output} and {json_path} ({len(results)} session(s), {time.perf_counter() - started:.1f} s)")
    return 0
