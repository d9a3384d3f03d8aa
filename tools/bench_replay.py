"""Replay speed of the simulated board: a 10-minute two-foot walk through `insole hil`'s path.

Prints samples/s per foot, the wall time against the recording's duration (a ratio,
so a noisy shared machine still gives a comparable number), and the firmware's free
heap at 128K after start-up and after the replay.

    .venv/bin/python tools/bench_replay.py [--duration-s 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from insole.emulation.board import SimulatedBoard
from insole.hil import replay_recording
from insole.link import SerialLink
from insole.recording import read_recording, write_recording
from insole.sim import Walk, simulate_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=600.0)
    args = parser.parse_args()
    sim = simulate_session([Walk(duration_s=args.duration_s)], rate_hz=100.0, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "walk.insole"
        write_recording(path, sim.streams, source="simulated")
        recording = read_recording(path)
        scales = [s["pressure_scale"] for s in recording.header["streams"]]
        with SimulatedBoard() as board, SerialLink(board.port) as link:
            link.ping(timeout_s=10)
            start_heap = link.get_status().free_heap
        started = time.perf_counter()
        replays = replay_recording(recording.streams, scales)
        wall_s = time.perf_counter() - started
    duration_s = recording.streams[0].n_samples / recording.streams[0].rate_hz
    total = sum(r.samples for r in replays)
    print(f"recording: {duration_s:.0f} s, 2 feet, {total} samples")
    for r in replays:
        print(f"  {r.side:>5}: {r.samples_per_s:,.0f} samples/s, {len(r.steps)} steps, free heap after {r.free_heap} B")
    print(f"free heap after start-up (128K heap): {start_heap} B")
    print(f"wall time {wall_s:.2f} s for {duration_s:.0f} s of walking: {duration_s / wall_s:.0f}x real time")
    print(f"both feet together: {total / wall_s:,.0f} samples/s")


if __name__ == "__main__":
    main()
