# Packet logs: the exact bytes of every packet sent of some types, kept in a
# preallocated ring so that GET_EVENTS can resend them unchanged (same seq, same
# time_ms) after a link loss; the host deduplicates by (type, seq).
#
# Two logs use this: the event log (STEP, HEEL_RAISE, CUE, PROGRAM_EVENT; 40-byte slots,
# the longest event packet being CUE) and, on boards with the RAM for it, the sample log (live
# SAMPLES packets as sent over BLE, one notification each: 248-byte slots). A packet's
# length follows from its header. When a ring is full the oldest packet is dropped.
# append() allocates nothing.
from micropython import const

from insolefw import fast
from insolefw.protocol import (HEADER_LEN, STEP_LEN, HEEL_RAISE_LEN, CUE_LEN, SAMPLES_HEADER_LEN,
                               PROGRAM_EVENT_LEN, T_STEP, T_HEEL_RAISE, T_CUE, T_SAMPLES,
                               T_PROGRAM_EVENT)

SLOT = const(40)  # bytes per logged event packet; boards set EVENT_LOG_RECORDS
SAMPLE_SLOT = const(248)  # a BLE notification's packet (MTU 247 - 3) and then some


def packet_len(buf, off):
    """Length of the packet at buf[off:] (header included), from its header."""
    ptype = buf[off + 1]
    if ptype == T_SAMPLES:
        p = off + HEADER_LEN
        return HEADER_LEN + SAMPLES_HEADER_LEN + buf[p + 4] * (2 * buf[p + 5] + 12 * buf[p + 6])
    return HEADER_LEN + (STEP_LEN if ptype == T_STEP else CUE_LEN if ptype == T_CUE
                         else PROGRAM_EVENT_LEN if ptype == T_PROGRAM_EVENT else HEEL_RAISE_LEN)


class EventLog:
    def __init__(self, ring, slot=SLOT, types=(T_STEP, T_HEEL_RAISE, T_CUE, T_PROGRAM_EVENT)):
        # ring: a bytearray of n x slot bytes, made by the caller early (it is large)
        self.slot = slot
        self.capacity = len(ring) // slot
        self.types = types
        self._buf = ring
        self._head = 0  # slot of the oldest packet
        self.count = 0
        self.total = 0  # packets appended since boot: a packet's absolute number
        self.dropped = 0  # packets dropped to make room since boot

    def append(self, packet, length):
        """Keeps packet[0:length], a whole packet (no room: not kept, counted)."""
        if length > self.slot or not self.capacity:
            self.dropped += 1
            return
        if self.count == self.capacity:
            self._head = (self._head + 1) % self.capacity
            self.count -= 1
            self.dropped += 1
        slot = (self._head + self.count) % self.capacity
        fast.copy_bytes(self._buf, slot * self.slot, packet, 0, length)
        self.count += 1
        self.total += 1

    def clear(self):
        """Forgets every packet held and overwrites their bytes (a factory reset: what
        the wearer did must not outlive it in RAM either). `total` goes on, so absolute
        numbers and the seqs of packets still to come stay as they were."""
        buf = self._buf
        n = len(buf)
        done = self.slot if self.slot < n else n
        for i in range(done):
            buf[i] = 0
        while done < n:  # doubles the zeroed run each pass: no buffer allocated
            step = done if done < n - done else n - done
            fast.copy_bytes(buf, done, buf, 0, step)
            done += step
        self._head = 0
        self.count = 0

    def logs(self, ptype):
        """Whether packets of ptype are logged here (and GET_EVENTS may ask for them)."""
        return self.capacity > 0 and ptype in self.types

    def next_packet(self, ptype, from_seq, count, start, out):
        """Copies into out the first packet held of ptype with seq in [from_seq,
        from_seq + count), searching from absolute number `start` on; returns
        (its absolute number + 1, its length), or (-1, 0) when there is none. Packets
        appended meanwhile are found too, packets dropped meanwhile are skipped: a
        paced resend may span many calls."""
        buf = self._buf
        first = self.total - self.count
        a = start if start > first else first
        while a < self.total:
            off = ((self._head + a - first) % self.capacity) * self.slot
            if buf[off + 1] == ptype:
                seq = buf[off + 2] | (buf[off + 3] << 8)
                if (seq - from_seq) & 0xFFFF < count:
                    n = packet_len(buf, off)
                    fast.copy_bytes(out, 0, buf, off, n)
                    return a + 1, n
            a += 1
        return -1, 0

    def resend(self, ptype, from_seq, count, out, send):
        """Calls send(out, length) for each packet of ptype held whose seq is in
        [from_seq, from_seq + count), oldest first; returns how many."""
        sent = 0
        a = 0
        while True:
            a, n = self.next_packet(ptype, from_seq, count, a, out)
            if a < 0:
                return sent
            send(out, n)
            sent += 1

    def oldest_seq(self, ptype):
        """The seq of the oldest packet of ptype held, or -1."""
        buf = self._buf
        for i in range(self.count):
            off = ((self._head + i) % self.capacity) * self.slot
            if buf[off + 1] == ptype:
                return buf[off + 2] | (buf[off + 3] << 8)
        return -1

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
        oldest = self.oldest_seq(ptype)
        if oldest < 0:
            return sent, sent
        held_from = (oldest - from_seq) & 0xFFFF
        if held_from >= 0x8000:
            return sent, 0  # the log reaches back before from_seq
        return sent, min(held_from, sent)
