"""insole.lsl: per-foot sample and event outlets, resolved and read by an inlet on this machine.

liblsl's default discovery multicasts beyond the machine; here a configuration keeps it
on loopback (machine scope, 127.0.0.1 as the only peer, no IPv6) and in a session of its
own (so that two test runs side by side never see each other's streams). LSLAPICFG is
read once, when liblsl starts: it is set before anything imports pylsl.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

_CONFIG = Path(tempfile.mkdtemp(prefix="insole-lsl-")) / "lsl_api.cfg"
_SESSION = f"insole-test-{uuid.uuid4().hex}"
_CONFIG.write_text(
    "[ports]\nIPv6 = disable\n\n"
    "[multicast]\nResolveScope = machine\nMachineAddresses = {127.0.0.1}\nListenAddress = 127.0.0.1\n\n"
    f"[lab]\nKnownPeers = {{127.0.0.1}}\nSessionID = {_SESSION}\n"
)
os.environ["LSLAPICFG"] = str(_CONFIG)

import json  # noqa: E402
import time  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from insole.layouts import layout_packet  # noqa: E402
from insole.lsl import FootChannels, LslOutlets  # noqa: E402
from insole.protocol import Direction, Samples, Step  # noqa: E402
from insole.quantise import acc_ms2_to_raw, gyro_dps_to_raw  # noqa: E402


def _resolve(pylsl: Any, name: str) -> Any:
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=10.0)
    assert found, f"no LSL stream {name!r} on this machine"
    return found[0]


def _pull(inlet: Any, *, want: int, chunk: bool) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 10.0
    while len(got) < want and time.monotonic() < deadline:
        if chunk:
            rows, _ = inlet.pull_chunk(timeout=0.2)
            got.extend(rows)
        else:
            sample, _ = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                got.append(sample)
    return got


def test_outlets_carry_samples_events_and_metadata() -> None:
    import pylsl  # type: ignore[import-untyped]

    foot = FootChannels(
        side="left", rate_hz=104.0, n_pressure=8, imu=True, device="/dev/pts/9", firmware="1.2.3",
        layout_name="insole8", layout=layout_packet("insole8", "left", 8), pressure_unit="kPa", pressure_scale=0.5,
    )  # fmt: skip
    outlets = LslOutlets([foot], source=_SESSION)
    try:
        samples_info = _resolve(pylsl, "insole left samples")
        events_info = _resolve(pylsl, "insole left events")
        assert samples_info.channel_count() == 1 + 8 + 6
        assert samples_info.nominal_srate() == pytest.approx(104.0)
        samples_in = pylsl.StreamInlet(samples_info)
        events_in = pylsl.StreamInlet(events_info)
        desc = ET.fromstring(samples_in.info(timeout=5.0).as_xml()).find("desc")
        assert desc is not None
        assert desc.findtext("side") == "left"
        assert desc.findtext("firmware") == "1.2.3"
        channels = [(c.findtext("label"), c.findtext("unit"), c.findtext("type")) for c in desc.iter("channel")]
        assert channels[0] == ("sample_index", "index", "SampleIndex")
        assert channels[1] == ("p1", "kPa", "Pressure")
        assert channels[9] == ("acc_x", "m/s^2", "Acc")
        assert channels[14] == ("gyro_z", "deg/s", "Gyro")
        cells = list(desc.iter("cell"))
        assert len(cells) == 8 and cells[0].findtext("x_mm") == str(foot.layout.x_mm[0])  # type: ignore[union-attr]
        samples_in.open_stream(timeout=5.0)
        events_in.open_stream(timeout=5.0)
        time.sleep(0.3)  # the inlets' connections are set up before the first push

        n = 20
        pressure = np.tile(np.arange(1, 9, dtype=np.uint16) * 100, (n, 1))
        pressure[3, 2] = 0xFFFF  # n/a
        acc = np.tile([0.0, 0.0, 9.81], (n, 1))
        gyro = np.tile([1.5, -2.0, 30.0], (n, 1))
        imu = np.hstack([acc_ms2_to_raw(acc), gyro_dps_to_raw(gyro)])
        outlets.publish("left", Samples(500, pressure, imu).encode(seq=1))
        step = Step(
            ic_index=503, to_index=560, stance_ms=548, swing_ms=None, fpa_cdeg=-1234, direction=Direction.FORWARD,
            flags=0, peak_pressure=900, medial_share=None, stride_mm=1210, speed_mms=1100, step_number=7,
        )  # fmt: skip
        outlets.publish("left", step.encode(seq=2))
        # A partial stance's toe-off (docs/protocol.md): its contact n/a, as null.
        toe_off = Step(None, 700, None, None, None, Direction.UNKNOWN, 2, None, None, None, None, 8)
        outlets.publish("left", toe_off.encode(seq=3))
        outlets.publish("left", b"\x00garbage")  # dropped, not raised

        rows = np.array(_pull(samples_in, want=n, chunk=True))
        assert rows.shape == (n, 15)
        assert list(rows[:, 0]) == list(range(500, 520))
        assert rows[0, 1:9] == pytest.approx(np.arange(1, 9) * 100 * 0.5)
        assert np.isnan(rows[3, 3])
        assert rows[0, 9:12] == pytest.approx([0.0, 0.0, 9.81], abs=0.01)
        assert rows[0, 12:15] == pytest.approx([1.5, -2.0, 30.0])
        event, partial = _pull(events_in, want=2, chunk=False)
        fields = json.loads(event[0])
        assert fields["type"] == "STEP" and fields["side"] == "left"
        assert (fields["ic_index"], fields["fpa_cdeg"], fields["swing_ms"]) == (503, -1234, None)
        partial_fields = json.loads(partial[0])
        assert (partial_fields["ic_index"], partial_fields["to_index"], partial_fields["step_number"]) == (None, 700, 8)
        assert outlets.pushed_samples == {"left": n} and outlets.pushed_events == {"left": 2}
    finally:
        outlets.close()


@pytest.mark.micropython
def test_a_live_session_publishes_both_feet() -> None:
    """Two simulated insoles (unix-port firmware on ptys) walking: each foot's outlets
    carry its samples (pressure in kPa by the session's scales) and its STEP events."""
    import pylsl

    from insole.emulation.insoles import open_simulated_insoles
    from insole.session.live import LiveSession
    from insole.sim import Stand, Walk, simulate_session

    sim = simulate_session([Stand(duration_s=1.0), Walk(n_steps=12, cadence_spm=120.0), Stand(duration_s=1.0)], seed=2)
    with ExitStack() as stack:
        insoles = open_simulated_insoles(stack, sim.streams)
        session = LiveSession(insoles.links, layouts=insoles.layouts)
        session.start()
        scales: dict[str, float] = {s.side: scale for s, scale in zip(sim.streams, insoles.pressure_scales, strict=True)}
        with LslOutlets.for_session(session, pressure_scales=scales) as outlets:
            inlets = {}
            for side in ("left", "right"):
                info = _resolve(pylsl, f"insole {side} samples")
                assert info.channel_count() == 1 + 8 + 6
                inlets[side] = (pylsl.StreamInlet(info), pylsl.StreamInlet(_resolve(pylsl, f"insole {side} events")))
                for inlet in inlets[side]:
                    inlet.open_stream(timeout=5.0)
            deadline = time.monotonic() + 15.0
            while min(outlets.pushed_events.values()) < 2 and time.monotonic() < deadline:
                session.poll(0.1)
            session.stop()
            for side, (samples_in, events_in) in inlets.items():
                rows = np.array(_pull(samples_in, want=50, chunk=True))
                assert rows.shape[1] == 15 and np.all(np.diff(rows[:, 0]) == 1)
                assert ET.fromstring(samples_in.info().as_xml()).findtext("desc/side") == side
                assert np.nanmax(rows[:, 1:9]) > 50.0  # kPa: the foot was loaded
                events = [json.loads(e[0]) for e in _pull(events_in, want=2, chunk=False)]
                assert [e["type"] for e in events] == ["STEP", "STEP"] and {e["side"] for e in events} == {side}


@pytest.mark.micropython
def test_monitor_lsl_publishes_the_live_insoles() -> None:
    """`insole monitor --lsl` (a simulated left insole over the emulated radio): its
    samples reach an inlet on this machine, pressure in kPa."""
    import subprocess
    import sys

    import pylsl

    command = subprocess.Popen(
        [sys.executable, "-m", "insole.cli", "monitor", "--simulate", "--side", "left", "--lsl", "--duration-s", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found = pylsl.resolve_byprop("name", "insole left samples", minimum=1, timeout=60.0)
        assert found, "monitor --lsl published no samples stream"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(timeout=10.0)
        rows = np.array(_pull(inlet, want=50, chunk=True))
        assert rows.shape[0] >= 50 and rows.shape[1] == 1 + 8 + 6
        assert ET.fromstring(inlet.info().as_xml()).findtext("desc/channels/channel[2]/unit") == "kPa"
    finally:
        command.terminate()
        _out, err = command.communicate(timeout=30)
    assert "Traceback" not in err, err
