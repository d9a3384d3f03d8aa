# Replay sample source: samples arrive over the link (SAMPLES packets from the host)
# instead of from the ADC and IMU, at the recorded rate. It offers the same interface
# as a board's live SensorSource, so everything after the source is the same code.
from micropython import const

from insolefw import fast
from insolefw.protocol import sample_record_len

# One SAMPLES packet's worth: a packet's payload is at most 1008 bytes of records, and
# the link drains each packet through the core before it takes the next.
_RING_BYTES = const(1024)


class ReplaySource:
    def __init__(self):
        self._ring = bytearray(_RING_BYTES)  # records packed at their own size
        self._capacity = 0  # samples that fit, for the configured record size
        self.n_pressure = 0
        self.imu = 0
        self.rate_chz = 10000
        self.dropped = 0
        self._record = 0
        self._head = 0
        self._count = 0

    def configure(self, rate_chz, n_pressure, imu):
        self.rate_chz = rate_chz
        self.n_pressure = n_pressure
        self.imu = imu
        self._record = sample_record_len(n_pressure, imu)
        self._capacity = _RING_BYTES // self._record if self._record else 0
        self._head = 0
        self._count = 0
        self.dropped = 0

    def start(self):
        pass

    def stop(self):
        self._count = 0

    def free(self):
        return self._capacity - self._count

    def push(self, buf, off, count):
        """Copies `count` wire-format sample records from buf[off:]; False if no room."""
        if count > self._capacity - self._count:
            return False
        rec = self._record
        for _ in range(count):
            slot = (self._head + self._count) % self._capacity
            fast.copy_bytes(self._ring, slot * rec, buf, off, rec)
            off += rec
            self._count += 1
        return True

    def read_into(self, pressure, imu):
        if not self._count:
            return 0
        base = self._head * self._record
        np2 = 2 * self.n_pressure
        # array('H')/array('h') are little-endian in memory on the ESP32 and x86, like the wire.
        fast.copy_bytes(pressure, 0, self._ring, base, np2)
        if self.imu:
            fast.copy_bytes(imu, 0, self._ring, base + np2, 12)
        self._head = (self._head + 1) % self._capacity
        self._count -= 1
        return 1
