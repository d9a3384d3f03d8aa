"""`insole cue show|set`: read or write an insole's haptic cue settings.

Over a serial port (``--port /dev/ttyACM0``) or on a simulated board (``--simulate``,
the unix-port firmware, with its settings kept in ``--settings-dir`` so that ``set``
and a later ``show`` see the same insole). Each insole holds its own side's band, so
write each one. Values are checked here first, with messages in the options' own
words and units; the device checks again and keeps its old settings on any refusal.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

from insole.commands.options import open_ble_insoles_of, open_serial_insole
from insole.errors import UserError
from insole.link import InsoleLink
from insole.protocol import Settings
from insole.settings import apply_cue_options, check_settings, describe, store_settings

DEFAULT_SIM_SETTINGS_DIR = Path(tempfile.gettempdir()) / "insole-sim-settings"  # the unix board's own default
# "--band -10:2": argparse takes "-10:2" for an option unless it looks like a negative number.
_NEGATIVE_VALUE = re.compile(r"^-\d+(\.\d+)?(:\d+(\.\d+)?)?$")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "cue",
        help="show or set an insole's haptic cue settings (foot-angle band, schedule, metronome)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    actions = p.add_subparsers(dest="cue_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the cue settings of one insole")
    _add_target(show)
    show.set_defaults(func=run_show)

    s = actions.add_parser(
        "set",
        help="change cue settings (only the options given) and persist them on the insole",
        description="Changes only the options given; the insole validates and persists them atomically.",
    )
    s._negative_number_matcher = _NEGATIVE_VALUE
    _add_target(s)
    s.add_argument("--mode", choices=("off", "band", "metronome"), help="off, foot-angle band, or cadence metronome")
    s.add_argument("--band", metavar="TARGET:HALF", help="foot-angle band in degrees, e.g. -10:2 = target -10° ± 2°")
    s.add_argument(
        "--toe-in-pattern",
        metavar="PATTERN",
        help="pulse pattern for 'turn the toes in' (FPA above the band): long, short-short, triple, long-short or 1..4",
    )
    s.add_argument(
        "--toe-out-pattern", metavar="PATTERN", help="pulse pattern for 'turn the toes out' (FPA below the band)"
    )
    s.add_argument("--duration-ms", type=int, help="cue length (fixed), or the base length when scaled (50..1000)")
    s.add_argument(
        "--scale-ms-per-deg", type=int, help="add this many ms per degree beyond the band (0 = fixed length)"
    )
    s.add_argument("--max-ms", type=int, help="longest scaled cue (>= --duration-ms, at most 2000)")
    s.add_argument("--duty", type=int, dest="duty_pct", help="motor intensity, PWM duty in percent (0..100)")
    schedule = s.add_mutually_exclusive_group()
    schedule.add_argument("--every-step", action="store_true", help="cue every out-of-band step")
    schedule.add_argument("--every", type=int, metavar="K", help="faded: cue every K-th out-of-band step")
    schedule.add_argument(
        "--probability",
        type=int,
        metavar="PCT",
        dest="probability_pct",
        help="faded: cue an out-of-band step with this probability (%%)",
    )
    s.add_argument("--seed", type=int, help="seed of the device's PRNG for --probability (0..65535)")
    s.add_argument(
        "--block", metavar="N[:M]", help="no-feedback blocks: N steps with cues, then N (or M) without; 'off' for none"
    )
    s.add_argument("--spm", type=int, help="metronome rate, steps per minute (40..200)")
    s.add_argument("--metronome-pattern", metavar="PATTERN", help="metronome pulse pattern")
    s.add_argument("--pulse-ms", type=int, help="metronome pulse length in ms (20..250)")
    s.add_argument("--mount-yaw", type=float, metavar="DEG", dest="mount_yaw_deg",
                   help="the IMU's mounting yaw from a calibration walk or roll test (-30..30°, docs/gait-imu.md)")
    s.add_argument("--side", choices=("left", "right", "board"), help="which foot this insole is on ('board': its own)")
    s.set_defaults(func=run_set)


def _add_target(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", help="serial port of the insole, e.g. /dev/ttyACM0")
    target.add_argument("--simulate", action="store_true", help="a simulated insole (unix-port firmware)")
    target.add_argument("--ble", choices=("left", "right"), help="the insole of this side, found over BLE")
    p.add_argument(
        "--settings-dir",
        type=Path,
        default=DEFAULT_SIM_SETTINGS_DIR,
        help=f"with --simulate: where the simulated insole keeps its settings (default {DEFAULT_SIM_SETTINGS_DIR})",
    )


def _open(stack: ExitStack, args: argparse.Namespace) -> InsoleLink:
    if args.ble:
        return open_ble_insoles_of(stack, [args.ble])[0][1]
    if args.simulate:
        from insole.emulation.board import SimulatedBoard

        return open_serial_insole(stack, stack.enter_context(SimulatedBoard(settings_dir=args.settings_dir)).port)
    return open_serial_insole(stack, args.port)


def _print(settings: Settings) -> None:
    for line in describe(settings):
        print(line)


def run_show(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        _print(_open(stack, args).get_settings())
    return 0


def run_set(args: argparse.Namespace) -> int:
    options = {
        "mode": args.mode,
        "band": args.band,
        "toe_in_pattern": args.toe_in_pattern,
        "toe_out_pattern": args.toe_out_pattern,
        "duration_ms": args.duration_ms,
        "scale_ms_per_deg": args.scale_ms_per_deg,
        "max_ms": args.max_ms,
        "duty_pct": args.duty_pct,
        "schedule": "every-step" if args.every_step else None,
        "every": args.every,
        "probability_pct": args.probability_pct,
        "seed": args.seed,
        "block": args.block,
        "spm": args.spm,
        "metronome_pattern": args.metronome_pattern,
        "pulse_ms": args.pulse_ms,
        "mount_yaw_deg": args.mount_yaw_deg,
    }
    if all(v is None for v in options.values()) and args.side is None:
        raise UserError("nothing to set; give at least one option (see insole cue set --help)")
    with ExitStack() as stack:
        link = _open(stack, args)
        current = link.get_settings()
        wanted = apply_cue_options(current, **options)
        if args.side is not None:
            from dataclasses import replace

            wanted = check_settings(replace(wanted, side={"left": 0, "right": 1}.get(args.side)))
        stored = store_settings(link, wanted)
        _print(stored)
    return 0
