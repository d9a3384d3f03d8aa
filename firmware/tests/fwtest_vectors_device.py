# The device's answers to the golden vectors' packets: refused ones with the vector's
# error code, valid ones accepted, and the device alive after each (docs/protocol-vectors.json).
# Separate from fwtest_vectors so each runs in a fresh 128K heap.
import gc
import struct

from insolefw import protocol as P
from insolefw.app import Device
from serial_sink import SerialSink


def _answers(device, sink):
    capture = _Capture()
    _reader.feed(sink.data, len(sink.data), capture.on_packet, capture.on_bad)
    sink.data = bytearray()
    return [_unhex(h) for h in capture.packets]


def _make_device():
    import board
    board.EVENT_LOG_RECORDS = 4  # the log is not under test here; leave the heap to the reader
    sink = SerialSink()
    gc.collect()  # as app.main() does before making the Device
    return Device(None, sink, lambda: None), sink


# One Device for all cases, made before the vector reader's buffer and parsing
# fragment the 128K heap; hence the late import below.
_device = _make_device()
_reader = P.FrameReader()  # one for all answers: a 1 KB buffer each time would fragment the heap
# After the firmware, the 128K heap has no 8 KB in one piece for the reader's line
# buffer: read with 4 KB, made now, and skip the longer lines (samples_1024_bytes, a
# SAMPLES packet like those every replay sends; bonds_max).
_line = bytearray(4096)

import vectors_reader  # noqa: E402
from vectors_reader import _Capture, _unhex  # noqa: E402

vectors_reader.use_line_buffer(_line)


def _cases(kind):
    return vectors_reader._cases(kind, skip_long=True, fields=False)


def _fresh_device():
    device, sink = _device
    device._stop()  # back to idle
    sink.data = bytearray()
    # A PROGRAM vector loads the program's module (a refused one too, then drops its
    # runner): forget any program and unload the module, whose code takes heap the
    # vector reader needs.
    device.program = None
    _unload_program()
    return device, sink


def _unload_program():
    import sys
    import insolefw
    if "insolefw.program" not in sys.modules:
        return
    sys.modules.pop("insolefw.program", None)
    if hasattr(insolefw, "program"):
        delattr(insolefw, "program")
    gc.collect()


_DEVICE_TO_HOST_ONLY = (P.T_STATUS, P.T_STEP, P.T_HEEL_RAISE, P.T_ACK, P.T_ERROR, P.T_CUE,
                        P.T_BACKFILL_END, P.T_BONDS, P.T_PROGRAM_EVENT)


def _prepare_for(device, sink, packet):
    # SAMPLES are only taken in replay: begin a replay shaped like the packet (when that
    # shape is valid), so the device's answer is about the packet itself.
    if len(packet) >= 16 and packet[1] == P.T_SAMPLES:
        n_pressure, imu = packet[13], packet[14]
        if n_pressure <= 16 and imu <= 1 and (n_pressure or imu):
            begin = bytearray(16)
            struct.pack_into("<BBHIBBHBBBB", begin, 0, 1, P.T_COMMAND, 0, 0, P.CMD_REPLAY_BEGIN, 0,
                             10000, n_pressure, imu, 0, 0)
            device.on_packet(begin, 16)
            assert _answers(device, sink)[0][1] == P.T_ACK


def test_device_refuses_bad_packets_with_the_vector_error_and_survives():
    count = 0
    for case in _cases("packet"):
        if case.get("direction") == "to_host" or "error" not in case:
            continue
        packet = _unhex(case["hex"])
        if len(packet) < P.HEADER_LEN:
            continue  # the frame layer refuses those (too_short) before a packet exists
        if packet[1] in _DEVICE_TO_HOST_ONLY and packet[0] == P.VERSION:
            continue  # the device refuses these types as UNKNOWN_TYPE whatever their form
        device, sink = _fresh_device()
        _prepare_for(device, sink, packet)
        buf = bytearray(packet)
        device.on_packet(buf, len(buf))
        answers = _answers(device, sink)
        assert len(answers) == 1, (case["name"], answers)
        answer = answers[0]
        assert answer[1] == P.T_ERROR, case["name"]
        assert answer[12] == case["error"], (case["name"], answer[12], case["error"])
        if case["expect"] == "bad_value":
            assert answer[13] == case["detail"], (case["name"], answer[13], case["detail"])
        # Still alive and answering.
        ping = bytearray(b"\x01\x06\x01\x00\x00\x00\x00\x00\x01\x00")
        device.on_packet(ping, len(ping))
        assert _answers(device, sink)[0][1] == P.T_ACK, case["name"]
        count += 1
        device = sink = None  # gone before the next case is parsed (the reader collects then)
    assert count >= 10, count


def test_device_accepts_valid_packets_for_it():
    count = 0
    for case in _cases("packet"):
        if case["expect"] != "ok" or case.get("direction") == "to_host":
            continue
        device, sink = _fresh_device()
        packet = _unhex(case["hex"])
        _prepare_for(device, sink, packet)
        buf = bytearray(packet)
        device.on_packet(buf, len(buf))
        for answer in _answers(device, sink):
            if answer[1] == P.T_ERROR:
                # A valid packet may still be refused for the device's state, never for its form.
                assert answer[12] in (P.E_BAD_STATE, P.E_OVERFLOW), (case["name"], answer[12])
        count += 1
        device = sink = None  # gone before the next case is parsed (the reader collects then)
    assert count >= 5, count

