# Wire protocol v1 on the device: constants, packet builders and the serial framing.
# The tables are in docs/protocol.md; docs/protocol-vectors.json holds the golden
# vectors that firmware/tests/fwtest_vectors*.py check this module against.
from micropython import const
import struct
from array import array

from insolefw import fast

VERSION = const(1)
HEADER_LEN = const(8)
MAX_PACKET = const(1024)
CRC_LEN = const(2)

# Packet types
T_STATUS = const(0x01)
T_SAMPLES = const(0x02)
T_STEP = const(0x03)
T_HEEL_RAISE = const(0x04)
T_SETTINGS = const(0x05)
T_COMMAND = const(0x06)
T_ACK = const(0x07)
T_ERROR = const(0x08)
T_LAYOUT = const(0x09)
T_CUE = const(0x0A)
T_BACKFILL_END = const(0x0B)
T_BONDS = const(0x0C)
T_PROGRAM = const(0x0D)
T_PROGRAM_EVENT = const(0x0E)
_N_TYPES = const(15)

# Payload lengths of fixed-size packets
STATUS_LEN = const(28)
STEP_LEN = const(28)
HEEL_RAISE_LEN = const(16)
SETTINGS_LEN = const(36)
CUE_LEN = const(32)
BACKFILL_END_LEN = const(16)
PROGRAM_EVENT_LEN = const(24)
ACK_LEN = const(4)
ERROR_LEN = const(6)
SAMPLES_HEADER_LEN = const(8)
BOND_ADDR_LEN = const(7)  # a bonded central as NimBLE keys it: address type, 6 bytes LSB first
MAX_BONDS_LISTED = const(144)  # (MAX_PACKET - HEADER_LEN - 2) // BOND_ADDR_LEN

# Commands
CMD_PING = const(0x01)
CMD_GET_STATUS = const(0x02)
CMD_GET_SETTINGS = const(0x03)
CMD_START_STREAM = const(0x04)
CMD_STOP_STREAM = const(0x05)
CMD_REPLAY_BEGIN = const(0x06)
CMD_REPLAY_END = const(0x07)
CMD_GET_LAYOUT = const(0x08)
CMD_CUE_TEST = const(0x09)
CMD_EXIT_TO_REPL = const(0x0A)
CMD_GET_EVENTS = const(0x0B)
CMD_LIST_BONDS = const(0x0C)
CMD_CLEAR_BONDS = const(0x0D)
CMD_FACTORY_RESET = const(0x0E)
CMD_OPEN_PAIRING = const(0x0F)
CMD_GET_PROGRAM = const(0x10)
CMD_CLEAR_PROGRAM = const(0x11)
# Commands only the USB link may give (bit n = command n): a BLE central, even a bonded
# one, is refused with E_NOT_PERMITTED. They end the firmware, stop or feed the
# measurement (a replay replaces the sensors), or manage who may pair.
USB_ONLY_COMMANDS = const((1 << CMD_REPLAY_BEGIN) | (1 << CMD_REPLAY_END) | (1 << CMD_EXIT_TO_REPL)
                          | (1 << CMD_LIST_BONDS) | (1 << CMD_CLEAR_BONDS) | (1 << CMD_FACTORY_RESET)
                          | (1 << CMD_OPEN_PAIRING))
OPEN_PAIRING_MAX_S = const(600)

# Error codes
E_UNSUPPORTED_VERSION = const(1)
E_UNKNOWN_TYPE = const(2)
E_BAD_LENGTH = const(3)
E_BAD_VALUE = const(4)
E_BAD_STATE = const(5)
E_UNKNOWN_COMMAND = const(6)
E_BAD_FRAME = const(7)
E_OVERFLOW = const(8)
E_NOT_BONDED = const(9)  # BLE control write on a link that is not encrypted and bonded
E_NOT_PERMITTED = const(10)  # a USB-only (maintenance) packet that came over BLE

# "Not available" sentinels
NA_U8 = const(0xFF)
NA_U16 = const(0xFFFF)
NA_I16 = const(-32768)

# Device clock wraps at 2**30 ms so it stays a small int on the ESP32.
TIME_MASK = const(0x3FFFFFFF)
_TIME_HALF = const(0x20000000)


