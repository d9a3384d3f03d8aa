"""A session's own results, per event: the steps, cues and heel raises of a recording.

From the recording's event packets (STEP, CUE, HEEL_RAISE: what the insoles computed
and did while they were worn), or, for a recording without events (simulated,
imported), from a replay of its samples through the firmware
(:func:`insole.hil.replay_recording`): the same on-device algorithms either way.
Times are seconds in the recording's time base (a live recording's host clock), sample
indices count the stream's rows (0 = its first sample), units as docs/report.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from insole.errors import UserError
from insole.model import FootStream, Side, WalkingDirection
from insole.protocol import (
    BackfillEnd,
    Cue,
    CueOutcome,
    CuePattern,
    CueReason,
    HeelRaise,
    PacketType,
    Program,
    ProgramEvent,
    Settings,
    Step,
    direction_name,
    whole_stances,
)
from insole.recording import Recording, read_recording

EventsFrom = Literal["auto", "recording", "replay"]
EVENT_SOURCES: tuple[EventsFrom, ...] = ("auto", "recording", "replay")
# Participant and session ids name folders (Parquet partitions) and files: kept to safe characters.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_PARTICIPANT = "unknown"


@dataclass(frozen=True)
class Band:
    """The foot-angle target band: ``target_deg`` ± ``half_width_deg`` (+ = toe-out)."""

    target_deg: float
    half_width_deg: float

    def contains(self, fpa_deg: float) -> bool:
        # Inclusive edges, as the device decides (insolefw/cue.py: outside only beyond them).
        return abs(fpa_deg - self.target_deg) <= self.half_width_deg + 1e-9

    @classmethod
    def from_cdeg(cls, target_cdeg: int, half_width_cdeg: int) -> Band:
        return cls(target_cdeg / 100.0, half_width_cdeg / 100.0)


@dataclass(frozen=True)
class StepResult:
    """One stance phase as the insole reported it (a STEP packet, or the two records of a
    partial stance joined: docs/protocol.md). An event the insole did not see is None:
    the contact of a stream's first stance begun at rest, the toe-off of its last one."""

    side: Side
    step_number: int
    ic_index: int | None
    to_index: int | None
    ic_s: float | None
    to_s: float | None
    stance_s: float | None  # None for a partial stance, and one that held a rest
    swing_s: float | None  # the swing before this contact; None for a stream's first step
    fpa_deg: float | None
    in_band: bool | None  # None: no foot angle, or no band known
    band: Band | None
    direction: WalkingDirection
    stride_length_m: float | None
    speed_ms: float | None
    peak_pressure: float | None  # summed pressure, in the stream's pressure unit
    medial_share_pct: float | None

    @property
    def t_s(self) -> float:
        """When the stance is known to have been: its contact, else its toe-off."""
        t_s = self.ic_s if self.ic_s is not None else self.to_s
        assert t_s is not None, "a STEP has at least one of its events"
        return t_s


@dataclass(frozen=True)
class CueResult:
    """One cue decision of the insole (a CUE packet): delivered, or suppressed by the schedule."""

    side: Side
    t_s: float | None
    step_number: int | None
    reason: str  # toe_in, toe_out, metronome, test
    outcome: str  # cued, faded_every_kth, faded_probability, no_feedback_block
    fpa_deg: float | None
    band: Band | None
    pattern: str
    duration_ms: int
    latency_ms: float | None

    @property
    def delivered(self) -> bool:
        return self.outcome == "cued"


@dataclass(frozen=True)
class RaiseResult:
    """One heel-raise repetition (a HEEL_RAISE packet)."""

    side: Side
    start_index: int
    end_index: int
    start_s: float
    end_s: float
    hold_s: float | None
    rep: int
    set: int


@dataclass(frozen=True)
class StreamQuality:
    """What did not survive of one foot's stream."""

    side: Side
    rate_hz: float
    samples: int  # rows that arrived
    lost_samples: int  # rows that never arrived (NaN rows)
    backfilled_sample_packets: int  # SAMPLES packets the insole resent after a link loss
    backfilled_events: int  # STEP, HEEL_RAISE and CUE packets resent after a link loss
    lost_events: int  # events the insole reported gone for good


