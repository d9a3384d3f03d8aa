"""Protocol v1 numbers: lengths, "n/a" sentinels and the codes of docs/protocol.md.

The firmware states the same codes as ``const()`` in ``firmware/insolefw/protocol.py``
(and its cue, settings and IMU modules); ``tests/test_constants_sync.py`` keeps the two
trees equal.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from insole.model import WalkingDirection

PROTOCOL_VERSION = 1
HEADER_LEN = 8
MAX_PACKET_LEN = 1024  # header + payload
CRC_LEN = 2
MIN_PACKET_LEN = HEADER_LEN
SAMPLES_HEADER_LEN = 8
MAX_SAMPLES_PER_PACKET = 255
MAX_PRESSURE_CHANNELS = 16
IMU_AXES = 6  # ax ay az gx gy gz

# "n/a" sentinels: a decoder reports these as missing, never as numbers.
NA_U8 = 0xFF
NA_U16 = 0xFFFF
NA_U32 = 0xFFFFFFFF
NA_I16 = -32768

U16_WRAP = 1 << 16
U32_WRAP = 1 << 32


class PacketType(IntEnum):
    STATUS = 0x01
    SAMPLES = 0x02
    STEP = 0x03
    HEEL_RAISE = 0x04
    SETTINGS = 0x05
    COMMAND = 0x06
    ACK = 0x07
    ERROR = 0x08
    LAYOUT = 0x09
    CUE = 0x0A
    BACKFILL_END = 0x0B
    BONDS = 0x0C
    PROGRAM = 0x0D
    PROGRAM_EVENT = 0x0E


class CommandCode(IntEnum):
    PING = 0x01
    GET_STATUS = 0x02
    GET_SETTINGS = 0x03
    START_STREAM = 0x04
    STOP_STREAM = 0x05
    REPLAY_BEGIN = 0x06
    REPLAY_END = 0x07
    GET_LAYOUT = 0x08
    CUE_TEST = 0x09
    EXIT_TO_REPL = 0x0A
    GET_EVENTS = 0x0B
    LIST_BONDS = 0x0C
    CLEAR_BONDS = 0x0D
    FACTORY_RESET = 0x0E
    OPEN_PAIRING = 0x0F
    GET_PROGRAM = 0x10
    CLEAR_PROGRAM = 0x11


# Maintenance: what only the USB link may ask for. Over BLE, even from a bonded central,
# the device answers NOT_PERMITTED and changes nothing (firmware: USB_ONLY_COMMANDS).
USB_ONLY_COMMANDS = frozenset(
    {
        CommandCode.REPLAY_BEGIN,
        CommandCode.REPLAY_END,
        CommandCode.EXIT_TO_REPL,
        CommandCode.LIST_BONDS,
        CommandCode.CLEAR_BONDS,
        CommandCode.FACTORY_RESET,
        CommandCode.OPEN_PAIRING,
    }
)
# Host-to-device packets other than COMMAND that only the USB link may send: replay samples.
USB_ONLY_PACKET_TYPES = frozenset({PacketType.SAMPLES})


class ErrorCode(IntEnum):
    UNSUPPORTED_VERSION = 1
    UNKNOWN_TYPE = 2
    BAD_LENGTH = 3
    BAD_VALUE = 4
    BAD_STATE = 5
    UNKNOWN_COMMAND = 6
    BAD_FRAME = 7
    OVERFLOW = 8
    NOT_BONDED = 9
    NOT_PERMITTED = 10


class Side(IntEnum):
    LEFT = 0
    RIGHT = 1


class Mode(IntEnum):
    IDLE = 0
    LIVE = 1
    REPLAY = 2


class Direction(IntEnum):
    UNKNOWN = 0
    FORWARD = 1
    BACKWARD = 2


def direction_name(code: int) -> WalkingDirection:
    """A STEP's ``direction`` code as a word: "forward", "backward" or "unknown"."""
    return "forward" if code == Direction.FORWARD else "backward" if code == Direction.BACKWARD else "unknown"


class CueMode(IntEnum):
    OFF = 0
    FOOT_ANGLE = 1
    METRONOME = 2


class CueSchedule(IntEnum):
    """Which out-of-band steps get a cue (SETTINGS ``schedule``)."""

    EVERY_STEP = 0
    EVERY_KTH = 1
    PROBABILITY = 2


class CuePattern(IntEnum):
    """Pulse patterns of the firmware (insolefw/cue.py): on/off segments as weights of the duration."""

    LONG = 1  # on
    SHORT_SHORT = 2  # on off on, thirds
    TRIPLE = 3  # on off on off on, fifths
    LONG_SHORT = 4  # on 2/4, off 1/4, on 1/4


