"""Serial transport to an insole: a board on /dev/ttyACM0 or the simulated board's pty.

The same pyserial code serves both. Packets are framed per docs/protocol.md; the
decoder never raises on garbage, so a noisy line costs frames, not the session.

A host that died mid-frame leaves half a frame in the insole, which would swallow the
next host's first request (the insole answers ERROR BAD_FRAME for the glued bytes).
So a link opens with a 0x00, which ends any such half frame, and a request that meets
a BAD_FRAME before its answer finds out whose frame was refused: it sends a PING as a
fence (the insole answers in order) and is re-sent once if the fence is answered first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import serial  # pyserial

from insole.errors import LinkError, LinkTimeout
from insole.link.base import DEFAULT_TIMEOUT_S, BadFrameError, InsoleLink, PendingRequest, SeqCounter, is_bad_frame
from insole.protocol import (
    Ack,
    Body,
    Command,
    CommandCode,
    DecodedPacket,
    ErrorCode,
    PacketStream,
    PacketType,
    encode_packet,
    frame,
)

FRAME_DELIMITER = b"\x00"


class SerialLink(InsoleLink):
    """One insole over a serial port: send packets, receive decoded packets.

    Packets that are not the answer a caller waits for (step events, status pushes)
    are kept in ``inbox`` in arrival order.
    """

    def __init__(self, port: str, *, baudrate: int = 921600) -> None:
        # The baud rate is ignored by USB CDC and by a pty; it matters for a UART bridge.
        try:
            self._serial = serial.Serial(port, baudrate=baudrate, timeout=0.05, write_timeout=DEFAULT_TIMEOUT_S)
        except serial.SerialException as exc:
            raise LinkError(
                f"cannot open {port}: {exc}", advice="check the cable and the port name, e.g. ls /dev/ttyACM*"
            ) from exc
        self.port = port
        self.stream = PacketStream()
        self.inbox: deque[DecodedPacket] = deque()
        self.on_packet_bytes: Callable[[bytes], None] | None = None
        self._seqs = SeqCounter()
        self._t0 = time.monotonic()
        # PINGs sent as fences (seq -> a wait still watches it); their ACKs are taken out
        # of the stream, and those a wait watches noted as answered.
        self._fences: dict[int, bool] = {}
        self._answered_fences: set[int] = set()
        self.bad_frames_reported = 0  # ERROR BAD_FRAME answers the insole sent
        self.write_raw(FRAME_DELIMITER)  # ends a half frame a previous host left in the insole

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    # -- raw -------------------------------------------------------------------------

    def send(self, body: Body) -> int:
        """Frames and writes one packet; returns its sequence number."""
        return self.send_payload(int(body.TYPE), body.payload())

    def send_payload(self, packet_type: int, payload: bytes) -> int:
        """Like send() for a payload already encoded (replay sends pre-built SAMPLES)."""
        seq = self._seqs.take(packet_type)
        self.write_raw(frame(encode_packet(packet_type, seq, self.host_ms & 0xFFFFFFFF, payload)))
        return seq

    def write_raw(self, data: bytes) -> None:
        self._serial.write(data)

    def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
        """Reads what has arrived (waiting up to timeout_s for the first bytes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = self._serial.in_waiting
            data = self._serial.read(waiting or 1)
            if data:
                packets = [p for p in self.stream.feed(data, self.on_packet_bytes) if not self._is_fence_answer(p)]
                if packets or time.monotonic() >= deadline:
                    return packets
            elif time.monotonic() >= deadline:
                return []

    # -- request/answer ----------------------------------------------------------------

    def _is_fence_answer(self, packet: DecodedPacket) -> bool:
        """Whether ``packet`` is the ACK of a fence PING (noted if a wait still watches it)."""
        body = packet.body
        if not (isinstance(body, Ack) and body.ref_type == PacketType.COMMAND and body.ref_command == CommandCode.PING):
            return False
        if body.ref_seq not in self._fences:
            return False
        if self._fences.pop(body.ref_seq):
            self._answered_fences.add(body.ref_seq)
        return True

    def wait_for(self, pending: PendingRequest, timeout_s: float = DEFAULT_TIMEOUT_S) -> DecodedPacket:
        """Waits for the answer to a request sent (see :meth:`PendingRequest.answered_by`).
        Every other packet stays in ``inbox`` in arrival order, including those that
        arrived in the same read as the answer. An ERROR raises DeviceError.

        An ERROR BAD_FRAME ahead of the answer was about bytes sent before it (a half
        frame or junk: dropped when the answer comes) or about the request itself: a PING
        fence tells, since the insole answers in order. Its ACK before the answer raises
        :class:`BadFrameError` (the request was never seen), not a timeout."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        fence: int | None = None
        while True:
            while checked < len(self.inbox):
                packet = self.inbox[checked]
                if pending.answered_by(packet):
                    del self.inbox[checked]
                    self._drop_bad_frames(checked)
                    if fence is not None:
                        self._answered_fences.discard(fence)
                        if fence in self._fences:
                            self._fences[fence] = False  # its ACK, when it comes, is dropped
                    return pending.check(packet, "the device")
                if fence is None and is_bad_frame(packet):
                    fence = self.send(Command(CommandCode.PING))
                    self._fences[fence] = True
                checked += 1
            if fence is not None and fence in self._answered_fences:
                self._answered_fences.discard(fence)
                self._drop_bad_frames(checked)
                raise BadFrameError(
                    f"{self.port} refused {pending.name()} as a damaged frame (BAD_FRAME)", ErrorCode.BAD_FRAME
                )
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"no answer from {self.port} to {pending.name()} in {timeout_s} s")
            self.inbox.extend(self.poll(timeout_s=min(0.2, max(0.0, deadline - time.monotonic()))))

    def _drop_bad_frames(self, before: int) -> None:
        """Takes the BAD_FRAME answers out of the first ``before`` packets of the inbox:
        a wait has found out what they were about."""
        kept = [p for k, p in enumerate(self.inbox) if k >= before or not is_bad_frame(p)]
        self.bad_frames_reported += len(self.inbox) - len(kept)
        self.inbox.clear()
        self.inbox.extend(kept)

    def request(
        self, body: Body, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        """Sends one packet and waits for its answer; a request whose frame the insole
        refused as damaged is re-sent once (it was never seen, so that is safe)."""
        seq = self.send(body)
        try:
            return self.wait_for(PendingRequest(int(body.TYPE), seq, answer), timeout_s)
        except BadFrameError:
            seq = self.send(body)
            return self.wait_for(PendingRequest(int(body.TYPE), seq, answer), timeout_s)

    def drain_inbox(self) -> list[DecodedPacket]:
        out = list(self.inbox)
        self.inbox.clear()
        return out
