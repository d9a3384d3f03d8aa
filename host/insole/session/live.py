"""A live session with one or two insoles streaming: what `insole record`, `monitor` and
`demo` share, and what the terminal view and the web dashboard show.

Every packet a device sends is appended, unchanged, to the recording (if any) the
moment it arrives; the summaries shown live are derived from the same packets.
LiveSession is synchronous: one thread calls :meth:`LiveSession.poll` in a loop, and
everything that changes the session (settings, recording) runs on that thread too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from insole.link import InsoleLink
from insole.protocol import (
    NA_U16,
    BlockEnd,
    BlockKind,
    Cue,
    DecodedPacket,
    HeelRaise,
    Layout,
    Mode,
    Program,
    ProgramEvent,
    ProgramEventKind,
    ProgramSignal,
    Samples,
    Settings,
    Status,
    Step,
    block_kind_name,
    direction_name,
    join_stance_halves,
)
from insole.quantise import chz_to_rate_hz
from insole.recording import RecordingWriter

# How often the insoles are asked for their status (battery, dropped samples) while streaming.
STATUS_EVERY_S = 10.0
# Centre-of-pressure points kept per foot (every sample of the last ~2 s at 104 Hz).
COP_TRAIL_SAMPLES = 208
# A sample counts as loaded (its CoP is drawn) above this share of the largest total seen.
COP_LOAD_SHARE = 0.05


# As the device (docs/programs.md): a longer pause between two contacts is no walking time.
PROGRAM_MAX_GAP_S = 2.5
_FPA_KINDS = (BlockKind.FPA_BASELINE, BlockKind.FPA_FEEDBACK, BlockKind.FPA_PROBE)


def _code_name(enum: type[BlockEnd] | type[ProgramSignal], code: int) -> str:
    try:
        return enum(code).name.lower()
    except ValueError:
        return f"code {code}"


@dataclass
class LiveBlock:
    """The program block an insole runs, as its PROGRAM_EVENTs and steps tell it live.

    The insole reports its progress only at the block's end (and at signals); in between
    the host counts it from the foot's own records by the device's rules: steps with a
    foot angle (FPA blocks), backward seconds, steps (or walking seconds when the
    program says so), full repetitions (the "hold reached" ticks)."""

    program_id: int
    session: int
    block: int
    kind: int  # BlockKind
    goal: int | None
    start_index: int
    band_cdeg: tuple[int, int] | None  # (target, half width) in force, or set by a baseline
    goal_in_seconds: bool = False  # walking blocks: known from the PROGRAM, else steps
    ended: str | None = None  # goal, limit, interrupted; None while it runs
    logged_done: int | None = None  # the insole's own count, at its last event
    steps: int = 0
    angled_steps: int = 0
    span_samples: int = 0
    backward_samples: int = 0
    full_reps: int = 0
    last_ic: int | None = None
    counted: set[int] = field(default_factory=set)  # step numbers seen (a stance split by a rest counts once)
    last_signal: str | None = None

    @property
    def kind_name(self) -> str:
        return block_kind_name(self.kind)

    @property
    def goal_unit(self) -> str:
        if self.kind == BlockKind.HEEL_RAISES:
            return "reps per set"
        return "s" if self.kind == BlockKind.BACKWARD_WALK or self.goal_in_seconds else "steps"

    def add_step(self, step: Step, rate_hz: float) -> None:
        index = step.to_index if step.to_index is not None else step.ic_index
        if index is None or index <= self.start_index or step.step_number in self.counted or self.ended:
            return
        self.counted.add(step.step_number)
        self.steps += 1
        if step.fpa_cdeg is not None and direction_name(step.direction) == "forward":
            self.angled_steps += 1
        if step.ic_index is None:
            return
        if self.last_ic is not None and 0 <= step.ic_index - self.last_ic <= PROGRAM_MAX_GAP_S * rate_hz:
            gap = step.ic_index - self.last_ic
            self.span_samples += gap
            if direction_name(step.direction) == "backward":
                self.backward_samples += gap
        self.last_ic = step.ic_index

    def done(self, rate_hz: float) -> int:
        """Progress towards the goal, in its unit: the insole's own once it ended."""
        if self.ended is not None and self.logged_done is not None:
            return self.logged_done
        if self.kind in _FPA_KINDS:
            counted = self.angled_steps
        elif self.kind == BlockKind.BACKWARD_WALK:
            counted = int(self.backward_samples / rate_hz)
        elif self.kind == BlockKind.HEEL_RAISES:
            counted = self.full_reps
        else:
            counted = int(self.span_samples / rate_hz) if self.goal_in_seconds else self.steps
        return max(counted, self.logged_done or 0)


