# Device settings: validated field by field, persisted atomically (write, then rename).
from micropython import const
import os
import struct

from insolefw import fast
from insolefw.protocol import SETTINGS_LEN, NA_U8

SETTINGS_VERSION = const(1)
_FMT = "<BBBBhHHHHBB"
_FILE = "settings.bin"

CUE_OFF = const(0)
CUE_FPA_BAND = const(1)
CUE_METRONOME = const(2)


class Settings:
    def __init__(self):
        self.side = NA_U8
        self.cue_mode = CUE_OFF
        self.cue_duty_pct = 60
        self.fpa_target_cdeg = 0
        self.fpa_half_width_cdeg = 200
        self.cue_duration_ms = 300
        self.metronome_spm = 100
        self.rate_chz = 10000
        self.stream_samples = 1

    def encode_into(self, buf, off):
        struct.pack_into(_FMT, buf, off, SETTINGS_VERSION, self.side, self.cue_mode,
                         self.cue_duty_pct, self.fpa_target_cdeg, self.fpa_half_width_cdeg,
                         self.cue_duration_ms, self.metronome_spm, self.rate_chz,
                         self.stream_samples, 0)

    def decode_from(self, buf, off):
        """Validates a SETTINGS payload and applies it only if every field is valid.

        Returns -1 on success, else the payload offset of the first bad field.
        """
        (version, side, cue_mode, duty, target, half_width, duration, spm, rate,
         stream, reserved) = struct.unpack_from(_FMT, buf, off)
        if version != SETTINGS_VERSION:
            return 0
        if side not in (0, 1, NA_U8):
            return 1
        if cue_mode > CUE_METRONOME:
            return 2
        if duty > 100:
            return 3
        if not -3000 <= target <= 3000:
            return 4
        if not 50 <= half_width <= 2000:
            return 6
        if not 50 <= duration <= 1000:
            return 8
        if not 40 <= spm <= 200:
            return 10
        if not 5000 <= rate <= 25000:
            return 12
        if stream > 1:
            return 14
        if reserved:
            return 15
        self.side = side
        self.cue_mode = cue_mode
        self.cue_duty_pct = duty
        self.fpa_target_cdeg = target
        self.fpa_half_width_cdeg = half_width
        self.cue_duration_ms = duration
        self.metronome_spm = spm
        self.rate_chz = rate
        self.stream_samples = stream
        return -1

    def save(self, directory):
        # Payload plus CRC; written to a temporary file and renamed over the old one,
        # so a power cut leaves either the old or the new settings, never half of each.
        buf = bytearray(SETTINGS_LEN + 2)
        self.encode_into(buf, 0)
        crc = fast.crc16(buf, 0, SETTINGS_LEN)
        buf[SETTINGS_LEN] = crc & 0xFF
        buf[SETTINGS_LEN + 1] = crc >> 8
        _ensure_dir(directory)
        path = directory + "/" + _FILE
        with open(path + ".tmp", "wb") as f:
            f.write(buf)
        os.rename(path + ".tmp", path)

    def load(self, directory):
        """Loads persisted settings; returns False (keeping defaults) if absent or corrupt."""
        try:
            with open(directory + "/" + _FILE, "rb") as f:
                buf = f.read()
        except OSError:
            return False
        if len(buf) != SETTINGS_LEN + 2:
            return False
        if fast.crc16(buf, 0, SETTINGS_LEN) != buf[SETTINGS_LEN] | (buf[SETTINGS_LEN + 1] << 8):
            return False
        return self.decode_from(buf, 0) < 0


def _ensure_dir(directory):
    try:
        os.stat(directory)
    except OSError:
        os.mkdir(directory)
