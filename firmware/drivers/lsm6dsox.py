# LSM6DSOX 6-axis IMU (STMicroelectronics) on I2C, read from its hardware FIFO.
#
# Modelled on micropython-lib's drivers/imu/lsm6dsox, but built for a sampling loop
# that must not allocate: every buffer is made once in __init__, the FIFO is read in
# one I2C burst with readfrom_mem_into, and raw words are scaled to protocol units
# (acceleration in mg, angular rate in 0.1 deg/s, both int16) with small-int math
# (every product stays below 2**30, the ESP32's small-int limit) and rotated into the
# foot frame (x toes, y left, z up) by a mounting table given by the board.
#
#   imu = LSM6DSOX(i2c, rate_hz=208, mount=((1, -1), (0, 1), (2, 1)))
#   imu.start()
#   n = imu.fifo_read_into(buf)   # buf: array('h', 6 * imu.burst_samples)
#
# FIFO: 512 words of 7 bytes (1 tag byte + 6 data bytes) without compression; one
# 6-axis sample is two words (gyro + accel of the same time slot, same TAG_CNT), so
# it holds 256 samples: 1.23 s at 208 Hz, 2.46 s at 104 Hz.
from micropython import const
import time

_WHO_AM_I = const(0x0F)
_CHIP_ID = const(0x6C)
_FIFO_CTRL1 = const(0x07)  # watermark [7:0], in FIFO words
_FIFO_CTRL2 = const(0x08)  # bit 0: watermark bit 8
_FIFO_CTRL3 = const(0x09)  # batch data rate: gyro [7:4], accel [3:0]
_FIFO_CTRL4 = const(0x0A)  # FIFO mode [2:0]
_INT1_CTRL = const(0x0D)
_CTRL1_XL = const(0x10)
_CTRL2_G = const(0x11)
_CTRL3_C = const(0x12)
_CTRL9_XL = const(0x18)
_FIFO_STATUS1 = const(0x3A)  # unread words [7:0]; FIFO_STATUS2 follows at 0x3B
_INTERNAL_FREQ_FINE = const(0x63)
_FIFO_DATA_OUT_TAG = const(0x78)  # tag, then X_L..Z_H; a burst rolls over to the next word

_CTRL3_SW_RESET = const(0x01)
_CTRL3_IF_INC = const(0x04)
_CTRL3_BDU = const(0x40)
_CTRL9_I3C_DISABLE = const(0x02)
_INT1_FIFO_TH = const(0x08)
_FIFO_MODE_BYPASS = const(0)
_FIFO_MODE_CONTINUOUS = const(6)
_STATUS2_OVR = const(0x40)  # FIFO_OVR_IA: at least one word was overwritten
_STATUS2_LEVEL_HI = const(0x03)  # DIFF_FIFO [9:8]

_TAG_GYRO = const(0x01)
_TAG_ACCEL = const(0x02)
_WORD_LEN = const(7)
_FIFO_WORDS = const(512)

# Nominal ODR -> (ODR/BDR register code, ODR_Coeff). Actual ODR from the datasheet:
# (6667 Hz + 0.15 % x INTERNAL_FREQ_FINE) / ODR_Coeff, so 208 Hz is 208.34 Hz typical.
_ODR = {52: (0x3, 128), 104: (0x4, 64), 208: (0x5, 32)}
# Full scale -> (register code, numerator, denominator) of mg (0.1 deg/s) per LSB.
_ACCEL_FS = {2: (0x0, 61, 1000), 4: (0x2, 61, 500), 8: (0x3, 61, 250), 16: (0x1, 61, 125)}
_GYRO_FS = {250: (0x0, 7, 80), 500: (0x1, 7, 40), 1000: (0x2, 7, 20), 2000: (0x3, 7, 10)}

DEFAULT_ADDRESS = const(0x6A)  # SDO/SA0 low; 0x6B with SDO/SA0 high


def mount_is_rotation(mount):
    """True if mount ((chip_axis, sign) per foot axis) is a proper rotation (det +1).

    A reflection would turn the right-handed gyro into a left-handed one."""
    axes = [a for a, _ in mount]
    if len(mount) != 3 or sorted(axes) != [0, 1, 2]:
        return False
    if any(s not in (1, -1) for _, s in mount):
        return False
    inversions = sum(1 for i in range(3) for j in range(i + 1, 3) if axes[i] > axes[j])
    det = -1 if inversions & 1 else 1
    for _, s in mount:
        det *= s
    return det == 1


