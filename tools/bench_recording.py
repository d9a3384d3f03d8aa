"""How fast a recording reads back: ten minutes of two feet (8 cells + IMU at 100 Hz).

    .venv/bin/python tools/bench_recording.py

Writes the recording once, reads it three times, prints the best time and the ratio to
real time. A number to watch, not a test: these machines are shared.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from insole.model import FootStream
from insole.recording import read_recording, write_recording

RATE_HZ = 100.0
DURATION_S = 600.0


def _foot(side: str, n: int, seed: int) -> FootStream:
    rng = np.random.default_rng(seed)
    return FootStream(
        side=side,  # type: ignore[arg-type]
        rate_hz=RATE_HZ,
        t0_s=0.0,
        layout="insole8",
        pressure=rng.uniform(0, 35.0, (n, 8)),
        pressure_unit="N/cm2",
        acc_ms2=rng.normal(0, 15, (n, 3)) + [0, 0, 9.81],
        gyro_dps=rng.normal(0, 250, (n, 3)),
    )


def main() -> None:
    n = int(DURATION_S * RATE_HZ)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.insole"
        write_recording(path, [_foot("left", n, 8), _foot("right", n, 9)], source="simulated")
        best_s = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            read_recording(path)
            best_s = min(best_s, time.perf_counter() - start)
        size_mb = path.stat().st_size / 1e6
    print(f"read_recording: {DURATION_S / 60:.0f} min of two feet ({size_mb:.1f} MB) in {best_s:.3f} s "
          f"({DURATION_S / best_s:.0f}x real time, {size_mb / best_s:.0f} MB/s)")


if __name__ == "__main__":
    main()