@dataclass
class LiveProgram:
    """An insole's program session as its PROGRAM_EVENTs arrive."""

    program: Program | None = None  # the insole's PROGRAM, when a report of it passed by
    session: int | None = None
    resumed: bool = False
    session_done: bool = False
    block: LiveBlock | None = None

    def absorb(self, event: ProgramEvent) -> None:
        kind = event.event
        if kind in (ProgramEventKind.SESSION_START, ProgramEventKind.SESSION_RESUME):
            self.session, self.session_done = event.session, False
            self.resumed = kind == ProgramEventKind.SESSION_RESUME
        elif kind == ProgramEventKind.BLOCK_START and event.block is not None and event.kind is not None:
            self.session = event.session
            self.block = LiveBlock(
                event.program_id, event.session, event.block, event.kind, event.goal, event.sample_index,
                self._band(event), goal_in_seconds=self._goal_in_seconds(event),
            )  # fmt: skip
        elif self.block is not None and event.block == self.block.block:
            if kind == ProgramEventKind.BLOCK_END:
                self.block.ended = _code_name(BlockEnd, event.detail)
                self.block.logged_done = event.done
                self.block.band_cdeg = self._band(event) or self.block.band_cdeg
            elif kind == ProgramEventKind.SIGNAL:
                self.block.last_signal = _code_name(ProgramSignal, event.detail)
                if event.detail == ProgramSignal.HOLD_REACHED:
                    self.block.full_reps += 1
                if event.done is not None:
                    self.block.logged_done = event.done
        if kind == ProgramEventKind.SESSION_END:
            self.session_done = True

    @staticmethod
    def _band(event: ProgramEvent) -> tuple[int, int] | None:
        if event.target_cdeg is None or event.half_width_cdeg is None:
            return None
        return event.target_cdeg, event.half_width_cdeg

    def _goal_in_seconds(self, event: ProgramEvent) -> bool:
        program, k = self.program, event.block
        if program is None or k is None or k >= len(program.blocks) or program.program_id != event.program_id:
            return False
        return program.blocks[k].goal_in_seconds


