# The insole application: link input, sampling, motor, one asyncio task per concern.
#
# Bad input never crashes the device: every refused packet is answered with an ERROR
# packet and leaves the state as it was.
from micropython import const
import asyncio
import gc
import struct
import time
from array import array

import board
from insolefw import protocol as P
from insolefw.gait import EventQueue, GaitCore, MAX_CHANNELS
from insolefw.battery import battery_percent
from insolefw.replay import ReplaySource
from insolefw.settings import Settings, CUE_FPA_BAND, CUE_METRONOME
from insolefw.version import FW_MAJOR, FW_MINOR, FW_PATCH

MODE_IDLE = const(0)
MODE_LIVE = const(1)
MODE_REPLAY = const(2)

_RX_CHUNK = const(256)
_LIVE_BATCH = const(10)  # samples per SAMPLES packet while streaming live
_BLE_FULL_PACKET = const(244)  # a notification at the MTU the insole asks for (247)
_MOTOR_TICK_MS = const(10)  # longest sleep of the motor task while a pattern plays
_METRONOME_IDLE_MS = const(50)  # how often an unarmed metronome looks again
# CUE codes of insolefw/cue.py (that module is imported late, see Device.__init__)
_CUED = const(0)
_REASON_METRONOME = const(3)
_REASON_TEST = const(4)
_PATTERN_LONG = const(1)
_EVENT_LOG_RECORDS = const(128)  # when the board does not say (insolefw/eventlog.py)
_SAMPLE_SLOT_BYTES = const(248)  # insolefw/eventlog.py SAMPLE_SLOT
_BOARD_POLL_MS = const(500)
_BATTERY_EVERY_POLLS = const(20)  # the battery level every 10 s
_GESTURE_PAIRING_MS = const(60000)  # the window a pairing gesture opens


class Clock:
    """Device time in ms since boot, modulo 2**30 (ticks wrap; ticks_diff handles it)."""

    def __init__(self, ticks_ms=time.ticks_ms, ticks_diff=time.ticks_diff):
        self._ticks_ms = ticks_ms
        self._ticks_diff = ticks_diff
        self._last = ticks_ms()
        self._ms = 0

    def now_ms(self):
        t = self._ticks_ms()
        self._ms = P.time_add_ms(self._ms, self._ticks_diff(t, self._last))
        self._last = t
        return self._ms


