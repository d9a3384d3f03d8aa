# Maintenance is USB only (docs/protocol.md): the golden vectors of the USB-only
# commands and replay SAMPLES, given by a bonded BLE central, are refused with
# NOT_PERMITTED and change nothing; over USB they reach the radio. Separate from
# fwtest_vectors_device so that each runs in a fresh 128K heap.
import gc
import struct

from insolefw import protocol as P
from insolefw.app import Device
from serial_sink import SerialSink


def _make_device():
    import board
    board.EVENT_LOG_RECORDS = 4  # small, like fwtest_vectors_device: the heap is for the reader
    sink = SerialSink()
    gc.collect()
    return Device(None, sink, lambda: None), sink


_device = _make_device()
_reader = P.FrameReader()  # one for all answers: a 1 KB buffer each time would fragment the heap
_line = bytearray(4096)  # the vector reader's, as in fwtest_vectors_device

import vectors_reader  # noqa: E402
from vectors_reader import _Capture, _unhex  # noqa: E402

vectors_reader.use_line_buffer(_line)


def _cases(kind):
    return vectors_reader._cases(kind, skip_long=True, fields=False)


def _answers(device, sink):
    capture = _Capture()
    _reader.feed(sink.data, len(sink.data), capture.on_packet, capture.on_bad)
    sink.data = bytearray()
    return [_unhex(h) for h in capture.packets]


def _fresh_device():
    device, sink = _device
    device._stop()
    sink.data = bytearray()
    return device, sink
# What only the USB link may ask for (docs/protocol.md, "USB only"), written out here
# rather than taken from P.USB_ONLY_COMMANDS, so that this test checks that mask.
_USB_ONLY = (P.CMD_REPLAY_BEGIN, P.CMD_REPLAY_END, P.CMD_EXIT_TO_REPL, P.CMD_LIST_BONDS,
             P.CMD_CLEAR_BONDS, P.CMD_FACTORY_RESET, P.CMD_OPEN_PAIRING)
_PEER = b"\x01\x01\x00\x00\x01\x15\xc0"  # random C0:15:01:00:00:01, as NimBLE keys it


class _Radio:
    """Stands in for insolefw.ble.BleLink: what the Device sends on it, and what the
    maintenance commands ask of it."""

    connected = True
    payload_limit = 244

    def __init__(self):
        self.sent = []
        self.cleared = 0
        self.pairing_ms = 0
        self.side = -1

    def send(self, buf, n):
        self.sent.append(bytes(buf[:n]))
        return True

    def drop_samples(self):
        return 0

    def bond_peers(self):
        return [_PEER, b"\x00\x13\x71\xda\x7d\x1a\x00"]

    def clear_bonds(self):
        self.cleared += 1

    def open_pairing(self, ms):
        self.pairing_ms = ms

    def set_side(self, side):
        self.side = side

    def want_gait_data(self, on):
        pass

    def note_step(self, packet):
        pass


def _with_radio():
    device, sink = _fresh_device()
    radio = _Radio()
    device.ble = radio
    device.out = device.serial
    return device, sink, radio


def _without_radio(device):
    device._stop()
    device.ble = None
    device.out = device.serial


def _settings_file():
    import board
    import os
    try:
        return os.stat(board.SETTINGS_DIR + "/settings.bin")[6]
    except OSError:
        return -1


def _write_settings(device, sink, duty):
    packet = bytearray(P.HEADER_LEN + P.SETTINGS_LEN)
    struct.pack_into("<BBHI", packet, 0, 1, P.T_SETTINGS, 0, 0)
    settings = device.settings.__class__()
    settings.cue_duty_pct = duty
    settings.encode_into(packet, P.HEADER_LEN)
    device.on_packet(packet, len(packet))
    assert _answers(device, sink)[0][1] == P.T_ACK


def test_maintenance_over_ble_is_refused_and_changes_nothing():
    # Every valid vector of a USB-only command, and replay SAMPLES, as a bonded
    # central's control write: one ERROR NOT_PERMITTED on the BLE link, nothing on
    # USB, and the device as it was.
    count = 0
    seen = set()
    device, sink = _fresh_device()
    _write_settings(device, sink, 77)
    stored = _settings_file()
    for case in _cases("packet"):
        if case["expect"] != "ok" or case.get("direction") == "to_host":
            continue
        packet = _unhex(case["hex"])
        ptype = packet[1]
        cmd = packet[P.HEADER_LEN] if ptype == P.T_COMMAND else 0
        if not (ptype == P.T_SAMPLES or (ptype == P.T_COMMAND and cmd in _USB_ONLY)):
            continue
        name = case["name"]
        case = None  # a parsed SAMPLES case holds up to 19 KB of the 128K heap
        gc.collect()
        device, sink, radio = _with_radio()
        try:
            layout = list(device._layout)
            buf = bytearray(packet)
            device._on_ble_packet(buf, len(buf))
            assert _answers(device, sink) == [], name  # nothing on USB
            assert len(radio.sent) == 1, (name, radio.sent)
            answer = radio.sent[0]
            assert answer[1] == P.T_ERROR and answer[12] == P.E_NOT_PERMITTED, (name, answer)
            assert (answer[8], answer[9]) == (ptype, cmd), name
            assert answer[10] | (answer[11] << 8) == packet[2] | (packet[3] << 8), name
            assert device.running and device.mode == 0, name
            assert device.settings.cue_duty_pct == 77 and _settings_file() == stored > 0, name
            assert device._layout == layout, name
            assert (radio.cleared, radio.pairing_ms) == (0, 0), name
            assert device.framer is device.serial
            seen.add(cmd)
        finally:
            _without_radio(device)
        count += 1
    assert seen == set(_USB_ONLY) | {0}, seen  # every USB-only command and SAMPLES (0)
    assert count >= 12, count


