"""`insole scan`: list the insoles advertising nearby, with their side and signal."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from rich.console import Console

from insole.commands.options import seconds


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("scan", help="list insoles advertising over BLE")
    p.add_argument("--timeout-s", type=seconds, default=5.0)
    p.add_argument("--simulate", action="store_true", help="scan the emulated radio with two simulated insoles on it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from insole.link.ble import run_on_radio, scan_insoles

    console = Console()
    with ExitStack() as stack:
        scanner_backend = None
        if args.simulate:
            from insole.emulation.insoles import open_simulated_insoles
            from insole.sim import Walk, simulate_session

            sim = simulate_session([Walk(duration_s=20.0)], rate_hz=100.0)
            # Only the insoles: their links would take the advertisements off the air.
            open_simulated_insoles(stack, sim.streams, ble=True, connect=False)
            from insole.emulation.bumble_backend import BumbleScanner

            scanner_backend = BumbleScanner
        found = run_on_radio(scan_insoles(args.timeout_s, scanner_backend=scanner_backend))
    if not found:
        console.print(f"no insole heard in {args.timeout_s:g} s")
        return 1
    for insole, rssi in found:
        side = {0: "left", 1: "right"}.get(insole.side, "?")
        console.print(f"{insole.name:<12} {side:<6} {insole.device.address}  RSSI {rssi if rssi is not None else '?'}")
    return 0
