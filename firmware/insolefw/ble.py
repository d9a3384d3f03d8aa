# The insole's BLE link: a GATT server on MicroPython's built-in `bluetooth` module
# (no aioble, nothing else on the device). The app uses it like the serial link:
#
#     link = BleLink(bluetooth.BLE(), "insole", side, on_packet, on_bad)
#     asyncio.create_task(link.run())
#     link.send(builder.buf, length)        # instead of framer.send(...)
#
# on_packet(buf, length) gets each verified control packet (CRC removed), from the
# link's own task; on_bad(reason) each refused write (BAD_* below), for the app to
# answer (e.g. ERROR BAD_FRAME for BAD_CRC) or just count. Pass settings_dir (board.
# SETTINGS_DIR) so bonds survive a reset; call set_side() after a settings write
# changes the side, set_battery(pct) now and then; batch SAMPLES to `payload_limit`
# and pace bulk work (a backfill) with can_send(). On the unix port, BLE() exists
# when INSOLE_BLE_BRIDGE is set (boards/unix/bluetooth.py); run() then also runs the
# stand-in's event pump.
#
# GATT layout (the 128-bit UUIDs are this project's own, base 5c98xxxx-6144-4e19-8626-361760cb12cb):
#   insole service   5c981000-...
#     samples        5c981001  notify         SAMPLES packets, one packet per notification
#     events         5c981002  notify         STEP, HEEL_RAISE and every event type >= 0x0A
#                              (or indicate: BleLink(..., indicate_events=True))
#     control        5c981003  write, notify  write with response, only on an encrypted and
#                              bonded link: each write is one protocol v1 packet followed by
#                              its CRC-16 (LE), the serial bytes without COBS. Answers (ACK,
#                              ERROR, STATUS, SETTINGS, LAYOUT) come back as notifications.
#     status         5c981004  read, notify   the latest STATUS packet
#   Device Information 0x180A (manufacturer, model, firmware revision), Battery 0x180F
#   (level), Running Speed and Cadence 0x1814 (RSC Measurement 0x2A53 from each STEP:
#   speed, cadence in steps/min of both feet, stride length; RSC Feature 0x2A54).
# Notifications carry the packet alone (ATT has its own integrity check).
#
# Link tuning: MTU 247 (one 244-byte packet per notification; `payload_limit` tells the
# app how big a packet may be), a short connection interval asked for in the scan
# response (AD type 0x12, 7.5-15 ms: MicroPython has no call to request a connection
# parameter update, so the central decides; _IRQ_CONNECTION_UPDATE reports what it
# chose), and paced notifications: packets wait in bounded, preallocated queues and go
# out as fast as the stack takes them (ENOMEM from gatts_notify means "later", never a
# dropped link). Events and answers go before samples. A packet that finds its queue
# full is dropped and counted; send() returns False so the app can count its samples.
#
# IRQs only record and enqueue (a bounded ring for control writes) and set a
# ThreadSafeFlag; the work happens in asyncio tasks. The exception is the bond store
# (_IRQ_GET_SECRET/_IRQ_SET_SECRET), which must answer at once; it works on a small
# dict and the file is written later by a task (write then rename).
from micropython import const
import asyncio
import errno
import os

import bluetooth
from insolefw import fast
from insolefw.version import FW_MAJOR, FW_MINOR, FW_PATCH

SERVICE_UUID = "5c981000-6144-4e19-8626-361760cb12cb"
SAMPLES_UUID = "5c981001-6144-4e19-8626-361760cb12cb"
EVENTS_UUID = "5c981002-6144-4e19-8626-361760cb12cb"
CONTROL_UUID = "5c981003-6144-4e19-8626-361760cb12cb"
STATUS_UUID = "5c981004-6144-4e19-8626-361760cb12cb"

# Reasons given to on_bad(reason) for a control write that was not passed on.
BAD_NOT_BONDED = const(1)  # written on a link that is not encrypted and bonded
BAD_LENGTH = const(2)  # shorter than a header plus CRC, or cut at the buffer size
BAD_CRC = const(3)
BAD_OVERFLOW = const(4)  # writes came faster than the app took them

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