# On/off segment weights of each pattern, on first (the firmware's PATTERNS table).
CUE_PATTERN_WEIGHTS: dict[int, tuple[int, ...]] = {
    CuePattern.LONG: (1,),
    CuePattern.SHORT_SHORT: (1, 1, 1),
    CuePattern.TRIPLE: (1, 1, 1, 1, 1),
    CuePattern.LONG_SHORT: (2, 1, 1),
}


class CueReason(IntEnum):
    TOE_IN = 1  # FPA above the band (toes out too far): turn the toes in
    TOE_OUT = 2  # FPA below the band: turn the toes out
    METRONOME = 3
    TEST = 4  # CUE_TEST command


class CueOutcome(IntEnum):
    CUED = 0
    FADED_EVERY_KTH = 1  # out of band, not the k-th out-of-band step
    FADED_PROBABILITY = 2  # out of band, the draw said no
    NO_FEEDBACK_BLOCK = 3  # out of band inside a no-feedback block


# Event packets the device keeps in its event log and resends on GET_EVENTS.
LOGGED_EVENT_TYPES = (PacketType.STEP, PacketType.HEEL_RAISE, PacketType.CUE, PacketType.PROGRAM_EVENT)
# What GET_EVENTS may ask for: the event log's types, and live SAMPLES where the
# device keeps a sample log (else it answers BAD_VALUE).
BACKFILL_TYPES = (PacketType.SAMPLES, *LOGGED_EVENT_TYPES)


class Strike(IntEnum):
    """A STEP's ``strike``: which part of the foot touched down first (docs/protocol.md)."""

    HEEL = 1
    MIDFOOT = 2
    FOREFOOT = 3


STEP_FLAG_CONTACT_PRESSURE = 0x01
STEP_FLAG_CONTACT_IMU = 0x02

SETTINGS_VERSION = 2  # of the SETTINGS layout (its first byte)

# Fixed payload lengths; SAMPLES, COMMAND and LAYOUT are variable.
FIXED_PAYLOAD_LEN: dict[int, int] = {
    PacketType.STATUS: 28,
    PacketType.STEP: 28,
    PacketType.HEEL_RAISE: 16,
    PacketType.SETTINGS: 36,
    PacketType.ACK: 4,
    PacketType.ERROR: 6,
    PacketType.CUE: 32,
    PacketType.BACKFILL_END: 16,
    PacketType.PROGRAM_EVENT: 24,
}

# Argument bytes after the 2-byte COMMAND head, per command.
COMMAND_ARG_LEN: dict[int, int] = {code: 0 for code in CommandCode}
COMMAND_ARG_LEN[CommandCode.REPLAY_BEGIN] = 6
COMMAND_ARG_LEN[CommandCode.CUE_TEST] = 4
COMMAND_ARG_LEN[CommandCode.GET_EVENTS] = 6
COMMAND_ARG_LEN[CommandCode.OPEN_PAIRING] = 2

CUE_TEST_MIN_MS = 10
CUE_TEST_MAX_MS = 2000

OPEN_PAIRING_MIN_S = 1
OPEN_PAIRING_MAX_S = 600  # the longest pairing window a host may open (10 min)

# Exercise programs (docs/programs.md): PROGRAM is a 4-byte head and 16 bytes per block.
PROGRAM_VERSION = 1
PROGRAM_HEAD_LEN = 4
PROGRAM_BLOCK_LEN = 16
PROGRAM_MAX_BLOCKS = 8
PROGRAM_MAX_ID = 65534
PROGRAM_FLAG_METRONOME = 0x01
PROGRAM_FLAG_GOAL_SECONDS = 0x02  # walking blocks only: the goal is seconds, not steps


class BlockKind(IntEnum):
    """A program block's ``kind``."""

    FPA_BASELINE = 1
    FPA_FEEDBACK = 2
    FPA_PROBE = 3
    BACKWARD_WALK = 4
    HEEL_RAISES = 5
    WALK = 6


class ProgramEventKind(IntEnum):
    """A PROGRAM_EVENT's ``event``."""

    SESSION_START = 1
    SESSION_RESUME = 2
    BLOCK_START = 3
    BLOCK_END = 4
    SIGNAL = 5
    SESSION_END = 6


class BlockEnd(IntEnum):
    """Why a block ended: a BLOCK_END's ``detail``."""

    GOAL = 1
    LIMIT = 2
    INTERRUPTED = 3


class ProgramSignal(IntEnum):
    """The program's fixed haptic signals: a SIGNAL's ``detail`` (docs/programs.md)."""

    HOLD_REACHED = 5
    SET_DONE = 6
    REST_OVER = 7
    BLOCK_DONE = 8
    SESSION_DONE = 9


BOND_ADDR_LEN = 7  # a bonded central in BONDS: address type u8, address 6 bytes LSB first

# The IMU columns of a sample record, in wire order (docs/protocol.md field names).
IMU_FIELD_NAMES = ("ax", "ay", "az", "gx", "gy", "gz")