class Device:
    """The insole: one sampling path, answers on the link a request came in on.

    Links: USB serial (framer) always; BLE (insolefw.ble.BleLink) when the board has
    a radio. Answers go back on the link the request came in on; events and live
    samples go to `out`, the link that last started a stream (BLE by default), and
    every event is kept in the event log for GET_EVENTS, connected or not.
    """

    def __init__(self, reader, writer, wait_writable, ble=None):
        self.settings = Settings()
        self.settings.load(board.SETTINGS_DIR)
        # A board may supply its own device clock (the unix board's can run off by ppm),
        # and its own ticks_us, which times each cue's latency.
        self.clock = Clock(getattr(board, "ticks_ms", time.ticks_ms))
        self._ticks_us = getattr(board, "ticks_us", time.ticks_us)
        # The radio first: on an ESP32 without PSRAM the Python heap grows out of the
        # system heap that NimBLE also takes from when it starts, so BLE is switched on
        # before the logs claim what is left (board.log_budget_bytes).
        self.ble = None
        if ble is not None:
            from insolefw.ble import BleLink
            self.ble = BleLink(ble, "insole", self.side, self._on_ble_packet, self._on_ble_bad,
                               settings_dir=board.SETTINGS_DIR,
                               pairing_window_ms=getattr(board, "PAIRING_WINDOW_MS", 60000),
                               ticks_ms=getattr(board, "ticks_ms", time.ticks_ms))
            self.ble.start()
            gc.collect()
        # Then the large buffers, while the heap is least fragmented: the event log's
        # ring (EVENT_LOG_RECORDS x 40 bytes; 56 KB on the ESP32-S3), the sample log
        # (live SAMPLES as sent, for a BLE link's backfill) and the replay ring (1 KB).
        # The cueing and event-log modules are imported last: on the unix port an import
        # compiles, and its leftovers break up the free heap.
        records, sample_bytes = _log_sizes()
        log_ring = bytearray(40 * records)
        sample_ring = bytearray(sample_bytes)
        self.replay = ReplaySource()
        self.reader = reader
        self.builder = P.PacketBuilder()
        # Live SAMPLES fill up over many samples while events and answers are sent in
        # between, so they get a packet buffer of their own.
        self.live_builder = P.PacketBuilder()
        self.serial = P.SerialFramer(writer, wait_writable)
        self.framer = self.serial  # where answers go: the link of the request at hand
        self.out = self.ble or self.serial  # where events and live samples go
        self.frames = P.FrameReader()
        self.events = EventQueue()
        self.core = GaitCore(self.events)
        self.live = _open_sensors()
        self.source = None
        self.motor = board.Motor()
        self.mode = MODE_IDLE
        self.running = True
        self.pressure = array("H", bytes(2 * MAX_CHANNELS))
        self.imu = array("h", bytes(12))
        self._event = bytearray(P.STEP_LEN)
        self._rx = bytearray(_RX_CHUNK)
        self._layout = list(sum(board.LAYOUT, ()))  # flat x0, y0, x1, y1, ...
        self._motor_flag = asyncio.ThreadSafeFlag()
        self._live_count = 0
        self._live_batch = _LIVE_BATCH
        self._live_first = 0
        self._live_off = 0
        self.samples_total = 0
        gc.collect()
        from insolefw.cue import CueEngine, CuePlayer, Metronome
        from insolefw.eventlog import EventLog, SAMPLE_SLOT
        self.eventlog = EventLog(log_ring)
        self.samplelog = EventLog(sample_ring, SAMPLE_SLOT, (P.T_SAMPLES,))

        self.cue = CueEngine()
        self.cue.reset(self.settings.seed)
        self.player = CuePlayer(self.motor)
        self.metronome = Metronome()
        # The exercise program (insolefw/program.py): its module is imported only when a
        # program is stored or written, as its code costs heap; its hooks below are
        # named as existing ones (update, append, decide ...), which cost no interned names.
        self.program = None
        try:
            open(board.SETTINGS_DIR + "/program.bin").close()
        except OSError:
            pass
        else:
            try:
                from insolefw.program import load
                self.program = load(self, False)  # None if unreadable (then removed)
            except MemoryError:
                pass  # no room for its code: the insole runs without it (it stays stored)

    @property
    def side(self):
        side = self.settings.side
        return board.DEFAULT_SIDE if side == P.NA_U8 else side

    # -- sending ---------------------------------------------------------------------

    def _send(self, length):
        self.framer.send(self.builder.buf, length)

    def _ack(self, ref_type, ref_command, ref_seq):
        self._send(self.builder.ack(self.clock.now_ms(), ref_type, ref_command, ref_seq))

    def _error(self, ref_type, ref_command, ref_seq, code, detail=0):
        self._send(self.builder.error(self.clock.now_ms(), ref_type, ref_command, ref_seq,
                                      code, detail))

    def send_status(self):
        gc.collect()  # report the steady-state free heap, not what garbage happens to hold
        source = self.source
        ble = self.ble
        mv = _battery_mv()
        self._send(self.builder.status(
            self.clock.now_ms(), (FW_MAJOR, FW_MINOR, FW_PATCH), self.side, self.mode,
            self.core.n_pressure if source else (self.live.n_pressure if self.live else 0),
            self.core.imu if source else (self.live.imu if self.live else 0),
            P.NA_U8 if mv == P.NA_U16 else battery_percent(mv),
            self.core.rate_chz if source else self.settings.rate_chz,
            mv, source.dropped if source else 0, self.samples_total, gc.mem_free(),
            P.count_u16(ble.irq_faults) if ble else P.NA_U16,
            P.count_u16(ble.refused) if ble else P.NA_U16))

    def flush_events(self):
        while True:
            info = self.events.pop_into(self._event)
            if not info:
                return
            self._send_event(info >> 8, self._event, info & 0xFF)

    def _send_event(self, ptype, record, length):
        # Every event packet is kept, exactly as sent, for GET_EVENTS: a BLE link that
        # is down (send refused) loses nothing the host cannot backfill.
        n = self.builder.event(ptype, self.clock.now_ms(), record, length)
        self.eventlog.append(self.builder.buf, n)
        if ptype == P.T_STEP and self.ble is not None:
            self.ble.note_step(self.builder.buf)  # the footpod's RSC Measurement
        self.out.send(self.builder.buf, n)
        if self.program is not None:
            self.program.append(self.builder.buf, n)  # its block counts steps and raises

    # -- receiving -------------------------------------------------------------------

    def _on_ble_packet(self, buf, length):
        self.framer = self.ble
        try:
            self.on_packet(buf, length)
        finally:
            self.framer = self.serial

    def _on_ble_bad(self, reason):
        # A refused control write (not bonded, bad CRC, overrun) changed nothing; say so
        # on the link it came from.
        from insolefw.ble import BAD_NOT_BONDED, BAD_CRC, BAD_OVERFLOW
        code = (P.E_NOT_BONDED if reason == BAD_NOT_BONDED else P.E_BAD_FRAME if reason == BAD_CRC
                else P.E_OVERFLOW if reason == BAD_OVERFLOW else P.E_BAD_LENGTH)
        self.ble.send(self.builder.buf, self.builder.error(self.clock.now_ms(), 0, 0, 0, code, 0))

    def on_bad_frame(self):
        self._error(0, 0, 0, P.E_BAD_FRAME)

    def on_packet(self, buf, length):
        ptype = buf[1]
        seq = buf[2] | (buf[3] << 8)
        if buf[0] != P.VERSION:
            self._error(ptype, 0, seq, P.E_UNSUPPORTED_VERSION)
            return
        plen = length - P.HEADER_LEN
        if length > P.MAX_PACKET:
            self._error(ptype, 0, seq, P.E_BAD_LENGTH)
        elif ptype == P.T_COMMAND:
            self._on_command(buf, plen, seq)
        elif ptype == P.T_SAMPLES:
            if self.framer is self.ble:
                self._error(P.T_SAMPLES, 0, seq, P.E_NOT_PERMITTED)  # replay data: USB only
            else:
                self._on_samples(buf, plen, seq)
        elif ptype == P.T_SETTINGS:
            self._on_settings(buf, plen, seq)
        elif ptype == P.T_LAYOUT:
            self._on_layout(buf, plen, seq)
        elif ptype == P.T_PROGRAM:
            if self.program is None:
                gc.collect()  # its code needs the heap in pieces of a few hundred bytes
                try:
                    from insolefw.program import load
                    self.program = load(self, True)  # a runner with none yet (gone if refused)
                except MemoryError:
                    self._error(P.T_PROGRAM, 0, seq, P.E_BAD_STATE, 0xFE)  # no room for it
                    return
            self.program.on_packet(buf, length)
        else:
            self._error(ptype, 0, seq, P.E_UNKNOWN_TYPE)

    def _on_command(self, buf, plen, seq):
        if plen < 2:
            self._error(P.T_COMMAND, 0, seq, P.E_BAD_LENGTH)
            return
        cmd = buf[P.HEADER_LEN]
        args = plen - 2
        arg0 = P.HEADER_LEN + 2
        expected = (4 if cmd == P.CMD_CUE_TEST else 6 if cmd in (P.CMD_REPLAY_BEGIN, P.CMD_GET_EVENTS)
                    else 2 if cmd == P.CMD_OPEN_PAIRING else 0)
        if not P.CMD_PING <= cmd <= P.CMD_CLEAR_PROGRAM:
            self._error(P.T_COMMAND, cmd, seq, P.E_UNKNOWN_COMMAND)
        elif (P.USB_ONLY_COMMANDS >> cmd) & 1 and self.framer is self.ble:
            # Maintenance is for the wearer on a cable (docs/protocol.md, "USB only"):
            # refused over BLE, even from a bonded central, before anything else is read.
            self._error(P.T_COMMAND, cmd, seq, P.E_NOT_PERMITTED)
        elif args != expected:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_LENGTH)
        elif buf[P.HEADER_LEN + 1]:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 1)  # reserved bytes are 0
        elif cmd == P.CMD_PING:
            self._ack(P.T_COMMAND, cmd, seq)
        elif cmd == P.CMD_GET_STATUS:
            self.send_status()
        elif cmd == P.CMD_GET_SETTINGS:
            self._send(self.builder.settings(self.clock.now_ms(), self.settings))
        elif cmd == P.CMD_GET_LAYOUT:
            self._send(self.builder.layout(self.clock.now_ms(), self._layout))
        elif cmd == P.CMD_START_STREAM:
            self._start_live(seq)
        elif cmd == P.CMD_STOP_STREAM:
            self._stop()
            self._ack(P.T_COMMAND, cmd, seq)
        elif cmd == P.CMD_REPLAY_BEGIN:
            self._replay_begin(buf, arg0, seq)
        elif cmd == P.CMD_REPLAY_END:
            if self.mode != MODE_REPLAY:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_STATE)
                return
            self.flush_events()
            self._stop()
            self._ack(P.T_COMMAND, cmd, seq)
        elif cmd == P.CMD_CUE_TEST:
            duration, duty, reserved = struct.unpack_from("<HBB", buf, arg0)
            if not 10 <= duration <= 2000:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 2)
            elif duty > 100:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 4)
            elif reserved:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 5)
            else:
                self._ack(P.T_COMMAND, cmd, seq)
                self._cue(_REASON_TEST, _CUED, _PATTERN_LONG, duration, -1, -1, self.clock.now_ms(),
                          self._ticks_us(), P.NA_I16, P.NA_I16, P.NA_U16, -1, duty)
        elif cmd == P.CMD_EXIT_TO_REPL:
            self._stop()
            self._ack(P.T_COMMAND, cmd, seq)
            self.running = False
        elif cmd == P.CMD_GET_EVENTS:
            self._get_events(buf, arg0, seq)
        elif cmd == P.CMD_LIST_BONDS:
            peers = self.ble.bond_peers() if self.ble is not None else ()
            self._send(self.builder.bonds(self.clock.now_ms(), peers))
        elif cmd == P.CMD_CLEAR_BONDS:
            if self.ble is not None:
                self.ble.clear_bonds()  # and drops a link encrypted with one of them
            self._ack(P.T_COMMAND, cmd, seq)
        elif cmd == P.CMD_FACTORY_RESET:
            # Rare, USB only: its code is loaded when asked for, not kept in the heap.
            from insolefw.maintenance import factory_reset
            factory_reset(self, seq)
        elif cmd == P.CMD_OPEN_PAIRING:
            seconds = buf[arg0] | (buf[arg0 + 1] << 8)
            if not 1 <= seconds <= P.OPEN_PAIRING_MAX_S:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 2)
            elif self.ble is None:
                self._error(P.T_COMMAND, cmd, seq, P.E_BAD_STATE)  # no radio, nothing to pair
            else:
                self.ble.open_pairing(seconds * 1000)
                self._ack(P.T_COMMAND, cmd, seq)
        elif self.program is not None:
            self.program.on_packet(buf, P.HEADER_LEN + plen)  # GET_PROGRAM, CLEAR_PROGRAM
        elif cmd == P.CMD_GET_PROGRAM:
            # None stored: version 1, no blocks, program_id 0
            self._send(self.builder.event(P.T_PROGRAM, self.clock.now_ms(), b"\x01\x00\x00\x00", 4))
        elif self.mode != MODE_IDLE:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_STATE)  # CLEAR_PROGRAM while streaming
        else:
            self._ack(P.T_COMMAND, cmd, seq)  # CLEAR_PROGRAM: none stored, nothing to remove

    def _get_events(self, buf, off, seq):
        # Resends the logged packets of one type with seq in [from_seq, from_seq + count)
        # unchanged, then BACKFILL_END says how many and which seqs are gone for good.
        ptype, reserved, from_seq, count = struct.unpack_from("<BBHH", buf, off)
        cmd = P.CMD_GET_EVENTS
        log = self.samplelog if ptype == P.T_SAMPLES else self.eventlog
        if not log.logs(ptype):
            # SAMPLES is a valid request to a board that keeps no sample log.
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_STATE if ptype == P.T_SAMPLES else P.E_BAD_VALUE,
                        0 if ptype == P.T_SAMPLES else 2)
            return
        if reserved:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 3)
            return
        if not count:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 6)
            return
        if self.framer is self.ble:
            self.ble.want_gait_data(True)  # the bonded host asked for them
        # Live SAMPLES are numbered by their own packet builder.
        builder = self.live_builder if ptype == P.T_SAMPLES else self.builder
        next_seq = builder.next_seq(ptype)
        if ptype == P.T_SAMPLES and self._live_count:
            next_seq = (next_seq - 1) & 0xFFFF  # the packet being filled is not sent yet
        sent, lost = log.plan(ptype, next_seq, from_seq, count)
        # The packet being resent (+ CRC room): made per request, off the sampling path.
        out = bytearray(log.slot + 2)
        if self.framer is self.ble:
            # A burst would overflow the radio's queues: resend as they drain.
            asyncio.create_task(self._resend_paced(log, out, ptype, seq, from_seq, count, sent, lost, next_seq))
            return
        resent = log.resend(ptype, from_seq, sent, out, self.framer.send)
        self._send(self.builder.backfill_end(self.clock.now_ms(), ptype, seq, from_seq, count,
                                             resent, from_seq, lost, next_seq))

    async def _resend_paced(self, log, buf, ptype, seq, from_seq, count, sent, lost, next_seq):
        link = self.ble
        resent = 0
        a = 0
        while link.connected:
            a, n = log.next_packet(ptype, from_seq, sent, a, buf)
            if a < 0:
                break
            while link.connected and not link.can_send(ptype, n):
                await asyncio.sleep_ms(5)
            if link.send(buf, n):
                resent += 1
        while link.connected and link.queued(ptype):
            await asyncio.sleep_ms(5)  # BACKFILL_END overtakes queued samples otherwise
        if link.connected:
            link.send(self.builder.buf, self.builder.backfill_end(
                self.clock.now_ms(), ptype, seq, from_seq, count, resent, from_seq, lost, next_seq))

    def _replay_begin(self, buf, off, seq):
        rate, n_pressure, imu, side = struct.unpack_from("<HBBB", buf, off)
        cmd = P.CMD_REPLAY_BEGIN
        if not 5000 <= rate <= 25000:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 2)
        elif n_pressure > MAX_CHANNELS:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 4)
        elif imu > 1 or not (n_pressure or imu):
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 5)
        elif side not in (0, 1, P.NA_U8):
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 6)
        elif buf[off + 5]:
            self._error(P.T_COMMAND, cmd, seq, P.E_BAD_VALUE, 7)
        else:
            self._stop()
            self.replay.configure(rate, n_pressure, imu)
            self._configure_core(rate, n_pressure, imu, side)
            self.source = self.replay
            self.mode = MODE_REPLAY
            self.out = self.framer
            self._ack(P.T_COMMAND, cmd, seq)

    def _configure_core(self, rate, n_pressure, imu, side):
        core = self.core
        core.configure(rate, n_pressure, imu, side)
        layout = self._layout if len(self._layout) == 2 * n_pressure else ()
        core.set_layout(layout, side)
        self.events.clear()
        self.samples_total = 0
        self._restart_cueing()
        if self.program is not None:
            self.program.start()

    def _restart_cueing(self):
        # A new stream or new settings: the schedule and the metronome start over.
        self.cue.reset(self.settings.seed)
        self.metronome.disarm()

    def _on_samples(self, buf, plen, seq):
        # The packet's form first (same order and details as the host decoder), then
        # whether it fits the current replay.
        if plen < P.SAMPLES_HEADER_LEN:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_LENGTH)
            return
        first, count, n_pressure, imu, reserved = struct.unpack_from("<IBBBB", buf, P.HEADER_LEN)
        source = self.replay
        if count == 0:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 4)
        elif n_pressure > MAX_CHANNELS or not (n_pressure or imu):
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 5)
        elif imu > 1:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 6)
        elif reserved:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 7)
        elif plen != P.SAMPLES_HEADER_LEN + count * P.sample_record_len(n_pressure, imu):
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_LENGTH)
        elif self.mode != MODE_REPLAY:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_STATE)
        elif n_pressure != source.n_pressure:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 5)
        elif imu != source.imu:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 6)
        elif first < self.samples_total:
            self._error(P.T_SAMPLES, 0, seq, P.E_BAD_VALUE, 0)  # overlaps samples already seen
        elif not source.push(buf, P.HEADER_LEN + P.SAMPLES_HEADER_LEN, count):
            self._error(P.T_SAMPLES, 0, seq, P.E_OVERFLOW)
        else:
            gap = first - self.samples_total
            if gap:
                # Samples lost before they reached us: keep the index aligned, count them.
                source.dropped += gap
                self.core.sample_index += gap
                self.samples_total = first
            self.drain_source()
            self.flush_events()
            self._ack(P.T_SAMPLES, 0, seq)

    def _on_settings(self, buf, plen, seq):
        if plen != P.SETTINGS_LEN:
            self._error(P.T_SETTINGS, 0, seq, P.E_BAD_LENGTH)
            return
        bad = self.settings.decode_from(buf, P.HEADER_LEN)
        if bad >= 0:
            self._error(P.T_SETTINGS, 0, seq, P.E_BAD_VALUE, bad)
            return
        self._restart_cueing()
        try:
            self.settings.save(board.SETTINGS_DIR)
        except OSError:
            # Applied but not persisted: say so rather than pretend.
            self._error(P.T_SETTINGS, 0, seq, P.E_BAD_STATE, 0xFF)
            return
        self._ack(P.T_SETTINGS, 0, seq)

    def _on_layout(self, buf, plen, seq):
        n = buf[P.HEADER_LEN] if plen >= 2 else 0
        if plen < 2 or plen != 2 + 4 * n:
            self._error(P.T_LAYOUT, 0, seq, P.E_BAD_LENGTH)
        elif n > MAX_CHANNELS:
            self._error(P.T_LAYOUT, 0, seq, P.E_BAD_VALUE, 0)
        elif buf[P.HEADER_LEN + 1]:
            self._error(P.T_LAYOUT, 0, seq, P.E_BAD_VALUE, 1)  # reserved
        elif self.mode == MODE_LIVE:
            self._error(P.T_LAYOUT, 0, seq, P.E_BAD_STATE)
        else:
            self._layout = [struct.unpack_from("<h", buf, P.HEADER_LEN + 2 + 2 * i)[0]
                            for i in range(2 * n)]
            self._ack(P.T_LAYOUT, 0, seq)

    # -- sampling --------------------------------------------------------------------

    def drain_source(self):
        """The sampling path: pull every pending sample through the core. Nothing is
        allocated per sample; only finish_stride() does, once per stride."""
        source = self.source
        pressure = self.pressure
        imu = self.imu
        core = self.core
        events = self.events
        prog = self.program
        live = self.mode == MODE_LIVE and self.settings.stream_samples
        while source.read_into(pressure, imu):
            core.process(pressure, imu)
            self.samples_total += 1
            if live:
                self._stream_sample(pressure, imu)
            if core.pending:
                # Per-stride float work, between samples; the sensor FIFO (or the
                # replay ring) holds the samples that arrive meanwhile.
                core.finish_stride()
                if prog is not None and prog.active:
                    prog.decide()  # a program's block runs: it decides the band cue
                elif self.settings.cue_mode == CUE_FPA_BAND:
                    self._cue_step()
            if prog is not None and (events.count or core.sample_index > prog.due):
                # Sees each step at once (it may end a block) and its times: the
                # stream's first sample, a hold, a rest, a time limit.
                prog.update()
        if prog is not None:
            prog.save()  # its state, after the samples at hand: flash writes are slow

    def _start_live(self, seq):
        if self.live is None:
            self._error(P.T_COMMAND, P.CMD_START_STREAM, seq, P.E_BAD_STATE)
            return
        if self.mode == MODE_LIVE and seq >= 0:
            # Already measuring (since power-on): the stream goes on unbroken and is
            # sent to this link from now on; a (re)connecting host misses nothing.
            self._attach(seq)
            return
        self._stop()
        live = self.live
        live.start()
        layout_for_side = getattr(board, "layout_for_side", None)
        if layout_for_side and board.LAYOUT:
            # Board positions are mirrored for a right insole; the side may have changed
            # by a settings write since boot.
            self._layout = list(sum(layout_for_side(self.side), ()))
        self._configure_core(live.rate_chz, live.n_pressure, live.imu, self.side)
        # The mounting-yaw calibration belongs to this insole's own IMU; a replay keeps
        # the recording's frame.
        self.core.imu_tracker.yaw_offset_cdeg = self.settings.imu_yaw_cdeg
        self.source = live
        self.mode = MODE_LIVE
        self._live_count = 0
        if seq >= 0:  # a host asked; -1: started by the device itself at boot
            self._attach(seq)

    def _attach(self, seq):
        # Events and live samples go to the link the request came in on.
        if self.out is not self.framer:
            self._flush_live_packet()  # batched for the other link: it goes there
        self.out = self.framer
        if self.framer is self.ble:
            self.ble.want_gait_data(True)
        self._ack(P.T_COMMAND, P.CMD_START_STREAM, seq)

    def _stop(self):
        if self.framer is self.ble:
            self.ble.want_gait_data(False)  # the host on this link asked to stop
        if self.program is not None and self.mode != MODE_IDLE:
            self.flush_events()  # the block's last steps count before it is interrupted
            self.program.stop()
        if self.mode == MODE_LIVE and self.live:
            self.live.stop()
            self._flush_live_packet()
            if self.out is self.ble:
                # Samples still queued belong to the stream that ends here; the answer to
                # the stop must be the last the host hears of it.
                self.ble.drop_samples()
        self.source = None
        self.mode = MODE_IDLE

    def _flush_live_packet(self):
        # Sends the SAMPLES packet being filled, however few samples it holds.
        if self._live_count:
            self._seal_live_packet()
            self.samplelog.append(self.live_builder.buf, self._live_off)
            self.out.send(self.live_builder.buf, self._live_off)
            self._live_count = 0

    def _seal_live_packet(self):
        # time_ms of a live SAMPLES packet: when its last sample was added, i.e. when it
        # goes out. The host's clock sync then sees the link's latency alone, not also
        # how long the batch took to fill (docs/protocol.md).
        struct.pack_into("<I", self.live_builder.buf, 4, self.clock.now_ms())

    def _stream_sample(self, pressure, imu):
        # Appends one sample to the outgoing SAMPLES packet; sends it when full.
        b = self.live_builder
        n_pressure = self.core.n_pressure
        has_imu = self.core.imu
        if not self._live_count:
            # As many samples as fit one packet on the link (a BLE notification is
            # smaller than a serial frame), at most _LIVE_BATCH.
            record = 2 * n_pressure + 12 * has_imu
            limit = getattr(self.out, "payload_limit", P.MAX_PACKET)
            if self.out is self.ble and not self.ble.connected:
                # Nobody listens: batch as for a full notification, which is what the
                # sample log keeps and a host will backfill.
                limit = _BLE_FULL_PACKET
            fit = (limit - P.HEADER_LEN - P.SAMPLES_HEADER_LEN) // record
            self._live_batch = fit if fit < _LIVE_BATCH else _LIVE_BATCH
            self._live_first = self.samples_total - 1
            self._live_off = b.samples_header(self.clock.now_ms(), self._live_first, 0,
                                              n_pressure, has_imu)
        off = self._live_off
        buf = b.buf
        for k in range(n_pressure):
            struct.pack_into("<H", buf, off, pressure[k])
            off += 2
        if has_imu:
            for k in range(6):
                struct.pack_into("<h", buf, off, imu[k])
                off += 2
        self._live_off = off
        self._live_count += 1
        buf[P.HEADER_LEN + 4] = self._live_count
        if self._live_count >= self._live_batch:
            self._seal_live_packet()
            self.samplelog.append(buf, off)
            self.out.send(buf, off)
            self._live_count = 0

    async def sample_task(self):
        while self.running:
            if self.mode != MODE_LIVE:
                await asyncio.sleep_ms(20)
                continue
            await self.live.ready()
            if self.mode != MODE_LIVE:
                continue  # stopped while we waited (STOP_STREAM, a replay)
            self.drain_source()
            self.flush_events()

    # -- cueing ----------------------------------------------------------------------

    def _cue_step(self):
        # The stride analysis just gave the foot angle of the stance in progress (step
        # core.steps + 1, emitted at its toe-off): decide now and start the motor at
        # once, with no host round trip. Runs once per stride, between samples.
        fpa = self.core.imu_tracker.fpa_cdeg
        if fpa == P.NA_I16:
            return
        t_known = self._ticks_us()
        known_ms = self.clock.now_ms()
        s = self.settings
        cue = self.cue
        step = self.core.steps + 1
        reason = cue.decide(s, step, fpa)
        if reason:  # in the band: nothing to do, nothing to log
            self._cue(reason, cue.outcome, cue.pattern, cue.duration_ms, step,
                      self.core.sample_index - 1, known_ms, t_known, fpa, s.fpa_target_cdeg,
                      s.fpa_half_width_cdeg, cue.out_of_band)

    def _cue(self, reason, outcome, pattern, duration_ms, number, index, decided_ms, t_us,
             fpa, target, half_width, out_of_band, duty_pct=-1):
        # Starts the pattern (unless the schedule suppressed it) and logs a CUE event;
        # latency runs from t_us (ticks_us when the decision was due) to motor start.
        if duty_pct < 0:
            duty_pct = self.settings.cue_duty_pct
        start_ms = -1
        latency_us = -1
        if outcome == _CUED:
            self.player.start(pattern, duration_ms, duty_pct, self.clock.now_ms())
            latency_us = time.ticks_diff(self._ticks_us(), t_us)
            start_ms = self.clock.now_ms()
            self._motor_flag.set()
        self._send_event(P.T_CUE, self.cue.record, self.cue.pack(
            number, index, decided_ms, start_ms, latency_us, fpa, target, half_width, reason,
            outcome, pattern, duty_pct, duration_ms, out_of_band))

    async def metronome_task(self):
        # Beats at metronome_spm while a stream runs (live or replay) in metronome mode,
        # on cue.Metronome's schedule (beat n due n * 60000 / spm ms after the first).
        # A program's block decides while it runs (its own cadence, or none); a new block
        # disarms it, so that it starts over at that block's cadence.
        metronome = self.metronome
        while self.running:
            s = self.settings
            prog = self.program
            spm = (0 if self.mode == MODE_IDLE else prog.metronome_spm if prog is not None and prog.active
                   else s.metronome_spm if s.cue_mode == CUE_METRONOME else 0)
            if not spm:
                metronome.disarm()
                await asyncio.sleep_ms(_METRONOME_IDLE_MS)
                continue
            now = self.clock.now_ms()
            if not metronome.beat:  # not armed
                metronome.arm(now, spm)
            wait = metronome.due_in_ms(now)
            if wait > 0:
                await asyncio.sleep_ms(wait if wait < _METRONOME_IDLE_MS else _METRONOME_IDLE_MS)
                continue
            number = metronome.beat
            due = metronome.due_ms()
            metronome.advance()
            # Late by -wait ms (less than a beat): the latency runs from the due time.
            self._cue(_REASON_METRONOME, _CUED, s.metronome_pattern, s.metronome_pulse_ms,
                      number, self.samples_total, due,
                      time.ticks_add(self._ticks_us(), wait * 1000), P.NA_I16, P.NA_I16,
                      P.NA_U16, -1)

    async def motor_task(self):
        # Switches the edges of the pattern playing; the first edge (motor on) was
        # switched by whoever started the pattern.
        player = self.player
        while self.running:
            await self._motor_flag.wait()
            while self.running:
                wait = player.service(self.clock.now_ms())
                if wait < 0:
                    break
                await asyncio.sleep_ms(wait if wait < _MOTOR_TICK_MS else _MOTOR_TICK_MS)

    # -- link ------------------------------------------------------------------------

    async def link_task(self):
        stream = asyncio.StreamReader(self.reader)
        rx = self._rx
        while self.running:
            n = await stream.readinto(rx)
            if n is None:
                continue
            if not n:
                break  # the link closed
            self.frames.feed(rx, n, self.on_packet, self.on_bad_frame)
        if self.ble is not None:
            self.out = self.ble  # serial gone (or never there): BLE carries on
            while self.running:
                await asyncio.sleep_ms(500)
        self.running = False
        self._motor_flag.set()

    async def board_task(self):
        # What the board reports now and then: the battery level (BLE Battery service)
        # and the wearer's pairing gesture (e.g. a button held), which opens the window.
        gesture = getattr(board, "pairing_gesture", None)
        polls = 0
        while self.running:
            if not polls:
                mv = board.battery_mv()
                if mv >= 0:
                    self.ble.set_battery(battery_percent(mv))
                polls = _BATTERY_EVERY_POLLS
            polls -= 1
            if gesture is not None and gesture():
                self.ble.open_pairing(_GESTURE_PAIRING_MS)
            await asyncio.sleep_ms(_BOARD_POLL_MS)

    async def run(self):
        tasks = [asyncio.create_task(self.sample_task()), asyncio.create_task(self.motor_task()),
                 asyncio.create_task(self.metronome_task())]
        if self.ble is not None:
            tasks.append(asyncio.create_task(self.ble.run()))
            tasks.append(asyncio.create_task(self.board_task()))
            if self.live is not None:
                # Worn without a host: measure and cue from power-on; the host
                # catches up from the event log when it connects.
                self._start_live(-1)
        try:
            await self.link_task()
        finally:
            for task in tasks:
                task.cancel()
            self.motor.off()


