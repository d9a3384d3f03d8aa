"""No lost events: find gaps in the device's event sequence numbers and backfill them.

The device numbers every packet per type (``seq``, wrapping at 65535 → 0) and keeps
its recent STEP, HEEL_RAISE, CUE and PROGRAM_EVENT packets, byte for byte, in an event log. After a
link loss the host asks for what it missed with GET_EVENTS; the device resends the
packets it still holds unchanged (same seq, same time_ms) and ends with BACKFILL_END,
which says which seqs are gone for good (docs/protocol.md, "Event log and backfill").

:class:`GapTracker` is link-independent: feed it every decoded packet
(:meth:`~GapTracker.observe` says whether an event is new or a duplicate), ask it for the
GET_EVENTS commands that cover the gaps (:meth:`~GapTracker.requests`), and feed it the
BACKFILL_END answers (:meth:`~GapTracker.on_backfill_end`). :func:`backfill` runs that
exchange over a :class:`~insole.link.serial.SerialLink`; a BLE client does the same with its own
request/notification plumbing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from insole.errors import DeviceError, LinkTimeout
from insole.link.base import InsoleLink
from insole.link.serial import SerialLink
from insole.protocol import (
    LOGGED_EVENT_TYPES,
    U16_WRAP,
    BackfillEnd,
    Command,
    DecodedPacket,
    ErrorCode,
    ErrorReply,
    PacketType,
)

MAX_REQUEST = 0xFFFF  # seqs per GET_EVENTS (its count is a u16)
_HALF = U16_WRAP // 2
_GET_EVENTS_TYPE_OFFSET = 2  # payload offset of GET_EVENTS' event_type: a BAD_VALUE detail


def keeps_no_log(event_type: int, error_code: int, detail: int) -> bool:
    """Whether an insole's ERROR answer to a GET_EVENTS of ``event_type`` says it keeps no
    log of that type: no sample log (BAD_STATE for SAMPLES), or firmware older than the
    type (BAD_VALUE at event_type; PROGRAM_EVENT came later). The host stops asking."""
    if event_type == PacketType.SAMPLES and error_code == ErrorCode.BAD_STATE:
        return True
    return error_code == ErrorCode.BAD_VALUE and detail == _GET_EVENTS_TYPE_OFFSET


@dataclass(frozen=True)
class SeqRange:
    """``count`` consecutive seqs of ``event_type`` from ``first_seq`` (wrapping at 65536)."""

    event_type: int
    first_seq: int
    count: int

    @property
    def type_name(self) -> str:
        try:
            return PacketType(self.event_type).name
        except ValueError:
            return f"type {self.event_type:#04x}"

    def seqs(self) -> list[int]:
        return [(self.first_seq + k) % U16_WRAP for k in range(self.count)]

    def __str__(self) -> str:
        last = (self.first_seq + self.count - 1) % U16_WRAP
        return f"{self.type_name} seq {self.first_seq}..{last} ({self.count})"


def _ranges(values: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted integers → [(start, count)] of consecutive runs."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and out[-1][0] + out[-1][1] == v:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


@dataclass
class _TypeState:
    """One event type's seqs, unwrapped onto a line anchored at the first seq seen."""

    anchor_wrapped: int
    anchor: int
    next: int  # one past the newest unwrapped seq received or known sent
    missing: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    received: dict[int, DecodedPacket | None] = field(default_factory=dict)  # None: SAMPLES, seq only

    def unwrap(self, seq: int) -> int:
        diff = (seq - self.anchor_wrapped) % U16_WRAP
        if diff >= _HALF:
            diff -= U16_WRAP
        # Keep the anchor near the newest seq so that long streams unwrap correctly.
        return self.anchor + diff


