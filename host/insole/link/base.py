"""What every link to one insole offers, whatever carries it (USB serial, a pty, BLE).

:class:`InsoleLink` is the interface live sessions, replay and the CLI use; its
subclasses (:class:`~insole.link.serial.SerialLink`, :class:`~insole.link.ble.BleInsoleLink`)
provide ``request``, ``poll`` and ``drain_inbox``, and inherit the typed helpers
(``get_status() -> Status``, ``get_settings() -> Settings`` …). Both number their
packets with one :class:`SeqCounter` and match answers with one rule,
:meth:`PendingRequest.answered_by`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from insole.errors import DeviceError, ProtocolError, UnsupportedVersionError
from insole.protocol import (
    U16_WRAP,
    Ack,
    BackfillEnd,
    Body,
    Bonds,
    Command,
    CommandCode,
    DecodedPacket,
    ErrorCode,
    ErrorReply,
    Layout,
    PacketType,
    Program,
    Settings,
    Status,
)

DEFAULT_TIMEOUT_S = 5.0
# Answers that carry no reference to their request: the oldest request waiting for
# that type takes them.
PLAIN_ANSWERS = (PacketType.STATUS, PacketType.SETTINGS, PacketType.LAYOUT, PacketType.BONDS, PacketType.PROGRAM)

# What a user can do about a refusal, by ERROR code (the rest need no advice).
_ADVICE: dict[int, str] = {
    ErrorCode.NOT_BONDED: "pair the insole with this host first; it takes commands only on a bonded, encrypted link",
    ErrorCode.NOT_PERMITTED: "maintenance command refused on this link: USB only; connect the insole by cable and use --port",
    ErrorCode.UNSUPPORTED_VERSION: UnsupportedVersionError.advice,
}

_B = TypeVar("_B", bound=Body)


class BadFrameError(DeviceError):
    """The insole refused a request's frame as damaged (ERROR BAD_FRAME): it never saw the request."""

    advice = "check the USB cable, and that no other program writes to the insole's port"


def is_bad_frame(packet: DecodedPacket) -> bool:
    """An ERROR BAD_FRAME: the insole refused bytes it could not frame (they name no request)."""
    body = packet.body
    return isinstance(body, ErrorReply) and body.error == ErrorCode.BAD_FRAME and body.ref_type == 0


class SeqCounter:
    """The sender's sequence numbers: one wrapping u16 counter per packet type."""

    def __init__(self) -> None:
        self._next = [0] * 256

    def take(self, packet_type: int) -> int:
        seq = self._next[packet_type]
        self._next[packet_type] = (seq + 1) % U16_WRAP
        return seq


@dataclass(frozen=True)
class PendingRequest:
    """A request sent (its type and seq) and the packet type it is answered with."""

    packet_type: int
    seq: int
    answer: int = PacketType.ACK

    def answered_by(self, packet: DecodedPacket) -> bool:
        """Whether ``packet`` answers this request: an ACK or ERROR naming it, a
        BACKFILL_END naming it (GET_EVENTS), or a plain STATUS/SETTINGS/LAYOUT asked for."""
        body = packet.body
        if isinstance(body, (Ack, ErrorReply)):
            return body.ref_type == self.packet_type and body.ref_seq == self.seq
        if isinstance(body, BackfillEnd):
            return self.answer == PacketType.BACKFILL_END and body.ref_seq == self.seq
        return packet.type == self.answer and packet.type in PLAIN_ANSWERS

    def name(self) -> str:
        try:
            return f"{PacketType(self.packet_type).name} #{self.seq}"
        except ValueError:
            return f"type {self.packet_type:#04x} #{self.seq}"

    def check(self, reply: DecodedPacket, who: str) -> DecodedPacket:
        """The reply, unless it is an ERROR: then DeviceError with the code and advice."""
        body = reply.body
        if isinstance(body, ErrorReply):
            raise DeviceError(
                f"{who} refused {self.name()}: {body.error_name()} (detail {body.detail})",
                body.error,
                body.detail,
                advice=_ADVICE.get(body.error),
            )
        return reply