_IO_NO_INPUT_OUTPUT = const(3)
_MTU = const(247)  # 244-byte values: one LE data PDU with data length extension
_ATT_DEFAULT_MTU = const(23)
_ADV_INTERVAL_US = const(100000)
_MTU_WAIT_MS = const(1500)  # ask for the MTU ourselves if the central has not by then
_BUSY_RETRY_MS = const(5)  # the stack's buffers are full: about one connection interval
_CONN_INTERVAL_MIN = const(6)  # 7.5 ms in 1.25 ms units (scan response hint)
_CONN_INTERVAL_MAX = const(12)  # 15 ms

_HEADER_LEN = const(8)
_CRC_LEN = const(2)
_T_STATUS = const(0x01)
_T_SAMPLES = const(0x02)
_T_STEP = const(0x03)
_T_HEEL_RAISE = const(0x04)
_T_FIRST_EVENT_EXT = const(0x0A)  # event types from here on go to the events characteristic

# Queue tags: which value handle a queued packet goes to.
_TAG_SAMPLES = const(0)
_TAG_EVENTS = const(1)
_TAG_CONTROL = const(2)
_TAG_STATUS = const(3)
_TAG_RSC = const(4)
_TAG_BATTERY = const(5)
_N_TAGS = const(6)

_BULK_BYTES = const(2048)  # samples queue: about 8 full notifications
_PRIORITY_BYTES = const(1024)  # events and answers: about 28 STEP packets
_RX_BYTES = const(512)  # control writes not yet taken by the app
_CONTROL_MAX = const(256)  # largest control write (packet + CRC)

_SECRETS_FILE = "ble_secrets.bin"
_MAX_SECRETS = const(16)
_MAX_SECRET_LEN = const(512)

_SIDE_LETTERS = "LR"


class Ring:
    """Variable-length records in one preallocated bytearray: [len lo, len hi, tag] + data.

    Single producer, single consumer: the producer only moves `_tail` and `_puts`, the
    consumer only `_head` and `_pops`, so an IRQ may put while a task pops.
    A record never wraps; a 0xFFFF length (or too little room for a header) at the end
    sends the reader back to the start.
    """

    def __init__(self, size):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self._size = size
        self._head = 0
        self._tail = 0
        self._puts = 0
        self._pops = 0
        self.tag = 0  # of the record peek() found
        self.off = 0  # where its data starts in buf

    @property
    def count(self):
        return self._puts - self._pops

    def put(self, tag, src, n):
        need = n + 3
        size = self._size
        tail = self._tail
        head = self._head
        if self._puts != self._pops and tail <= head:
            if tail + need > head:  # full, or the wrapped gap is too small
                return False
        elif tail + need > size:
            if need > head:
                return False
            if size - tail >= 2:
                self.buf[tail] = 0xFF
                self.buf[tail + 1] = 0xFF
            tail = 0
        buf = self.buf
        buf[tail] = n & 0xFF
        buf[tail + 1] = n >> 8
        buf[tail + 2] = tag
        fast.copy_bytes(buf, tail + 3, src, 0, n)
        self._tail = tail + need
        self._puts += 1
        return True

    def room(self, n):
        """Whether put() of n bytes would succeed now (producer side)."""
        need = n + 3
        tail = self._tail
        head = self._head
        if self._puts != self._pops and tail <= head:
            return tail + need <= head
        return tail + need <= self._size or need <= head

    def peek(self):
        """Length of the oldest record (its tag and offset in .tag/.off), or -1 if empty."""
        if self._puts == self._pops:
            return -1
        buf = self.buf
        head = self._head
        if self._size - head < 3 or (buf[head] == 0xFF and buf[head + 1] == 0xFF):
            head = 0
            self._head = 0
        self.tag = buf[head + 2]
        self.off = head + 3
        return buf[head] | (buf[head + 1] << 8)

    def pop(self):
        n = self.peek()
        if n >= 0:
            self._pops += 1
            self._head = self.off + n

    def clear(self):
        """Drops everything queued; returns how many records that was (consumer side)."""
        dropped = 0
        while self.peek() >= 0:
            self.pop()
            dropped += 1
        return dropped


