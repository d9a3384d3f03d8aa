"""Any packet of protocol v1: the union of the bodies, :func:`decode_packet`, and the
field view (docs/protocol.md names) that the golden vectors are written in."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from insole.errors import ProtocolError
from insole.protocol.bodies import (
    Ack,
    BackfillEnd,
    BondedPeer,
    Bonds,
    Command,
    Cue,
    ErrorReply,
    HeelRaise,
    Layout,
    Program,
    ProgramBlock,
    ProgramEvent,
    Settings,
    Status,
    Step,
)
from insole.protocol.constants import HEADER_LEN, IMU_AXES, IMU_FIELD_NAMES, NA_I16, NA_U16, ErrorCode, PacketType
from insole.protocol.header import Header, PacketError, decode_header
from insole.protocol.samples import Samples

Body: TypeAlias = (
    Status | Samples | Step | HeelRaise | Settings | Command | Ack | ErrorReply | Layout | Cue | BackfillEnd | Bonds
    | Program | ProgramEvent
)

BODY_CLASSES: dict[int, Any] = {
    PacketType.STATUS: Status,
    PacketType.SAMPLES: Samples,
    PacketType.STEP: Step,
    PacketType.HEEL_RAISE: HeelRaise,
    PacketType.SETTINGS: Settings,
    PacketType.COMMAND: Command,
    PacketType.ACK: Ack,
    PacketType.ERROR: ErrorReply,
    PacketType.LAYOUT: Layout,
    PacketType.CUE: Cue,
    PacketType.BACKFILL_END: BackfillEnd,
    PacketType.BONDS: Bonds,
    PacketType.PROGRAM: Program,
    PacketType.PROGRAM_EVENT: ProgramEvent,
}


@dataclass(frozen=True)
class DecodedPacket:
    """A decoded packet; ``stream`` and ``host_ms`` are set when it came from a recording."""

    header: Header
    body: Body
    stream: int | None = None
    host_ms: int | None = None

    @property
    def type(self) -> int:
        return self.header.type

    def to_fields(self) -> dict[str, Any]:
        """Header and body fields by their docs/protocol.md names (sentinels as None)."""
        out: dict[str, Any] = {
            "version": self.header.version,
            "type": self.header.type,
            "seq": self.header.seq,
            "time_ms": self.header.time_ms,
        }
        out.update(body_to_fields(self.body))
        return out


def decode_packet(data: bytes) -> DecodedPacket:
    """Decode one packet (no framing).

    Raises :class:`PacketVersionError` (an ``UnsupportedVersionError``) for another
    protocol version and :class:`PacketError` (a ``ProtocolError``) for a bad length,
    type, command or value; both carry the ERROR ``code`` a device would answer with.
    """
    header = decode_header(data)
    cls = BODY_CLASSES.get(header.type)
    if cls is None:
        raise PacketError(f"unknown packet type {header.type:#04x}", ErrorCode.UNKNOWN_TYPE, reason="unknown_type")
    return DecodedPacket(header, cls.decode(bytes(data[HEADER_LEN:])))



def _with_none(values: npt.NDArray[Any], sentinel: int) -> list[Any]:
    """Array → nested lists with the n/a sentinel as None."""
    as_objects = values.astype(object)
    as_objects[values == sentinel] = None
    nested: list[Any] = as_objects.tolist()
    return nested


def body_to_fields(body: Body) -> dict[str, Any]:
    """A body's fields by their docs/protocol.md names, sentinels as None.

    SAMPLES records become columns: ``p`` is a list of per-sample channel lists and
    ``ax`` … ``gz`` are per-sample lists (absent without IMU). BONDS: ``count`` and the
    lists ``addr_type`` and ``address`` (most significant byte first). PROGRAM:
    ``program_version``, ``n_blocks``, ``program_id`` and ``blocks``, a list of each
    block's wire fields (``kind`` … ``limit_s``).
    """
    if isinstance(body, Samples):
        out: dict[str, Any] = {
            "first_index": body.first_index,
            "count": body.count,
            "n_pressure": body.n_pressure,
            "imu": body.imu,
            "p": _with_none(body.pressure_counts, NA_U16),
        }
        if body.imu_raw is not None:
            columns = _with_none(body.imu_raw.T, NA_I16)
            out.update(zip(IMU_FIELD_NAMES, columns, strict=True))
        return out
    if isinstance(body, Layout):
        return {"n": body.n, "x_mm": list(body.x_mm), "y_mm": list(body.y_mm)}
    if isinstance(body, Command):
        return {"command": body.command, **body.arguments()}
    if isinstance(body, Program):
        return {
            "program_version": body.program_version,
            "n_blocks": body.n_blocks,
            "program_id": body.program_id,
            "blocks": [{f.name: getattr(block, f.name) for f in fields(block)} for block in body.blocks],
        }
    if isinstance(body, Bonds):
        return {
            "count": body.count,
            "addr_type": [peer.addr_type for peer in body.peers],
            "address": [peer.address for peer in body.peers],
        }
    return {f.name: getattr(body, f.name) for f in fields(body)}


def _from_none(values: Any, sentinel: int, shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    if shape[0] * shape[1] == 0:
        return np.zeros(shape, dtype=np.int64)
    array = np.array(values, dtype=object).reshape(shape)
    array[np.vectorize(lambda value: value is None, otypes=[np.bool_])(array)] = sentinel
    return array.astype(np.int64)


def body_from_fields(packet_type: int, values: dict[str, Any]) -> Body:
    """Inverse of :func:`body_to_fields` (header keys and ``count``/``n``/``n_blocks`` are implied)."""
    header_keys = {"version", "type", "seq", "time_ms"}
    values = {k: v for k, v in values.items() if k not in header_keys}
    if packet_type == PacketType.SAMPLES:
        count, n_p = int(values["count"]), int(values["n_pressure"])
        pressure = _from_none(values["p"], NA_U16, (count, n_p)).astype(np.uint16)
        imu = None
        if values["imu"]:
            imu = _from_none([values[name] for name in IMU_FIELD_NAMES], NA_I16, (IMU_AXES, count)).T
        return Samples(int(values["first_index"]), pressure, None if imu is None else imu.astype(np.int16))
    if packet_type == PacketType.LAYOUT:
        return Layout(tuple(values["x_mm"]), tuple(values["y_mm"]))
    if packet_type == PacketType.BONDS:
        peers = zip(values["addr_type"], values["address"], strict=True)
        return Bonds(tuple(BondedPeer(int(addr_type), str(address)) for addr_type, address in peers))
    if packet_type == PacketType.PROGRAM:
        blocks = tuple(ProgramBlock(**block) for block in values["blocks"])
        return Program(int(values["program_id"]), blocks, int(values["program_version"]))
    cls = BODY_CLASSES.get(packet_type)
    if cls is None:
        raise ProtocolError(f"unknown packet type {packet_type:#04x}")
    body: Body = cls(**values)
    return body

