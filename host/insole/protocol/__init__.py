"""Wire protocol v1 on the host (docs/protocol.md), bottom up:

* :mod:`~insole.protocol.constants` — versions, lengths, "n/a" sentinels and the codes
  (packet types, commands, errors, modes, cue reasons …) the firmware shares;
* :mod:`~insole.protocol.header` — the 8-byte header and why a packet is refused
  (:class:`PacketError`, :class:`PacketVersionError`, both carrying the device's ERROR code);
* :mod:`~insole.protocol.bodies` — one frozen dataclass per packet type, as offset tables;
* :mod:`~insole.protocol.samples` — SAMPLES, one batch or many at once with numpy;
* :mod:`~insole.protocol.packets` — :func:`decode_packet`, :class:`DecodedPacket`, the field view;
* :mod:`~insole.protocol.framing` — COBS + CRC-16 frames and :class:`PacketStream`.

Everything public is re-exported here: ``from insole.protocol import Step, decode_packet``.
Physical units are :mod:`insole.quantise`'s.
"""

from insole.protocol.bodies import (
    COMMAND_ARGUMENTS,
    SETTINGS_RANGES,
    Ack,
    BackfillEnd,
    Command,
    Cue,
    ErrorReply,
    HeelRaise,
    Layout,
    Settings,
    Status,
    Step,
)
from insole.protocol.constants import (
    BACKFILL_TYPES,
    COMMAND_ARG_LEN,
    CRC_LEN,
    CUE_PATTERN_WEIGHTS,
    CUE_TEST_MAX_MS,
    CUE_TEST_MIN_MS,
    FIXED_PAYLOAD_LEN,
    HEADER_LEN,
    IMU_AXES,
    IMU_FIELD_NAMES,
    LOGGED_EVENT_TYPES,
    MAX_PACKET_LEN,
    MAX_PRESSURE_CHANNELS,
    MAX_SAMPLES_PER_PACKET,
    MIN_PACKET_LEN,
    NA_I16,
    NA_U8,
    NA_U16,
    NA_U32,
    PROTOCOL_VERSION,
    SAMPLES_HEADER_LEN,
    SETTINGS_VERSION,
    STEP_FLAG_CONTACT_IMU,
    STEP_FLAG_CONTACT_PRESSURE,
    U16_WRAP,
    U32_WRAP,
    CommandCode,
    CueMode,
    CueOutcome,
    CuePattern,
    CueReason,
    CueSchedule,
    Direction,
    ErrorCode,
    Mode,
    PacketType,
    Side,
)
from insole.protocol.framing import FrameDecoder, PacketStream, crc16, frame, max_encoded_frame_len
from insole.protocol.header import Header, PacketError, PacketVersionError, decode_header, encode_packet, unsupported_version_message
from insole.protocol.packets import BODY_CLASSES, Body, DecodedPacket, body_from_fields, body_to_fields, decode_packet
from insole.protocol.samples import (
    Samples,
    decode_sample_batches,
    encode_sample_payloads,
    encode_samples,
    max_samples_per_packet,
    sample_record_len,
)

__all__ = [
    "BACKFILL_TYPES", "BODY_CLASSES", "COMMAND_ARGUMENTS", "COMMAND_ARG_LEN", "CRC_LEN", "CUE_PATTERN_WEIGHTS",
    "CUE_TEST_MAX_MS", "CUE_TEST_MIN_MS", "FIXED_PAYLOAD_LEN", "HEADER_LEN", "IMU_AXES", "IMU_FIELD_NAMES",
    "LOGGED_EVENT_TYPES", "MAX_PACKET_LEN", "MAX_PRESSURE_CHANNELS", "MAX_SAMPLES_PER_PACKET", "MIN_PACKET_LEN",
    "NA_I16", "NA_U16", "NA_U32", "NA_U8", "PROTOCOL_VERSION", "SAMPLES_HEADER_LEN", "SETTINGS_RANGES",
    "SETTINGS_VERSION", "STEP_FLAG_CONTACT_IMU", "STEP_FLAG_CONTACT_PRESSURE", "U16_WRAP", "U32_WRAP",
    "Ack", "BackfillEnd", "Body", "Command", "CommandCode", "Cue", "CueMode", "CueOutcome", "CuePattern",
    "CueReason", "CueSchedule", "DecodedPacket", "Direction", "ErrorCode", "ErrorReply", "FrameDecoder", "Header",
    "HeelRaise", "Layout", "Mode", "PacketError", "PacketStream", "PacketType", "PacketVersionError", "Samples",
    "Settings", "Side", "Status", "Step",
    "body_from_fields", "body_to_fields", "crc16", "decode_header", "decode_packet", "decode_sample_batches",
    "encode_packet", "encode_sample_payloads", "encode_samples", "frame", "max_encoded_frame_len",
    "max_samples_per_packet", "sample_record_len", "unsupported_version_message",
]  # fmt: skip
