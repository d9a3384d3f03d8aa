"""`insole simulate`: write a simulated two-foot recording and its exact ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from insole.commands.options import add_force, check_outputs, seconds
from insole.errors import UserError

PLANS = ("demo", "walk", "fpa-sweep", "heel-raises", "backward")
DEFAULT_SWEEP_FPA_DEG = (-10.0, 0.0, 10.0, 20.0)
FIXED_PRESSURE_SCALE_KPA = 0.01  # kPa per count: 0..655 kPa, the same in every simulated file


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated two-foot recording with exact ground truth",
        description=(
            "Simulate both insoles (pressure in kPa, IMU from the feet's trajectories) and write "
            "OUT.insole plus the exact ground truth beside it: OUT.steps.csv and OUT.raises.csv."
        ),
    )
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.insole", help="recording to write")
    parser.add_argument(
        "--plan",
        choices=PLANS,
        default="demo",
        help="demo: ~2 min mixed session; walk/backward: straight walking; fpa-sweep: one bout per "
        "foot angle; heel-raises: 3 sets of 10 (default: demo)",
    )
    parser.add_argument("--duration-s", type=seconds, help="walking time for walk (default 60) and backward (default 30)")
    parser.add_argument(
        "--fpa-deg",
        type=float,
        nargs="+",
        metavar="DEG",
        help="foot progression angle, + = toe-out: one value, or LEFT RIGHT, for walk/backward; "
        f"the list of angles for fpa-sweep (default {' '.join(f'{v:g}' for v in DEFAULT_SWEEP_FPA_DEG)})",
    )
    parser.add_argument("--cadence-spm", type=float, help="steps per minute for walk, backward and fpa-sweep")
    parser.add_argument("--stride-length-m", type=float, help="stride length for walk, backward and fpa-sweep")
    parser.add_argument("--rate-hz", type=float, default=100.0, help="sampling rate, 50..250 Hz (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same file (default 0)")
    parser.add_argument(
        "--noise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sensor noise, bias, drift and gain spread (default on); --no-noise gives exact signals",
    )
    parser.add_argument("--layout", default="insole8", help="pressure layout in hardware/layouts/ (default insole8)")
    add_force(parser)
    parser.set_defaults(func=run)


def _reject(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    given = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) is not None]
    if given:
        raise UserError(f"--plan {args.plan} does not take {', '.join(given)}")


def _given(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def build_plan(args: argparse.Namespace) -> Any:
    """The SessionPlan the arguments ask for (UserError for options the plan does not use)."""
    from insole.sim import (
        HeelRaises,
        SessionPlan,
        Stand,
        Walk,
        demo_plan,
        fpa_sweep_plan,
    )

    try:
        if args.plan == "demo":
            _reject(args, ("duration_s", "fpa_deg", "cadence_spm", "stride_length_m"))
            return demo_plan()
        if args.plan == "heel-raises":
            _reject(args, ("duration_s", "fpa_deg", "cadence_spm", "stride_length_m"))
            return SessionPlan([Stand(duration_s=2.0), HeelRaises(), Stand(duration_s=2.0)], name="heel-raises")
        forward = args.plan != "backward"
        cadence_spm = _given(args.cadence_spm, 110.0 if forward else 96.0)
        stride_length_m = _given(args.stride_length_m, 1.3 if forward else 0.7)
        if args.plan == "fpa-sweep":
            _reject(args, ("duration_s",))
            values = args.fpa_deg if args.fpa_deg is not None else DEFAULT_SWEEP_FPA_DEG
            return fpa_sweep_plan(values, cadence_spm=cadence_spm, stride_length_m=stride_length_m)
        fpa: float | tuple[float, float] = 8.0
        if args.fpa_deg is not None:
            if len(args.fpa_deg) > 2:
                raise UserError(f"--plan {args.plan} takes one --fpa-deg value or two (left, right)")
            fpa = args.fpa_deg[0] if len(args.fpa_deg) == 1 else (args.fpa_deg[0], args.fpa_deg[1])
        walk = Walk(
            duration_s=_given(args.duration_s, 60.0 if forward else 30.0),
            direction="forward" if forward else "backward",
            fpa_deg=fpa,
            cadence_spm=cadence_spm,
            stride_length_m=stride_length_m,
        )
        return SessionPlan([Stand(duration_s=2.0), walk, Stand(duration_s=2.0)], name=args.plan)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def ground_truth_paths(output: Path) -> tuple[Path, Path]:
    """OUT.insole -> (OUT.steps.csv, OUT.raises.csv)."""
    stem = output.with_suffix("") if output.suffix == ".insole" else output
    return stem.with_name(stem.name + ".steps.csv"), stem.with_name(stem.name + ".raises.csv")


def run(args: argparse.Namespace) -> int:
    from insole.export.events_csv import write_raises_csv, write_steps_csv
    from insole.recording import write_recording
    from insole.sim import SensorModel, simulate_session

    if not 50.0 <= args.rate_hz <= 250.0:
        raise UserError(f"--rate-hz must be within 50..250 (protocol v1), got {args.rate_hz:g}")
    output: Path = args.output
    steps_path, raises_path = ground_truth_paths(output)
    check_outputs(args.force, output, steps_path, raises_path)
    plan = build_plan(args)
    session = simulate_session(
        plan,
        rate_hz=args.rate_hz,
        seed=args.seed,
        layout=args.layout,
        sensors=SensorModel() if args.noise else SensorModel.ideal(),
    )
    peak_kpa = max(float(s.pressure.max()) for s in session.streams if s.pressure is not None)
    scales = [FIXED_PRESSURE_SCALE_KPA] * 2 if peak_kpa < 60000 * FIXED_PRESSURE_SCALE_KPA else None
    write_recording(
        output,
        session.streams,
        source="simulated",
        ground_truth={"steps": steps_path.name, "raises": raises_path.name, "plan": plan.name, "seed": args.seed},
        pressure_scales=scales,
    )
    n_steps = write_steps_csv(steps_path, session.steps)
    n_raises = write_raises_csv(raises_path, session.raises)
    print(
        f"wrote {output}: plan {plan.name}, {session.duration_s:.1f} s, "
        f"{session.streams[0].n_samples} samples per foot at {args.rate_hz:g} Hz"
    )
    print(f"ground truth: {steps_path} ({n_steps} steps), {raises_path} ({n_raises} heel raises)")
    return 0
