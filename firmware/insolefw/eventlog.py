# The event log: the exact bytes of every event packet sent (STEP, HEEL_RAISE, CUE),
# kept in a preallocated ring so that GET_EVENTS can resend them unchanged (same seq,
# same time_ms) after a link loss; the host deduplicates by (type, seq).
#
# One slot per packet, header included, CRC not: 40 bytes, the longest event packet
# (CUE; STEP is 36, HEEL_RAISE 24; the length follows from the type). When the ring
# is full the oldest packet is dropped. append() allocates nothing.
from micropython import const

from insolefw import fast
from insolefw.protocol import (HEADER_LEN, STEP_LEN, HEEL_RAISE_LEN, CUE_LEN, T_STEP, T_HEEL_RAISE,
                               T_CUE)

SLOT = const(40)  # bytes per logged packet; boards set EVENT_LOG_RECORDS (docs/protocol.md)


class EventLog:
    def __init__(self, ring):
        # ring: a bytearray of n x 40 bytes, made by the caller early (it is large)
        self.capacity = len(ring) // SLOT
        self._buf = ring
        self._head = 0  # slot of the oldest packet
        self.count = 0
        self.dropped = 0  # packets dropped to make room since boot

    def append(self, packet, length):
        """Keeps packet[0:length], a whole event packet."""
        if self.count == self.capacity:
            self._head = (self._head + 1) % self.capacity
            self.count -= 1
            self.dropped += 1
        slot = (self._head + self.count) % self.capacity
        fast.copy_bytes(self._buf, slot * SLOT, packet, 0, length)
        self.count += 1

    def resend(self, ptype, from_seq, count, out, send):
        """Calls send(out, length) for each packet of ptype held whose seq is in
        [from_seq, from_seq + count), oldest first, after copying it into out (a
        packet buffer with room for the CRC); returns how many. With out None it
        only returns the seq of the oldest packet of ptype held, or -1."""
        buf = self._buf
        sent = 0
        for i in range(self.count):
            off = ((self._head + i) % self.capacity) * SLOT
            if buf[off + 1] != ptype:
                continue
            seq = buf[off + 2] | (buf[off + 3] << 8)
            if out is None:
                return seq
            if (seq - from_seq) & 0xFFFF < count:
                n = HEADER_LEN + (STEP_LEN if ptype == T_STEP else
                                  CUE_LEN if ptype == T_CUE else HEEL_RAISE_LEN)
                fast.copy_bytes(out, 0, buf, off, n)
                send(out, n)
                sent += 1
        return -1 if out is None else sent

    @staticmethod
    def logs(ptype):
        """Whether packets of ptype are logged (and GET_EVENTS may ask for them)."""
        return ptype == T_STEP or ptype == T_HEEL_RAISE or ptype == T_CUE

    def plan(self, ptype, next_seq, from_seq, count):
        """What GET_EVENTS(ptype, from_seq, count) can resend, as (sent, lost).

        next_seq: the seq the next packet of ptype will carry (all before it were sent).
        Of the requested seqs, the first `sent` were sent already, and the first `lost`
        of those are gone for good (older than the log holds). Wrapping u16 arithmetic.
        """
        ahead = (next_seq - from_seq) & 0xFFFF
        if ahead >= 0x8000:
            return 0, 0  # the whole range is in the future: nothing sent yet
        sent = min(count, ahead)
        oldest = self.resend(ptype, 0, 0, None, None)
        if oldest < 0:
            return sent, sent
        held_from = (oldest - from_seq) & 0xFFFF
        if held_from >= 0x8000:
            return sent, 0  # the log reaches back before from_seq
        return sent, min(held_from, sent)