class InsoleLink(ABC):
    """One insole: send requests, receive packets.

    ``port`` names the insole (a serial port, or its advertised name over BLE).
    Packets that answer no request (steps, samples, status pushes) wait in the link in
    arrival order for :meth:`poll` / :meth:`drain_inbox`; ``on_packet_bytes`` sees
    every packet's bytes as they arrive (recorders append them).
    """

    port: str
    on_packet_bytes: Callable[[bytes], None] | None

    @abstractmethod
    def request(
        self, body: Body, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        """Sends one packet and waits for its answer: an ACK, a packet of type
        ``answer``, or an ERROR (raised as :class:`~insole.errors.DeviceError`)."""

    @abstractmethod
    def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
        """Packets that arrived since the last poll (waiting up to ``timeout_s`` for one)."""

    @abstractmethod
    def drain_inbox(self) -> list[DecodedPacket]:
        """Every packet waiting in the link, in arrival order."""

    def command(
        self, command: Command, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        return self.request(command, answer, timeout_s)

    # -- typed helpers ---------------------------------------------------------------

    def _ask(self, code: CommandCode, answer: PacketType, body_type: type[_B], timeout_s: float) -> _B:
        body = self.command(Command(code), answer, timeout_s).body
        if not isinstance(body, body_type):
            raise ProtocolError(f"{self.port} answered {code.name} with {type(body).__name__}")
        return body

    def ping(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command(Command(CommandCode.PING), timeout_s=timeout_s)

    def get_status(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Status:
        return self._ask(CommandCode.GET_STATUS, PacketType.STATUS, Status, timeout_s)

    def get_settings(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Settings:
        return self._ask(CommandCode.GET_SETTINGS, PacketType.SETTINGS, Settings, timeout_s)

    def get_layout(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Layout:
        return self._ask(CommandCode.GET_LAYOUT, PacketType.LAYOUT, Layout, timeout_s)

    def set_settings(self, settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Writes settings; the insole validates and persists them or keeps its old ones."""
        self.request(settings, timeout_s=timeout_s)

    def set_layout(self, layout: Layout, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.request(layout, timeout_s=timeout_s)

    def get_program(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Program:
        """The exercise program the insole holds (no blocks: none stored)."""
        return self._ask(CommandCode.GET_PROGRAM, PacketType.PROGRAM, Program, timeout_s)

    def set_program(self, program: Program, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Writes a program; the insole validates and stores it whole, or keeps its old one."""
        self.request(program, timeout_s=timeout_s)

    def clear_program(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Removes the insole's program and its state (refused while a stream runs)."""
        self.command(Command(CommandCode.CLEAR_PROGRAM), timeout_s=timeout_s)

    def start_stream(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command(Command(CommandCode.START_STREAM), timeout_s=timeout_s)

    def stop_stream(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command(Command(CommandCode.STOP_STREAM), timeout_s=timeout_s)

    # -- maintenance: the insole answers these on USB only (NOT_PERMITTED over BLE) -----

    def list_bonds(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Bonds:
        """The centrals bonded with the insole, most recently used first."""
        return self._ask(CommandCode.LIST_BONDS, PacketType.BONDS, Bonds, timeout_s)

    def clear_bonds(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Forgets every bond; each host must pair again, inside a pairing window."""
        self.command(Command(CommandCode.CLEAR_BONDS), timeout_s=timeout_s)

    def factory_reset(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Default settings, no bonds, empty logs, the board's own layout."""
        self.command(Command(CommandCode.FACTORY_RESET), timeout_s=timeout_s)

    def open_pairing(self, seconds: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Opens the insole's pairing window for ``seconds`` (1..600)."""
        self.command(Command.open_pairing(seconds), timeout_s=timeout_s)
