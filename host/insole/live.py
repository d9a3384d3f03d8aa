"""A live session with one or two insoles streaming: what `insole record` and `insole demo` share.

Every packet a device sends is appended, unchanged, to the recording (if any) the
moment it arrives; the summaries shown live are derived from the same packets.
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from insole.hil import layout_packet, stream_counts
from insole.link import SerialLink
from insole.model import FootStream
from insole.protocol import (
    Command,
    CommandCode,
    HeelRaise,
    Layout,
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


@dataclass
class FootState:
    """Running summary of one insole's stream."""

    side: str
    link: SerialLink
    stream_id: int
    rate_hz: float = 100.0
    samples: int = 0
    lost_samples: int = 0
    next_index: int = 0
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

    def mean_stance_ms(self, window: int = 8) -> float | None:
        values = [s.stance_ms for s in list(self.steps)[-window:] if s.stance_ms is not None]
        return float(np.mean(values)) if values else None

    @property
    def last_direction(self) -> str:
        return DIRECTIONS.get(self.steps[-1].direction, "unknown") if self.steps else "-"


@dataclass
class SimulatedInsoles:
    """Simulated insoles whose live sensors replay given streams, ready to stream."""

    links: list[tuple[str, SerialLink]]
    layouts: dict[str, Layout]
    pressure_scales: list[float]


def open_simulated_insoles(stack: ExitStack, streams: Sequence[FootStream]) -> SimulatedInsoles:
    """One simulated board per stream (closed by ``stack``), each answering on its link."""
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="insole-sim-")))
    out = SimulatedInsoles([], {}, [])
    for stream in streams:
        scale = choose_pressure_scale(stream.pressure) if stream.pressure is not None else 1.0
        pressure, imu = stream_counts(stream, scale)
        samples_file = work_dir / f"{stream.side}.ismp"
        write_sample_file(samples_file, rate_hz_to_chz(stream.rate_hz), pressure, imu)
        board = stack.enter_context(SimulatedBoard(side=stream.side, samples_file=samples_file))
        out.links.append((stream.side, stack.enter_context(SerialLink(board.port))))
        out.layouts[stream.side] = layout_packet(stream)
        out.pressure_scales.append(scale)
    for _, link in out.links:  # the firmware's first answer also waits out its start-up
        link.command(Command(CommandCode.PING), timeout_s=10)
    return out


def symmetry_index(left: float | None, right: float | None) -> float | None:
    """Limb symmetry index: the smaller side over the larger, 1.0 is perfect symmetry."""
    if not left or not right:
        return None
    return min(left, right) / max(left, right)


class LiveSession:
    """Starts streaming on every link, keeps summaries, and records every packet."""

    def __init__(
        self,
        links: Sequence[tuple[str, SerialLink]],
        *,
        layouts: dict[str, Layout] | None = None,
        writer: RecordingWriter | None = None,
    ) -> None:
        self.feet = [FootState(side, link, i) for i, (side, link) in enumerate(links)]
        self.layouts = layouts or {}
        self.writer = writer
        self._t0 = time.monotonic()
        for foot in self.feet:
            foot.link.on_packet_bytes = self._recorder(foot)

    def _recorder(self, foot: FootState):  # type: ignore[no-untyped-def]
        def record(packet: bytes) -> None:
            if self.writer is not None:
                self.writer.append(foot.stream_id, packet, int((time.monotonic() - self._t0) * 1000))

        return record

    def start(self) -> None:
        for foot in self.feet:
            layout = self.layouts.get(foot.side)
            if layout is not None:
                foot.link.request(layout)
            status = foot.link.command(Command(CommandCode.GET_STATUS), PacketType.STATUS).body
            assert isinstance(status, Status)
            foot.status = status
            foot.rate_hz = chz_to_rate_hz(status.rate_chz) if status.rate_chz else foot.rate_hz
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
        if self.writer is not None:
            self.writer.flush()

    def _absorb(self, foot: FootState, packets: Sequence[object]) -> None:
        for packet in packets:
            body = getattr(packet, "body", None)
            if isinstance(body, Samples):
                if body.first_index > foot.next_index:
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
