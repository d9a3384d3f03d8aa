"""`insole calibrate walk|roll|zero`: the IMU's mounting yaw, and the pressure cells' zero.

``walk``: walk straight at a known foot angle (``--reference-deg``; 0 with the feet
parallel along a line); the yaw is the median difference between the insole's per-step
angle and the reference. ``roll``: hold the shoe flat, then rolled about its heel–toe
line (docs/calibration.md). Both measure live (``--port SIDE=PORT``, ``--ble``) or on a
recording (its samples replayed through the firmware, which keeps the sensor's own frame),
and write the yaw to the insoles (``--port``/``--ble``) unless ``--dry-run``.
``zero``: the cells that read load while the foot is in the air, from a recording.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from insole.calibration import (
    CellZero,
    YawEstimate,
    forward_angles,
    settings_with_yaw,
    yaw_from_known_angle_walk,
    yaw_from_roll_test,
    zero_check,
)
from insole.commands.options import SIDES, add_force, check_outputs, parse_side_ports, per_side_degrees, seconds
from insole.errors import LinkError, UserError
from insole.link import InsoleLink, SerialLink
from insole.model import FootStream, Side
from insole.protocol import Step, whole_stances
from insole.quantise import chz_to_rate_hz
from insole.recording import Recording
from insole.settings import store_settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="measure the IMU's mounting yaw (walk or roll test) and write it; check the pressure cells' zero",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    actions = p.add_subparsers(dest="calibrate_action", required=True, metavar="METHOD")
    walk = actions.add_parser("walk", help="mounting yaw from a straight walk at a known foot angle")
    walk.add_argument(
        "--reference-deg",
        required=True,
        type=per_side_degrees,
        metavar="DEG|left=DEG,right=DEG",
        help="the foot angle walked (positive toe-out), for both feet or per foot, e.g. 0 or left=5,right=3",
    )
    walk.add_argument("--min-steps", type=int, default=10, help="straight forward steps needed per foot (default 10)")
    roll = actions.add_parser("roll", help="mounting yaw from a roll test (shoe flat, then rolled about its heel–toe line)")
    for action in (walk, roll):
        _add_source(action)
        action.set_defaults(func=run_yaw)
    zero = actions.add_parser("zero", help="pressure cells that read load while the foot is in the air")
    zero.add_argument("recording", type=Path, help="an .insole recording with walking")
    zero.add_argument(
        "--threshold",
        type=float,
        help="flag a cell whose median in swing exceeds this, in the recording's pressure unit "
        "(default: 3 %% of the foot's 99th-percentile cell reading)",
    )
    zero.set_defaults(func=run_zero)


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", type=Path, nargs="?", help="measure on this recording instead of live insoles")
    p.add_argument("--port", action="append", default=[], metavar="SIDE=PORT", help="left=/dev/ttyACM0 (repeatable)")
    p.add_argument("--ble", action="store_true", help="the insoles over BLE (found by side)")
    p.add_argument("--side", action="append", choices=SIDES, help="which feet (default: both, or the recording's)")
    p.add_argument("--duration-s", type=seconds, default=60.0, help="live: the longest to measure (default 60 s)")
    p.add_argument("--dry-run", action="store_true", help="measure and print; write nothing to the insoles")
    p.add_argument("--keep", type=Path, metavar="REC", help="live: keep the measurement as this recording")
    add_force(p)


def _open_links(stack: ExitStack, args: argparse.Namespace, sides: list[Side]) -> list[tuple[Side, InsoleLink]]:
    if args.ble:
        from insole.link.ble import open_ble_insoles

        return [("left" if s == "left" else "right", link) for s, link in open_ble_insoles(stack, sides)]
    links: list[tuple[Side, InsoleLink]] = []
    for side, port in parse_side_ports(args.port).items():
        if side not in sides:
            continue
        try:
            link = stack.enter_context(SerialLink(port))
            link.ping(timeout_s=10)
        except (OSError, LinkError) as exc:
            raise UserError(f"cannot reach the {side} insole on {port}: {exc}") from exc
        links.append((side, link))
    return links


def run_yaw(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.port and args.ble:
        raise UserError("give --port or --ble, not both")
    if args.recording is None and not (args.port or args.ble):
        raise UserError("give a recording, or live insoles with --port SIDE=PORT or --ble")
    if args.recording is not None and not (args.port or args.ble or args.dry_run):
        raise UserError("a recording gives the yaw only: add --port SIDE=PORT or --ble to write it, or --dry-run")
    check_outputs(args.force, args.keep)
    sides: list[Side] = args.side or (list(parse_side_ports(args.port)) if args.port else list(SIDES))
    with ExitStack() as stack:
        if args.recording is not None:
            recording = _read(args.recording)
            streams = [s for s in recording.streams if s.side in sides]
            steps = _replayed_steps(streams, recording) if args.calibrate_action == "walk" else {}
            current = {s.side: 0.0 for s in streams}  # a replay keeps the sensor's own frame
            links = _open_links(stack, args, [s.side for s in streams]) if not args.dry_run else []
        else:
            links = _open_links(stack, args, sides)
            current = {side: link.get_settings().imu_yaw_cdeg / 100.0 for side, link in links}
            streams, steps = _measure_live(stack, links, args, console)
        estimates = []
        for stream in streams:
            if args.calibrate_action == "walk":
                if stream.side not in args.reference_deg:
                    raise UserError(f"--reference-deg gives no angle for the {stream.side} foot")
                angles = forward_angles(steps[stream.side])
                estimates.append(
                    yaw_from_known_angle_walk(
                        stream.side, angles, args.reference_deg[stream.side],
                        current_yaw_deg=current[stream.side], min_steps=args.min_steps,
                    )
                )  # fmt: skip
            else:
                estimates.append(yaw_from_roll_test(stream))
        for estimate in estimates:
            print(_describe(estimate))
        if args.dry_run:
            return 0
        by_side = dict(links)
        for estimate in estimates:
            if estimate.side not in by_side:
                raise UserError(f"no insole given for the {estimate.side} foot (--port {estimate.side}=PORT)")
            _write_yaw(by_side[estimate.side], estimate)
            console.print(f"{estimate.side}: mounting yaw {estimate.yaw_deg:+.2f}° written to the insole")
    return 0


def _describe(e: YawEstimate) -> str:
    spread = (
        f", {e.steps} steps, scatter {e.scatter_deg:.2f}°, ±{e.uncertainty_deg:.2f}° (median's standard error)"
        if e.steps > 2
        else ""
    )
    was = f" (the insole had {e.current_yaw_deg:+.2f}°)" if e.current_yaw_deg else ""
    return f"{e.side}: mounting yaw {e.yaw_deg:+.2f}° by {e.method}{spread}{was}"


def _read(path: Path) -> Recording:
    from insole.recording import read_recording

    if not path.exists():
        raise UserError(f"{path}: no such recording")
    return read_recording(path)


def _replayed_steps(streams: list[FootStream], recording: Recording) -> dict[Side, list[Step]]:
    from insole.hil import replay_recording

    scales = {s["side"]: float(s["pressure_scale"]) for s in recording.header["streams"]}
    replays = replay_recording(streams, [scales[s.side] for s in streams])
    return {s.side: whole_stances(r.steps) for s, r in zip(streams, replays, strict=True)}  # each stance once


def _measure_live(
    stack: ExitStack, links: list[tuple[Side, InsoleLink]], args: argparse.Namespace, console: Console
) -> tuple[list[FootStream], dict[Side, list[Step]]]:
    """Records the live insoles until every foot has enough straight steps (walk), or
    for ``--duration-s`` (roll), then reads the recording back: one path for live and
    recorded data. Steps are the insole's own (with its current yaw taken off)."""
    from insole.recording import RecordingWriter, make_header, stream_header
    from insole.session.live import LiveSession

    if not links:
        raise UserError("no insole to measure: give --port SIDE=PORT for the sides asked")
    path = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "calibration.insole"
    if args.keep and args.force:
        path.unlink(missing_ok=True)
    entries = []
    for side, link in links:
        status = link.get_status()
        entries.append(
            stream_header(
                side=side, rate_hz=chz_to_rate_hz(status.rate_chz), n_pressure=status.n_pressure, imu=bool(status.imu),
                pressure_unit="counts", layout="insole8" if status.n_pressure == 8 else "", device=link.port,
            )
        )  # fmt: skip
    writer = stack.enter_context(RecordingWriter(path, make_header(source="device", streams=entries)))
    session = LiveSession(links, writer=writer)
    session.start()
    started = time.monotonic()
    console.print(
        "walk straight at the reference foot angle" if args.calibrate_action == "walk"
        else "hold the shoe flat and still, then rolled about its heel–toe line and still"
    )  # fmt: skip
    try:
        while time.monotonic() - started < args.duration_s:
            session.poll(0.1)
            if args.calibrate_action == "walk" and all(
                len(forward_angles(list(f.steps))) >= args.min_steps for f in session.feet
            ):
                break
    except KeyboardInterrupt:
        console.print("stopping")
    session.stop()
    writer.close()
    recording = _read(path)
    steps: dict[Side, list[Step]] = {side: [] for side, _ in links}
    for packet in recording.events:
        if isinstance(packet.body, Step) and packet.stream is not None:
            steps[links[packet.stream][0]].append(packet.body)
    return recording.streams, {side: whole_stances(own) for side, own in steps.items()}