@dataclass
class FootState:
    """Running summary of one insole's stream."""

    side: str
    link: InsoleLink
    stream_id: int
    rate_hz: float = 100.0
    samples: int = 0
    lost_samples: int = 0  # gaps in the sample indices not (yet) filled by a backfill
    backfilled_samples: int = 0  # samples that arrived late, into a gap (BLE reconnects)
    next_index: int = -1  # the stream's next sample index; -1 until the first SAMPLES
    steps: deque[Step] = field(default_factory=lambda: deque(maxlen=64))  # each stance once (add_step)
    step_count: int = 0
    fpa_history: list[tuple[float, float]] = field(default_factory=list)  # (stream time s, FPA °) per step
    raises: list[HeelRaise] = field(default_factory=list)
    cues: deque[Cue] = field(default_factory=lambda: deque(maxlen=32))
    cue_count: int = 0  # cue decisions, cued or faded
    cued_count: int = 0  # cues the motor played
    status: Status | None = None
    settings: Settings | None = None
    program: LiveProgram = field(default_factory=LiveProgram)
    # The sensors: positions (mm, this foot's frame), the latest frame and the CoP trail.
    cell_positions_mm: np.ndarray | None = None
    pressure: np.ndarray | None = None  # latest sample's counts (NaN: n/a)
    cop_trail: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=COP_TRAIL_SAMPLES))
    max_total_counts: float = 0.0
    max_cell_counts: float = 0.0  # the heat map's full scale: the largest count seen

    def recent(self, attribute: str, window: int = 8) -> float | None:
        """A STEP field's typical value: the median over the last ``window`` steps that have
        it (None: none have). The median, because the step that ends a bout has a stance
        as long as the standing after it."""
        values = [v for s in list(self.steps)[-window:] if (v := getattr(s, attribute)) is not None]
        return float(np.median(values)) if values else None

    def cadence_spm(self, window: int = 8) -> float | None:
        """Steps per minute of both feet together, from this foot's recent strides (between
        the contacts it saw: a stance begun before the stream has none)."""
        ics = np.array([s.ic_index for s in list(self.steps)[-window:] if s.ic_index is not None], dtype=float)
        if len(ics) < 2:
            return None
        stride_s = float(np.median(np.diff(ics))) / self.rate_hz
        return 2 * 60.0 / stride_s if stride_s > 0 else None

    def add_step(self, step: Step) -> None:
        """A STEP as it arrives. The second half of a partial stance (docs/protocol.md)
        completes its first half among the recent steps instead of counting again."""
        for k in range(len(self.steps) - 1, -1, -1):
            earlier = self.steps[k]
            joined = join_stance_halves(earlier, step) or join_stance_halves(step, earlier)
            if joined is not None:
                self.steps[k] = joined
                if earlier.fpa_deg is None and joined.fpa_deg is not None:  # a backfilled first half
                    self.fpa_history.append((self._stance_time_s(joined), joined.fpa_deg))
                return
        if self.program.block is not None:
            self.program.block.add_step(step, self.rate_hz)
        self.steps.append(step)
        self.step_count += 1
        if step.fpa_deg is not None:
            self.fpa_history.append((self._stance_time_s(step), step.fpa_deg))

    def _stance_time_s(self, step: Step) -> float:
        index = step.ic_index if step.ic_index is not None else step.to_index
        assert index is not None, "a STEP has at least one of its events"
        return index / self.rate_hz

    @property
    def last_step(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    @property
    def last_direction(self) -> str:
        return direction_name(self.steps[-1].direction) if self.steps else "-"

    @property
    def last_cue(self) -> Cue | None:
        return self.cues[-1] if self.cues else None

    def band_deg(self) -> tuple[float, float] | None:
        """The foot-angle target band (low, high) in degrees, from the insole's settings."""
        if self.settings is None:
            return None
        target = self.settings.fpa_target_cdeg / 100.0
        half = self.settings.fpa_half_width_cdeg / 100.0
        return target - half, target + half

    def in_band(self, fpa_deg: float | None) -> bool | None:
        band = self.band_deg()
        if band is None or fpa_deg is None:
            return None
        return band[0] <= fpa_deg <= band[1]

    def connection(self) -> str:
        """"connected" or "reconnecting" (a BLE link that lost its insole and is looking for it)."""
        from insole.link.ble import BleInsoleLink  # the serial-only commands need no BLE stack

        if isinstance(self.link, BleInsoleLink):
            stats = self.link.stats
            return "connected" if stats.connections > stats.disconnects else "reconnecting"
        return "connected"

    def absorb_samples(self, body: Samples) -> None:
        if 0 <= body.first_index < self.next_index and self.lost_samples > 0:
            # Late samples into a gap: a backfill after a reconnect. The CoP trail and the
            # heat map stay with the live edge.
            filled = min(body.count, self.lost_samples)
            self.lost_samples -= filled
            self.backfilled_samples += filled
            self.samples += body.count
            return
        # A stream joined late, or restarted (index back to 0), has no gap.
        if 0 <= self.next_index < body.first_index:
            self.lost_samples += body.first_index - self.next_index
        self.next_index = body.first_index + body.count
        self.samples += body.count
        if body.n_pressure:
            counts = body.pressure_counts.astype(np.float64)
            counts[body.pressure_counts == NA_U16] = np.nan
            self.pressure = counts[-1]
            if not np.isnan(counts).all():
                self.max_cell_counts = max(self.max_cell_counts, float(np.nanmax(counts)))
            self._extend_cop_trail(body.first_index, counts)

    def _extend_cop_trail(self, first_index: int, counts: np.ndarray) -> None:
        positions = self.cell_positions_mm
        if positions is None or positions.shape[0] != counts.shape[1]:
            return
        load = np.nan_to_num(counts)
        totals = load.sum(axis=1)
        self.max_total_counts = max(self.max_total_counts, float(totals.max(initial=0.0)))
        loaded = totals > COP_LOAD_SHARE * self.max_total_counts
        if not loaded.any():
            return
        cop = (load[loaded] @ positions) / totals[loaded, None]
        for offset, (x_mm, y_mm) in zip(np.flatnonzero(loaded), cop, strict=True):
            self.cop_trail.append((first_index + int(offset), float(x_mm), float(y_mm)))


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
        # A BLE link appends from its own thread: the writer is swapped and closed under this lock.
        self._writer_lock = threading.Lock()
        self._t0 = time.monotonic()
        self._status_due = self._t0 + STATUS_EVERY_S

    def _recorder(self, foot: FootState) -> Callable[[bytes], None]:
        def record(packet: bytes) -> None:
            with self._writer_lock:
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
            elif status.n_pressure:
                layout = foot.link.get_layout()  # the board's own
            if layout is not None and layout.n:
                foot.cell_positions_mm = np.column_stack([layout.x_mm, layout.y_mm]).astype(np.float64)
            foot.status = status
            foot.settings = foot.link.get_settings()
            foot.rate_hz = chz_to_rate_hz(status.rate_chz) if status.rate_chz else foot.rate_hz
            foot.link.drain_inbox()  # what came before belongs to no stream of this session
            # Recording starts with the stream (a BLE insole may have been streaming since
            # power-on: that stream ended with its STOP answer above).
            foot.link.on_packet_bytes = self._recorder(foot)
            foot.link.start_stream()
            self._absorb(foot, foot.link.drain_inbox())

    def poll(self, timeout_s: float = 0.05) -> None:
        if time.monotonic() >= self._status_due:
            self.refresh_status()
        for foot in self.feet:
            # What a request set aside waits in the inbox, ahead of what arrives now.
            waiting = foot.link.drain_inbox()
            self._absorb(foot, waiting + foot.link.poll(0.0 if waiting else timeout_s / max(1, len(self.feet))))

    def refresh_status(self) -> None:
        """Asks every insole for its status (battery, dropped samples); the answer's way
        in, ahead of it, is absorbed as usual."""
        self._status_due = time.monotonic() + STATUS_EVERY_S
        for foot in self.feet:
            foot.status = foot.link.get_status()
            self._absorb(foot, foot.link.drain_inbox())

    def write_settings(self, foot: FootState, settings: Settings) -> Settings:
        """Writes ``settings`` to one insole and returns what it then holds (read back)."""
        foot.link.set_settings(settings)
        foot.settings = foot.link.get_settings()
        self._absorb(foot, foot.link.drain_inbox())
        return foot.settings

    def start_recording(self, writer: RecordingWriter) -> None:
        """Records every packet from now on into ``writer`` (its header names the feet in
        session order); a recording already running is closed first."""
        with self._writer_lock:
            previous, self.writer = self.writer, writer
        if previous is not None:
            previous.close()

    def stop_recording(self) -> Path | None:
        """Closes the recording, if one is running; returns its path."""
        with self._writer_lock:
            writer, self.writer = self.writer, None
        if writer is None:
            return None
        writer.close()
        return writer.path

    @property
    def recording_path(self) -> Path | None:
        writer = self.writer
        return None if writer is None or writer.closed else writer.path

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def stop(self) -> None:
        for foot in self.feet:
            foot.link.stop_stream()
            self._absorb(foot, foot.link.drain_inbox())
            foot.status = foot.link.get_status()
            self._absorb(foot, foot.link.drain_inbox())
            # A BLE link delivers on its own thread and outlives the session: stop
            # recording its packets before the recording closes.
            foot.link.on_packet_bytes = None
        with self._writer_lock:
            if self.writer is not None:
                self.writer.flush()

    def _absorb(self, foot: FootState, packets: Sequence[DecodedPacket]) -> None:
        for packet in packets:
            body = packet.body
            if isinstance(body, Samples):
                foot.absorb_samples(body)
            elif isinstance(body, Step):
                foot.add_step(body)
            elif isinstance(body, HeelRaise):
                foot.raises.append(body)
            elif isinstance(body, Cue):
                foot.cues.append(body)
                foot.cue_count += 1
                foot.cued_count += body.cued
            elif isinstance(body, Status):
                foot.status = body
            elif isinstance(body, ProgramEvent):
                foot.program.absorb(body)
            elif isinstance(body, Program):
                foot.program.program = body
