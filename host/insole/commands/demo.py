"""`insole demo`: two simulated insoles walk; the host shows both feet live.

No hardware needed: the firmware runs on the MicroPython unix port, one process per
insole; their sensors replay a simulated walk at the real rate. By default the
insoles talk over an emulated BLE radio (bumble virtual controllers; the host uses its
normal bleak client through a bumble backend, pairing included); with
``--link serial`` each sits behind its own pty, as a board on USB would.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.live import Live

from insole.commands.options import add_force, check_outputs, seconds
from insole.emulation.insoles import open_simulated_insoles
from insole.session.live import LiveSession
from insole.session.terminal import render


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("demo", help="two simulated insoles walking, shown live (no hardware needed)")
    p.add_argument("--duration-s", type=seconds, default=20.0, help="how long to stream (default 20 s)")
    p.add_argument("-o", "--output", type=Path, help="also record both feet to this .insole file")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--link", choices=("ble", "serial"), default="ble", help="emulated BLE radio (default) or a pty")
    add_force(p)
    p.set_defaults(func=run)


def _title(elapsed_s: float, args: argparse.Namespace) -> str:
    return f"insole demo: simulated walk, {elapsed_s:4.1f} / {args.duration_s:.0f} s ({args.link})"


def run(args: argparse.Namespace) -> int:
    from insole.recording import RecordingWriter, make_header, stream_header_for
    from insole.sim import demo_plan, simulate_session

    check_outputs(args.force, args.output)
    console = Console()
    sim = simulate_session(demo_plan(), rate_hz=100.0, seed=args.seed)
    truth_steps = {side: sum(1 for s in sim.steps if s.side == side) for side in ("left", "right")}
    with ExitStack() as stack:
        insoles = open_simulated_insoles(stack, sim.streams, ble=args.link == "ble")
        writer = None
        if args.output:
            header = make_header(
                source="simulated",
                streams=[stream_header_for(s, scale) for s, scale in zip(sim.streams, insoles.pressure_scales, strict=True)],
            )
            if args.force:  # a recording is never appended to another: replaced whole, as asked
                args.output.unlink(missing_ok=True)
            writer = stack.enter_context(RecordingWriter(args.output, header))
        session = LiveSession(insoles.links, layouts=insoles.layouts, writer=writer)
        session.start()
        started = time.monotonic()
        with Live(render(session, _title(0.0, args)), console=console, refresh_per_second=4) as live:
            while (elapsed := time.monotonic() - started) < args.duration_s:
                session.poll(0.1)
                live.update(render(session, _title(elapsed, args)))
        session.stop()
    console.print()
    for foot in session.feet:
        status = foot.status
        radio = ""
        if status and status.ble_irq_faults is not None:
            radio = f", BLE IRQ faults {status.ble_irq_faults}, connections refused {status.ble_refused}"
        console.print(
            f"{foot.side}: {foot.step_count} steps detected on the device in {args.duration_s:.0f} s "
            f"(the simulated walk has {truth_steps[foot.side]} in {sim.streams[0].n_samples / 100:.0f} s); "
            f"free heap {status.free_heap if status else '?'} B, dropped {status.dropped_samples if status else '?'}"
            f"{radio}"
        )
    if args.output:
        console.print(f"recorded to {args.output}")
    return 0
