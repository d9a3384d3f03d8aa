"""A live session with one or two insoles streaming: what `insole record` and `insole demo` share.

Every packet a device sends is appended, unchanged, to the recording (if any) the
moment it arrives; the summaries shown live are derived from the same packets.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from insole.link import InsoleLink
from insole.protocol import DecodedPacket, HeelRaise, Layout, Mode, Samples, Status, Step, direction_name
from insole.quantise import chz_to_rate_hz
from insole.recording import RecordingWriter


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
        return direction_name(self.steps[-1].direction) if self.steps else "-"


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

    def _recorder(self, foot: FootState) -> Callable[[bytes], None]:
        def record(packet: bytes) -> None:
            if self.writer is not None:
                self.writer.append(foot.stream_id, packet, int((time.monotonic() - self._t0) * 1000))

        return record

    def start(self) -> None:
        for foot in self.feet:
            status = foot.link.get_status()
            if status.mode == Mode.LIVE:
                # An insole with a radio measures from power-on: end that stream, so the
                # session's stream (and recording) starts at sample 0 with this layout.
                foot.link.stop_stream()
            layout = self.layouts.get(foot.side)
            if layout is not None:
                foot.link.set_layout(layout)
            foot.status = status
            foot.rate_hz = chz_to_rate_hz(status.rate_chz) if status.rate_chz else foot.rate_hz
            foot.link.drain_inbox()  # what came before belongs to no stream of this session
            # Recording starts with the stream (a BLE insole may have been streaming since
            # power-on: that stream ended with its STOP answer above).
            foot.link.on_packet_bytes = self._recorder(foot)
            foot.link.start_stream()
            self._absorb(foot, foot.link.drain_inbox())

    def poll(self, timeout_s: float = 0.05) -> None:
        for foot in self.feet:
            self._absorb(foot, foot.link.poll(timeout_s / max(1, len(self.feet))))

    def stop(self) -> None:
        for foot in self.feet:
            foot.link.stop_stream()
            self._absorb(foot, foot.link.drain_inbox())
            foot.status = foot.link.get_status()
            self._absorb(foot, foot.link.drain_inbox())
            # A BLE link delivers on its own thread and outlives the session: stop
            # recording its packets before the recording closes.
            foot.link.on_packet_bytes = None
        if self.writer is not None:
            self.writer.flush()

    def _absorb(self, foot: FootState, packets: Sequence[DecodedPacket]) -> None:
        for packet in packets:
            body = packet.body
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
