"""`insole record --simulate` and `insole demo`: live streaming from simulated insoles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insole.cli import main
from insole.recording import read_recording


@pytest.mark.micropython
def test_record_simulated_insoles_keeps_every_sample(tmp_path: Path) -> None:
    out = tmp_path / "live.insole"
    assert main(["record", "--simulate", "-o", str(out), "--duration-s", "3"]) == 0
    recording = read_recording(out)
    assert [s.side for s in recording.streams] == ["left", "right"]
    assert recording.bad_frames == 0 and not recording.torn_tail
    for stream, lost in zip(recording.streams, recording.lost_samples, strict=True):
        assert lost == 0
        assert stream.n_samples >= 200  # ~3 s at 100 Hz
        assert stream.pressure is not None and not np.isnan(stream.pressure).any()


def test_record_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "exists.insole"
    out.write_bytes(b"")
    assert main(["record", "--simulate", "-o", str(out)]) == 2


@pytest.mark.micropython
def test_demo_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "demo.insole"
    assert main(["demo", "--duration-s", "2", "-o", str(out)]) == 0
    assert read_recording(out).streams[0].n_samples >= 100


@pytest.mark.micropython
def test_mount_yaw_setting_is_taken_off_live_foot_angles() -> None:
    import time
    from contextlib import ExitStack

    from insole.emulation.insoles import open_simulated_insoles
    from insole.protocol import Settings
    from insole.session.live import LiveSession
    from insole.sim import Stand, Walk, simulate_session

    sim = simulate_session([Stand(duration_s=1.0), Walk(duration_s=40.0, fpa_deg=10.0)], rate_hz=104.0, seed=2)
    medians = []
    for yaw_cdeg in (0, 500):
        with ExitStack() as stack:
            insoles = open_simulated_insoles(stack, sim.streams[:1])
            insoles.links[0][1].request(Settings(imu_yaw_cdeg=yaw_cdeg))
            session = LiveSession(insoles.links, layouts=insoles.layouts)
            session.start()
            started = time.monotonic()
            while time.monotonic() - started < 7.0:
                session.poll(0.1)
            session.stop()
            angles = [s.fpa_deg for s in session.feet[0].steps if s.fpa_deg is not None]
            assert len(angles) >= 3
            medians.append(float(np.median(angles)))
    assert abs(medians[0] - 10.0) < 1.5
    assert abs((medians[0] - medians[1]) - 5.0) < 0.5  # left foot: FPA − δ