@dataclass(frozen=True)
class DataQuality:
    streams: list[StreamQuality]
    bad_frames: int  # frames that failed COBS/CRC/length checks
    bad_packets: dict[str, int]  # frames whose packet was refused, by reason
    torn_tail: bool  # the file ends in an unfinished frame (a recorder stopped mid-write)
    duplicate_events: int  # event packets in the file twice (kept once)

    @property
    def damaged(self) -> bool:
        return bool(
            self.bad_frames
            or sum(self.bad_packets.values())
            or any(s.lost_samples or s.lost_events for s in self.streams)
        )

    def problems(self) -> list[str]:
        """One line per kind of damage, with counts (empty for an intact recording)."""
        lines = []
        if self.bad_frames:
            lines.append(f"{self.bad_frames} damaged frame(s) skipped")
        if self.bad_packets:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.bad_packets.items()))
            lines.append(f"{sum(self.bad_packets.values())} refused packet(s) skipped ({reasons})")
        for s in self.streams:
            if s.lost_samples:
                share = 100.0 * s.lost_samples / max(1, s.samples + s.lost_samples)
                lines.append(f"{s.side}: {s.lost_samples} lost sample(s) ({share:.2f} %), empty rows")
            if s.lost_events:
                lines.append(f"{s.side}: {s.lost_events} event(s) gone for good (not in the insole's log any more)")
        return lines


@dataclass(frozen=True)
class FootRecords:
    """One insole's decoded records of one recording, in its own sample indices: what
    exercise programs are analysed from (:mod:`insole.analysis.program`). Sample index
    ``i`` was taken at ``t0_s + (i - first_sample_index) / rate_hz`` in the recording's
    time base."""

    side: Side
    rate_hz: float
    program_events: tuple[ProgramEvent, ...] = ()
    steps: tuple[Step, ...] = ()
    raises: tuple[HeelRaise, ...] = ()
    cues: tuple[Cue, ...] = ()
    programs: tuple[Program, ...] = ()  # PROGRAM reports (GET_PROGRAM answers) in the recording
    t0_s: float = 0.0
    first_sample_index: int = 0
    pressure_scale: float = 1.0  # STEP peak_pressure counts to the stream's pressure unit

    def time_s(self, index: int) -> float:
        return self.t0_s + (index - self.first_sample_index) / self.rate_hz


@dataclass
class SessionResults:
    """Everything a report or an export takes from one recording."""

    path: Path
    participant: str
    session: str
    start_time_utc: str | None
    source: str  # the recording header's source
    events_from: Literal["recording", "replay"]
    band_source: str  # where the band came from: option, recording, none
    duration_s: float
    streams: list[FootStream]
    steps: list[StepResult]
    cues: list[CueResult]
    raises: list[RaiseResult]
    quality: DataQuality
    settings: dict[Side, Settings] = field(default_factory=dict)  # the last SETTINGS reported per foot
    # Each insole's own records (recordings with events only): exercise programs.
    foot_records: list[FootRecords] = field(default_factory=list)

    @property
    def has_program(self) -> bool:
        return any(r.program_events for r in self.foot_records)

    @property
    def sides(self) -> list[Side]:
        return [s.side for s in self.streams]

    def stream(self, side: Side) -> FootStream:
        for s in self.streams:
            if s.side == side:
                return s
        raise KeyError(side)


def check_id(kind: str, value: str) -> str:
    """A participant or session id, if it is safe as a folder name (UserError otherwise)."""
    if not _ID.fullmatch(value):
        raise UserError(
            f"{kind} id {value!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def session_ids(
    header: dict[str, Any], path: Path, participant: str | None, session: str | None
) -> tuple[str, str]:
    """(participant, session) of the recording at ``path``: its header's, else the options',
    else defaults (participant "unknown", session the file's stem)."""
    chosen_participant = header.get("participant") or participant or DEFAULT_PARTICIPANT
    chosen_session = header.get("session") or session or path.stem
    stem_safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(chosen_session))
    return check_id("participant", str(chosen_participant)), check_id("session", stem_safe)


def _time(stream: FootStream, index: int) -> float:
    return stream.t0_s + index / stream.rate_hz