class GapTracker:
    """Tracks the seqs of the device's logged event types (STEP, HEEL_RAISE, CUE).

    Attributes after use: ``duplicates`` (events dropped by :meth:`observe` because they
    were already received), ``lost_`` (the :class:`SeqRange` list of events gone for good,
    as reported by the device), :meth:`gaps` (what is still missing and may be backfilled).
    """

    def __init__(self, event_types: Iterable[int] = LOGGED_EVENT_TYPES) -> None:
        self.event_types = tuple(int(t) for t in event_types)
        self._state: dict[int, _TypeState] = {}
        self.duplicates = 0

    # -- input -------------------------------------------------------------------------

    def observe(self, packet: DecodedPacket) -> bool:
        """Records one received packet. False for a duplicate event (already received),
        True otherwise (new events and packets of types not tracked)."""
        ptype = packet.header.type
        if ptype not in self.event_types:
            return True
        seq = packet.header.seq
        state = self._state.get(ptype)
        # Sample packets are many and the caller keeps them: only their seqs are kept here.
        kept = None if ptype == PacketType.SAMPLES else packet
        if state is None:
            state = _TypeState(anchor_wrapped=seq, anchor=0, next=1)
            self._state[ptype] = state
            state.received[0] = kept
            return True
        n = state.unwrap(seq)
        if n in state.received:
            self.duplicates += 1
            return False
        if n >= state.next:
            state.missing.update(range(state.next, n))
            state.next = n + 1
        state.missing.discard(n)
        state.lost.discard(n)  # a late arrival of something reported lost: not lost after all
        state.received[n] = kept
        state.anchor, state.anchor_wrapped = n, seq
        return True

    def on_backfill_end(self, end: BackfillEnd) -> None:
        """Takes the device's answer to one GET_EVENTS (after the packets it resent)."""
        ptype = int(end.event_type)
        if ptype not in self.event_types:
            return
        state = self._state.get(ptype)
        if state is None:
            # Nothing of this type received, nor resent now: anchor at the device's next seq.
            state = _TypeState(anchor_wrapped=end.next_seq, anchor=0, next=0)
            self._state[ptype] = state
        first = state.unwrap(end.from_seq)
        device_next = state.unwrap(end.next_seq)
        # Everything before the device's next seq has been sent: what we have not
        # received of it is missing, unless it arrives or is reported lost.
        if device_next > state.next:
            state.missing.update(range(state.next, device_next))
            state.next = device_next
        gone = set(range(first, first + end.lost_count))
        asked = set(range(first, min(first + end.count, device_next)))
        # The device resent everything it held before BACKFILL_END: what is still
        # missing in the range it answered for will not come any more.
        gone |= asked & state.missing
        state.missing -= gone
        state.lost |= gone - set(state.received)

    # -- output ------------------------------------------------------------------------

    def gaps(self) -> list[SeqRange]:
        """Missing seqs that a GET_EVENTS may still recover, per type, as ranges."""
        out = []
        for ptype, state in sorted(self._state.items()):
            for start, count in _ranges(state.missing):
                out.append(SeqRange(ptype, self._wrap(state, start), count))
        return out

    @property
    def lost_(self) -> list[SeqRange]:
        out = []
        for ptype, state in sorted(self._state.items()):
            for start, count in _ranges(state.lost):
                out.append(SeqRange(ptype, self._wrap(state, start), count))
        return out

    def requests(self, *, tail: bool = True, tail_count: int = MAX_REQUEST) -> list[Command]:
        """GET_EVENTS commands for every gap; with ``tail`` also one per event type from
        the next seq on, for what the device sent after the last packet received (the
        device answers with the packets it has and, in BACKFILL_END, its next seq).
        Types never seen are asked from seq 0."""
        commands = []
        for gap in self.gaps():
            start = gap.first_seq
            left = gap.count
            while left > 0:
                count = min(left, MAX_REQUEST)
                commands.append(Command.get_events(gap.event_type, start, count))
                start = (start + count) % U16_WRAP
                left -= count
        if tail:
            for ptype in self.event_types:
                state = self._state.get(ptype)
                first = 0 if state is None else self._wrap(state, state.next)
                commands.append(Command.get_events(ptype, first, min(tail_count, MAX_REQUEST)))
        return commands

    def events(self, event_type: int) -> list[DecodedPacket]:
        """Every distinct event of a type received (live or backfilled), in seq order
        (SAMPLES packets are not kept here)."""
        state = self._state.get(int(event_type))
        if state is None:
            return []
        return [p for n in sorted(state.received) if (p := state.received[n]) is not None]

    def seen(self, event_type: int) -> bool:
        """Whether any packet of this type was received or answered for."""
        return int(event_type) in self._state

    @staticmethod
    def _wrap(state: _TypeState, n: int) -> int:
        return (state.anchor_wrapped + (n - state.anchor)) % U16_WRAP


