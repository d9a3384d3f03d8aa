"""Cost of the firmware's gait core on the MicroPython unix port (`-X heapsize=128K`).

For a simulated walk with heel raises (16 pressure cells + IMU, pressure only, IMU
only) it prints, per sample: µs of `GaitCore.process()` and bytes allocated (goal 0);
per stride: µs and bytes of the float work (`finish_stride()`, outside the sampling
path); the time of a full `gc.collect()`; and the firmware's free heap in steady
state, from GET_STATUS after a replay through the whole firmware (goal ≥ 40 KB).
The goal for the core is ≤ 20 µs per sample on this machine; the µs are wall-clock on
a shared machine, so take the best of a few runs (--runs).

    .venv/bin/python tools/bench_core.py [--duration-s 120] [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from insole.emulation.board import HEAP, micropython_env, micropython_executable, write_sample_file
from insole.hil import replay_recording
from insole.layouts import load_layout
from insole.model import FootStream
from insole.quantise import choose_pressure_scale, rate_hz_to_chz, stream_counts
from insole.sim import HeelRaises, Segment, Stand, Walk, simulate_session

ROOT = Path(__file__).resolve().parent.parent
MPY_SCRIPT = ROOT / "tools" / "bench_core_mpy.py"
SAMPLE_RATE_HZ = 104.0  # the ESP32 board's IMU rate


def _run_mpy(sample_file: Path, layout: str) -> dict[str, int]:
    result = subprocess.run(
        [micropython_executable(), "-X", f"heapsize={HEAP}", str(MPY_SCRIPT), str(sample_file), layout],
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    line = result.stdout.strip().splitlines()[-1]
    return {key: int(value) for key, value in (item.split("=") for item in line.split())}


def _variants(stream: FootStream) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    sensed = stream_counts(stream)
    pressure, imu = sensed.pressure, sensed.imu
    return {"pressure+imu": (pressure, imu), "pressure only": (pressure, None), "imu only": (None, imu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=120.0, help="walking time")
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs per variant")
    args = parser.parse_args()
    plan: list[Segment] = [
        Stand(duration_s=2.0),
        Walk(duration_s=args.duration_s, fpa_deg=10.0),
        Stand(duration_s=2.0),
        HeelRaises(reps=5, hold_s=2.0, sets=1),
        Stand(duration_s=2.0),
    ]
    sim = simulate_session(plan, rate_hz=SAMPLE_RATE_HZ, seed=3, layout="moticon16")
    left = sim.streams[0]
    xy = np.rint(load_layout(left.layout).positions_mm("left")).astype(int)
    layout_arg = ",".join(str(v) for v in xy.ravel())
    print(f"simulated: {left.n_samples} samples per foot at {SAMPLE_RATE_HZ} Hz, "
          f"{len([s for s in sim.step_truth if s.side == 'left'])} true steps per foot, 16 cells + IMU")
    print(f"{'variant':<14} {'µs/sample':>9} {'B/sample':>8} {'steps':>6} {'strides':>7} "
          f"{'µs/stride':>9} {'B/stride':>8} {'gc µs':>6}")
    worst_pause_us = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (pressure, imu) in _variants(left).items():
            path = Path(tmp) / "samples.ismp"
            write_sample_file(path, rate_hz_to_chz(left.rate_hz), pressure, imu)
            runs = [_run_mpy(path, layout_arg if pressure is not None else "") for _ in range(args.runs)]
            best = min(runs, key=lambda r: r["process_us"])
            n = best["samples"]
            strides = max(best["strides"], 1)
            print(f"{name:<14} {best['process_us'] / n:9.2f} {best['process_bytes'] / n:8.3f} {best['steps']:6d} "
                  f"{best['strides']:7d} {best['stride_us'] / strides:9.0f} {best['stride_bytes'] / strides:8.0f} "
                  f"{best['gc_us']:6d}")
            if name == "pressure+imu":
                worst_pause_us = best["stride_us"] / strides + best["gc_us"]
    # The sampling loop pauses for a stride's float work (and, now and then, the garbage
    # collection it causes); the IMU FIFO keeps sampling meanwhile (256 samples).
    fifo_s = 256 / SAMPLE_RATE_HZ
    print(f"pause per stride (analysis + a full gc.collect()): {worst_pause_us:.0f} µs against "
          f"{fifo_s:.2f} s of IMU FIFO: {fifo_s * 1e6 / worst_pause_us:,.0f}x headroom on this machine")
    scales = [choose_pressure_scale(s.pressure) for s in sim.streams]
    replays = replay_recording(sim.streams, scales)
    heaps = ", ".join(f"{r.side} {r.free_heap} B" for r in replays)
    print(f"firmware free heap after a replay ({HEAP} heap, steady state): {heaps} (goal ≥ 40960 B)")


if __name__ == "__main__":
    main()
