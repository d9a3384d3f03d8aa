# Device settings (SETTINGS payload, settings_version 2; docs/protocol.md): validated
# field by field, persisted atomically (write a temporary file, then rename it over
# the old one). The file is the payload plus its CRC, so it carries its own version;
# a missing, old, short or corrupt file leaves the defaults in force.
from micropython import const
import errno
import os
import struct

from insolefw import fast
from insolefw.protocol import SETTINGS_LEN, NA_U8

SETTINGS_VERSION = const(2)
_FMT = "<BBBBhHBBHHHBBBBHHHHHHBBh"
_FILE = "settings.bin"

CUE_OFF = const(0)
CUE_FPA_BAND = const(1)
CUE_METRONOME = const(2)

SCHEDULE_EVERY = const(0)  # cue every out-of-band step
SCHEDULE_EVERY_KTH = const(1)  # cue every k-th out-of-band step
SCHEDULE_PROBABILITY = const(2)  # cue an out-of-band step with a probability


class Settings:
    def __init__(self):
        self.side = NA_U8
        self.cue_mode = CUE_OFF
        self.cue_duty_pct = 60
        self.fpa_target_cdeg = 0
        self.fpa_half_width_cdeg = 200
        self.toe_in_pattern = 1  # long (pulse patterns 1..4: insolefw/cue.py)
        self.toe_out_pattern = 2  # short-short
        self.cue_duration_ms = 300
        self.cue_ms_per_deg = 0  # fixed duration
        self.cue_max_ms = 600
        self.schedule = SCHEDULE_EVERY
        self.fade_every = 2
        self.fade_probability_pct = 50
        self.metronome_pattern = 1
        self.block_on_steps = 40
        self.block_off_steps = 0  # no no-feedback blocks
        self.seed = 1
        self.metronome_spm = 100
        self.metronome_pulse_ms = 100
        self.rate_chz = 10000
        self.stream_samples = 1
        self.imu_yaw_cdeg = 0  # the IMU's mounting yaw, taken off every live foot angle

    def encode_into(self, buf, off):
        struct.pack_into(_FMT, buf, off, SETTINGS_VERSION, self.side, self.cue_mode,
                         self.cue_duty_pct, self.fpa_target_cdeg, self.fpa_half_width_cdeg,
                         self.toe_in_pattern, self.toe_out_pattern, self.cue_duration_ms,
                         self.cue_ms_per_deg, self.cue_max_ms, self.schedule, self.fade_every,
                         self.fade_probability_pct, self.metronome_pattern, self.block_on_steps,
                         self.block_off_steps, self.seed, self.metronome_spm,
                         self.metronome_pulse_ms, self.rate_chz, self.stream_samples, 0,
                         self.imu_yaw_cdeg)

    def decode_from(self, buf, off):
        """Validates a SETTINGS payload and applies it only if every field is valid.

        Returns -1 on success, else the payload offset of the first bad field.
        """
        (version, side, mode, duty, target, half_width, toe_in, toe_out, duration,
         ms_per_deg, max_ms, schedule, every, probability, m_pattern, block_on,
         block_off, seed, spm, pulse_ms, rate, stream, reserved8,
         imu_yaw) = struct.unpack_from(_FMT, buf, off)
        bad = (0 if version != SETTINGS_VERSION else
               1 if side > 1 and side != NA_U8 else
               2 if mode > CUE_METRONOME else
               3 if duty > 100 else
               4 if not -3000 <= target <= 3000 else
               6 if not 50 <= half_width <= 2000 else
               8 if not 1 <= toe_in <= 4 else
               9 if not 1 <= toe_out <= 4 else
               10 if not 50 <= duration <= 1000 else
               12 if ms_per_deg > 1000 else
               14 if not duration <= max_ms <= 2000 else
               16 if schedule > SCHEDULE_PROBABILITY else
               17 if not 1 <= every <= 100 else
               18 if probability > 100 else
               19 if not 1 <= m_pattern <= 4 else
               20 if not 1 <= block_on <= 1000 else
               22 if block_off > 1000 else
               26 if not 40 <= spm <= 200 else
               28 if not 20 <= pulse_ms <= 250 else
               30 if not 5000 <= rate <= 25000 else
               32 if stream > 1 else
               33 if reserved8 else
               34 if not -3000 <= imu_yaw <= 3000 else -1)
        if bad < 0:
            self.side = side
            self.cue_mode = mode
            self.cue_duty_pct = duty
            self.fpa_target_cdeg = target
            self.fpa_half_width_cdeg = half_width
            self.toe_in_pattern = toe_in
            self.toe_out_pattern = toe_out
            self.cue_duration_ms = duration
            self.cue_ms_per_deg = ms_per_deg
            self.cue_max_ms = max_ms
            self.schedule = schedule
            self.fade_every = every
            self.fade_probability_pct = probability
            self.metronome_pattern = m_pattern
            self.block_on_steps = block_on
            self.block_off_steps = block_off
            self.seed = seed
            self.metronome_spm = spm
            self.metronome_pulse_ms = pulse_ms
            self.rate_chz = rate
            self.stream_samples = stream
            self.imu_yaw_cdeg = imu_yaw
        return bad

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
        """Loads persisted settings; returns False (keeping defaults) if absent, of
        another settings version, or corrupt."""
        try:
            with open(directory + "/" + _FILE, "rb") as f:
                buf = f.read(SETTINGS_LEN + 3)
        except OSError:
            return False
        if len(buf) != SETTINGS_LEN + 2:
            return False  # e.g. a settings_version 1 file (16 + 2 bytes)
        if fast.crc16(buf, 0, SETTINGS_LEN) != buf[SETTINGS_LEN] | (buf[SETTINGS_LEN + 1] << 8):
            return False
        return self.decode_from(buf, 0) < 0

    @staticmethod
    def erase(directory, name=_FILE):
        """Removes the persisted settings (or another file written atomically, `name`) and
        the temporary file a power cut left, so the defaults hold at the next start;
        False if a file is there but would not go."""
        path = directory + "/" + name
        ok = True
        for name in (path, path + ".tmp"):
            try:
                os.remove(name)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    ok = False
        return ok


def _ensure_dir(directory):
    try:
        os.stat(directory)
    except OSError:
        os.mkdir(directory)