def test_everyday_commands_still_work_over_ble():
    device, sink, radio = _with_radio()
    try:
        for cmd in (P.CMD_PING, P.CMD_GET_SETTINGS, P.CMD_GET_LAYOUT, P.CMD_STOP_STREAM):
            ping = bytearray(10)
            struct.pack_into("<BBHIBB", ping, 0, 1, P.T_COMMAND, 5, 0, cmd, 0)
            device._on_ble_packet(ping, len(ping))
            assert radio.sent[-1][1] != P.T_ERROR, (cmd, radio.sent[-1])
        assert _answers(device, sink) == []
    finally:
        _without_radio(device)


def _command(cmd, args=b""):
    packet = bytearray(P.HEADER_LEN + 2 + len(args))
    struct.pack_into("<BBHIBB", packet, 0, 1, P.T_COMMAND, 9, 0, cmd, 0)
    packet[P.HEADER_LEN + 2:] = args
    return packet


def test_maintenance_over_usb_reaches_the_radio():
    device, sink, radio = _with_radio()
    try:
        packet = _command(P.CMD_LIST_BONDS)
        device.on_packet(packet, len(packet))
        (bonds,) = _answers(device, sink)
        assert bonds[1] == P.T_BONDS and bonds[8] == 2, bonds
        assert bonds[10:17] == _PEER and len(bonds) == P.HEADER_LEN + 2 + 2 * P.BOND_ADDR_LEN
        packet = _command(P.CMD_OPEN_PAIRING, b"\x3c\x00")
        device.on_packet(packet, len(packet))
        assert _answers(device, sink)[0][1] == P.T_ACK and radio.pairing_ms == 60000
        packet = _command(P.CMD_CLEAR_BONDS)
        device.on_packet(packet, len(packet))
        assert _answers(device, sink)[0][1] == P.T_ACK and radio.cleared == 1
        packet = _command(P.CMD_FACTORY_RESET)
        device.on_packet(packet, len(packet))
        assert _answers(device, sink)[0][1] == P.T_ACK
        assert radio.cleared == 2 and radio.side == device.side  # bonds gone, the board's own name
        assert device.out is radio  # as at power-on: events go out over the radio
        assert radio.sent == []  # every answer went back on USB
    finally:
        _without_radio(device)


def test_factory_reset_without_a_radio():
    device, sink = _fresh_device()
    _write_settings(device, sink, 77)
    assert _settings_file() > 0
    # Events in the log (beyond its first slot), a layout of the host's, a side of the settings'.
    for seq in range(3):
        device.eventlog.append(bytearray(b"\x01\x03") + bytes((seq,)) + bytearray(5 + P.STEP_LEN),
                               P.HEADER_LEN + P.STEP_LEN)
    logged = device.eventlog.total
    layout = bytearray(b"\x01\x09\x00\x00\x00\x00\x00\x00\x01\x00\x0a\x00\x14\x00")
    device.on_packet(layout, len(layout))
    assert _answers(device, sink)[0][1] == P.T_ACK and device._layout == [10, 20]
    packet = _command(P.CMD_FACTORY_RESET)
    device.on_packet(packet, len(packet))
    assert _answers(device, sink)[0][1] == P.T_ACK
    assert device.settings.cue_duty_pct == 60 and _settings_file() == -1
    assert device.eventlog.count == 0 and device.eventlog.oldest_seq(P.T_STEP) == -1
    assert not any(device.eventlog._buf)  # the ring's bytes overwritten, not just forgotten
    # The running count goes on: a packet logged after the reset is found by GET_EVENTS.
    assert device.eventlog.total == logged
    device.eventlog.append(bytearray(b"\x01\x03\x07\x00\x00\x00\x00\x00") + bytearray(P.STEP_LEN),
                           P.HEADER_LEN + P.STEP_LEN)
    out = bytearray(P.HEADER_LEN + P.STEP_LEN)
    assert device.eventlog.next_packet(P.T_STEP, 7, 1, 0, out) == (logged + 1, P.HEADER_LEN + P.STEP_LEN)
    assert device.eventlog.oldest_seq(P.T_STEP) == 7
    import board
    assert device._layout == list(sum(board.LAYOUT, ()))
    # Without a radio: no bonds to list, none to clear, no pairing window to open.
    for cmd, args, answer in ((P.CMD_LIST_BONDS, b"", P.T_BONDS), (P.CMD_CLEAR_BONDS, b"", P.T_ACK),
                              (P.CMD_OPEN_PAIRING, b"\x3c\x00", P.T_ERROR)):
        packet = _command(cmd, args)
        device.on_packet(packet, len(packet))
        (reply,) = _answers(device, sink)
        assert reply[1] == answer, (cmd, reply)
        if answer == P.T_BONDS:
            assert reply[8] == 0 and len(reply) == P.HEADER_LEN + 2
        if answer == P.T_ERROR:
            assert reply[12] == P.E_BAD_STATE