def _row_index(stream: FootStream, device_index: int) -> int:
    # A live stream's rows start at its first recorded sample; event packets keep the
    # device's indices (docs/recording.md).
    first = stream.extra.get("first_sample_index", 0)
    return device_index - (int(first) if isinstance(first, int) else 0)


def _code_name(enum: type[CueReason] | type[CueOutcome] | type[CuePattern], code: int) -> str:
    try:
        return enum(code).name.lower()
    except ValueError:
        return f"code_{code}"


def step_result(stream: FootStream, step: Step, band: Band | None, pressure_scale: float) -> StepResult:
    ic = None if step.ic_index is None else _row_index(stream, step.ic_index)
    to = None if step.to_index is None else _row_index(stream, step.to_index)
    fpa = step.fpa_deg
    return StepResult(
        side=stream.side,
        step_number=step.step_number,
        ic_index=ic,
        to_index=to,
        ic_s=None if ic is None else _time(stream, ic),
        to_s=None if to is None else _time(stream, to),
        # Only the insole's own: a stance joined from its halves spans a rest.
        stance_s=None if step.stance_ms is None else step.stance_ms / 1000.0,
        swing_s=None if step.swing_ms is None else step.swing_ms / 1000.0,
        fpa_deg=fpa,
        in_band=None if fpa is None or band is None else band.contains(fpa),
        band=band,
        direction=direction_name(step.direction),
        stride_length_m=None if step.stride_mm is None else step.stride_mm / 1000.0,
        speed_ms=None if step.speed_mms is None else step.speed_mms / 1000.0,
        peak_pressure=None if step.peak_pressure is None else step.peak_pressure * pressure_scale,
        medial_share_pct=None if step.medial_share is None else step.medial_share / 2.0,
    )


def cue_result(stream: FootStream, cue: Cue) -> CueResult:
    index = None if cue.decision_index is None else _row_index(stream, cue.decision_index)
    band = (
        None
        if cue.target_cdeg is None or cue.half_width_cdeg is None
        else Band.from_cdeg(cue.target_cdeg, cue.half_width_cdeg)
    )
    return CueResult(
        side=stream.side,
        t_s=None if index is None else _time(stream, index),
        step_number=cue.step_number,
        reason=_code_name(CueReason, cue.reason),
        outcome=_code_name(CueOutcome, cue.outcome),
        fpa_deg=None if cue.fpa_cdeg is None else cue.fpa_cdeg / 100.0,
        band=band,
        pattern=_code_name(CuePattern, cue.pattern),
        duration_ms=cue.duration_ms,
        latency_ms=None if cue.latency_us is None else cue.latency_us / 1000.0,
    )


def raise_result(stream: FootStream, heel_raise: HeelRaise) -> RaiseResult:
    start, end = _row_index(stream, heel_raise.start_index), _row_index(stream, heel_raise.end_index)
    return RaiseResult(
        side=stream.side,
        start_index=start,
        end_index=end,
        start_s=_time(stream, start),
        end_s=_time(stream, end),
        hold_s=None if heel_raise.hold_ms is None else heel_raise.hold_ms / 1000.0,
        rep=heel_raise.rep,
        set=heel_raise.set,
    )


def _pressure_scales(recording: Recording) -> list[float]:
    return [float(entry.get("pressure_scale", 1.0)) for entry in recording.header["streams"]]


def has_events(recording: Recording) -> bool:
    """Whether the recording holds the insoles' own STEP, HEEL_RAISE, CUE or PROGRAM_EVENT packets."""
    logged = {int(PacketType.STEP), int(PacketType.HEEL_RAISE), int(PacketType.CUE), int(PacketType.PROGRAM_EVENT)}
    return any(packet.type in logged for packet in recording.events)


