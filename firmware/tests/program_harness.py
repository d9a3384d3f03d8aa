# Helpers of the Device-level program tests (program_*_cases.py, run by
# fwtest_program_*): program packets, a replay through the Device with a scripted gait
# core (program_script.ScriptCore) and the PROGRAM_EVENTs it sent.
import struct

import board
from insolefw import protocol as P
from cue_device_harness import device

_EVENT_FMT = "<BBBBIHHHHhhhH"
FORWARD = 1
BACKWARD = 2
# PROGRAM_EVENT codes
START, RESUME, BLOCK_START, BLOCK_END, SIGNAL, END = 1, 2, 3, 4, 5, 6


def packets(keep=None):
    # The Device's output since the last call, decoded: a list of packets (bytes), of the
    # types in `keep` (None: all). The Device's own frame reader does it (the tests hand
    # it packets, not bytes): another would take 1 KB of a tight heap.
    out = []
    d = device()
    sink = d.serial._writer

    def take(buf, n):
        if keep is None or buf[1] in keep:
            out.append(bytes(buf[:n]))

    d.frames.feed(sink.data, len(sink.data), take, lambda: None)
    sink.data = bytearray()
    return out


def send(ptype, payload):
    # One packet to the Device (seq 7); its answers and events.
    n = P.HEADER_LEN + len(payload)
    buf = bytearray(n + P.CRC_LEN)
    struct.pack_into("<BBHI", buf, 0, 1, ptype, 7, 0)
    buf[P.HEADER_LEN:n] = payload
    device().on_packet(buf, n)
    return packets()


def command(cmd, args=b""):
    return send(P.T_COMMAND, bytes((cmd, 0)) + args)


def block(kind, goal, flags=0, spm=0, a=0, b=0, rest_s=0, limit_s=0):
    return struct.pack("<BBHHhhHHH", kind, flags, goal, spm, a, b, rest_s, limit_s, 0)


def write_program(blocks, program_id=7):
    return send(P.T_PROGRAM, struct.pack("<BBH", 1, len(blocks), program_id) + b"".join(blocks))


_KEPT = (P.T_PROGRAM_EVENT, P.T_CUE)


def replay(samples, core, during=None, end=True, first=0):
    """Replays IMU-only samples [first, first + samples) at 100 Hz through the Device
    with `core` in place of the gait core (first 0: a new replay); returns the
    PROGRAM_EVENT and CUE packets it sent. during(): called after the samples, before
    REPLAY_END (end False: none sent)."""
    d = device()
    if not first:
        d.core = core
        assert command(P.CMD_REPLAY_BEGIN, struct.pack("<HBBBB", 10000, 0, 1, 0, 0))[-1][1] == P.T_ACK
    n = P.HEADER_LEN + P.SAMPLES_HEADER_LEN + 12 * 50
    buf = bytearray(n + P.CRC_LEN)  # one SAMPLES packet of 50 samples, all zero, for all
    out = []
    for index in range(first, first + samples, 50):
        struct.pack_into("<BBHIIBBBB", buf, 0, 1, P.T_SAMPLES, 7, 0, index, 50, 0, 1, 0)
        d.on_packet(buf, n)
        out += packets(_KEPT)
    if during is not None:
        during()
    if end:
        d.on_packet(buf, _command_packet(buf, P.CMD_REPLAY_END))
        out += packets(_KEPT)
    return out


def _command_packet(buf, cmd):
    # A COMMAND without arguments into buf; its length.
    struct.pack_into("<BBHIBB", buf, 0, 1, P.T_COMMAND, 7, 0, cmd, 0)
    return P.HEADER_LEN + 2


def program_events(packets):
    return [struct.unpack_from(_EVENT_FMT, p, P.HEADER_LEN) for p in packets if p[1] == P.T_PROGRAM_EVENT]


def cues(packets):
    return [struct.unpack_from("<IIIIHhhHBBBBHH", p, P.HEADER_LEN) for p in packets if p[1] == P.T_CUE]


def summary(events):
    # (event, block, kind, detail) per event: the session's shape at a glance
    return [(e[0], e[1], e[2], e[3]) for e in events]


def ack(packets):
    assert packets and packets[-1][1] == P.T_ACK, packets
    return packets


def error_detail(packets):
    assert packets and packets[-1][1] == P.T_ERROR, packets
    return struct.unpack_from("<BBHBB", packets[-1], P.HEADER_LEN)[3:]


def reboot():
    # A new runner from the same settings directory, as Device.__init__ makes it at power-on.
    from insolefw.program import load
    d = device()
    d.program = load(d, False)
    return d.program


def fading_cues(goal, start_pct, end_pct, n_out_of_band):
    """The spec's fading rule, in fractions: which of the out-of-band steps are cued."""
    den = max(goal - 1, 1)
    acc = 0  # in % x den
    cued = []
    for k in range(1, n_out_of_band + 1):
        acc += start_pct * den + (end_pct - start_pct) * min(k - 1, den)
        if acc >= 100 * den:
            acc -= 100 * den
            cued.append(k)
    return cued


def stored_files():
    import os
    return sorted(n for n in os.listdir(board.SETTINGS_DIR) if n.startswith("program"))