def _log_sizes():
    # (event log records, sample log bytes): the board's maxima, scaled down together
    # to what it can spare now if it says (board.log_budget_bytes, after BLE is on).
    records = getattr(board, "EVENT_LOG_RECORDS", _EVENT_LOG_RECORDS)
    sample_bytes = getattr(board, "SAMPLE_LOG_BYTES", 0)
    budget = getattr(board, "log_budget_bytes", None)
    if budget:
        gc.collect()
        want = 40 * records + sample_bytes
        have = budget()
        if have < want:
            per_mille = have * 1000 // want if have > 0 else 0  # products stay small ints
            records = records * per_mille // 1000
            sample_bytes = sample_bytes * per_mille // 1000 // _SAMPLE_SLOT_BYTES * _SAMPLE_SLOT_BYTES
    return records, sample_bytes


def _open_sensors():
    # A missing or broken sensor must not stop the firmware: it still answers on the
    # link (status, settings, replay, flashing) and refuses START_STREAM.
    if not board.SensorSource:
        return None
    try:
        return board.SensorSource()
    except OSError as exc:
        import sys
        sys.print_exception(exc)
        return None


def _battery_mv():
    mv = board.battery_mv()
    return mv if 0 <= mv < P.NA_U16 else P.NA_U16


def main():
    board.prepare_link()
    reader, writer = board.open_link()
    open_ble = getattr(board, "open_ble", None)
    ble = open_ble() if open_ble else None
    gc.collect()
    device = Device(reader, writer, board.wait_writable, ble)
    try:
        asyncio.run(device.run())
    finally:
        board.restore_repl()
