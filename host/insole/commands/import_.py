"""`insole import`: third-party recordings → an `.insole` recording.

    insole import moticon FILE -o OUT      Moticon OpenGo text export (both feet, IMU)
    insole import gaitpdb FILE -o OUT      PhysioNet gaitpdb walk (8 force sensors per foot)
    insole import gaitmap FILE -o OUT      gaitmap example IMU data (both feet, foot frame, 204.8 Hz)
    insole import csv [--left L.csv] [--right R.csv] [--layout NAME] -o OUT

For Moticon exports with vendor step detections, the vendor's initial contacts and
toe-offs are also written beside the recording as ``<OUT stem>.vendor-steps.csv``
(STEPS.csv format; a reference, not ground truth).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from insole.commands.options import add_force, check_outputs
from insole.errors import UserError
from insole.model import FootStream, Side, StepRow


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert a third-party recording (Moticon, gaitpdb, gaitmap, CSV) into an .insole recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="recording to write (.insole)")
        add_force(p)

    moticon = sources.add_parser("moticon", help="Moticon OpenGo text export (.txt)")
    moticon.add_argument("file", type=Path, metavar="FILE")
    common(moticon)
    moticon.set_defaults(func=run_moticon)

    gaitpdb = sources.add_parser("gaitpdb", help="PhysioNet gaitpdb walk (.txt, 19 columns)")
    gaitpdb.add_argument("file", type=Path, metavar="FILE")
    common(gaitpdb)
    gaitpdb.set_defaults(func=run_gaitpdb)

    gaitmap = sources.add_parser("gaitmap", help="gaitmap example IMU data (imu_sample*.csv)")
    gaitmap.add_argument("file", type=Path, metavar="FILE")
    gaitmap.add_argument("--rate-hz", type=float, help="sampling rate (default: the example file's own)")
    gaitmap.add_argument("--sensor-frame", action="store_true",
                         help="import a file in the sensor frame (imu_sample_not_rotated.csv) as it is")
    common(gaitmap)
    gaitmap.set_defaults(func=run_gaitmap)

    csv = sources.add_parser(
        "csv",
        help="one CSV per foot: t_s, p1..pN, ax,ay,az [m/s²], gx,gy,gz [deg/s] in the foot frame",
        description=(
            "One CSV per foot with a header row: t_s (seconds, required); p1..pN (N <= 16, optional); "
            "ax,ay,az [m/s²] and gx,gy,gz [deg/s] in the foot frame (x toes, y left, z up; optional, all six "
            "or none). Rate 50..250 Hz, uniform."
        ),
    )
    csv.add_argument("--left", type=Path, metavar="L.csv", help="left foot")
    csv.add_argument("--right", type=Path, metavar="R.csv", help="right foot")
    csv.add_argument("--layout", metavar="NAME", help="sensor layout in hardware/layouts (default: generic<N>)")
    csv.add_argument("--pressure-unit", default="a.u.", metavar="UNIT", help="unit of p1..pN (default: a.u.)")
    common(csv)
    csv.set_defaults(func=run_csv)


def _write(
    args: argparse.Namespace, streams: list[FootStream], source: str, source_file: str, start: str | None
) -> None:
    from insole.recording import write_recording  # lazy: the importers do not need it

    output: Path = args.output
    write_recording(output, streams, source=source, start_time_utc=start, source_file=source_file)
    for s in streams:
        parts = [f"{s.n_pressure} pressure [{s.pressure_unit}]"] if s.n_pressure else []
        parts += ["IMU"] if s.has_imu else []
        print(
            f"{s.side:5s}: {s.n_samples} samples at {s.rate_hz:g} Hz from t = {s.t0_s:.2f} s, "
            f"{' + '.join(parts)}, layout {s.layout or '-'}"
        )
    print(f"wrote {output}")


def _vendor_steps(ic_s: np.ndarray, to_s: np.ndarray, side: Side) -> list[StepRow]:
    """Pair each initial contact with the first toe-off after it and before the next contact."""
    steps = []
    for k, ic in enumerate(ic_s):
        next_ic = ic_s[k + 1] if k + 1 < len(ic_s) else np.inf
        after = to_s[(to_s > ic) & (to_s < next_ic)]
        if after.size:
            steps.append(StepRow(side, float(ic), float(after[0]), None, "unknown"))
    return steps


def run_moticon(args: argparse.Namespace) -> int:
    from insole.export.events_csv import write_steps_csv
    from insole.importers.moticon import read_moticon

    vendor_steps_path = args.output.with_name(args.output.stem + ".vendor-steps.csv")
    check_outputs(args.force, args.output, vendor_steps_path)
    recording = read_moticon(args.file)
    _write(args, recording.streams, "moticon", args.file.name, recording.start_time_utc)
    if recording.start_time_utc is None and recording.start_time_local:
        print(f"note: the export gives local time only ({recording.start_time_local}); start_time_utc left empty")
    if recording.skipped_rows:
        print(f"note: {recording.skipped_rows} row(s) missing from the export were filled with NaN")
    if recording.unknown_event_codes:
        print(f"note: ignored unknown event codes {recording.unknown_event_codes}")
    if recording.event_source == "vendor":
        steps = [
            step
            for side, events in recording.reference_events.items()
            for step in _vendor_steps(events.ic_s, events.to_s, side)
        ]
        count = write_steps_csv(vendor_steps_path, steps)
        print(f"wrote {vendor_steps_path} ({count} vendor steps)")
    elif recording.event_source == "manual":
        counts = {side: len(ev.ic_s) for side, ev in recording.reference_events.items()}
        print(f"note: hand-placed heel strikes {counts} are kept in the importer, not written")
    return 0


def run_gaitpdb(args: argparse.Namespace) -> int:
    from insole.importers.gaitpdb import import_gaitpdb

    check_outputs(args.force, args.output)
    streams = import_gaitpdb(args.file)
    _write(args, streams, "gaitpdb", args.file.name, None)
    return 0


def run_gaitmap(args: argparse.Namespace) -> int:
    from insole.importers.gaitmap import import_gaitmap

    check_outputs(args.force, args.output)
    if args.rate_hz is not None and not 50.0 <= args.rate_hz <= 250.0:
        raise UserError(f"--rate-hz must be within 50..250 (protocol v1), got {args.rate_hz:g}")
    streams = import_gaitmap(args.file, rate_hz=args.rate_hz, allow_sensor_frame=args.sensor_frame)
    _write(args, streams, "gaitmap", args.file.name, None)
    return 0


def run_csv(args: argparse.Namespace) -> int:
    from insole.importers.csv_generic import import_csv

    if args.left is None and args.right is None:
        raise UserError("give at least one of --left L.csv / --right R.csv")
    check_outputs(args.force, args.output)
    streams = import_csv(args.left, args.right, layout=args.layout, pressure_unit=args.pressure_unit)
    names = ", ".join(p.name for p in (args.left, args.right) if p is not None)
    _write(args, streams, "csv", names, None)
    return 0
