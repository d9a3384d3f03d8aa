# The serial writer the Device-level firmware tests give a Device: keeps every byte
# the firmware writes, for the test to decode.


class SerialSink:
    def __init__(self):
        self.data = bytearray()

    def write(self, buf, off, n):
        self.data.extend(memoryview(buf)[off:off + n])
        return n
