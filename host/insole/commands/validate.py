"""`insole validate`: the firmware's gait results on real and simulated data, as one table."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console

from insole.errors import UserError
from insole.resources import DATA_DIR_ENV

# Distinct from errors (1) and bad arguments (2), so a script or CI job can tell a
# measured miss from a run that did not measure.
EXIT_MISSED_GOAL = 3
EXIT_DATA_MISSING = 4


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from insole.validation.suite import ROW_NAMES

    p = subparsers.add_parser(
        "validate",
        help="score the firmware's step events, foot angle, direction and heel raises on reference data",
        description="Replays ../shared/data and simulated walks through the firmware (MicroPython unix port) "
        "and prints step F1, IC/TO mean absolute error, FPA error, direction accuracy and heel-raise "
        "count error against each dataset's reference, with the goals.",
        epilog=f"Exit status: 0 every goal met; {EXIT_MISSED_GOAL} a goal missed (the table says which); "
        f"{EXIT_DATA_MISSING} a row's data was not found (and no goal missed); 2 bad arguments; 1 an error "
        "(e.g. MicroPython missing).",
    )
    p.add_argument("--data", type=Path, metavar="DIR",
                   help=f"the real recordings' folder (default: ${DATA_DIR_ENV}, else ../shared/data)")
    p.add_argument(
        "--rows",
        default=",".join(ROW_NAMES),
        help=f"comma-separated subset of: {', '.join(ROW_NAMES)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="shorter simulated walks and the time-reversed gaitpdb row on 4 walks; the forward gaitpdb row "
        "keeps all 23, whose one hard walk decides its goal (what CI runs)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from insole.validation.suite import ROW_NAMES, build_rows
    from insole.validation.table import table_lines

    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ROW_NAMES))
    if unknown:
        raise UserError(f"unknown rows {', '.join(unknown)}; choose from {', '.join(ROW_NAMES)}")
    if args.data is not None:
        if not args.data.is_dir():
            raise UserError(f"--data {args.data}: no such folder")
        os.environ[DATA_DIR_ENV] = str(args.data.resolve())  # where every row looks, and the replays it starts
    console = Console(stderr=True)  # progress on stderr, the table on stdout
    started = time.perf_counter()
    rows, missing = build_rows(names, quick=args.quick, progress=lambda name: console.log(f"validating {name}"))
    print("\n".join(table_lines(rows)))
    for row in rows:
        for note in row.notes:
            print(f"- {row.data}: {note}")
    for name, reason in missing:
        print(f"- skipped {name}: {reason}")
    print(f"{len(rows)} rows in {time.perf_counter() - started:.0f} s")
    if not all(row.passed for row in rows):
        return EXIT_MISSED_GOAL
    return EXIT_DATA_MISSING if missing else 0
