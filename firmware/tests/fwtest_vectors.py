# The firmware against docs/protocol-vectors.json, the golden vectors the host tests use too.
#
# The file is read one case per line (vectors_reader.py).
import struct

from insolefw import fast
from insolefw import protocol as P
from insolefw.cue import CueEngine
from insolefw.settings import Settings
from vectors_reader import _Capture, _cases, _hex, _unhex

_TO_HOST_BUILDERS = (P.T_STATUS, P.T_STEP, P.T_HEEL_RAISE, P.T_ACK, P.T_ERROR, P.T_SETTINGS,
                     P.T_LAYOUT, P.T_CUE, P.T_BACKFILL_END, P.T_BONDS)
_SETTINGS_NAMES = ("side", "cue_mode", "cue_duty_pct", "fpa_target_cdeg", "fpa_half_width_cdeg",
                   "toe_in_pattern", "toe_out_pattern", "cue_duration_ms", "cue_ms_per_deg",
                   "cue_max_ms", "schedule", "fade_every", "fade_probability_pct",
                   "metronome_pattern", "block_on_steps", "block_off_steps", "seed",
                   "metronome_spm", "metronome_pulse_ms", "rate_chz", "stream_samples",
                   "imu_yaw_cdeg")


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
                              f["sample_count"], _na(f["free_heap"], 0xFFFFFFFF),
                              _na(f["ble_irq_faults"], P.NA_U16), _na(f["ble_refused"], P.NA_U16))
    if ptype == P.T_STEP:
        record = bytearray(P.STEP_LEN)
        # A partial stance's n/a index packed as gait.py does: -1 into a u32 ('I'), which
        # MicroPython's struct truncates to 0xFFFFFFFF (CPython's would refuse it).
        struct.pack_into("<IIHHhBBHBBHHI", record, 0, _minus(f["ic_index"]), _minus(f["to_index"]),
                         _na(f["stance_ms"], P.NA_U16), _na(f["swing_ms"], P.NA_U16),
                         _na(f["fpa_cdeg"], P.NA_I16), f["direction"], f["flags"],
                         _na(f["peak_pressure"], P.NA_U16), _na(f["medial_share"], P.NA_U8),
                         _na(f["strike"], P.NA_U8),
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
        # Set the device's Settings field by field, then let it encode itself.
        settings = Settings()
        for name in _SETTINGS_NAMES:
            value = f[name]
            setattr(settings, name, P.NA_U8 if value is None else value)
        return builder.settings(f["time_ms"], settings)
    if ptype == P.T_CUE:
        engine = CueEngine()
        n = engine.pack(_minus(f["step_number"]), _minus(f["decision_index"]), f["decision_ms"],
                        _minus(f["motor_start_ms"]), _minus(f["latency_us"]),
                        _na(f["fpa_cdeg"], P.NA_I16), _na(f["target_cdeg"], P.NA_I16),
                        _na(f["half_width_cdeg"], P.NA_U16), f["reason"], f["outcome"],
                        f["pattern"], f["duty_pct"], f["duration_ms"], _minus(f["out_of_band_steps"]))
        return builder.event(P.T_CUE, f["time_ms"], engine.record, n)
    if ptype == P.T_BACKFILL_END:
        return builder.backfill_end(f["time_ms"], f["event_type"], f["ref_seq"], f["from_seq"],
                                    f["count"], f["resent"], f["lost_from"], f["lost_count"],
                                    f["next_seq"])
    if ptype == P.T_LAYOUT:
        flat = []
        for x, y in zip(f["x_mm"], f["y_mm"]):
            flat.append(x)
            flat.append(y)
        return builder.layout(f["time_ms"], flat)
    if ptype == P.T_BONDS:
        # The vectors print addresses MSB first; NimBLE keys a bond LSB first (ble_addr_t).
        peers = []
        for addr_type, address in zip(f["addr_type"], f["address"]):
            msb_first = bytes.fromhex(address.replace(":", ""))
            key = bytearray(P.BOND_ADDR_LEN)
            key[0] = addr_type
            for i in range(6):
                key[1 + i] = msb_first[5 - i]
            peers.append(bytes(key))
        return builder.bonds(f["time_ms"], peers)
    raise AssertionError("no builder for type %d" % ptype)


def _na(value, sentinel):
    return sentinel if value is None else value


def _minus(value):
    # CueEngine.pack and gait.py's STEP indices take -1 for "not available"
    return -1 if value is None else value


def test_settings_payloads_decode_on_the_device_and_reencode_identically():
    # Every valid SETTINGS vector is accepted by the device's validator and re-encoded
    # byte for byte; every refused one is refused with the vector's detail.
    ok = 0
    refused = 0
    for case in _cases("packet"):
        packet = _unhex(case["hex"])
        if len(packet) < P.HEADER_LEN or packet[1] != P.T_SETTINGS:
            continue
        if len(packet) != P.HEADER_LEN + P.SETTINGS_LEN:
            continue  # wrong lengths are the link's BAD_LENGTH (fwtest_vectors_device)
        settings = Settings()
        bad = settings.decode_from(packet, P.HEADER_LEN)
        if case["expect"] == "ok":
            assert bad == -1, (case["name"], bad)
            out = bytearray(P.SETTINGS_LEN)
            settings.encode_into(out, 0)
            assert bytes(out) == packet[P.HEADER_LEN:], case["name"]
            ok += 1
        else:
            assert bad == case["detail"], (case["name"], bad, case["detail"])
            # Nothing of a refused payload was applied.
            fresh = Settings()
            for name in _SETTINGS_NAMES:
                assert getattr(settings, name) == getattr(fresh, name), (case["name"], name)
            refused += 1
    assert ok >= 4 and refused >= 20, (ok, refused)


def test_saved_settings_load_at_the_next_start():
    # At power-on the Device makes default Settings and loads the saved file (app.py):
    # what was saved is what the next start finds, and a file of another settings
    # version (its length and CRC right) is refused and leaves the defaults.
    import board
    saved = Settings()
    saved.cue_mode = 1
    saved.cue_duty_pct = 77
    saved.fpa_target_cdeg = -500
    saved.seed = 4242
    saved.imu_yaw_cdeg = 250
    saved.save(board.SETTINGS_DIR)
    expected = bytearray(P.SETTINGS_LEN)
    saved.encode_into(expected, 0)
    restarted = Settings()
    assert restarted.load(board.SETTINGS_DIR) is True
    loaded = bytearray(P.SETTINGS_LEN)
    restarted.encode_into(loaded, 0)
    assert loaded == expected, (loaded, expected)
    path = board.SETTINGS_DIR + "/settings.bin"
    with open(path, "rb") as f:
        other_version = bytearray(f.read())
    other_version[0] += 1
    crc = fast.crc16(other_version, 0, P.SETTINGS_LEN)
    other_version[P.SETTINGS_LEN] = crc & 0xFF
    other_version[P.SETTINGS_LEN + 1] = crc >> 8
    with open(path, "wb") as f:
        f.write(other_version)
    defaults = Settings()
    assert defaults.load(board.SETTINGS_DIR) is False
    for name in _SETTINGS_NAMES:
        assert getattr(defaults, name) == getattr(Settings(), name), name
    assert Settings.erase(board.SETTINGS_DIR)


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
        builder = P.PacketBuilder()
        builder._seq[ptype] = f["seq"]
        n = _build(builder, ptype, f)
        assert _hex(builder.buf, n) == case["hex"], case["name"]
        count += 1
    assert count >= 10, count