def _from_recording(
    recording: Recording, band_option: Band | None
) -> tuple[list[StepResult], list[CueResult], list[RaiseResult], dict[Side, Settings]]:
    """Steps, cues and heel raises from the recording's event packets, in file order.

    The band of a step: the option's if given, else the last band the insole reported
    before it on its stream (a SETTINGS packet, or a CUE, which carries the band in
    force), else the band of the step's own CUE (the first cue of a session follows its step).
    """
    scales = _pressure_scales(recording)
    bands: dict[int, Band] = {}
    pending: list[tuple[int, Step, Band | None]] = []
    cues: list[CueResult] = []
    raises: list[RaiseResult] = []
    settings: dict[Side, Settings] = {}
    for packet in recording.events:
        stream_id = packet.stream if packet.stream is not None else 0
        stream = recording.streams[stream_id]
        body = packet.body
        if isinstance(body, Settings):
            bands[stream_id] = Band.from_cdeg(body.fpa_target_cdeg, body.fpa_half_width_cdeg)
            settings[stream.side] = body
        elif isinstance(body, Step):
            pending.append((stream_id, body, bands.get(stream_id)))
        elif isinstance(body, Cue):
            cue = cue_result(stream, body)
            cues.append(cue)
            if cue.band is not None and cue.reason in ("toe_in", "toe_out"):
                bands[stream_id] = cue.band
        elif isinstance(body, HeelRaise):
            raises.append(raise_result(stream, body))
    cue_bands = {(c.side, c.step_number): c.band for c in cues if c.reason in ("toe_in", "toe_out")}
    steps = []
    for stream_id, body, band_before in _whole_stances(pending):
        stream = recording.streams[stream_id]
        band = band_option or band_before or cue_bands.get((stream.side, body.step_number))
        steps.append(step_result(stream, body, band, scales[stream_id]))
    return steps, cues, raises, settings


def _whole_stances(pending: list[tuple[int, Step, Band | None]]) -> list[tuple[int, Step, Band | None]]:
    """Each stream's stances once (:func:`insole.protocol.whole_stances`); a stance joined
    from its halves takes the band reported before its contact, as its first half."""
    out: list[tuple[int, Step, Band | None]] = []
    for stream_id in sorted({stream_id for stream_id, _step, _band in pending}):
        own = [(step, band) for sid, step, band in pending if sid == stream_id]
        bands: dict[tuple[int, int | None], Band | None] = {}
        for step, band in own:
            bands.setdefault((step.step_number, step.ic_index), band)
        out += [(stream_id, step, bands[step.step_number, step.ic_index]) for step in whole_stances(s for s, _ in own)]
    return out


def _from_replay(
    recording: Recording, band_option: Band | None, mount_yaw_deg: float | Mapping[str, float]
) -> tuple[list[StepResult], list[RaiseResult]]:
    from insole.hil import replay_recording  # lazy: the replay runs MicroPython

    scales = _pressure_scales(recording)
    replays = replay_recording(recording.streams, scales, mount_yaw_deg=mount_yaw_deg)
    steps: list[StepResult] = []
    raises: list[RaiseResult] = []
    for stream, scale, replay in zip(recording.streams, scales, replays, strict=True):
        steps += [step_result(stream, s, band_option, scale) for s in whole_stances(replay.steps)]
        raises += [raise_result(stream, r) for r in replay.raises]
    return steps, raises


def foot_records(recording: Recording) -> list[FootRecords]:
    """Each stream's decoded PROGRAM_EVENT, STEP, HEEL_RAISE, CUE and PROGRAM records, in file order."""
    kept = (ProgramEvent, Step, HeelRaise, Cue, Program)
    per_stream: list[list[object]] = [[] for _ in recording.streams]
    for packet in recording.events:
        if isinstance(packet.body, kept):
            per_stream[packet.stream if packet.stream is not None else 0].append(packet.body)
    out = []
    for stream, bodies, scale in zip(recording.streams, per_stream, _pressure_scales(recording), strict=True):
        first = stream.extra.get("first_sample_index", 0)
        out.append(
            FootRecords(
                side=stream.side,
                rate_hz=stream.rate_hz,
                program_events=tuple(b for b in bodies if isinstance(b, ProgramEvent)),
                steps=tuple(b for b in bodies if isinstance(b, Step)),
                raises=tuple(b for b in bodies if isinstance(b, HeelRaise)),
                cues=tuple(b for b in bodies if isinstance(b, Cue)),
                programs=tuple(b for b in bodies if isinstance(b, Program)),
                t0_s=stream.t0_s,
                first_sample_index=int(first) if isinstance(first, int) else 0,
                pressure_scale=scale,
            )
        )
    return out