def time_add_ms(t_ms, d_ms):
    """Device time t_ms plus d_ms (|d_ms| < 2**29), modulo 2**30. Never forms a value
    beyond the ESP32's small ints (+-2**30): t_ms + d_ms itself would be a big int,
    allocated, near the wrap."""
    if d_ms > TIME_MASK - t_ms:
        return t_ms - (TIME_MASK - d_ms) - 1
    return (t_ms + d_ms) & TIME_MASK


def time_diff_ms(a_ms, b_ms):
    """a_ms - b_ms for two device times, as ticks_diff for a 2**30 period: in
    [-2**29, 2**29), whatever the wrap between them."""
    d = (a_ms - b_ms) & TIME_MASK
    return d - TIME_MASK - 1 if d >= _TIME_HALF else d


_STATUS_FMT = const("<BBBBBBBBHHIIIHH")
_STEP_FMT = const("<IIHHhBBHBBHHI")
_HEEL_RAISE_FMT = const("<IIHHHH")
_ACK_FMT = const("<BBH")
_ERROR_FMT = const("<BBHBB")
_BACKFILL_END_FMT = const("<BBHHHHHHH")


class PacketBuilder:
    """Builds packets into one preallocated buffer; one sequence counter per type."""

    def __init__(self):
        self.buf = bytearray(MAX_PACKET + CRC_LEN)  # the framer appends the CRC in place
        self._seq = array("H", bytes(2 * _N_TYPES))

    def _header(self, ptype, time_ms):
        seq = self._seq[ptype]
        self._seq[ptype] = (seq + 1) & 0xFFFF
        struct.pack_into("<BBHI", self.buf, 0, VERSION, ptype, seq, time_ms & TIME_MASK)

    def status(self, time_ms, fw, side, mode, n_pressure, imu, battery_pct, rate_chz,
               battery_mv, dropped, sample_count, free_heap, ble_irq_faults, ble_refused):
        # ble_irq_faults, ble_refused: counts through count_u16, or NA_U16 without a radio
        self._header(T_STATUS, time_ms)
        struct.pack_into(_STATUS_FMT, self.buf, HEADER_LEN, fw[0], fw[1], fw[2], side, mode,
                         n_pressure, imu, battery_pct, rate_chz, battery_mv, dropped,
                         sample_count, free_heap, ble_irq_faults, ble_refused)
        return HEADER_LEN + STATUS_LEN

    def event(self, ptype, time_ms, record, length):
        # record: a payload already in wire layout: STEP, HEEL_RAISE, CUE, PROGRAM_EVENT
        # (gait.py, cue.py, program.py), or a stored PROGRAM
        self._header(ptype, time_ms)
        fast.copy_bytes(self.buf, HEADER_LEN, record, 0, length)
        return HEADER_LEN + length

    def ack(self, time_ms, ref_type, ref_command, ref_seq):
        self._header(T_ACK, time_ms)
        struct.pack_into(_ACK_FMT, self.buf, HEADER_LEN, ref_type, ref_command, ref_seq)
        return HEADER_LEN + ACK_LEN

    def error(self, time_ms, ref_type, ref_command, ref_seq, code, detail):
        self._header(T_ERROR, time_ms)
        struct.pack_into(_ERROR_FMT, self.buf, HEADER_LEN, ref_type, ref_command, ref_seq,
                         code, detail)
        return HEADER_LEN + ERROR_LEN

    def backfill_end(self, time_ms, event_type, ref_seq, from_seq, count, resent, lost_from,
                     lost_count, next_seq):
        self._header(T_BACKFILL_END, time_ms)
        struct.pack_into(_BACKFILL_END_FMT, self.buf, HEADER_LEN, event_type, 0, ref_seq,
                         from_seq, count, resent, lost_from, lost_count, next_seq)
        return HEADER_LEN + BACKFILL_END_LEN

    def next_seq(self, ptype):
        """The seq the next packet of ptype will carry."""
        return self._seq[ptype]

    def settings(self, time_ms, settings):
        self._header(T_SETTINGS, time_ms)
        settings.encode_into(self.buf, HEADER_LEN)
        return HEADER_LEN + SETTINGS_LEN

    def layout(self, time_ms, positions):
        self._header(T_LAYOUT, time_ms)
        n = len(positions) // 2
        self.buf[HEADER_LEN] = n
        self.buf[HEADER_LEN + 1] = 0
        for k in range(n):
            struct.pack_into("<hh", self.buf, HEADER_LEN + 2 + 4 * k, positions[2 * k],
                             positions[2 * k + 1])
        return HEADER_LEN + 2 + 4 * n

    def bonds(self, time_ms, peers):
        # peers: 7-byte addresses (BOND_ADDR_LEN), most recently used first
        self._header(T_BONDS, time_ms)
        n = len(peers)
        if n > MAX_BONDS_LISTED:
            n = MAX_BONDS_LISTED
        self.buf[HEADER_LEN] = n
        self.buf[HEADER_LEN + 1] = 0
        for k in range(n):
            fast.copy_bytes(self.buf, HEADER_LEN + 2 + BOND_ADDR_LEN * k, peers[k], 0, BOND_ADDR_LEN)
        return HEADER_LEN + 2 + BOND_ADDR_LEN * n

    def samples_header(self, time_ms, first_index, count, n_pressure, imu):
        # The caller writes `count` sample records after the returned offset.
        self._header(T_SAMPLES, time_ms)
        struct.pack_into("<IBBBB", self.buf, HEADER_LEN, first_index, count, n_pressure, imu, 0)
        return HEADER_LEN + SAMPLES_HEADER_LEN