@dataclass
class BackfillResult:
    """What one :func:`backfill` recovered and what is gone for good."""

    recovered: list[DecodedPacket]
    lost: list[SeqRange]
    answers: list[BackfillEnd]
    other: list[DecodedPacket]  # packets that arrived meanwhile and are not part of the answer


def backfill(link: SerialLink, tracker: GapTracker, *, tail: bool = True, timeout_s: float = 5.0) -> BackfillResult:
    """Asks the device on ``link`` for every gap (and the tail) and feeds the answers to
    ``tracker``. New events are returned in arrival order; duplicates are dropped.
    Packets of other kinds (samples, status) go to ``other``; packets after the last
    answer stay in ``link.inbox``."""
    recovered: list[DecodedPacket] = []
    other: list[DecodedPacket] = []
    answers: list[BackfillEnd] = []
    lost_before = {(r.event_type, s) for r in tracker.lost_ for s in r.seqs()}
    not_logged: set[int] = set()
    for command in tracker.requests(tail=tail):
        if command.event_type in not_logged:
            continue
        seq = link.send(command)
        deadline = time.monotonic() + timeout_s
        while True:
            packets = list(link.inbox) + link.poll(timeout_s=min(0.2, max(0.0, deadline - time.monotonic())))
            link.inbox.clear()
            done = None
            for i, packet in enumerate(packets):
                body = packet.body
                if isinstance(body, BackfillEnd) and body.ref_seq == seq and done is None:
                    tracker.on_backfill_end(body)
                    answers.append(body)
                    done = i
                elif _refuses(body, seq) and done is None:
                    assert isinstance(body, ErrorReply) and command.event_type is not None
                    if not keeps_no_log(command.event_type, body.error, body.detail):
                        raise DeviceError(
                            f"{link.port} refused GET_EVENTS #{seq}: {body.error_name()} (detail {body.detail})",
                            body.error,
                            body.detail,
                        )
                    not_logged.add(command.event_type)
                    done = i
                elif done is not None:
                    link.inbox.append(packet)  # after the answer: for the caller
                elif packet.header.type in tracker.event_types:
                    if tracker.observe(packet):
                        recovered.append(packet)
                else:
                    other.append(packet)
            if done is not None:
                break
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"no BACKFILL_END from {link.port} for GET_EVENTS #{seq} in {timeout_s} s")
    lost = [r for r in tracker.lost_ if any((r.event_type, s) not in lost_before for s in r.seqs())]
    return BackfillResult(recovered, lost, answers, other)


@dataclass
class LoggedEvents:
    """Every packet of one type an insole's event log still holds (:func:`read_logged_events`)."""

    packets: list[DecodedPacket]  # in seq order, each once
    lost: int  # sent since the firmware started, and no longer in the log
    next_seq: int  # the seq the insole's next packet of the type will carry


READ_CHUNK = 16  # seqs per GET_EVENTS: over BLE the answer must fit the insole's priority queue


def read_logged_events(link: InsoleLink, event_type: int, timeout_s: float = 5.0) -> LoggedEvents:
    """Asks an insole (any link, not streaming) for every packet of ``event_type`` it has
    logged since its firmware started, from seq 0 up to its next seq, a chunk at a time."""
    found: dict[int, DecodedPacket] = {}
    lost = 0
    from_seq = 0
    while True:
        command = Command.get_events(event_type, from_seq, READ_CHUNK)
        answer = link.command(command, PacketType.BACKFILL_END, timeout_s).body
        assert isinstance(answer, BackfillEnd)
        for packet in link.drain_inbox():
            if packet.header.type == event_type:
                found.setdefault(packet.header.seq, packet)
        lost += answer.lost_count
        from_seq += READ_CHUNK
        if from_seq >= answer.next_seq or from_seq >= U16_WRAP:
            return LoggedEvents([found[seq] for seq in sorted(found)], lost, answer.next_seq)


def _refuses(body: object, command_seq: int) -> bool:
    return isinstance(body, ErrorReply) and body.ref_type == PacketType.COMMAND and body.ref_seq == command_seq
