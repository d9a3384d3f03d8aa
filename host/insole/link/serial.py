"""Serial transport to an insole: a board on /dev/ttyACM0 or the simulated board's pty.

The same pyserial code serves both. Packets are framed per docs/protocol.md; the
decoder never raises on garbage, so a noisy line costs frames, not the session.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import serial  # pyserial

from insole.errors import LinkError, LinkTimeout
from insole.link.base import DEFAULT_TIMEOUT_S, InsoleLink, PendingRequest, SeqCounter
from insole.protocol import Body, DecodedPacket, PacketStream, PacketType, encode_packet, frame


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
                packets = self.stream.feed(data, self.on_packet_bytes)
                if packets or time.monotonic() >= deadline:
                    return packets
            elif time.monotonic() >= deadline:
                return []

    # -- request/answer ----------------------------------------------------------------

    def wait_for(self, pending: PendingRequest, timeout_s: float = DEFAULT_TIMEOUT_S) -> DecodedPacket:
        """Waits for the answer to a request sent (see :meth:`PendingRequest.answered_by`).
        Every other packet stays in ``inbox`` in arrival order, including those that
        arrived in the same read as the answer. An ERROR raises DeviceError."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        while True:
            while checked < len(self.inbox):
                packet = self.inbox[checked]
                if pending.answered_by(packet):
                    del self.inbox[checked]
                    return pending.check(packet, "the device")
                checked += 1
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"no answer from {self.port} to {pending.name()} in {timeout_s} s")
            self.inbox.extend(self.poll(timeout_s=min(0.2, max(0.0, deadline - time.monotonic()))))

    def request(
        self, body: Body, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        seq = self.send(body)
        return self.wait_for(PendingRequest(int(body.TYPE), seq, answer), timeout_s)

    def drain_inbox(self) -> list[DecodedPacket]:
        out = list(self.inbox)
        self.inbox.clear()
        return out
