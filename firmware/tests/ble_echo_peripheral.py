# A test peripheral for tests/test_ble.py: insolefw.ble.BleLink on the unix port's
# bluetooth stand-in, with an app that only echoes. Every verified control packet is
# printed ("packet TYPE SEQ") and answered with an ACK; COMMAND GET_STATUS is answered
# with a STATUS packet; COMMAND START_STREAM answers ACK, then sends
# INSOLE_BLE_STREAM_PACKETS full-size SAMPLES packets as fast as the link takes them,
# with a STEP event (and its RSC Measurement) after every 25, and prints "stream SENT DROPPED BUSY" (BUSY: times
# the stack had no buffer free and the link waited). Refused writes
# print "bad REASON". The battery level is INSOLE_BATTERY_PCT (default 100).
# COMMAND EXIT_TO_REPL answers ACK, then the insole ends the link
# itself ("disconnect True") and advertises again. Argument --indicate sends events
# as indications.
import asyncio
import gc
import os
import struct
import sys

import bluetooth
from insolefw import protocol as P
from insolefw.ble import BleLink

_SIDE = {"left": 0, "right": 1}.get(os.getenv("INSOLE_SIDE"), 0xFF)
_STREAM_PACKETS = int(os.getenv("INSOLE_BLE_STREAM_PACKETS") or "400")
_N_PRESSURE = 16
_RECORD = 2 * _N_PRESSURE + 12


class EchoApp:
    def __init__(self):
        self.builder = P.PacketBuilder()
        self.stream_builder = P.PacketBuilder()
        self.link = BleLink(bluetooth.BLE(), "insole", _SIDE, self.on_packet, self.on_bad,
                            indicate_events="--indicate" in sys.argv,
                            settings_dir=os.getenv("INSOLE_SETTINGS_DIR"))
        self.step = bytearray(P.STEP_LEN)
        # A 1 s stride (600 ms stance, 400 ms swing) of 1.4 m at 1.4 m/s: RSC 120 steps/min.
        struct.pack_into("<HH", self.step, 8, 600, 400)  # stance, swing (docs/protocol.md STEP)
        struct.pack_into("<HH", self.step, 20, 1400, 1400)  # stride length, speed
        self.streaming = False

    def on_packet(self, buf, length):
        ptype = buf[1]
        seq = buf[2] | (buf[3] << 8)
        command = buf[P.HEADER_LEN] if ptype == P.T_COMMAND and length > P.HEADER_LEN else 0
        print("packet", ptype, seq)
        if command == P.CMD_GET_STATUS:
            gc.collect()
            link = self.link
            n = self.builder.status(0, (0, 1, 0), _SIDE, 0, 0, 0, 0xFF, 10000, 0xFFFF,
                                    link.dropped, link.sent, gc.mem_free(),
                                    P.count_u16(link.irq_faults), P.count_u16(link.refused))
        else:
            n = self.builder.ack(0, ptype, command, seq)
        self.link.send(self.builder.buf, n)
        if command == P.CMD_START_STREAM and not self.streaming:
            self.link.want_gait_data(True)  # as the insole app does for a bonded host
            self.streaming = True
            asyncio.create_task(self.stream())
        elif command == P.CMD_EXIT_TO_REPL:
            asyncio.create_task(self.hang_up())

    async def hang_up(self):
        await asyncio.sleep_ms(50)  # let the ACK go first
        print("disconnect", self.link.disconnect())

    def on_bad(self, reason):
        print("bad", reason)

    async def stream(self):
        link = self.link
        b = self.stream_builder
        per_packet = (link.payload_limit - P.HEADER_LEN - P.SAMPLES_HEADER_LEN) // _RECORD
        length = P.HEADER_LEN + P.SAMPLES_HEADER_LEN + per_packet * _RECORD
        sent = 0
        first = 0
        while sent < _STREAM_PACKETS and link.connected:
            if not link.can_send(P.T_SAMPLES, length):
                await asyncio.sleep_ms(1)
                continue
            b.samples_header(0, first, per_packet, _N_PRESSURE, 1)
            link.send(b.buf, length)
            first += per_packet
            sent += 1
            if sent % 25 == 0:
                self.step[24] = sent // 25  # step_number, low byte
                n = b.event(P.T_STEP, 0, self.step, P.STEP_LEN)
                while not link.can_send(P.T_STEP, n):
                    await asyncio.sleep_ms(1)
                link.send(b.buf, n)
                link.note_step(b.buf)  # the RSC Measurement, as the insole app does
            await asyncio.sleep_ms(0)
        print("stream", sent, link.dropped, link.busy)
        self.streaming = False


def main():
    app = EchoApp()
    app.link.start()
    app.link.set_battery(int(os.getenv("INSOLE_BATTERY_PCT") or "100"))
    print("ready", app.link.name)
    asyncio.run(app.link.run())


main()
