# What the Device says of itself (STATUS, docs/protocol.md) and what a factory reset
# says when the settings file will not go. A Device of its own, in a fresh 128K heap:
# fwtest_vectors_maintenance has no room left beside its vector reader.
import gc
import struct

import board
from insolefw import protocol as P
from insolefw.app import Device
from insolefw.battery import battery_percent
from serial_sink import SerialSink


class _Radio:
    """Stands in for insolefw.ble.BleLink: its counters, and what it was sent."""

    irq_faults = 0
    refused = 0

    def __init__(self):
        self.sent = []

    def send(self, buf, n):
        self.sent.append(bytes(buf[:n]))
        return True


board.EVENT_LOG_RECORDS = 4  # the log is not under test here
_sink = SerialSink()
gc.collect()  # as app.main() does before making the Device
_device = Device(None, _sink, lambda: None)
_reader = P.FrameReader()


class _Capture:
    def __init__(self):
        self.packets = []

    def on_packet(self, buf, n):
        self.packets.append(bytes(buf[:n]))

    def on_bad(self):
        raise AssertionError("a bad frame from the device")


def _ask(cmd):
    packet = bytearray(P.HEADER_LEN + 2)
    struct.pack_into("<BBHIBB", packet, 0, 1, P.T_COMMAND, 9, 0, cmd, 0)
    _device.on_packet(packet, len(packet))
    capture = _Capture()
    _reader.feed(_sink.data, len(_sink.data), capture.on_packet, capture.on_bad)
    _sink.data = bytearray()
    (answer,) = capture.packets
    return answer


def _status():
    status = _ask(P.CMD_GET_STATUS)
    assert status[1] == P.T_STATUS and len(status) == P.HEADER_LEN + P.STATUS_LEN, status
    return status


def _ble_counters(status):
    return struct.unpack_from("<HH", status, P.HEADER_LEN + 24)


def test_status_reports_the_radio_counters_saturating_below_na():
    radio = _Radio()
    _device.ble = radio
    try:
        radio.irq_faults = 3
        radio.refused = 70000  # more than a u16 holds
        assert _ble_counters(_status()) == (3, 0xFFFE)
        radio.refused = 0xFFFF  # would read as n/a
        assert _ble_counters(_status()) == (3, 0xFFFE)
        radio.refused = 0xFFFD
        assert _ble_counters(_status()) == (3, 0xFFFD)
        assert radio.sent == []  # asked over USB, answered over USB
    finally:
        _device.ble = None
    assert _ble_counters(_status()) == (P.NA_U16, P.NA_U16)  # a board without radio


def test_status_battery_level_follows_the_voltage_when_known():
    measured = board.battery_mv
    try:
        for mv, pct in ((4180, battery_percent(4180)), (3800, battery_percent(3800)), (3400, 0),
                        (-1, P.NA_U8)):
            board.battery_mv = lambda: mv
            status = _status()
            wire_mv = struct.unpack_from("<H", status, P.HEADER_LEN + 10)[0]
            assert (status[P.HEADER_LEN + 7], wire_mv) == (pct, P.NA_U16 if mv < 0 else mv), (mv, status)
        assert 0 < battery_percent(3800) < 100 < battery_percent(4180) + 3
    finally:
        board.battery_mv = measured


def test_factory_reset_says_when_the_settings_file_would_not_go():
    # A settings "file" that cannot be removed (a directory with something in it):
    # reset in RAM, and the wearer is told (BAD_STATE detail 0xFF).
    import os
    path = board.SETTINGS_DIR + "/settings.bin"
    _device.settings.cue_duty_pct = 77
    _device.settings.save(board.SETTINGS_DIR)
    os.remove(path)
    os.mkdir(path)
    with open(path + "/keep", "wb") as f:
        f.write(b"x")
    try:
        reply = _ask(P.CMD_FACTORY_RESET)
        assert reply[1] == P.T_ERROR and (reply[12], reply[13]) == (P.E_BAD_STATE, 0xFF), reply
        assert _device.settings.cue_duty_pct == 60
    finally:
        os.remove(path + "/keep")
        os.rmdir(path)
    # Nothing there now (ENOENT): erased is erased.
    assert _ask(P.CMD_FACTORY_RESET)[1] == P.T_ACK
