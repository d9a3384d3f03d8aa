"""`insole monitor`: both insoles live over BLE in the terminal, until Ctrl-C."""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack

from rich.console import Console
from rich.live import Live

from insole.commands.options import seconds
from insole.emulation.insoles import open_simulated_insoles
from insole.link.ble import open_ble_insoles
from insole.session.live import LiveSession
from insole.session.terminal import render


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("monitor", help="watch both insoles live over BLE (Ctrl-C to stop)")
    p.add_argument("--side", action="append", choices=("left", "right"), help="which insoles (default both)")
    p.add_argument("--simulate", action="store_true", help="two simulated insoles on the emulated BLE radio")
    p.add_argument("--duration-s", type=seconds, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    sides = args.side or ["left", "right"]
    with ExitStack() as stack:
        if args.simulate:
            from insole.sim import demo_plan, simulate_session

            sim = simulate_session(demo_plan(), rate_hz=100.0, seed=args.seed)
            streams = [s for s in sim.streams if s.side in sides]
            insoles = open_simulated_insoles(stack, streams, ble=True)
            session = LiveSession(insoles.links, layouts=insoles.layouts)
        else:
            session = LiveSession(open_ble_insoles(stack, sides))
        session.start()
        started = time.monotonic()
        try:
            with Live(render(session, "insole monitor"), console=console, refresh_per_second=4) as live:
                while args.duration_s is None or time.monotonic() - started < args.duration_s:
                    session.poll(0.1)
                    elapsed = time.monotonic() - started
                    live.update(render(session, f"insole monitor: {', '.join(f.link.port for f in session.feet)}, "
                                                f"{elapsed:.0f} s"))
        except KeyboardInterrupt:
            console.print("stopping")  # the stack below still closes every link and process
        session.stop()
    return 0
