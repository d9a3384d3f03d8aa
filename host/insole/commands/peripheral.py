"""`insole peripheral`: one simulated insole on a BLE controller, for any app or phone.

The insole's own firmware runs on the MicroPython unix port, its sensors replaying a
simulated walk (standing, then walking, over and over), its radio bridged to a bumble
HCI transport the user names: a USB Bluetooth dongle (``usb:0``) so that a phone or a
sports app can find and pair with it, a serial HCI controller, or a TCP socket
(``tcp-server:127.0.0.1:PORT`` waits for a controller to connect, e.g. one of bumble's
virtual controllers; ``tcp-client:HOST:PORT`` attaches to one). The BLE stack behaves as
NimBLE on the ESP32 does (``insole.emulation.bridge``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from insole.commands.options import seconds
from insole.errors import ToolError, UserError

SIDES = ("left", "right")
# A bridge on a tcp-server transport waits for its controller as long as the user needs.
_WAIT_FOR_CONTROLLER_S = 7 * 24 * 3600.0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "peripheral",
        help="run one simulated insole on a BLE controller (any bumble HCI transport), for any app or phone",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--transport", required=True, metavar="TRANSPORT",
                   help="bumble HCI transport: usb:0, serial:/dev/ttyACM0, tcp-server:127.0.0.1:9002, ...")
    p.add_argument("--side", choices=SIDES, default="left")
    p.add_argument("--address", help="static random address (default C0:15:01:00:00:01 left, ...:02 right)")
    p.add_argument("--walk-s", type=seconds, default=30.0, help="walking time per round (default 30 s)")
    p.add_argument("--stand-s", type=float, default=10.0, help="standing time per round, first (default 10 s)")
    p.add_argument("--cadence-spm", type=float, default=110.0, help="steps per minute, both feet (default 110)")
    p.add_argument("--stride-length-m", type=float, default=1.3,
                   help="stride length, one foot's step to its next (default 1.3 m)")
    p.add_argument("--fpa-deg", type=float, default=8.0, help="foot progression angle, + = toe-out (default 8)")
    p.add_argument("--rate-hz", type=float, default=104.0, help="sampling rate (default 104 Hz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings-dir", type=Path,
                   help="where the insole keeps its settings and bonds (default: a new folder for this run)")
    p.add_argument("--duration-s", type=seconds, help="stop after this long (default: at Ctrl-C)")
    p.add_argument("--log", type=Path, help="write the bridge's and the firmware's messages here (default: stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import bumble  # noqa: F401  # the bridge's stack
    except ImportError as exc:
        raise ToolError(f"a simulated BLE insole needs bumble ({exc})",
                        advice="pip install 'insole[emulation]'") from exc
    from insole.emulation.insoles import simulated_ble_insole, write_insole_samples
    from insole.sim import SessionPlan, Stand, Walk, simulate_session

    if args.stand_s < 0:
        raise UserError("--stand-s must not be negative")
    if args.settings_dir is not None and not args.settings_dir.is_dir():
        raise UserError(f"folder {args.settings_dir} does not exist")
    try:
        steps = [Stand(duration_s=args.stand_s)] if args.stand_s > 0 else []
        plan = SessionPlan([*steps, Walk(duration_s=args.walk_s, fpa_deg=args.fpa_deg, cadence_spm=args.cadence_spm,
                                         stride_length_m=args.stride_length_m)], name="peripheral")
        session = simulate_session(plan, rate_hz=args.rate_hz, seed=args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    stream = next(s for s in session.streams if s.side == args.side)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="insole-peripheral-")))
        samples_file = work / f"{args.side}.ismp"
        layout, _ = write_insole_samples(stream, samples_file)
        options = {"address": args.address} if args.address else {}
        insole = simulated_ble_insole(args.transport, args.side, samples_file, layout, log_path=args.log,
                                      settings_dir=args.settings_dir, start_timeout_s=_WAIT_FOR_CONTROLLER_S,
                                      inherit_stderr=args.log is None, **options)
        print(f"simulated {args.side} insole on {args.transport} as {insole.address}: standing {args.stand_s:g} s, "
              f"walking {args.walk_s:g} s at {args.cadence_spm:g} steps/min, over and over. Ctrl-C stops it.",
              flush=True)
        stack.enter_context(insole)
        print("running", flush=True)
        firmware = insole.firmware
        assert firmware is not None
        started = time.monotonic()
        while firmware.poll() is None:
            if args.duration_s is not None and time.monotonic() - started >= args.duration_s:
                return 0
            time.sleep(0.2)
        code = firmware.returncode
    raise ToolError(f"the simulated insole's firmware ended (exit code {code})",
                    advice="see its messages" + (f" in {args.log}" if args.log else " above"))
