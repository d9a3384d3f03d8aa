"""Hardware-in-loop replay: a recording's samples through the firmware, events back.

Each foot's samples go to one insole in replay mode (REPLAY_BEGIN, SAMPLES…,
REPLAY_END) with a bounded window of unacknowledged packets; the device answers
each SAMPLES packet after processing it, so the events it computed arrive before
the ACK. Event times come back as sample indices and map onto the recording's own
time base exactly: ``t = t0_s + index / rate_hz``.

A replay keeps the recording's own sensor frame (the firmware applies no mounting yaw
in replay mode); ``replay_recording(..., mount_yaw_deg=...)`` takes a calibrated yaw
off the replayed foot angles with the firmware's own arithmetic.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from insole.calibration import with_mount_yaw, yaw_cdeg
from insole.emulation.board import SimulatedBoard
from insole.errors import DeviceError
from insole.layouts import layout_packet
from insole.link import PendingRequest, SerialLink
from insole.model import FootStream, HeelRaiseRow, Side, StepRow
from insole.protocol import (
    Command,
    CommandCode,
    DecodedPacket,
    ErrorReply,
    HeelRaise,
    PacketType,
    Program,
    ProgramEvent,
    Step,
    direction_name,
    encode_sample_payloads,
    whole_stances,
)
from insole.quantise import rate_hz_to_chz, stream_counts

SIDE_CODES = {"left": 0, "right": 1}
DEFAULT_WINDOW = 8  # unacknowledged SAMPLES packets in flight

ProgressCallback = Callable[[str, int], None]  # (side, samples acknowledged so far)


@dataclass
class FootReplay:
    """What one insole computed while a recording's foot was replayed through it."""

    side: str
    samples: int = 0
    elapsed_s: float = 0.0
    steps: list[Step] = field(default_factory=list)
    raises: list[HeelRaise] = field(default_factory=list)
    program_events: list[ProgramEvent] = field(default_factory=list)
    dropped_samples: int = 0
    free_heap: int | None = None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def replay_foot(
    link: SerialLink,
    stream: FootStream,
    pressure_scale: float,
    *,
    window: int = DEFAULT_WINDOW,
    progress: ProgressCallback | None = None,
    program: Program | None = None,
) -> FootReplay:
    """Streams one foot through the insole on ``link`` and collects its events;
    ``program``: written first (docs/programs.md), so the replay runs a session of it."""
    result = FootReplay(stream.side)
    side_code = SIDE_CODES[stream.side]
    if program is not None:
        link.set_program(program)
    if stream.n_pressure:
        link.set_layout(layout_packet(stream.layout, stream.side, stream.n_pressure))
    link.command(
        Command(
            CommandCode.REPLAY_BEGIN,
            rate_chz=rate_hz_to_chz(stream.rate_hz),
            n_pressure=stream.n_pressure,
            imu=int(stream.has_imu),
            side=side_code,
        )
    )
    counts = stream_counts(stream, pressure_scale)
    payloads = encode_sample_payloads(0, counts.pressure, counts.imu)
    in_flight: deque[tuple[int, int]] = deque()  # (seq, samples in packet)
    acked_samples = 0
    started = time.perf_counter()
    for payload in payloads:
        while len(in_flight) >= window:
            acked_samples += _await_ack(link, in_flight, result)
            if progress:
                progress(stream.side, acked_samples)
        seq = link.send_payload(PacketType.SAMPLES, payload)
        in_flight.append((seq, payload[4]))
    while in_flight:
        acked_samples += _await_ack(link, in_flight, result)
    link.command(Command(CommandCode.REPLAY_END))
    result.elapsed_s = time.perf_counter() - started
    _collect_events(link, result)
    status = link.get_status()
    result.samples = acked_samples
    result.dropped_samples = int(status.dropped_samples)
    result.free_heap = status.free_heap
    if progress:
        progress(stream.side, acked_samples)
    return result


def _await_ack(link: SerialLink, in_flight: deque[tuple[int, int]], result: FootReplay) -> int:
    seq, count = in_flight[0]
    link.wait_for(PendingRequest(PacketType.SAMPLES, seq))
    in_flight.popleft()
    _collect_events(link, result)
    return count


