"""No lost events: the host's GapTracker, backfill from the simulated insole's event log
(identical bytes, lost-for-good reporting), and recordings that show what is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from insole.emulation.board import SimulatedBoard
from insole.link import PendingRequest, SerialLink
from insole.link.backfill import GapTracker, SeqRange, backfill
from insole.protocol import (
    BackfillEnd,
    Command,
    CommandCode,
    DecodedPacket,
    Header,
    Layout,
    PacketType,
    Samples,
    Step,
    decode_packet,
)
from insole.recording import LostEvents, RecordingWriter, make_header, read_recording, stream_header

STEP = int(PacketType.STEP)
CUE = int(PacketType.CUE)


def _event(ptype: int, seq: int) -> DecodedPacket:
    body = Step(seq, seq + 1, 100, None, None, 1, 1, None, None, None, None, seq + 1)
    return DecodedPacket(Header(1, ptype, seq % 65536, 1000 + seq), body)


# --------------------------------------------------------------------------- GapTracker


def test_tracker_finds_gaps_across_the_seq_wrap_and_drops_duplicates() -> None:
    tracker = GapTracker()
    seqs = [65530, 65531, 65534, 65535, 2, 3, 4]
    assert all(tracker.observe(_event(STEP, s)) for s in seqs)
    assert tracker.gaps() == [SeqRange(STEP, 65532, 2), SeqRange(STEP, 0, 2)]
    assert str(tracker.gaps()[0]) == "STEP seq 65532..65533 (2)"
    assert not tracker.observe(_event(STEP, 3))  # a duplicate
    assert tracker.duplicates == 1
    assert tracker.observe(_event(STEP, 0))  # a late one fills the gap
    assert tracker.gaps() == [SeqRange(STEP, 65532, 2), SeqRange(STEP, 1, 1)]
    # Other packet types pass through untouched.
    assert tracker.observe(DecodedPacket(Header(1, PacketType.ACK, 0, 0), Step(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)))
    assert [p.header.seq for p in tracker.events(STEP)] == [65530, 65531, 65534, 65535, 0, 2, 3, 4]


def test_tracker_requests_gaps_and_the_tail_and_records_losses() -> None:
    tracker = GapTracker()
    for s in (10, 11, 15, 16):
        tracker.observe(_event(STEP, s))
    requests = tracker.requests()
    assert [(c.event_type, c.from_seq, c.count) for c in requests] == [
        (STEP, 12, 3),  # the gap
        (STEP, 17, 65535),  # the tail: whatever came after seq 16
        (int(PacketType.HEEL_RAISE), 0, 65535),  # types never seen: from 0
        (CUE, 0, 65535),
        (int(PacketType.PROGRAM_EVENT), 0, 65535),
    ]
    assert [(c.event_type, c.from_seq) for c in tracker.requests(tail=False)] == [(STEP, 12)]
    # The device resends 14 and reports 12..13 gone; then it says it has sent up to 19.
    tracker.observe(_event(STEP, 14))
    tracker.on_backfill_end(BackfillEnd(STEP, 1, 12, 3, 1, 12, 2, 20))
    assert tracker.lost_ == [SeqRange(STEP, 12, 2)]
    assert tracker.gaps() == [SeqRange(STEP, 17, 3)]  # sent after 16, not yet asked for
    tracker.observe(_event(STEP, 17))
    tracker.observe(_event(STEP, 19))
    tracker.on_backfill_end(BackfillEnd(STEP, 2, 17, 65535, 2, 17, 0, 20))
    assert tracker.gaps() == [] and tracker.lost_ == [SeqRange(STEP, 12, 2), SeqRange(STEP, 18, 1)]
    # A type the host never received, all of whose packets are gone: lost from 0.
    tracker.on_backfill_end(BackfillEnd(CUE, 3, 0, 65535, 0, 0, 4, 4))
    assert SeqRange(CUE, 0, 4) in tracker.lost_


# --------------------------------------------------------------------------- the simulated insole


def _walk_counts(n: int, rate_hz: float = 100.0) -> np.ndarray:
    """8-channel pressure of a periodic walk: 1 s strides, 60 % stance, heel first."""
    t = np.arange(n) / rate_hz
    phase = t % 1.0
    centres = 0.1 + 0.4 * np.arange(8) / 7
    load = np.clip(1 - np.abs(phase[:, None] - centres[None, :]) * 4, 0, None) * (phase[:, None] < 0.6)
    counts: np.ndarray = (load * 20000 + 40).astype(np.uint16)
    return counts


@pytest.fixture
def small_log_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SerialLink]:
    monkeypatch.setenv("INSOLE_EVENT_LOG_RECORDS", "16")  # the board keeps its 16 newest event packets
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings") as board, SerialLink(board.port) as link:
        link.command(Command(CommandCode.PING), timeout_s=10)
        yield link


def _replay_walk(link: SerialLink, seconds: int) -> None:
    xs = tuple(int(v) for v in np.linspace(10, 250, 8))
    link.request(Layout(xs, tuple(20 if k % 2 else -20 for k in range(8))))
    link.command(Command.replay_begin(10000, 8, 0, side=0))
    counts = _walk_counts(seconds * 100)
    for start in range(0, len(counts), 50):
        link.request(Samples(start, counts[start : start + 50], None))
    link.command(Command(CommandCode.REPLAY_END))


@pytest.mark.micropython
def test_backfill_recovers_identical_bytes_and_reports_what_is_gone(small_log_link: SerialLink, tmp_path: Path) -> None:
    link = small_log_link
    raw: list[bytes] = []
    link.on_packet_bytes = raw.append
    _replay_walk(link, 30)
    sent_steps = [bytes(p) for p in raw if p[1] == STEP]
    n = len(sent_steps)
    assert n >= 25
    assert [int.from_bytes(p[2:4], "little") for p in sent_steps] == list(range(n))
    # The link "lost" steps 4..8 (long ago: gone from the 16-packet log) and the 3 before the last.
    dropped = set(range(4, 9)) | {n - 4, n - 3, n - 2}
    tracker = GapTracker()
    kept = [p for p in raw if not (p[1] == STEP and int.from_bytes(p[2:4], "little") in dropped)]
    for packet in kept:
        tracker.observe(decode_packet(packet))
    assert tracker.gaps() == [SeqRange(STEP, 4, 5), SeqRange(STEP, n - 4, 3)]
    link.drain_inbox()
    raw.clear()
    result = backfill(link, tracker)
    # The recent ones come back byte for byte (same seq, same device time); the old ones are gone.
    recovered = [bytes(p) for p in raw if p[1] == STEP]
    assert recovered == sent_steps[n - 4 : n - 1]
    assert [p.header.seq for p in result.recovered] == [n - 4, n - 3, n - 2]
    assert result.lost == [SeqRange(STEP, 4, 5)] and tracker.lost_ == [SeqRange(STEP, 4, 5)]
    assert tracker.gaps() == []
    assert [p.header.seq for p in tracker.events(STEP)] == [s for s in range(n) if s not in range(4, 9)]
    # Asking again for what the host already has: resent, recognised as duplicates.
    seq = link.send(Command.get_events(STEP, n - 3, 3))
    end = link.wait_for(PendingRequest(PacketType.COMMAND, seq, PacketType.BACKFILL_END)).body
    assert isinstance(end, BackfillEnd) and (end.resent, end.lost_count, end.next_seq) == (3, 0, n)
    assert [tracker.observe(p) for p in link.drain_inbox() if p.header.type == STEP] == [False, False, False]

    # The recording of that session: what arrived live, then the backfill answers.
    path = tmp_path / "backfilled.insole"
    header = make_header(source="device", streams=[stream_header(side="left", rate_hz=100.0, n_pressure=8, imu=False)])
    with RecordingWriter(path, header) as writer:
        for k, packet in enumerate(kept + raw):
            writer.append(0, packet, host_ms=k)
    recording = read_recording(path)
    assert recording.lost_events == [LostEvents(0, STEP, 4, 5)]
    assert recording.duplicate_events == 3
    steps = [e.body for e in recording.events if isinstance(e.body, Step)]
    assert sorted(s.step_number for s in steps) == [s + 1 for s in range(n) if s not in range(4, 9)]


@pytest.mark.micropython
def test_get_events_for_the_future_or_a_never_used_type_loses_nothing(small_log_link: SerialLink) -> None:
    link = small_log_link
    for ptype, first in ((STEP, 0), (CUE, 100)):
        seq = link.send(Command.get_events(ptype, first, 50))
        end = link.wait_for(PendingRequest(PacketType.COMMAND, seq, PacketType.BACKFILL_END)).body
        assert isinstance(end, BackfillEnd)
        assert (end.event_type, end.resent, end.lost_count, end.next_seq) == (ptype, 0, 0, 0)
