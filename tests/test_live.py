"""`insole record --simulate` and `insole demo`: live streaming from simulated insoles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insole.cli import main
from insole.recording import read_recording


def test_record_simulated_insoles_keeps_every_sample(tmp_path: Path) -> None:
    out = tmp_path / "live.insole"
    assert main(["record", "--simulate", "-o", str(out), "--duration-s", "3"]) == 0
    recording = read_recording(out)
    assert [s.side for s in recording.streams] == ["left", "right"]
    assert recording.bad_frames == 0 and not recording.torn_tail
    for stream, lost in zip(recording.streams, recording.lost_samples):
        assert lost == 0
        assert stream.n_samples >= 200  # ~3 s at 100 Hz
        assert not np.isnan(stream.pressure).any()


def test_record_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "exists.insole"
    out.write_bytes(b"")
    assert main(["record", "--simulate", "-o", str(out)]) == 2


def test_demo_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "demo.insole"
    assert main(["demo", "--duration-s", "2", "-o", str(out)]) == 0
    assert read_recording(out).streams[0].n_samples >= 100
