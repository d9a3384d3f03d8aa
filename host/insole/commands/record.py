"""`insole record`: stream one or two insoles to a recording, packet by packet.

From real boards over USB (``--port left=/dev/ttyACM0 --port right=/dev/ttyACM1``) or
BLE (``--ble``: the insoles are found by scanning, by side), or from simulated ones
(``--simulate``, the unix-port firmware replaying a simulated walk as its live sensors;
with ``--ble`` over the emulated radio). Every packet is appended the moment it
arrives, so a crash or a pulled cable loses at most the frame being written. Over BLE
the client reconnects by itself and backfills missed events from the insole's log.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from insole.commands.options import add_force, check_outputs, parse_side_ports, seconds
from insole.errors import UserError
from insole.link import InsoleLink, SerialLink
from insole.protocol import Layout
from insole.quantise import chz_to_rate_hz
from insole.session.live import LiveSession


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("record", help="record live insoles (boards or simulated) to an .insole file")
    p.add_argument("-o", "--output", type=Path, required=True, help="the recording to create")
    p.add_argument("--port", action="append", default=[], metavar="SIDE=PORT", help="left=/dev/ttyACM0 (repeatable)")
    p.add_argument("--simulate", action="store_true", help="record two simulated insoles walking")
    p.add_argument("--ble", action="store_true", help="over BLE: scan for the insoles (or the emulated radio with --simulate)")
    p.add_argument("--side", action="append", choices=("left", "right"), help="with --ble: which insoles (default both)")
    p.add_argument("--duration-s", type=seconds, default=10.0, help="how long to record (default 10 s; Ctrl-C ends it sooner)")
    add_force(p)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from insole.recording import RecordingWriter, device_header, make_header, stream_header_for

    check_outputs(args.force, args.output)
    if sum(map(bool, (args.port, args.simulate, args.ble and not args.simulate))) != 1:
        raise UserError("give --port SIDE=PORT (USB), --ble (real insoles over BLE) or --simulate [--ble]")
    console = Console(stderr=True)
    with ExitStack() as stack:
        links: list[tuple[str, InsoleLink]] = []
        layouts: dict[str, Layout] = {}
        if args.simulate:
            from insole.emulation.insoles import open_simulated_insoles
            from insole.sim import demo_plan, simulate_session

            sim = simulate_session(demo_plan(), rate_hz=100.0, seed=args.seed)
            insoles = open_simulated_insoles(stack, sim.streams, ble=args.ble)
            links = insoles.links
            layouts = insoles.layouts
            entries = [
                stream_header_for(stream, scale) | {"device": "unix-sim"}
                for stream, scale in zip(sim.streams, insoles.pressure_scales, strict=True)
            ]
            header = make_header(source="simulated", streams=entries)
        else:
            if args.ble:
                from insole.link.ble import open_ble_insoles

                links = list(open_ble_insoles(stack, args.side or ["left", "right"]))
            else:
                links = [(side, stack.enter_context(SerialLink(port))) for side, port in parse_side_ports(args.port).items()]
            feet = []
            for side, link in links:
                status = link.get_status()
                feet.append((side, chz_to_rate_hz(status.rate_chz), status, link.port))
            header = device_header(feet)
        if args.force:  # a recording is never appended to another: replaced whole, as asked
            args.output.unlink(missing_ok=True)
        writer = stack.enter_context(RecordingWriter(args.output, header))
        session = LiveSession(links, layouts=layouts, writer=writer)
        session.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.duration_s:
                session.poll(0.1)
        except KeyboardInterrupt:
            console.print("stopping: Ctrl-C")  # the recording ends here, complete
        finally:
            session.stop()
    for foot in session.feet:
        console.print(f"{foot.side}: {foot.samples} samples, {foot.step_count} steps, {foot.lost_samples} lost")
    console.print(f"recorded to {args.output}")
    return 0
