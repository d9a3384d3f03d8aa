"""A live session with one or two insoles streaming: what `insole record` and `insole demo` share.

Every packet a device sends is appended, unchanged, to the recording (if any) the
moment it arrives; the summaries shown live are derived from the same packets.
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from insole.hil import layout_packet, stream_counts
from insole.link import SerialLink
from insole.model import FootStream
from insole.protocol import (
    Body,
    Command,
    DecodedPacket,
    CommandCode,
    HeelRaise,
    Layout,
    Mode,
    PacketType,
    Samples,
    Status,
    Step,
    choose_pressure_scale,
    chz_to_rate_hz,
    rate_hz_to_chz,
)
from insole.recording import RecordingWriter
from insole.simboard import SimulatedBoard, write_sample_file

DIRECTIONS = {0: "unknown", 1: "forward", 2: "backward"}


class InsoleLink(Protocol):
    """What a live session needs of a link: SerialLink and the BLE client both have it."""

    port: str
    on_packet_bytes: Callable[[bytes], None] | None

    def request(self, body: Body, answer: PacketType = ..., timeout_s: float = ...) -> DecodedPacket: ...

    def command(self, command: Command, answer: PacketType = ..., timeout_s: float = ...) -> DecodedPacket: ...

    def poll(self, timeout_s: float = ...) -> list[DecodedPacket]: ...

    def drain_inbox(self) -> list[DecodedPacket]: ...


@dataclass
class FootState:
    """Running summary of one insole's stream."""

    side: str
    link: InsoleLink
    stream_id: int
    rate_hz: float = 100.0
    samples: int = 0
    lost_samples: int = 0
    next_index: int = -1  # the stream's next sample index; -1 until the first SAMPLES
    steps: deque[Step] = field(default_factory=lambda: deque(maxlen=64))
    step_count: int = 0
    raises: list[HeelRaise] = field(default_factory=list)
    status: Status | None = None

    def cadence_spm(self, window: int = 8) -> float | None:
        """Steps per minute of both feet together, from this foot's recent strides."""
        if len(self.steps) < 2:
            return None
        ics = np.array([s.ic_index for s in list(self.steps)[-window:]], dtype=float)
        stride_s = float(np.median(np.diff(ics))) / self.rate_hz
        return 2 * 60.0 / stride_s if stride_s > 0 else None

    def mean_fpa_deg(self, window: int = 8) -> float | None:
        values = [s.fpa_deg for s in list(self.steps)[-window:] if s.fpa_deg is not None]
        return float(np.mean(values)) if values else None

    def mean_stance_ms(self, window: int = 8) -> float | None:
        values = [s.stance_ms for s in list(self.steps)[-window:] if s.stance_ms is not None]
        return float(np.mean(values)) if values else None

    @property
    def last_direction(self) -> str:
        return DIRECTIONS.get(self.steps[-1].direction, "unknown") if self.steps else "-"


@dataclass
class SimulatedInsoles:
    """Simulated insoles whose live sensors replay given streams, ready to stream."""

    links: list[tuple[str, InsoleLink]]
    layouts: dict[str, Layout]
    pressure_scales: list[float]


def open_simulated_insoles(
    stack: ExitStack,
    streams: Sequence[FootStream],
    *,
    ble: bool = False,
    env: dict[str, dict[str, str]] | None = None,
    log_dir: Path | None = None,
    connect: bool = True,
) -> SimulatedInsoles:
    """One simulated insole per stream (closed by ``stack``), each answering on its link.

    Over a pty (serial) by default; with ``ble`` over the emulated radio: bumble virtual
    controllers, the firmware's GATT server through the unix port's `bluetooth`
    stand-in, and the host's normal bleak client through the bumble backend. ``env``
    adds environment variables per side (e.g. ``INSOLE_CLOCK_PPM``). With ``connect``
    False (BLE only) the insoles run and advertise but no link is opened.
    """
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="insole-sim-")))
    out = SimulatedInsoles([], {}, [])
    samples_files = []
    for stream in streams:
        scale = choose_pressure_scale(stream.pressure) if stream.pressure is not None else 1.0
        pressure, imu = stream_counts(stream, scale)
        samples_file = work_dir / f"{stream.side}.ismp"
        write_sample_file(samples_file, rate_hz_to_chz(stream.rate_hz), pressure, imu)
        samples_files.append(samples_file)
        out.layouts[stream.side] = layout_packet(stream)
        out.pressure_scales.append(scale)
    if ble:
        out.links.extend(_open_ble_insoles(stack, streams, samples_files, out.layouts, env or {}, log_dir, connect))
        return out
    for stream, samples_file in zip(streams, samples_files):
        board = stack.enter_context(
            SimulatedBoard(side=stream.side, samples_file=samples_file, env=(env or {}).get(stream.side))
        )
        out.links.append((stream.side, stack.enter_context(SerialLink(board.port))))
    for _, link in out.links:  # the firmware's first answer also waits out its start-up
        link.command(Command(CommandCode.PING), timeout_s=10)
    return out


# Sample log of a simulated insole on the emulated radio: 99 notifications (~7.6 s at
# 104 Hz with 8 cells + IMU), within the BLE simulation's larger heap.
SAMPLE_LOG_BYTES_BLE = 24552


def open_ble_insoles(stack: ExitStack, sides: Sequence[str], **client_options: Any) -> list[tuple[str, InsoleLink]]:
    """Insoles over BLE, found by scanning for the insole service and their side (bleak's
    platform backend unless ``client_options`` name others); each link closes with
    ``stack``."""
    from insole.ble.client import BleInsoleLink

    links: list[tuple[str, InsoleLink]] = []
    for side in sides:
        link = BleInsoleLink(side, **client_options)
        stack.callback(link.close)
        links.append((side, link))
    return links