def count_u16(n):
    """A running count as a u16 field that has an n/a value: saturates at 0xFFFE."""
    return n if n < NA_U16 else NA_U16 - 1


def sample_record_len(n_pressure, imu):
    return 2 * n_pressure + 12 * imu


class SerialFramer:
    """COBS(packet ‖ crc16_le) ‖ 0x00 onto a non-blocking byte writer."""

    def __init__(self, writer, wait_writable):
        self._writer = writer
        self._wait_writable = wait_writable  # blocks until the writer can take more
        self._frame = bytearray(MAX_PACKET + CRC_LEN + MAX_PACKET // 254 + 2)
        self.frames_sent = 0

    def send(self, packet, length):
        crc = fast.crc16(packet, 0, length)
        packet[length] = crc & 0xFF
        packet[length + 1] = crc >> 8
        n = fast.cobs_encode(packet, length + CRC_LEN, self._frame)
        self._frame[n] = 0
        n += 1
        off = 0
        while off < n:
            written = self._writer.write(self._frame, off, n - off)
            if written:
                off += written
            else:
                self._wait_writable()
        self.frames_sent += 1


class FrameReader:
    """Splits link bytes at 0x00, checks COBS and CRC, and hands out verified packets.

    Garbage never raises: a bad frame is counted and the reader resynchronises at the
    next 0x00. `feed` calls on_packet(buf, length) for each packet and
    on_bad_frame() for each rejected frame.
    """

    def __init__(self):
        self._buf = bytearray(MAX_PACKET + CRC_LEN + MAX_PACKET // 254 + 2)
        self._n = 0
        self._overflow = False
        self.bad_frames = 0

    def feed(self, data, length, on_packet, on_bad_frame):
        i = 0
        buf = self._buf
        cap = len(buf)
        while i < length:
            z = fast.find_byte(data, i, length, 0)
            end = length if z < 0 else z
            take = end - i
            if self._n + take > cap:
                self._overflow = True
            elif not self._overflow:
                fast.copy_bytes(buf, self._n, data, i, take)
                self._n += take
            if z < 0:
                return
            if self._n or self._overflow:
                self._frame_done(on_packet, on_bad_frame)
            i = z + 1

    def _frame_done(self, on_packet, on_bad_frame):
        n = self._n
        overflow = self._overflow
        self._n = 0
        self._overflow = False
        if not overflow:
            n = fast.cobs_decode(self._buf, n)
            if n >= HEADER_LEN + CRC_LEN:
                body = n - CRC_LEN
                crc = self._buf[body] | (self._buf[body + 1] << 8)
                if crc == fast.crc16(self._buf, 0, body):
                    on_packet(self._buf, body)
                    return
        self.bad_frames += 1
        on_bad_frame()
