"""How fast the simulator writes a session: seconds of walk per second of compute.

    .venv/bin/python tools/bench_simulate.py

A ten-minute session of every activity (walking, a U-turn, backward walking, standing
with weight shifts, heel raises), generated three times; prints the best time and the
ratio to real time. A number to watch, not a test: these machines are shared.
"""

from __future__ import annotations

import time

from insole.sim import HeelRaises, SessionPlan, Stand, Walk, simulate_session


def main() -> None:
    plan = SessionPlan(
        [
            Walk(duration_s=300.0),
            Walk(n_steps=10, turn_deg=180.0),
            Walk(duration_s=150.0, direction="backward"),
            Stand(80.0, weight_shift=True),
            HeelRaises(reps=5, sets=2, set_rest_s=10.0),
        ]
    )
    best_s = float("inf")
    duration_s = 0.0
    for _ in range(3):
        start = time.perf_counter()
        session = simulate_session(plan)
        best_s = min(best_s, time.perf_counter() - start)
        duration_s = session.duration_s
    print(f"simulate_session: {duration_s:.0f} s of session in {best_s:.2f} s ({duration_s / best_s:.0f}x real time)")


if __name__ == "__main__":
    main()
