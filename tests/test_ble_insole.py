"""The whole firmware over the emulated BLE radio, with the host's normal BLE client.

Each insole is the unix-port firmware (`boards/unix/main_unix.py`) walking a simulated
walk from its sample file, with its radio bridged to a bumble virtual controller; the
host is `insole.link.ble` (bleak through the bumble backend). Nothing is mocked
between the firmware's GATT server and the host's bleak calls.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode

from insole.emulation import bumble_backend
from insole.emulation.board import BLE_HEAP
from insole.emulation.bumble_backend import BumbleClient, BumbleScanner
from insole.emulation.insoles import open_simulated_insoles
from insole.emulation.peripheral import BridgedPeripheral
from insole.emulation.radio import VirtualRadio
from insole.link.ble import BleInsoleLink, find_insole, run_on_radio
from insole.link.clocksync import ClockSync
from insole.link.gatt import CONTROL_UUID, control_write
from insole.protocol import (
    Command,
    CommandCode,
    CueMode,
    DecodedPacket,
    PacketType,
    Samples,
    Settings,
    Status,
    Step,
)
from insole.recording import RecordingWriter, make_header, read_recording, stream_header_for
from insole.resources import FIRMWARE_DIR
from insole.session.live import LiveSession
from insole.sim import Stand, Walk, simulate_session

pytestmark = [pytest.mark.ble, pytest.mark.micropython]

RATE_HZ = 104.0


def _walk(duration_s: float = 60.0, fpa_deg: float = 12.0, seed: int = 1):
    return simulate_session([Stand(duration_s=1.0), Walk(duration_s=duration_s, fpa_deg=fpa_deg)],
                            rate_hz=RATE_HZ, seed=seed)


@pytest.fixture()
def stack() -> Iterator[ExitStack]:
    # Every process (radio, bridges, firmware) is ended by the stack, test failing or not.
    with ExitStack() as stack:
        yield stack


# Connection intervals the streaming tests run at: the shortest (what the host asks for
# by default) and what phones choose (30-50 ms).
INTERVALS_MS = [7.5, 30.0, 50.0]


def _status(link: BleInsoleLink) -> Status:
    body = link.command(Command(CommandCode.GET_STATUS), PacketType.STATUS).body
    assert isinstance(body, Status)
    return body


def test_both_feet_stream_live_over_ble(stack: ExitStack, capsys: pytest.CaptureFixture[str]) -> None:
    sim = _walk(30.0)
    insoles = open_simulated_insoles(stack, sim.streams, ble=True)
    session = LiveSession(insoles.links, layouts=insoles.layouts)
    session.start()
    started = time.monotonic()
    while time.monotonic() - started < 6.0:
        session.poll(0.1)
    elapsed = time.monotonic() - started
    for foot in session.feet:
        assert foot.lost_samples == 0
        assert foot.samples >= 0.85 * RATE_HZ * elapsed, (foot.side, foot.samples)
        assert foot.step_count >= 3
    total = sum(f.samples for f in session.feet)
    with capsys.disabled():
        print(f"\nBLE live stream, two feet: {total / elapsed:.0f} samples/s received, 0 lost")


def test_control_writes_need_a_bonded_link_and_settings_persist(stack: ExitStack, tmp_path: Path) -> None:
    radio = stack.enter_context(VirtualRadio(n_controllers=2))
    bumble_backend.use_transport(radio.transports[0])
    stack.callback(lambda: run_on_radio(bumble_backend.shutdown(), timeout_s=10.0))
    insole = stack.enter_context(
        BridgedPeripheral(radio.transports[1], side="left", script=FIRMWARE_DIR / "boards" / "unix" / "main_unix.py",
                          settings_dir=tmp_path, capture_stdout=False, heap=BLE_HEAP)
    )
    wanted = Settings(cue_mode=CueMode.FOOT_ANGLE, fpa_target_cdeg=-1000, fpa_half_width_cdeg=200, cue_duty_pct=80)

    async def unpaired_write() -> None:
        found = await find_insole("left", scanner_backend=BumbleScanner)
        async with BleakClient(found.device, backend=BumbleClient) as client:
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.write_gatt_char(CONTROL_UUID, control_write(wanted.encode(seq=0)), response=True)
            # NimBLE (ble_att_svr_check_perms): 0x05 to a peer without a bond, 0x0F only to a bonded one.
            assert refused.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION

    run_on_radio(unpaired_write(), timeout_s=30.0)
    with BleInsoleLink("left", scanner_backend=BumbleScanner, client_backend=BumbleClient) as link:
        before = link.get_settings()
        assert before == Settings(side=before.side)  # the refused write changed nothing
        link.request(wanted)
        assert link.command(Command(CommandCode.GET_SETTINGS), PacketType.SETTINGS).body == wanted
    insole.restart()  # a firmware reset: same settings directory, same bonds
    with BleInsoleLink("left", scanner_backend=BumbleScanner, client_backend=BumbleClient) as link:
        assert link.command(Command(CommandCode.GET_SETTINGS), PacketType.SETTINGS).body == wanted


def _step_numbers(packets: list[DecodedPacket]) -> list[int]:
    return [p.body.step_number for p in packets if isinstance(p.body, Step)]


@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
def test_random_disconnects_mid_walk_lose_no_step_event(
    stack: ExitStack, capsys: pytest.CaptureFixture[str], interval_ms: float
) -> None:
    sim = _walk(120.0)
    insoles = open_simulated_insoles(stack, sim.streams[:1], ble=True, connection_interval_ms=interval_ms)
    _, link = insoles.links[0]
    assert isinstance(link, BleInsoleLink)
    rng = random.Random(4)
    received: list[DecodedPacket] = []
    disconnects = 6
    reconnect_s: list[float] = []
    for n in range(disconnects):
        time.sleep(rng.uniform(1.0, 3.0))  # walking while connected
        dropped = time.monotonic()
        link.disconnect()  # the radio drops; the client reconnects and backfills by itself
        pause_s = rng.uniform(0.5, 3.0)
        while link.stats.connections <= n + 1 and time.monotonic() - dropped < 20.0:
            time.sleep(0.02)
        reconnect_s.append(time.monotonic() - dropped)
        time.sleep(max(0.0, pause_s - reconnect_s[-1]))
        received += link.poll()
    deadline = time.monotonic() + 20.0
    while link.stats.connections <= disconnects and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    lost = link.backfill()  # and once more at the end, for the tail
    tail_backfill_s = time.monotonic() - started
    received += link.drain_inbox()
    numbers = _step_numbers(received)
    assert link.stats.disconnects == disconnects
    assert not lost and not link.stats.lost_events
    assert len(numbers) >= 10
    assert sorted(numbers) == list(range(1, max(numbers) + 1)), "a step event is missing or doubled"
    # Raw samples too: the insole's sample log (~12 s) covers each outage and reconnect.
    covered = sorted(i for p in received if isinstance(p.body, Samples)
                     for i in range(p.body.first_index, p.body.first_index + p.body.count))
    assert covered == list(range(covered[0], covered[-1] + 1)), "a sample is missing or doubled"
    assert link.stats.lost_sample_packets == 0
    with capsys.disabled():
        print(f"\nBLE at a {interval_ms:g} ms connection interval: {disconnects} random disconnects, "
              f"{max(numbers)} steps and {len(covered)} samples, "
              f"0 lost after backfill ({link.stats.lost_samples} samples were missing before it), "
              f"{link.stats.duplicate_events} duplicates dropped; reconnected (encryption, discovery, "
              f"subscriptions) in {np.median(reconnect_s):.2f} s median, {max(reconnect_s):.2f} s max; "
              f"the last backfill took {tail_backfill_s:.2f} s")


def test_two_insoles_share_one_timeline_despite_clock_skew(
    stack: ExitStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = _walk(60.0)
    skew_ppm = {"left": 200.0, "right": -200.0}
    insoles = open_simulated_insoles(
        stack, sim.streams, ble=True, env={side: {"INSOLE_CLOCK_PPM": str(ppm)} for side, ppm in skew_ppm.items()}
    )
    header = make_header(source="simulated", streams=[stream_header_for(s, k) for s, k in
                                                       zip(sim.streams, insoles.pressure_scales, strict=True)])
    recording = tmp_path / "skewed.insole"
    with RecordingWriter(recording, header) as writer:
        session = LiveSession(insoles.links, layouts=insoles.layouts, writer=writer)
        session.start()
        started = time.monotonic()
        while time.monotonic() - started < 20.0:
            session.poll(0.1)
        session.stop()
    assert all(foot.samples > 1500 for foot in session.feet)
    report: list[str] = []
    errors_ms: list[float] = []
    for side, link in insoles.links:
        assert isinstance(link, BleInsoleLink)
        fit = run_on_radio(_fit(link.client.clock))
        # A device clock fast by p ppm gives host = offset + (1 - p·1e-6) × device time.
        # 20 s of packets pin the drift to tens of ppm (the fit keeps improving with time).
        error_ppm = fit.drift_ppm + skew_ppm[side]
        assert abs(error_ppm) < 150.0, (side, fit)  # uncorrected would be off by 200
        assert fit.residual_ms < 5.0
        errors_ms.append(abs(error_ppm) * 1e-6 * 20_000.0 + fit.residual_ms)
        report.append(f"{side}: drift {fit.drift_ppm:+.0f} ppm (clock set {skew_ppm[side]:+.0f} ppm fast), "
                      f"residual {fit.residual_ms:.2f} ms")
    # Left/right alignment after 20 s: both feet's drift error and scatter added up.
    alignment_ms = sum(errors_ms)
    assert alignment_ms < 8.0
    report.append(f"left/right alignment error ≤ {alignment_ms:.1f} ms")
    # The recording puts both feet on the host's clock: the simulated sensors sample at
    # exactly 104 Hz, which the device clocks (±200 ppm) would otherwise misreport.
    # 20 s of packets on a loaded machine pin the rate to ~100 ppm; say it in ms: where
    # the recording's last sample lands against where it was measured.
    read = read_recording(recording)
    for stream, timeline in zip(read.streams, read.timelines, strict=True):
        assert timeline is not None and stream.t0_s == timeline.t0_s
        end_error_ms = abs(stream.n_samples / stream.rate_hz - stream.n_samples / RATE_HZ) * 1000.0
        assert end_error_ms < 15.0, (stream.side, stream.rate_hz, timeline)
        report.append(f"recorded {stream.side} at {stream.rate_hz:.4f} Hz (true {RATE_HZ:g}): "
                      f"{end_error_ms:.1f} ms off after {stream.n_samples / RATE_HZ:.0f} s")
    with capsys.disabled():
        print("\nclock sync over BLE: " + "; ".join(report))


async def _fit(clock: ClockSync):
    return clock.fit()  # on the radio loop, where the client adds to it


@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
def test_backfill_refetches_only_what_is_missing(
    stack: ExitStack, capsys: pytest.CaptureFixture[str], interval_ms: float
) -> None:
    sim = _walk(60.0)
    insoles = open_simulated_insoles(stack, sim.streams[:1], ble=True, connection_interval_ms=interval_ms)
    _, link = insoles.links[0]
    assert isinstance(link, BleInsoleLink)
    link.start_stream()  # gait data goes only to a host that asked (docs/security.md)
    time.sleep(6.0)
    first = link.drain_inbox()
    assert _step_numbers(first)
    # Asking again right away: everything is there, nothing new, nothing lost.
    started = time.monotonic()
    assert link.backfill() == []
    elapsed_s = time.monotonic() - started
    with capsys.disabled():
        print(f"\nBLE at a {interval_ms:g} ms connection interval: a backfill with nothing missing "
              f"(the exchange alone) takes {elapsed_s * 1000:.0f} ms")
    again = [p for p in link.drain_inbox() if isinstance(p.body, Step)]
    assert all(n > max(_step_numbers(first)) for n in _step_numbers(again))
    assert np.all(np.diff(_step_numbers(first)) == 1)


def test_cli_scan_monitor_and_record_over_ble(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from insole.cli import main
    from insole.recording import read_recording

    assert main(["scan", "--simulate", "--timeout-s", "3"]) == 0
    listed = capsys.readouterr().out
    assert "insole-L" in listed and "insole-R" in listed
    assert main(["monitor", "--simulate", "--duration-s", "3"]) == 0
    out = tmp_path / "ble.insole"
    assert main(["record", "--simulate", "--ble", "-o", str(out), "--duration-s", "3"]) == 0
    recording = read_recording(out)
    assert [s.side for s in recording.streams] == ["left", "right"]
    assert recording.lost_samples == [0, 0] and recording.bad_frames == 0
    assert min(s.n_samples for s in recording.streams) >= 200


@pytest.mark.parametrize("interval_ms", INTERVALS_MS)
def test_cue_on_out_of_band_steps_of_a_walk_with_latency(
    stack: ExitStack, capsys: pytest.CaptureFixture[str], interval_ms: float
) -> None:
    from insole.protocol import Cue, CueOutcome, CueReason

    sim = _walk(60.0, fpa_deg=15.0)  # toe-out 15°
    insoles = open_simulated_insoles(stack, sim.streams[:1], ble=True, connection_interval_ms=interval_ms)
    _, link = insoles.links[0]
    assert isinstance(link, BleInsoleLink)
    # A cue the host asks for (CUE_TEST): from the write to its ACK, a round trip over the link.
    round_trips_ms = []
    for _ in range(8):
        started = time.monotonic()
        link.command(Command(CommandCode.CUE_TEST, duration_ms=10, duty_pct=0))
        round_trips_ms.append((time.monotonic() - started) * 1000.0)
    # Target 0° ± 3°: every step is toes-out too far, so each asks "turn the toes in".
    link.request(Settings(cue_mode=CueMode.FOOT_ANGLE, fpa_target_cdeg=0, fpa_half_width_cdeg=300))
    link.start_stream()
    time.sleep(10.0)
    packets = link.drain_inbox()
    steps = [p.body for p in packets if isinstance(p.body, Step)]
    cues = [p.body for p in packets if isinstance(p.body, Cue)]
    with_fpa = [s for s in steps if s.fpa_deg is not None]
    assert len(with_fpa) >= 4, "the firmware reported no foot angles"
    assert abs(np.median([s.fpa_deg for s in with_fpa]) - 15.0) < 3.0
    cued = [c for c in cues if c.outcome == CueOutcome.CUED]
    assert len(cued) >= len(with_fpa) - 1
    assert all(c.reason == CueReason.TOE_IN and c.fpa_cdeg is not None and c.fpa_cdeg > 300 for c in cued)
    latencies_ms = [c.latency_us / 1000.0 for c in cued if c.latency_us is not None]
    assert latencies_ms and max(latencies_ms) <= 10.0  # motor on within 10 ms of the FPA being known
    # The host's request needs at least one connection event each way.
    assert min(round_trips_ms) >= interval_ms * 0.9
    with capsys.disabled():
        print(f"\nBLE cueing at a {interval_ms:g} ms connection interval: {len(cued)} cues on {len(with_fpa)} steps, "
              f"step to motor max {max(latencies_ms):.3f} ms (device time, no radio in it); a cue the host asks "
              f"for (CUE_TEST write to ACK): {np.median(round_trips_ms):.0f} ms median, "
              f"{max(round_trips_ms):.0f} ms max round trip")