def _write_yaw(link: InsoleLink, estimate: YawEstimate) -> None:
    store_settings(link, settings_with_yaw(link.get_settings(), estimate.yaw_deg), f"the {estimate.side} insole")


def run_zero(args: argparse.Namespace) -> int:
    recording = _read(args.recording)
    streams = [s for s in recording.streams if s.pressure is not None]
    if not streams:
        raise UserError(f"{args.recording}: no pressure cells to check")
    steps = _replayed_steps(streams, recording)
    cells: list[CellZero] = []
    for stream in streams:
        # Each event the insole saw: a partial stance (docs/protocol.md) has only one.
        ic = [stream.t0_s + s.ic_index / stream.rate_hz for s in steps[stream.side] if s.ic_index is not None]
        to = [stream.t0_s + s.to_index / stream.rate_hz for s in steps[stream.side] if s.to_index is not None]
        cells.extend(zero_check(stream, ic, to, threshold=args.threshold))
    print("side,cell,swing_median,threshold,unit,flagged")
    for c in cells:
        print(f"{c.side},p{c.cell},{c.swing_median:.3f},{c.threshold:.3f},{c.unit},{'yes' if c.flagged else 'no'}")
    flagged = [c for c in cells if c.flagged]
    console = Console(stderr=True)
    if flagged:
        console.print(
            f"{len(flagged)} cell(s) read load in swing: "
            + ", ".join(f"{c.side} p{c.cell} ({c.swing_median:.1f} {c.unit})" for c in flagged)
            + "; re-seat the insole, or check the cell for a fold or a stuck reading"
        )
    else:
        console.print(f"every cell reads below its threshold in swing ({len(cells)} cells)")
    return 0