def _open_ble_insoles(
    stack: ExitStack,
    streams: Sequence[FootStream],
    samples_files: Sequence[Path],
    layouts: dict[str, Layout],
    env: dict[str, dict[str, str]],
    log_dir: Path | None,
    connect: bool,
) -> list[tuple[str, InsoleLink]]:
    from insole.ble import bumble_backend
    from insole.ble.bumble_backend import BumbleClient, BumbleScanner
    from insole.ble.client import run_on_radio
    from insole.ble.virtual import BridgedPeripheral, VirtualRadio
    from insole.paths import FIRMWARE_DIR
    from insole.simboard import BLE_HEAP

    radio = stack.enter_context(VirtualRadio(n_controllers=1 + len(streams)))
    bumble_backend.use_transport(radio.transports[0])
    # Unwinds after the links and insoles: the host's radio leaves its controller last.
    stack.callback(lambda: run_on_radio(bumble_backend.shutdown(), timeout_s=10.0))
    for i, (stream, samples_file) in enumerate(zip(streams, samples_files)):
        layout = layouts[stream.side]
        stack.enter_context(
            BridgedPeripheral(
                radio.transports[1 + i],
                side=stream.side,
                script=FIRMWARE_DIR / "boards" / "unix" / "main_unix.py",
                env={
                    "INSOLE_SIM_SAMPLES": str(samples_file),
                    "INSOLE_SAMPLE_LOG_BYTES": str(SAMPLE_LOG_BYTES_BLE),
                    "INSOLE_SIM_LAYOUT": ",".join(str(v) for xy in zip(layout.x_mm, layout.y_mm) for v in xy),
                    **env.get(stream.side, {}),
                },
                capture_stdout=False,
                heap=BLE_HEAP,
                log_path=None if log_dir is None else log_dir / f"firmware-{stream.side}.log",
            )
        )
    if not connect:
        return []
    return open_ble_insoles(
        stack, [s.side for s in streams], scanner_backend=BumbleScanner, client_backend=BumbleClient
    )


def symmetry_index(left: float | None, right: float | None) -> float | None:
    """Limb symmetry index: the smaller side over the larger, 1.0 is perfect symmetry."""
    if not left or not right:
        return None
    return min(left, right) / max(left, right)


class LiveSession:
    """Starts streaming on every link, keeps summaries, and records every packet."""

    def __init__(
        self,
        links: Sequence[tuple[str, InsoleLink]],
        *,
        layouts: dict[str, Layout] | None = None,
        writer: RecordingWriter | None = None,
    ) -> None:
        self.feet = [FootState(side, link, i) for i, (side, link) in enumerate(links)]
        self.layouts = layouts or {}
        self.writer = writer
        self._t0 = time.monotonic()

    def _recorder(self, foot: FootState):  # type: ignore[no-untyped-def]
        def record(packet: bytes) -> None:
            if self.writer is not None:
                self.writer.append(foot.stream_id, packet, int((time.monotonic() - self._t0) * 1000))

        return record

    def start(self) -> None:
        for foot in self.feet:
            status = foot.link.command(Command(CommandCode.GET_STATUS), PacketType.STATUS).body
            assert isinstance(status, Status)
            if status.mode == Mode.LIVE:
                # An insole with a radio measures from power-on: end that stream, so the
                # session's stream (and recording) starts at sample 0 with this layout.
                foot.link.command(Command(CommandCode.STOP_STREAM))
            layout = self.layouts.get(foot.side)
            if layout is not None:
                foot.link.request(layout)
            foot.status = status
            foot.rate_hz = chz_to_rate_hz(status.rate_chz) if status.rate_chz else foot.rate_hz
            foot.link.drain_inbox()  # what came before belongs to no stream of this session
            # Recording starts with the stream (a BLE insole may have been streaming since
            # power-on: that stream ended with its STOP answer above).
            foot.link.on_packet_bytes = self._recorder(foot)
            foot.link.command(Command(CommandCode.START_STREAM))
            self._absorb(foot, foot.link.drain_inbox())

    def poll(self, timeout_s: float = 0.05) -> None:
        for foot in self.feet:
            self._absorb(foot, foot.link.poll(timeout_s / max(1, len(self.feet))))

    def stop(self) -> None:
        for foot in self.feet:
            foot.link.command(Command(CommandCode.STOP_STREAM))
            self._absorb(foot, foot.link.drain_inbox())
            status = foot.link.command(Command(CommandCode.GET_STATUS), PacketType.STATUS).body
            assert isinstance(status, Status)
            foot.status = status
            self._absorb(foot, foot.link.drain_inbox())
            # A BLE link delivers on its own thread and outlives the session: stop
            # recording its packets before the recording closes.
            foot.link.on_packet_bytes = None
        if self.writer is not None:
            self.writer.flush()

    def _absorb(self, foot: FootState, packets: Sequence[object]) -> None:
        for packet in packets:
            body = getattr(packet, "body", None)
            if isinstance(body, Samples):
                # A stream joined late, or restarted (index back to 0), has no gap.
                if 0 <= foot.next_index < body.first_index:
                    foot.lost_samples += body.first_index - foot.next_index
                foot.next_index = body.first_index + body.count
                foot.samples += body.count
            elif isinstance(body, Step):
                foot.steps.append(body)
                foot.step_count += 1
            elif isinstance(body, HeelRaise):
                foot.raises.append(body)
            elif isinstance(body, Status):
                foot.status = body