def data_quality(recording: Recording) -> DataQuality:
    backfilled_samples: dict[int, int] = {}
    backfilled_events: dict[int, int] = {}
    for packet in recording.events:
        body = packet.body
        if isinstance(body, BackfillEnd) and packet.stream is not None:
            target = backfilled_samples if body.event_type == PacketType.SAMPLES else backfilled_events
            target[packet.stream] = target.get(packet.stream, 0) + body.resent
    lost_events: dict[int, int] = {}
    for gone in recording.lost_events:
        lost_events[gone.stream] = lost_events.get(gone.stream, 0) + gone.count
    streams = [
        StreamQuality(
            side=stream.side,
            rate_hz=stream.rate_hz,
            samples=stream.n_samples - lost,
            lost_samples=lost,
            backfilled_sample_packets=backfilled_samples.get(i, 0),
            backfilled_events=backfilled_events.get(i, 0),
            lost_events=lost_events.get(i, 0),
        )
        for i, (stream, lost) in enumerate(zip(recording.streams, recording.lost_samples, strict=True))
    ]
    return DataQuality(
        streams=streams,
        bad_frames=recording.bad_frames,
        bad_packets=dict(recording.bad_packets),
        torn_tail=recording.torn_tail,
        duplicate_events=recording.duplicate_events,
    )


def _duration_s(streams: Sequence[FootStream]) -> float:
    starts = [s.t0_s for s in streams if s.n_samples]
    ends = [s.t0_s + s.n_samples / s.rate_hz for s in streams if s.n_samples]
    return max(ends) - min(starts) if starts else 0.0


def session_results(
    recording: Recording | Path,
    *,
    band: Band | None = None,
    events_from: EventsFrom = "auto",
    participant: str | None = None,
    session: str | None = None,
    mount_yaw_deg: float | Mapping[str, float] = 0.0,
) -> SessionResults:
    """The results of one recording (a path is read first).

    ``events_from``: "recording" takes the event packets in the file, "replay" replays
    the samples through the firmware (on the unix port), "auto" the first when the file
    has any STEP, HEEL_RAISE or CUE packet, else the second. ``band`` overrides the band
    the recording reports (SETTINGS, CUE); a replay knows only ``band``. A replay delivers
    no cues: the cues of a session are what the insoles did while worn. A replay takes
    ``mount_yaw_deg`` (docs/calibration.md) off its foot angles, as the insole would.
    """
    if not isinstance(recording, Recording):
        recording = read_recording(recording)
    if events_from not in EVENT_SOURCES:
        raise ValueError(f"events_from must be one of {EVENT_SOURCES}, got {events_from!r}")
    participant_id, session_id = session_ids(recording.header, recording.path, participant, session)
    settings: dict[Side, Settings] = {}
    records: list[FootRecords] = []
    if events_from == "recording" or (events_from == "auto" and has_events(recording)):
        steps, cues, raises, settings = _from_recording(recording, band)
        records = foot_records(recording)
        source: Literal["recording", "replay"] = "recording"
    else:
        steps, raises = _from_replay(recording, band, mount_yaw_deg)
        cues = []
        source = "replay"
    steps.sort(key=lambda s: (s.t_s, s.side))
    cues.sort(key=lambda c: (math.inf if c.t_s is None else c.t_s, c.side))
    raises.sort(key=lambda r: (r.start_s, r.side))
    if band is not None:
        band_source = "option"
    elif any(s.band is not None for s in steps):
        band_source = "recording"
    else:
        band_source = "none"
    start = recording.header.get("start_time_utc")
    return SessionResults(
        path=recording.path,
        participant=participant_id,
        session=session_id,
        start_time_utc=start if isinstance(start, str) else None,
        source=str(recording.header.get("source", "")),
        events_from=source,
        band_source=band_source,
        duration_s=_duration_s(recording.streams),
        streams=list(recording.streams),
        steps=steps,
        cues=cues,
        raises=raises,
        quality=data_quality(recording),
        settings=settings,
        foot_records=records,
    )