def _collect_events(link: SerialLink, result: FootReplay) -> None:
    """Moves step and heel-raise events from the link's inbox into ``result``; answers
    to packets still in flight (later ACKs) stay in the inbox for their waiter."""
    keep: deque[DecodedPacket] = deque()
    for packet in link.inbox:
        body = packet.body
        if isinstance(body, Step):
            result.steps.append(body)
        elif isinstance(body, HeelRaise):
            result.raises.append(body)
        elif isinstance(body, ProgramEvent):
            result.program_events.append(body)
        elif isinstance(body, ErrorReply) and body.ref_type != PacketType.SAMPLES:
            raise DeviceError(f"device reported {body.error_name()} during replay", body.error, body.detail)
        else:
            keep.append(packet)
    link.inbox = keep


def step_rows(stream: FootStream, replay: FootReplay) -> list[StepRow]:
    """The replay's stances with both events, for STEPS.csv: the two halves of a partial
    stance joined (docs/protocol.md); a half whose other half never came (a walk that
    began or ended at rest) has no row, as STEPS.csv holds whole stances."""
    rows = []
    for step in whole_stances(replay.steps):
        if step.ic_index is None or step.to_index is None:
            continue
        rows.append(
            StepRow(
                side=stream.side,
                ic_s=stream.t0_s + step.ic_index / stream.rate_hz,
                to_s=stream.t0_s + step.to_index / stream.rate_hz,
                fpa_deg=step.fpa_deg,
                direction=direction_name(step.direction),
            )
        )
    return rows


def raise_rows(stream: FootStream, replay: FootReplay) -> list[HeelRaiseRow]:
    return [
        HeelRaiseRow(
            side=stream.side,
            start_s=stream.t0_s + r.start_index / stream.rate_hz,
            end_s=stream.t0_s + r.end_index / stream.rate_hz,
            hold_s=(r.hold_ms if r.hold_ms is not None else (r.end_index - r.start_index) * 1000 / stream.rate_hz) / 1000,
        )
        for r in replay.raises
    ]


def replay_recording(
    streams: Sequence[FootStream],
    pressure_scales: Sequence[float],
    *,
    ports: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    log_dir: Path | None = None,
    mount_yaw_deg: float | Mapping[str, float] = 0.0,
    program: Program | None = None,
    settings_dirs: Mapping[str, Path] | None = None,
) -> list[FootReplay]:
    """Replays every foot. Without ports each foot gets its own simulated board and the
    feet run in parallel; with one port the feet go through that board in turn; with
    one port per foot they run in parallel. ``mount_yaw_deg`` (one for every foot, or
    per side; docs/calibration.md) is taken off the foot angles as an insole storing
    it would: left − yaw, right + yaw. ``program`` is written to each insole before its
    replay; ``settings_dirs`` (per side) give simulated boards their flash, so a program
    and its state outlive one replay (the next session, or a reboot)."""
    if ports and len(ports) not in (1, len(streams)):
        raise ValueError(f"give one port, or one per foot ({len(streams)}); got {len(ports)}")
    results: list[FootReplay | None] = [None] * len(streams)
    errors: list[BaseException] = []

    def run(i: int, port: str) -> None:
        try:
            with SerialLink(port) as link:
                results[i] = replay_foot(link, streams[i], pressure_scales[i], progress=progress, program=program)
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    with ExitStack() as stack:
        if not ports:
            boards = [
                stack.enter_context(
                    SimulatedBoard(
                        side=s.side,
                        log_path=None if log_dir is None else log_dir / f"firmware-{s.side}.log",
                        settings_dir=None if settings_dirs is None else settings_dirs[s.side],
                    )
                )
                for s in streams
            ]
            port_list = [b.port for b in boards]
        else:
            port_list = list(ports) if len(ports) == len(streams) else list(ports) * len(streams)
        if len(set(port_list)) == len(port_list):
            threads = [threading.Thread(target=run, args=(i, p), daemon=True) for i, p in enumerate(port_list)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for i, p in enumerate(port_list):
                run(i, p)
    if errors:
        raise errors[0]
    replays = [r for r in results if r is not None]
    for replay in replays:
        yaw = mount_yaw_deg if isinstance(mount_yaw_deg, int | float) else mount_yaw_deg.get(replay.side, 0.0)
        side: Side = "left" if replay.side == "left" else "right"
        replay.steps = [with_mount_yaw(step, side, yaw_cdeg(yaw)) for step in replay.steps]
    return replays
