# Reads docs/protocol-vectors.json one case per line (json.load of the whole file does
# not fit a 128K heap); shared by the fwtest_vectors* modules.
import binascii
import gc
import json
import sys

from insolefw import fast


def _vectors_path():
    for p in sys.path:
        if p.endswith("firmware"):
            return p[: -len("firmware")] + "docs/protocol-vectors.json"
    raise AssertionError("firmware directory not on MICROPYPATH")


LINE_BYTES = 8192  # the longest vector line is ~5.4 KB (a 1024-byte SAMPLES packet)
skipped_long = 0  # lines skipped by _cases(skip_long=True)
_line = None


def use_line_buffer(buf):
    # Reads into buf instead: a caller with a crowded heap makes it while it still
    # finds that much in one piece (lines longer than buf: see skip_long).
    global _line
    _line = buf


def _cases(kind, skip_long=False, fields=True):
    # Yields the cases of one kind, reading the file line by line into one preallocated
    # buffer (LINE_BYTES, made at the first call) and parsing each line straight from
    # it: a 128K heap holds neither the file nor big strings. With skip_long, lines
    # longer than the buffer are skipped (counted in skipped_long) instead of failing.
    # Without fields, a case's decoded "fields" (always its last key) are not parsed:
    # a 255-sample SAMPLES case's are 255 lists, ~16 KB on a 64-bit port.
    global _line, skipped_long
    if _line is None:
        _line = bytearray(LINE_BYTES)
    buf = _line
    view = memoryview(buf)
    filled = 0
    skipping = False
    with open(_vectors_path(), "rb") as f:
        while True:
            newline = fast.find_byte(buf, 0, filled, 10)
            if newline < 0:
                if filled == len(buf):
                    if not skip_long:
                        raise AssertionError("a vector line is longer than %d bytes" % len(buf))
                    if not skipping:
                        skipped_long += 1
                    skipping = True
                    filled = 0
                got = f.readinto(view[filled:])
                if not got:
                    return
                filled += got
                continue
            end = newline - 1 if newline and buf[newline - 1] == 44 else newline  # 44 = ","
            case = None
            if not skipping and buf[0] == 32 and buf[1] == 32 and buf[2] == 123:  # '  {'
                if not fields:
                    cut = buf.find(b',"fields":', 2, end)
                    if cut > 0:
                        buf[cut] = 125  # "}": the object ends before its fields
                        end = cut + 1
                gc.collect()
                case = json.loads(view[2:end])
            skipping = False
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
