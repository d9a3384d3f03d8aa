"""`insole hil`: replay a recording through the firmware and write what it computed."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from insole.commands.options import add_force, check_outputs, per_side_degrees
from insole.commands.program import adherence_lines
from insole.errors import UserError
from insole.export.events_csv import write_raises_csv, write_steps_csv
from insole.hil import raise_rows, replay_recording, step_rows
from insole.program import load_program, sessions_from_events
from insole.protocol import whole_stances


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "hil",
        help="replay a recording through the firmware (simulated board or --port) and write its events",
        description="Streams the recording's samples into the firmware in replay mode and writes the "
        "step events (and heel raises) the firmware computed on the device.",
    )
    p.add_argument("recording", type=Path, help="an .insole recording (insole import / simulate / record)")
    p.add_argument("--steps", type=Path, required=True, help="STEPS.csv to write: side,ic_s,to_s,fpa_deg,direction")
    p.add_argument("--heel-raises", type=Path, help="RAISES.csv to write: side,start_s,end_s,hold_s")
    p.add_argument(
        "--port",
        action="append",
        default=[],
        help="serial port of a real board in replay mode; once for all feet in turn, or once per foot",
    )
    p.add_argument("--log-dir", type=Path, help="keep the simulated firmware's stderr here")
    p.add_argument(
        "--mount-yaw",
        type=per_side_degrees,
        default={},
        metavar="DEG|left=DEG,right=DEG",
        help="take this mounting yaw (insole calibrate) off the replayed foot angles: left - yaw, right + yaw",
    )
    p.add_argument(
        "--program",
        type=Path,
        metavar="FILE",
        help="run this exercise program (a program file, insole program set) during the replay and print what it logged",
    )
    add_force(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from insole.recording import read_recording

    console = Console(stderr=True)
    if not args.recording.exists():
        raise UserError(f"{args.recording}: no such recording")
    check_outputs(args.force, args.steps, args.heel_raises)
    program = load_program(args.program) if args.program else None
    recording = read_recording(args.recording)
    streams = recording.streams
    scales = [float(s["pressure_scale"]) for s in recording.header["streams"]]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:>7}/{task.total} samples"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {s.side: progress.add_task(f"{s.side:>5} foot", total=s.n_samples) for s in streams}
        replays = replay_recording(
            streams,
            scales,
            ports=args.port,
            progress=lambda side, done: progress.update(tasks[side], completed=done),
            log_dir=args.log_dir,
            mount_yaw_deg=args.mount_yaw,
            program=program,
        )
    steps = [row for s, r in zip(streams, replays, strict=True) for row in step_rows(s, r)]
    n_steps = write_steps_csv(args.steps, steps)
    if args.heel_raises:
        write_raises_csv(args.heel_raises, [row for s, r in zip(streams, replays, strict=True) for row in raise_rows(s, r)])
    for r in replays:
        console.print(
            f"{r.side:>5}: {len(whole_stances(r.steps))} steps, {len(r.raises)} heel raises, {r.samples} samples "
            f"in {r.elapsed_s:.2f} s ({r.samples_per_s:,.0f} samples/s), free heap {r.free_heap} B, "
            f"dropped {r.dropped_samples}"
        )
    console.print(f"wrote {n_steps} steps to {args.steps}")
    if program is not None:
        for r in replays:
            for line in adherence_lines(f"the {r.side} insole", sessions_from_events(r.program_events), program):
                print(line)
    return 0