class _Secrets:
    """The bond store NimBLE asks for (_IRQ_SET_SECRET/_IRQ_GET_SECRET), kept in one file.

    Values are opaque to us. The file (type u8, key length u8, value length u16, key,
    value per entry) is written by a task, to a temporary name first, then renamed.
    """

    def __init__(self, directory):
        self._path = None if directory is None else directory + "/" + _SECRETS_FILE
        self._entries = {}  # (sec_type, key) -> value
        self.dirty = False
        if self._path:
            self._load()

    def _load(self):
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except OSError:
            return
        off = 0
        while off + 4 <= len(data) and len(self._entries) < _MAX_SECRETS:
            sec_type = data[off]
            klen = data[off + 1]
            vlen = data[off + 2] | (data[off + 3] << 8)
            end = off + 4 + klen + vlen
            if end > len(data):
                break  # a torn tail: keep what was whole
            self._entries[(sec_type, bytes(data[off + 4 : off + 4 + klen]))] = bytes(data[off + 4 + klen : end])
            off = end

    def get(self, sec_type, index, key):
        if key is not None:
            return self._entries.get((sec_type, bytes(key)))
        for (t, _k), value in self._entries.items():
            if t == sec_type:
                if not index:
                    return value
                index -= 1
        return None

    def set(self, sec_type, key, value):
        entry = (sec_type, bytes(key))
        if value is None:
            self._entries.pop(entry, None)
        elif len(value) > _MAX_SECRET_LEN or len(key) > 255:
            return False
        elif entry not in self._entries and len(self._entries) >= _MAX_SECRETS:
            return False
        else:
            self._entries[entry] = bytes(value)
        self.dirty = True
        return True

    def save(self):
        self.dirty = False
        if not self._path:
            return
        tmp = self._path + ".tmp"
        entries = list(self._entries.items())  # an IRQ may change the dict meanwhile
        with open(tmp, "wb") as f:
            for (sec_type, key), value in entries:
                f.write(bytes((sec_type, len(key), len(value) & 0xFF, len(value) >> 8)))
                f.write(key)
                f.write(value)
        os.rename(tmp, self._path)


def _uuid_le(text):
    # 128-bit UUID string -> the 16 little-endian bytes advertising data carries.
    hexdigits = text.replace("-", "")
    out = bytearray(16)
    for i in range(16):
        out[15 - i] = int(hexdigits[2 * i : 2 * i + 2], 16)
    return bytes(out)


def _ad(ad_type, payload):
    return bytes((len(payload) + 1, ad_type)) + payload


