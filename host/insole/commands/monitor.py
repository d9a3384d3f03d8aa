"""`insole monitor`: both insoles live over BLE in the terminal, and with ``--web`` in
the browser (the dashboard, docs/dashboard.md), until Ctrl-C."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import Any

from rich.console import Console

from insole.commands.options import seconds
from insole.emulation.insoles import open_simulated_insoles
from insole.layouts import Layout, load_layout
from insole.link.ble import open_ble_insoles
from insole.session.live import LiveSession
from insole.session.terminal import run_view
from insole.web.dashboard import add_web_arguments, check_web_arguments, open_dashboard


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("monitor", help="watch both insoles live over BLE (Ctrl-C to stop)")
    p.add_argument("--side", action="append", choices=("left", "right"), help="which insoles (default both)")
    p.add_argument("--simulate", action="store_true", help="two simulated insoles on the emulated BLE radio")
    p.add_argument("--duration-s", type=seconds, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lsl", action="store_true",
                   help="also publish each foot's samples and events as Lab Streaming Layer streams (docs/calibration.md)")
    add_web_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.web:
        check_web_arguments(args)
    console = Console()
    sides = args.side or ["left", "right"]
    with ExitStack() as stack:
        layouts: dict[str, Layout] = {}
        if args.simulate:
            from insole.commands.demo import live_demo_plan
            from insole.recording import make_header, stream_header_for
            from insole.sim import simulate_session

            sim = simulate_session(live_demo_plan(), rate_hz=100.0, seed=args.seed)
            streams = [s for s in sim.streams if s.side in sides]
            insoles = open_simulated_insoles(stack, streams, ble=True)
            session = LiveSession(insoles.links, layouts=insoles.layouts)
            layouts = {s.side: load_layout(s.layout) for s in streams}

            def header() -> dict[str, Any]:
                entries = [stream_header_for(s, k) for s, k in zip(streams, insoles.pressure_scales, strict=True)]
                return make_header(source="simulated", streams=entries)
        else:
            session = LiveSession(open_ble_insoles(stack, sides))

            def header() -> dict[str, Any]:
                from insole.recording import device_header

                return device_header([(f.side, f.rate_hz, f.status or f.link.get_status(), f.link.port)
                                      for f in session.feet])  # fmt: skip

        session.start()
        if args.lsl:
            from insole.lsl import LslOutlets

            scales: dict[str, float] | None = (
                {s.side: k for s, k in zip(streams, insoles.pressure_scales, strict=True)} if args.simulate else None
            )
            stack.enter_context(LslOutlets.for_session(session, pressure_scales=scales))
        if not args.simulate:
            layouts = {f.side: load_layout("insole8") for f in session.feet
                       if f.cell_positions_mm is not None and len(f.cell_positions_mm) == 8}
        tick = None
        footer = ""
        if args.web:
            dashboard = open_dashboard(stack, session, args, recording_header=header, layouts=layouts,
                                       announce=console.print)
            tick = dashboard.tick
            footer = f"dashboard: {dashboard.server.url}"

        def title(elapsed_s: float) -> str:
            return f"insole monitor: {', '.join(f.link.port for f in session.feet)}, {elapsed_s:.0f} s"

        try:
            run_view(session, console, title, duration_s=args.duration_s, tick=tick, footer=footer)
        except KeyboardInterrupt:
            console.print("stopping")  # the stack below still closes every link and process
        session.stop()
    return 0