class LSM6DSOX:
    def __init__(self, i2c, address=DEFAULT_ADDRESS, rate_hz=208, accel_fs_g=16,
                 gyro_fs_dps=2000, mount=((0, 1), (1, 1), (2, 1)),
                 watermark_samples=8, burst_samples=32):
        if rate_hz not in _ODR:
            raise ValueError("rate_hz must be one of %s" % sorted(_ODR))
        if accel_fs_g not in _ACCEL_FS or gyro_fs_dps not in _GYRO_FS:
            raise ValueError("unsupported full scale")
        if not mount_is_rotation(mount):
            raise ValueError("mount must be a proper rotation (axis permutation with signs, det +1)")
        if not 1 <= watermark_samples <= 255 or not 1 <= burst_samples <= 255:
            raise ValueError("watermark_samples and burst_samples must be 1..255")
        self._i2c = i2c
        self._addr = address
        self._reg = bytearray(1)
        self._status = bytearray(2)
        try:
            i2c.readfrom_mem_into(address, _WHO_AM_I, self._reg)
        except OSError:
            raise OSError("no I2C device answers at 0x%02x: check the LSM6DSOX wiring, "
                          "pull-ups and SDO/SA0 level" % address)
        if self._reg[0] != _CHIP_ID:
            raise OSError("device at 0x%02x is not an LSM6DSOX: WHO_AM_I is 0x%02x, expected 0x%02x"
                          % (address, self._reg[0], _CHIP_ID))

        odr_code, odr_coeff = _ODR[rate_hz]
        accel_code, self._acc_num, self._acc_den = _ACCEL_FS[accel_fs_g]
        gyro_code, self._gyr_num, self._gyr_den = _GYRO_FS[gyro_fs_dps]
        # Flat (chip axis, sign) for foot x, y, z; the gyro rotates with the same table.
        self._mount = (mount[0][0], mount[0][1], mount[1][0], mount[1][1], mount[2][0], mount[2][1])
        self._ctrl1_xl = (odr_code << 4) | (accel_code << 2)
        self._ctrl2_g = (odr_code << 4) | (gyro_code << 2)
        self._watermark_words = 2 * watermark_samples

        # Scratch, made once: raw FIFO words, and one view per burst length so that a
        # read of any word count needs no memoryview slice (a slice allocates).
        self.burst_samples = burst_samples
        self._cap_words = 2 * burst_samples
        self._raw = bytearray(_WORD_LEN * self._cap_words)
        mv = memoryview(self._raw)
        self._views = tuple(mv[: _WORD_LEN * (k + 1)] for k in range(self._cap_words))
        self._chip = [0, 0, 0, 0, 0, 0]  # ax ay az gx gy gz of the pending slot, chip frame
        self._pending = 0  # bit 0: accel word held, bit 1: gyro word held
        self._pending_cnt = -1  # TAG_CNT of the held word(s)

        self.fifo_words = 0  # unread words at the last status read
        self.fifo_words_left = 0  # of those, words this read left in the FIFO
        self.overrun = False  # FIFO overwrote unread words before the last read
        self.incomplete = 0  # time slots with only one of accel/gyro (discarded)

        self.reset()
        self._write(_CTRL3_C, _CTRL3_BDU | _CTRL3_IF_INC)
        self._i2c.readfrom_mem_into(address, _INTERNAL_FREQ_FINE, self._reg)
        fine = self._reg[0] - 256 if self._reg[0] & 0x80 else self._reg[0]
        self.freq_fine = fine
        # Actual rate in 0.01 Hz; big intermediates are fine here (init, not per sample).
        self.rate_chz = 666700 * (10000 + 15 * fine) // (odr_coeff * 10000)
        self.period_us = 100000000 // self.rate_chz
        self._write(_FIFO_CTRL1, self._watermark_words & 0xFF)
        self._write(_FIFO_CTRL2, self._watermark_words >> 8)
        self._write(_FIFO_CTRL3, (odr_code << 4) | odr_code)
        self._write(_FIFO_CTRL4, _FIFO_MODE_BYPASS)
        self._write(_INT1_CTRL, _INT1_FIFO_TH)
        self.stop()

    def _write(self, reg, value):
        self._reg[0] = value
        self._i2c.writeto_mem(self._addr, reg, self._reg)

    def _read(self, reg):
        self._i2c.readfrom_mem_into(self._addr, reg, self._reg)
        return self._reg[0]

    def reset(self):
        # I3C off before the software reset, as ST's driver (lsm6dsox_i3c_disable_set)
        # and Zephyr's do: on an I2C-only bus the chip's I3C interface can take I2C
        # traffic for I3C patterns, and the setting survives the reset.
        self._write(_CTRL9_XL, self._read(_CTRL9_XL) | _CTRL9_I3C_DISABLE)
        self._write(_CTRL3_C, self._read(_CTRL3_C) | _CTRL3_SW_RESET)
        for _ in range(10):
            if not self._read(_CTRL3_C) & _CTRL3_SW_RESET:
                return
            time.sleep_ms(1)
        raise OSError("LSM6DSOX did not finish its software reset")

    def start(self):
        """Power both sensors up and start the FIFO empty, in continuous mode."""
        self._write(_FIFO_CTRL4, _FIFO_MODE_BYPASS)  # bypass empties the FIFO
        self._pending = 0
        self._pending_cnt = -1
        self.overrun = False
        self.fifo_words = 0
        self.fifo_words_left = 0
        self._write(_CTRL1_XL, self._ctrl1_xl)
        self._write(_CTRL2_G, self._ctrl2_g)
        self._write(_FIFO_CTRL4, _FIFO_MODE_CONTINUOUS)

    def stop(self):
        """FIFO off and both sensors powered down (a few uA)."""
        self._write(_FIFO_CTRL4, _FIFO_MODE_BYPASS)
        self._write(_CTRL1_XL, 0)
        self._write(_CTRL2_G, 0)

    def fifo_read_into(self, out):
        """Read every complete sample (up to burst_samples) from the FIFO in one burst.

        Writes ax, ay, az (mg) and gx, gy, gz (0.1 deg/s) in the foot frame per sample
        into out (array('h'), 6 per sample, oldest first) and returns the number of
        samples. Sets fifo_words (unread words before this read), fifo_words_left
        (those not taken by this read: the burst is capped) and overrun. A
        slot whose second word is not in the FIFO yet stays pending for the next read.
        Allocates nothing.
        """
        i2c = self._i2c
        status = self._status
        i2c.readfrom_mem_into(self._addr, _FIFO_STATUS1, status)
        level = status[0] | ((status[1] & _STATUS2_LEVEL_HI) << 8)
        self.fifo_words = level
        self.overrun = (status[1] & _STATUS2_OVR) != 0
        # With one word pending, 2n - 1 more words complete at most n samples.
        words = self._cap_words - (1 if self._pending else 0)
        if level < words:
            words = level
        self.fifo_words_left = level - words
        if words <= 0:
            return 0
        i2c.readfrom_mem_into(self._addr, _FIFO_DATA_OUT_TAG, self._views[words - 1])
        raw = self._raw
        chip = self._chip
        n = 0
        o = 0
        for _ in range(words):
            tag = raw[o]
            sensor = tag >> 3
            if sensor == _TAG_ACCEL:
                bit = 1
                base = 0
            elif sensor == _TAG_GYRO:
                bit = 2
                base = 3
            else:
                o += _WORD_LEN
                continue  # temperature, timestamp, config-change words: not batched here
            cnt = (tag >> 1) & 3
            if cnt != self._pending_cnt:
                if self._pending:
                    self.incomplete += 1  # the other half of that slot never came
                self._pending = 0
                self._pending_cnt = cnt
            for axis in range(3):
                v = raw[o + 1 + 2 * axis] | (raw[o + 2 + 2 * axis] << 8)
                chip[base + axis] = v - 0x10000 if v & 0x8000 else v
            self._pending |= bit
            if self._pending == 3:
                self._emit(out, 6 * n)
                n += 1
                self._pending = 0
                self._pending_cnt = -1
            o += _WORD_LEN
        return n

    def _emit(self, out, o):
        # Scale, then rotate: rounding half up, (2*raw*num + den) // (2*den).
        chip = self._chip
        m = self._mount
        an = 2 * self._acc_num
        ad = self._acc_den
        gn = 2 * self._gyr_num
        gd = self._gyr_den
        for j in range(3):
            axis = m[2 * j]
            sign = m[2 * j + 1]
            out[o + j] = (sign * chip[axis] * an + ad) // (2 * ad)
            out[o + 3 + j] = (sign * chip[3 + axis] * gn + gd) // (2 * gd)