class BleLink:
    def __init__(self, ble, name, side, on_packet, on_bad=None, *, indicate_events=False,
                 settings_dir=None, manufacturer="insole project", model="insole",
                 firmware=None):
        # Buffers first, while the heap is least fragmented: 3.8 KB of queues; the
        # whole object measures ≈7.2 KB on the unix port.
        self._bulk = Ring(_BULK_BYTES)  # 2048 B
        self._priority = Ring(_PRIORITY_BYTES)  # 1024 B
        self._rx = Ring(_RX_BYTES)  # 512 B
        self._packet = bytearray(_CONTROL_MAX)  # 256 B: the write being handed to the app
        self._rsc = bytearray(6)  # RSC Measurement: flags, speed, cadence, stride
        self._one = bytearray(1)  # battery level
        self._ble = ble
        self._base_name = name
        self._side = side
        self.on_packet = on_packet
        self.on_bad = on_bad
        self._indicate = indicate_events
        self._secrets = _Secrets(settings_dir)
        self._info = (manufacturer, model, firmware or "%d.%d.%d" % (FW_MAJOR, FW_MINOR, FW_PATCH))
        self._handles = [0] * _N_TAGS
        self._h_control = 0
        self._tx_flag = asyncio.ThreadSafeFlag()
        self._rx_flag = asyncio.ThreadSafeFlag()
        self._link_flag = asyncio.ThreadSafeFlag()
        self._started = False
        self._conn = -1
        self._mtu = _ATT_DEFAULT_MTU
        self._encrypted = False
        self._bonded = False
        self._indicating = False
        self._mtu_asked = -1  # the connection we already asked for an MTU exchange
        self._rx_lost = 0  # control writes the full ring refused (counted by the IRQ)
        self._rx_lost_told = 0
        self.conn_interval = 0  # in 1.25 ms units, from _IRQ_CONNECTION_UPDATE (0 = not told)
        self.sent = 0  # packets the stack took
        self.dropped = 0  # packets not sent: queue full, link gone, or too big
        self.busy = 0  # times the stack had no buffer (paced, not lost)
        self.rejected = 0  # control writes not passed to the app
        self.connections = 0

    # -- state the app reads -----------------------------------------------------------

    @property
    def name(self):
        side = self._side
        return "%s-%s" % (self._base_name, _SIDE_LETTERS[side] if side in (0, 1) else "X")

    @property
    def connected(self):
        return self._conn >= 0

    @property
    def encrypted(self):
        """True on an encrypted and bonded link: the only kind that may write control."""
        return self._conn >= 0 and self._encrypted and self._bonded

    @property
    def mtu(self):
        return self._mtu

    @property
    def payload_limit(self):
        """The largest packet (header + payload) one notification can carry now."""
        return self._mtu - 3

    # -- start-up ----------------------------------------------------------------------

    def start(self):
        ble = self._ble
        ble.active(True)
        ble.config(gap_name=self.name, mtu=_MTU)
        ble.config(bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        ble.irq(self._irq)
        UUID = bluetooth.UUID
        insole = (UUID(SERVICE_UUID), (
            (UUID(SAMPLES_UUID), _FLAG_NOTIFY),
            (UUID(EVENTS_UUID), _FLAG_INDICATE if self._indicate else _FLAG_NOTIFY),
            (UUID(CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_ENCRYPTED | _FLAG_NOTIFY),
            (UUID(STATUS_UUID), _FLAG_READ | _FLAG_NOTIFY),
        ))
        info = (UUID(0x180A), (
            (UUID(0x2A29), _FLAG_READ),  # manufacturer name
            (UUID(0x2A24), _FLAG_READ),  # model number
            (UUID(0x2A26), _FLAG_READ),  # firmware revision
        ))
        battery = (UUID(0x180F), ((UUID(0x2A19), _FLAG_READ | _FLAG_NOTIFY),))
        rsc = (UUID(0x1814), (
            (UUID(0x2A53), _FLAG_NOTIFY),  # RSC Measurement
            (UUID(0x2A54), _FLAG_READ),  # RSC Feature
        ))
        ((samples, events, control, status), (manufacturer, model, firmware), (level,),
         (measurement, feature)) = ble.gatts_register_services((insole, info, battery, rsc))
        handles = self._handles
        handles[_TAG_SAMPLES] = samples
        handles[_TAG_EVENTS] = events
        handles[_TAG_CONTROL] = control
        handles[_TAG_STATUS] = status
        handles[_TAG_RSC] = measurement
        handles[_TAG_BATTERY] = level
        self._h_control = control
        ble.gatts_set_buffer(control, _CONTROL_MAX)
        for handle, text in zip((manufacturer, model, firmware), self._info):
            ble.gatts_write(handle, text.encode())
        ble.gatts_write(feature, b"\x01\x00")  # instantaneous stride length supported
        ble.gatts_write(level, b"\x64")
        self._started = True
        self._advertise()

    def _advertise(self):
        name = self.name.encode()
        service = _uuid_le(SERVICE_UUID)
        adv = _ad(0x01, b"\x06") + _ad(0x07, service)  # flags, complete 128-bit UUID list
        room = 31 - len(adv) - 2
        # The name goes in the advertising data itself, shortened (type 0x08) if it must be.
        adv += _ad(0x09, name) if len(name) <= room else _ad(0x08, name[:room])
        side = self._side if self._side in (0, 1) else 0xFF
        resp = (_ad(0x21, service + bytes((side, 1)))  # service data: side, protocol version
                + _ad(0x12, bytes((_CONN_INTERVAL_MIN, 0, _CONN_INTERVAL_MAX, 0))))
        self._ble.gap_advertise(_ADV_INTERVAL_US, adv_data=adv, resp_data=resp)

    def set_side(self, side):
        """The side changed (a settings write): new name and advertising."""
        if side == self._side:
            return
        self._side = side
        if self._started:
            self._ble.config(gap_name=self.name)
            if self._conn < 0:
                self._advertise()

    def drop_samples(self):
        """Forgets the SAMPLES packets still queued (a stream was stopped: what follows
        on the link is the next stream's). Returns how many."""
        return self._bulk.clear()

    def disconnect(self):
        """Ends the link from this side (the insole advertises again); False if none."""
        if self._conn < 0:
            return False
        return self._ble.gap_disconnect(self._conn)

    def stop(self):
        if self._started:
            self._ble.gap_advertise(None)
            if self._conn >= 0:
                self._ble.gap_disconnect(self._conn)

    async def run(self):
        """The link's tasks; returns only if cancelled."""
        if not self._started:
            self.start()
        tasks = [asyncio.create_task(self._tx_task()), asyncio.create_task(self._rx_task()),
                 asyncio.create_task(self._link_task())]
        poll_task = getattr(self._ble, "poll_task", None)  # the unix port's stand-in only
        if poll_task:
            tasks.append(asyncio.create_task(poll_task()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # -- sending -----------------------------------------------------------------------

    def send(self, packet, length):
        """Queues one protocol packet for its characteristic; False if it was dropped.

        Copies the packet, so the caller's buffer is free again at once. Allocates nothing.
        """
        ptype = packet[1]
        if self._conn < 0 or length > self._mtu - 3:
            self.dropped += 1
            return False
        if ptype == _T_SAMPLES:
            ok = self._bulk.put(_TAG_SAMPLES, packet, length)
        elif ptype == _T_STEP or ptype == _T_HEEL_RAISE or ptype >= _T_FIRST_EVENT_EXT:
            ok = self._priority.put(_TAG_EVENTS, packet, length)
            if ok and ptype == _T_STEP:
                self._queue_rsc(packet)
        else:
            ok = self._priority.put(_TAG_CONTROL, packet, length)
            if ok and ptype == _T_STATUS:
                self._priority.put(_TAG_STATUS, packet, length)
        if not ok:
            self.dropped += 1
            return False
        self._tx_flag.set()
        return True

    def can_send(self, ptype, length):
        """Whether send() would take a packet of this type and length now (for pacing
        bulk work such as a backfill instead of letting it drop)."""
        if self._conn < 0 or length > self._mtu - 3:
            return False
        ring = self._bulk if ptype == _T_SAMPLES else self._priority
        return ring.room(length)

    def queued(self, ptype):
        """Packets of this type's queue not yet taken by the stack (samples and answers
        travel in different queues, answers first: a backfill's end waits for this)."""
        return (self._bulk if ptype == _T_SAMPLES else self._priority).count

    def _queue_rsc(self, step):
        # RSC Measurement from a STEP packet: flags (stride length present, walking),
        # speed in 1/256 m/s, cadence in steps/min of both feet, stride length in cm.
        stance = step[16] | (step[17] << 8)
        swing = step[18] | (step[19] << 8)
        stride_mm = step[28] | (step[29] << 8)
        speed_mms = step[30] | (step[31] << 8)
        rsc = self._rsc
        rsc[0] = 0x01
        speed = 0 if speed_mms == 0xFFFF else (speed_mms * 256) // 1000
        rsc[1] = speed & 0xFF
        rsc[2] = (speed >> 8) & 0xFF
        stride_ms = stance + swing
        if stance != 0xFFFF and swing != 0xFFFF and stride_ms:
            rsc[3] = min(255, 120000 // stride_ms)
        stride_cm = 0 if stride_mm == 0xFFFF else stride_mm // 10
        rsc[4] = stride_cm & 0xFF
        rsc[5] = stride_cm >> 8
        self._priority.put(_TAG_RSC, rsc, 6)

    def set_battery(self, percent):
        self._one[0] = percent
        self._ble.gatts_write(self._handles[_TAG_BATTERY], self._one)
        if self._conn >= 0 and self._priority.put(_TAG_BATTERY, self._one, 1):
            self._tx_flag.set()

    def _next_ring(self):
        # Events and answers first, unless the oldest is an indication still waiting
        # for the last one's confirmation: then samples may go meanwhile.
        priority = self._priority
        if priority.peek() >= 0 and not (self._indicating and priority.tag == _TAG_EVENTS and self._indicate):
            return priority
        if self._bulk.peek() >= 0:
            return self._bulk
        return None

    async def _tx_task(self):
        ble = self._ble
        handles = self._handles
        while True:
            while self._conn >= 0:
                ring = self._next_ring()
                if ring is None:
                    break
                n = ring.peek()
                tag = ring.tag
                handle = handles[tag]
                data = ring.mv[ring.off : ring.off + n]  # a small view object per packet
                try:
                    if tag == _TAG_STATUS:
                        ble.gatts_write(handle, data)  # readable as well as notified
                    if tag == _TAG_EVENTS and self._indicate:
                        ble.gatts_write(handle, data)
                        ble.gatts_indicate(self._conn, handle)
                        self._indicating = True
                    else:
                        ble.gatts_notify(self._conn, handle, data)
                    self.sent += 1
                except OSError as exc:
                    code = exc.errno
                    if code == errno.ENOMEM or code == errno.EAGAIN or code == errno.EALREADY:
                        self.busy += 1  # the stack is full: same packet again soon
                        await asyncio.sleep_ms(_BUSY_RETRY_MS)
                        continue
                    self.dropped += 1  # the link went away under us
                ring.pop()
                await asyncio.sleep_ms(0)  # let sampling run between packets
            await self._tx_flag.wait()

    # -- receiving ---------------------------------------------------------------------

    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            if data[1] == self._h_control:
                value = self._ble.gatts_read(self._h_control)
                secure = 1 if (self._encrypted and self._bonded) else 0
                if not self._rx.put(secure, value, len(value)):
                    self._rx_lost += 1
                self._rx_flag.set()
        elif event == _IRQ_CENTRAL_CONNECT:
            if self._conn < 0:
                self._conn = data[0]
                self._mtu = _ATT_DEFAULT_MTU
                self._encrypted = self._bonded = self._indicating = False
                self.connections += 1
            self._link_flag.set()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = -1
                self._encrypted = self._bonded = self._indicating = False
                self._mtu = _ATT_DEFAULT_MTU
            self._link_flag.set()
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self._conn:
                self._mtu = min(data[1], _MTU)
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self._conn:
                self._encrypted = bool(data[1])
                self._bonded = bool(data[3])
        elif event == _IRQ_GATTS_INDICATE_DONE:
            self._indicating = False
            self._tx_flag.set()
        elif event == _IRQ_CONNECTION_UPDATE:
            if data[0] == self._conn:
                self.conn_interval = data[1]
        elif event == _IRQ_GET_SECRET:
            return self._secrets.get(data[0], data[1], data[2])
        elif event == _IRQ_SET_SECRET:
            ok = self._secrets.set(data[0], data[1], data[2])
            self._link_flag.set()  # the link task writes the file
            return ok

    async def _rx_task(self):
        rx = self._rx
        packet = self._packet
        while True:
            while True:
                n = rx.peek()
                if n < 0:
                    break
                secure = rx.tag
                fast.copy_bytes(packet, 0, rx.buf, rx.off, n)
                rx.pop()
                self._take_write(secure, n)
            while self._rx_lost_told != self._rx_lost:  # the IRQ only counts up
                self._rx_lost_told += 1
                self._bad(BAD_OVERFLOW)
            await self._rx_flag.wait()

    def _take_write(self, secure, n):
        # Nothing reaches the app from a link that is not encrypted and bonded, nor a
        # packet that fails its CRC; the app decides what to answer (on_bad).
        packet = self._packet
        if not secure:
            self._bad(BAD_NOT_BONDED)
        elif n < _HEADER_LEN + _CRC_LEN or n >= _CONTROL_MAX:
            self._bad(BAD_LENGTH)
        elif packet[n - 2] | (packet[n - 1] << 8) != fast.crc16(packet, 0, n - _CRC_LEN):
            self._bad(BAD_CRC)
        else:
            self.on_packet(packet, n - _CRC_LEN)

    def _bad(self, reason):
        self.rejected += 1
        if self.on_bad:
            self.on_bad(reason)

    # -- link state --------------------------------------------------------------------

    async def _link_task(self):
        while True:
            await self._link_flag.wait()
            if self._secrets.dirty:
                try:
                    self._secrets.save()
                except OSError:
                    pass  # bonds stay in RAM; pairing again works after a reset
            conn = self._conn
            if conn < 0:
                # Whatever was queued for the old link will not arrive.
                self.dropped += self._bulk.clear() + self._priority.clear()
                if self._started:
                    self._advertise()  # the stack stops advertising on connect
            elif self._mtu == _ATT_DEFAULT_MTU and self._mtu_asked != conn:
                self._mtu_asked = conn
                await asyncio.sleep_ms(_MTU_WAIT_MS)
                if self._conn == conn and self._mtu == _ATT_DEFAULT_MTU:
                    try:
                        self._ble.gattc_exchange_mtu(conn)
                    except OSError:
                        pass
                self._link_flag.set()  # look again: the link may have changed meanwhile
