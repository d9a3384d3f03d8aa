"""`insole export`: a recording's samples, and the session's own results, for other tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from insole.commands.options import add_force, check_outputs
from insole.commands.report import add_results_options, band_option
from insole.errors import UserError
from insole.model import Side, as_side
from insole.recording import Recording, read_header, read_recording


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a recording's samples (CSV) and the session's results (CSV, Parquet, gaitmap stride list)",
        description=(
            "-o OUT.csv: the samples as one CSV, rows grouped by side, columns "
            "side,index,t_s,p1..pN,ax,ay,az,gx,gy,gz in physical units (pressure in the stream's unit, "
            "acceleration in m/s², angular rate in deg/s; missing values are empty cells); with --per-foot "
            "OUT.left.csv and OUT.right.csv in `insole import csv`'s columns instead. --results DIR: the "
            "session's own steps, cues and heel raises and a stride list in gaitmap's format, as CSV. "
            "--parquet ROOT: the same results and the samples as Parquet, partitioned "
            "participant=/session=/foot= (docs/export.md). Results come from the insoles' own events, or "
            "(a recording without events) from a replay through the firmware. Damage in the recording "
            "(damaged frames, lost samples) is reported on stderr with counts."
        ),
    )
    parser.add_argument("recording", type=Path, help="the .insole recording")
    parser.add_argument("-o", "--output", type=Path, help="samples CSV to write")
    parser.add_argument(
        "--stream",
        choices=("left", "right", "all"),
        default="all",
        help="which foot's samples to export (default: all)",
    )
    parser.add_argument(
        "--per-foot",
        action="store_true",
        help="write the samples as OUT.left.csv and OUT.right.csv, which `insole import csv` reads back",
    )
    parser.add_argument("--results", type=Path, metavar="DIR", help="folder for SESSION.steps.csv, .cues.csv, "
                        ".heel-raises.csv and .gaitmap-strides.csv")  # fmt: skip
    parser.add_argument("--parquet", type=Path, metavar="ROOT", help="Parquet dataset folder to add this session to")
    add_results_options(parser)
    add_force(parser)
    parser.set_defaults(func=run)


def _sample_outputs(args: argparse.Namespace, sides: list[Side]) -> list[Path]:
    from insole.export.samples_csv import foot_csv_path

    if args.output is None:
        return []
    if args.per_foot:
        return [foot_csv_path(args.output, side) for side in sides if args.stream in ("all", side)]
    return [args.output]


def report_damage(recording: Recording) -> None:
    """Damage in the recording, with counts, on stderr: exported rows stay empty where data is missing."""
    from insole.analysis.results import data_quality

    for problem in data_quality(recording).problems():
        print(f"insole export: {recording.path}: {problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from insole.analysis.results import session_ids, session_results
    from insole.export.parquet import check_partitions, write_parquet
    from insole.export.results_tables import result_paths, write_results_csv
    from insole.export.samples_csv import export_csv, export_foot_csvs

    if args.output is None and args.results is None and args.parquet is None:
        raise UserError("nothing to write: give -o OUT.csv (samples), --results DIR and/or --parquet ROOT")
    if args.per_foot and args.output is None:
        raise UserError("--per-foot names the samples' files after -o OUT.csv; give -o")
    if not args.recording.is_file():
        raise UserError(f"{args.recording}: no such recording")
    band = band_option(args.band)
    header = read_header(args.recording)
    sides = [as_side(str(entry["side"])) for entry in header["streams"]]
    participant, session = session_ids(header, args.recording, args.participant, args.session)
    results_files = result_paths(args.results, session) if args.results is not None else []
    check_outputs(args.force, *_sample_outputs(args, sides), *results_files)
    if args.parquet is not None:
        check_partitions(args.parquet, participant, session, sides, args.force)

    recording = read_recording(args.recording)
    report_damage(recording)
    if args.output is not None:
        if args.per_foot:
            for path, rows in export_foot_csvs(recording, args.output, args.stream).values():
                print(f"wrote {rows} rows to {path}")
        else:
            rows = export_csv(recording, args.output, args.stream)
            print(f"wrote {rows} rows to {args.output}")
    if args.results is None and args.parquet is None:
        return 0
    results = session_results(
        recording, band=band, events_from=args.events_from, participant=args.participant, session=args.session,
        mount_yaw_deg=args.mount_yaw,
    )
    origin = "the recording's events" if results.events_from == "recording" else "a replay through the firmware"
    print(
        f"results from {origin}: {len(results.steps)} steps, {len(results.cues)} cues, {len(results.raises)} heel raises"
    )
    if args.results is not None:
        for _table, (path, rows) in write_results_csv(results, args.results, session).items():
            print(f"wrote {rows} rows to {path}")
    if args.parquet is not None:
        counts = write_parquet(results, args.parquet, force=args.force)
        summary = ", ".join(f"{table} {rows}" for table, rows in counts.items())
        print(f"wrote participant={participant}/session={session} under {args.parquet} ({summary} rows)")
    return 0
