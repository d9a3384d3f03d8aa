"""`insole demo`: two simulated insoles walk; the host shows both feet live.

No hardware needed: the firmware runs on the MicroPython unix port, one process per
insole; their sensors replay a simulated walk at the real rate. By default the
insoles talk over an emulated BLE radio (bumble virtual controllers; the host uses its
normal bleak client through a bumble backend, pairing included); with
``--link serial`` each sits behind its own pty, as a board on USB would.

The walk (:func:`live_demo_plan`) shows in half a minute what the insoles do: toe-out
steps outside the cue band the demo sets (so the insoles cue), then steps inside it,
then heel raises. The terminal view runs for the walk's length; ``--web`` also serves
the dashboard and then runs until Ctrl-C (the walk starts over, like a treadmill).
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from insole.commands.options import add_force, check_outputs, seconds
from insole.emulation.insoles import open_simulated_insoles
from insole.session.live import LiveSession
from insole.session.terminal import run_view
from insole.sim import HeelRaises, SessionPlan, Stand, Walk, simulate_session
from insole.web.dashboard import add_web_arguments, check_web_arguments, open_dashboard

# The cue band the demo sets on both insoles: 5° ± 3° of toe-out. The walk's first bout
# (14°/12°) is outside it, its second (6°/5°) inside.
DEMO_BAND_DEG = (5.0, 3.0)  # target, half-width


def live_demo_plan() -> SessionPlan:
    """About 30 s: toe-out walking outside the cue band, walking inside it, three heel raises."""
    return SessionPlan(
        [
            Stand(duration_s=2.0),
            Walk(duration_s=8.0, fpa_deg=(14.0, 12.0), cadence_spm=110.0, stride_length_m=1.3),
            Walk(duration_s=6.0, fpa_deg=(6.0, 5.0), cadence_spm=110.0, stride_length_m=1.3),
            Stand(duration_s=1.5),
            HeelRaises(reps=3, hold_s=1.5, rest_s=1.0, sets=1),
            Stand(duration_s=1.5),
        ],
        name="live-demo",
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("demo", help="two simulated insoles walking, shown live (no hardware needed)")
    p.add_argument("--duration-s", type=seconds,
                   help="how long to stream (default: the walk's ~30 s; with --web until Ctrl-C)")
    p.add_argument("-o", "--output", type=Path, help="also record both feet to this .insole file")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--link", choices=("ble", "serial"), default="ble", help="emulated BLE radio (default) or a pty")
    add_force(p)
    add_web_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from insole.layouts import load_layout
    from insole.recording import RecordingWriter, make_header, stream_header_for
    from insole.settings import apply_cue_options

    check_outputs(args.force, args.output)
    if args.web:
        check_web_arguments(args)
    console = Console()
    sim = simulate_session(live_demo_plan(), rate_hz=100.0, seed=args.seed)
    walk_s = sim.streams[0].n_samples / sim.streams[0].rate_hz
    duration_s = args.duration_s if args.duration_s is not None else (None if args.web else walk_s)
    truth_steps = {side: sum(1 for s in sim.steps if s.side == side) for side in ("left", "right")}
    with ExitStack() as stack:
        insoles = open_simulated_insoles(stack, sim.streams, ble=args.link == "ble")

        def header() -> dict[str, object]:
            entries = [stream_header_for(s, scale) for s, scale in zip(sim.streams, insoles.pressure_scales, strict=True)]
            return make_header(source="simulated", streams=entries)

        writer = None
        if args.output:
            if args.force:  # a recording is never appended to another: replaced whole, as asked
                args.output.unlink(missing_ok=True)
            writer = stack.enter_context(RecordingWriter(args.output, header()))
        for _side, link in insoles.links:  # before the stream starts: every step meets the band
            link.set_settings(apply_cue_options(link.get_settings(), mode="band", target_deg=DEMO_BAND_DEG[0],
                                                half_width_deg=DEMO_BAND_DEG[1]))
        session = LiveSession(insoles.links, layouts=insoles.layouts, writer=writer)
        session.start()
        tick = None
        footer = f"simulated walk of {walk_s:.0f} s, cue band {DEMO_BAND_DEG[0]:+g}° ± {DEMO_BAND_DEG[1]:g}°"
        if args.web:
            dashboard = open_dashboard(stack, session, args, recording_header=header, announce=console.print,
                                       layouts={s.side: load_layout(s.layout) for s in sim.streams})
            tick = dashboard.tick
            footer = f"dashboard: {dashboard.server.url}"

        def title(elapsed_s: float) -> str:
            limit = "until Ctrl-C" if duration_s is None else f"{duration_s:.0f} s"
            return f"insole demo: simulated walk, {elapsed_s:4.1f} s of {limit} ({args.link})"

        try:
            run_view(session, console, title, duration_s=duration_s, tick=tick, footer=footer)
        except KeyboardInterrupt:
            console.print("stopping: Ctrl-C")  # the stack below still closes every link and process
        session.stop()
    console.print()
    for foot in session.feet:
        status = foot.status
        radio = ""
        if status and status.ble_irq_faults is not None:
            radio = f", BLE IRQ faults {status.ble_irq_faults}, connections refused {status.ble_refused}"
        console.print(
            f"{foot.side}: {foot.step_count} steps detected on the device "
            f"(the simulated walk has {truth_steps[foot.side]} in {walk_s:.0f} s), {foot.cued_count} cues played, "
            f"{len(foot.raises)} heel raises; free heap {status.free_heap if status else '?'} B, "
            f"dropped {status.dropped_samples if status else '?'}{radio}"
        )
    if args.output:
        console.print(f"recorded to {args.output}")
    return 0

