# The firmware against docs/protocol-vectors.json, the golden vectors the host tests use too.
#
# The file is read one case per line: json.load of the whole file does not fit a 128K heap.
import binascii
import gc
import json
import struct
import sys

from insolefw import fast
from insolefw import protocol as P
from insolefw.settings import Settings

_TO_HOST_BUILDERS = (P.T_STATUS, P.T_STEP, P.T_HEEL_RAISE, P.T_ACK, P.T_ERROR, P.T_SETTINGS, P.T_LAYOUT)


def _vectors_path():
    for p in sys.path:
        if p.endswith("firmware"):
            return p[: -len("firmware")] + "docs/protocol-vectors.json"
    raise AssertionError("firmware directory not on MICROPYPATH")


_LINE = bytearray(8192)  # one case per line; preallocated so parsing needs no large string


def _cases(kind):
    # Yields the cases of one kind, reading the file line by line into _LINE and parsing
    # each line straight from the buffer: a 128K heap holds neither the file nor big strings.
    buf = _LINE
    view = memoryview(buf)
    filled = 0
    with open(_vectors_path(), "rb") as f:
        while True:
            newline = fast.find_byte(buf, 0, filled, 10)
            if newline < 0:
                if filled == len(buf):
                    raise AssertionError("a vector line is longer than %d bytes" % len(buf))
                got = f.readinto(view[filled:])
                if not got:
                    return
                filled += got
                continue
            end = newline - 1 if newline and buf[newline - 1] == 44 else newline  # 44 = ","
            case = None
            if buf[0] == 32 and buf[1] == 32 and buf[2] == 123:  # '  {'
                gc.collect()
                case = json.loads(view[2:end])
            rest = filled - newline - 1
            fast.copy_bytes(buf, 0, buf, newline + 1, rest)
            filled = rest
            if case is not None and case["kind"] == kind:
                yield case


def _unhex(text):
    return bytes.fromhex(text)


def _hex(buf, n):
    return binascii.hexlify(memoryview(buf)[:n]).decode()


class _Capture:
    def __init__(self):
        self.packets = []
        self.bad = 0

    def on_packet(self, buf, n):
        self.packets.append(_hex(buf, n))

    def on_bad(self):
        self.bad += 1


def test_crc_vectors():
    count = 0
    for case in _cases("crc"):
        data = _unhex(case["hex"])
        assert fast.crc16(data, 0, len(data)) == case["crc"], case["name"]
        count += 1
    assert count


def test_frame_vectors():
    count = 0
    for case in _cases("frame"):
        data = _unhex(case["hex"])
        capture = _Capture()
        reader = P.FrameReader()
        reader.feed(data, len(data), capture.on_packet, capture.on_bad)
        if "packet" in case:
            assert capture.packets == [case["packet"]], case["name"]
            assert capture.bad == 0, case["name"]
        else:
            assert capture.packets == [], case["name"]
            assert capture.bad == 1, (case["name"], capture.bad)
        count += 1
    assert count


def test_stream_vectors_in_every_chunking():
    count = 0
    for case in _cases("stream"):
        data = _unhex(case["hex"])
        for chunk in (len(data), 1, 7, 64):
            capture = _Capture()
            reader = P.FrameReader()
            for start in range(0, len(data), chunk):
                piece = data[start:start + chunk]
                reader.feed(piece, len(piece), capture.on_packet, capture.on_bad)
            assert capture.packets == case["packets"], (case["name"], chunk)
            assert capture.bad == case["bad_frames"], (case["name"], chunk, capture.bad)
        count += 1
    assert count


def _build(builder, ptype, f):
    if ptype == P.T_STATUS:
        return builder.status(f["time_ms"], (f["fw_major"], f["fw_minor"], f["fw_patch"]),
                              _na(f["side"], P.NA_U8), f["mode"], f["n_pressure"], f["imu"],
                              _na(f["battery_pct"], P.NA_U8), f["rate_chz"],
                              _na(f["battery_mv"], P.NA_U16), f["dropped_samples"],
                              f["sample_count"], _na(f["free_heap"], 0xFFFFFFFF))
    if ptype == P.T_STEP:
        record = bytearray(P.STEP_LEN)
        struct.pack_into("<IIHHhBBHBBHHI", record, 0, f["ic_index"], f["to_index"],
                         _na(f["stance_ms"], P.NA_U16), _na(f["swing_ms"], P.NA_U16),
                         _na(f["fpa_cdeg"], P.NA_I16), f["direction"], f["flags"],
                         _na(f["peak_pressure"], P.NA_U16), _na(f["medial_share"], P.NA_U8), 0,
                         _na(f["stride_mm"], P.NA_U16), _na(f["speed_mms"], P.NA_U16),
                         f["step_number"])
        return builder.event(P.T_STEP, f["time_ms"], record, P.STEP_LEN)
    if ptype == P.T_HEEL_RAISE:
        record = bytearray(P.HEEL_RAISE_LEN)
        struct.pack_into("<IIHHHH", record, 0, f["start_index"], f["end_index"],
                         _na(f["hold_ms"], P.NA_U16), f["rep"], f["set"], 0)
        return builder.event(P.T_HEEL_RAISE, f["time_ms"], record, P.HEEL_RAISE_LEN)
    if ptype == P.T_ACK:
        return builder.ack(f["time_ms"], f["ref_type"], f["ref_command"], f["ref_seq"])
    if ptype == P.T_ERROR:
        return builder.error(f["time_ms"], f["ref_type"], f["ref_command"], f["ref_seq"],
                             f["error"], f["detail"])
    if ptype == P.T_SETTINGS:
        settings = Settings()
        payload = bytearray(P.SETTINGS_LEN)
        struct.pack_into("<BBBBhHHHHBB", payload, 0, f["settings_version"], _na(f["side"], P.NA_U8),
                         f["cue_mode"], f["cue_duty_pct"], f["fpa_target_cdeg"],
                         f["fpa_half_width_cdeg"], f["cue_duration_ms"], f["metronome_spm"],
                         f["rate_chz"], f["stream_samples"], 0)
        assert settings.decode_from(payload, 0) == -1
        return builder.settings(f["time_ms"], settings)
    if ptype == P.T_LAYOUT:
        flat = []
        for x, y in zip(f["x_mm"], f["y_mm"]):
            flat.append(x)
            flat.append(y)
        return builder.layout(f["time_ms"], flat)
    raise AssertionError("no builder for type %d" % ptype)


def _na(value, sentinel):
    return sentinel if value is None else value


def test_device_packets_match_the_vectors_byte_for_byte():
    # Every packet the device builds, except where the vector's time_ms is beyond the
    # device clock's 2**30 wrap (the device cannot send those values).
    count = 0
    for case in _cases("packet"):
        if case["expect"] != "ok" or case.get("direction") == "to_device":
            continue
        f = case["fields"]
        ptype = f["type"]
        if ptype not in _TO_HOST_BUILDERS or f["time_ms"] > P.TIME_MASK:
            continue
        if ptype == P.T_SETTINGS and f["settings_version"] != 1:
            continue
        builder = P.PacketBuilder()
        builder._seq[ptype] = f["seq"]
        n = _build(builder, ptype, f)
        assert _hex(builder.buf, n) == case["hex"], case["name"]
        count += 1
    assert count >= 10, count
