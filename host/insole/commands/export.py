"""`insole export`: a recording's samples as one CSV in physical units."""

from __future__ import annotations

import argparse
from pathlib import Path

from insole.commands.options import add_force, check_outputs
from insole.export.samples_csv import export_csv
from insole.recording import read_recording


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a recording's samples as CSV",
        description=(
            "Write the samples of a recording as one CSV, rows grouped by side, columns "
            "side,index,t_s,p1..pN,ax,ay,az,gx,gy,gz in physical units: pressure in the "
            "stream's unit, acceleration in m/s², angular rate in deg/s. Missing values "
            "(n/a, lost samples) are empty cells. Events (STEP, HEEL_RAISE) are not exported."
        ),
    )
    parser.add_argument("recording", type=Path, help="the .insole recording")
    parser.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    parser.add_argument(
        "--stream", choices=("left", "right", "all"), default="all", help="which foot to export (default: all)"
    )
    add_force(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_outputs(args.force, args.output)
    recording = read_recording(args.recording)
    rows = export_csv(recording, args.output, args.stream)
    print(f"wrote {rows} rows to {args.output}")
    return 0
