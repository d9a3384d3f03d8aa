# The insole's BLE link: a GATT server on MicroPython's built-in `bluetooth` module
# (no aioble, nothing else on the device). The app uses it like the serial link:
#
#     link = BleLink(bluetooth.BLE(), "insole", side, on_packet, on_bad)
#     link.start()                          # radio on: before the big buffers (heap)
#     asyncio.create_task(link.run())
#     link.send(builder.buf, length)        # instead of framer.send(...)
#
# on_packet(buf, length) gets each verified control packet (CRC removed), from the
# link's own task; on_bad(reason) each refused write (BAD_* below), for the app to
# answer (e.g. ERROR BAD_FRAME for BAD_CRC) or just count. Pass settings_dir (board.
# SETTINGS_DIR) so bonds survive a reset; call set_side() after a settings write
# changes the side, set_battery(pct) now and then, note_step(packet) for each STEP
# (the footpod's RSC Measurement), want_gait_data(True) when the bonded host asks for
# gait data on this link; batch SAMPLES to `payload_limit` and pace bulk work (a
# backfill) with can_send(). On the unix port, BLE() exists when INSOLE_BLE_BRIDGE is
# set (boards/unix/bluetooth.py); run() then also runs the stand-in's event pump.
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
#     status         5c981004  read (encrypted), notify   the latest STATUS packet
#   Public, for any app: Device Information 0x180A (manufacturer, model, firmware
#   revision), Battery 0x180F (level, measured), Running Speed and Cadence 0x1814 (RSC
#   Measurement 0x2A53 from each STEP: speed, cadence in steps/min of both feet, stride
#   length; RSC Feature 0x2A54; Sensor Location 0x2A5D: in shoe). The advertising data
#   carries 0x1814 and the appearance 0x0441 (in-shoe sensor), so sports apps find it.
# Notifications carry the packet alone (ATT has its own integrity check).
#
# Who gets what (docs/security.md): gatts_notify sends whether or not the central
# subscribed, so gait samples and events go out only after the bonded host on this
# link asked (want_gait_data); answers only on a bonded link. A new bond is possible
# only inside the pairing window (open_pairing: power-on, a gesture, a USB command);
# outside it NimBLE is configured not to bond, and an encrypted link without a bond is
# dropped at once. A link that has not encrypted within _ENCRYPT_TIMEOUT_MS is dropped
# too, so an idle stranger cannot keep the owner out. RSC and battery go out through
# gatts_write(..., send_update), which reaches subscribers only.
#
# Link tuning: MTU 247 (one 244-byte packet per notification; `payload_limit` tells the
# app how big a packet may be); the central chooses the connection interval
# (_IRQ_CONNECTION_UPDATE reports it; phones use 30-50 ms). Notifications are paced:
# packets wait in bounded, preallocated queues and go out as fast as the stack takes
# them (ENOMEM from gatts_notify means "later", never a dropped link). Events and
# answers go before samples. A packet that finds its queue full is dropped and
# counted; send() returns False so the app can count its samples.
#
# IRQs only record and enqueue (a bounded ring for control writes) and set a
# ThreadSafeFlag; the work happens in asyncio tasks. The exception is the bond store
# (_IRQ_GET_SECRET/_IRQ_SET_SECRET), which must answer at once; it works on a small
# dict and the file is written later by a task (write then rename). The handler never
# raises: MicroPython disables a handler that did until the next reset.
from micropython import const
import asyncio
import errno
import os
import time

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
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

_IO_NO_INPUT_OUTPUT = const(3)
_MTU = const(247)  # 244-byte values: one LE data PDU with data length extension
_ATT_DEFAULT_MTU = const(23)
_ADV_INTERVAL_US = const(100000)
_MTU_WAIT_MS = const(1500)  # ask for the MTU ourselves if the central has not by then
_BUSY_RETRY_MS = const(5)  # the stack's buffers are full: first wait, doubling ...
_BUSY_RETRY_MAX_MS = const(40)  # ... up to about a phone's connection interval

_HEADER_LEN = const(8)
_CRC_LEN = const(2)
_T_STATUS = const(0x01)
_T_SAMPLES = const(0x02)
_T_STEP = const(0x03)
_T_HEEL_RAISE = const(0x04)
_T_ERROR = const(0x08)
_T_FIRST_EVENT_EXT = const(0x0A)  # event types from here on go to the events characteristic
_T_PROGRAM = const(0x0D)  # ... except PROGRAM: GET_PROGRAM's answer, on the control one

# Queue tags: which value handle a queued packet goes to.
_TAG_SAMPLES = const(0)
_TAG_EVENTS = const(1)
_TAG_CONTROL = const(2)
_TAG_STATUS = const(3)
_N_TAGS = const(4)

# Who may connect, and for how long without a bond (docs/security.md).
_PAIRING_WINDOW_MS = const(60000)  # after power-on, unless the board says otherwise
_ENCRYPT_TIMEOUT_MS = const(5000)  # a bonded central re-encrypts within a second
_PAIRING_TIMEOUT_MS = const(30000)  # while the window is open: the wearer confirms on the phone
_SUPERVISE_MS = const(250)

# Footpod (Running Speed and Cadence service, 0x1814).
_RSC_LEN = const(6)
_RSC_STRIDE_PRESENT = const(0x01)  # flags: stride length present; bit 2 clear: walking
_RSC_STALE_MS = const(3000)  # no STEP for two strides or more: standing still
_RSC_MAX_STRIDE_MS = const(2500)  # slower than 48 steps/min: a pause, not a stride
_SENSOR_IN_SHOE = const(2)  # Sensor Location 0x2A5D
_RSC_UUID16_LE = b"\x14\x18"
_APPEARANCE_IN_SHOE_LE = b"\x41\x04"  # 0x0441: in-shoe running speed and cadence sensor

_BULK_BYTES = const(2048)  # samples queue: about 8 full notifications
_PRIORITY_BYTES = const(1024)  # events and answers: about 28 STEP packets
_RX_BYTES = const(512)  # control writes not yet taken by the app
_CONTROL_MAX = const(256)  # largest control write (packet + CRC)

_SECRETS_FILE = "ble_secrets.bin"
_SEC_OUR = const(1)  # NimBLE's BLE_STORE_OBJ_TYPE_OUR_SEC
_SEC_PEER = const(2)  # BLE_STORE_OBJ_TYPE_PEER_SEC
_PEER_TYPES = (_SEC_OUR, _SEC_PEER)
_MAX_BONDS = const(8)  # the wearer's phone, a laptop, a clinic tablet ... with room to spare
_MAX_SECRETS = const(2 * _MAX_BONDS + 2)  # two records per bond, our IRK, one spare
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

    Values are opaque. MicroPython's binding (extmod/nimble/modbluetooth_nimble.c) keys
    our keys (type 1) and the peer's (type 2) by the peer's 7-byte identity address, and
    our own IRK by type 10; CCCDs are not persisted. So a bond is the records sharing one
    key. At most _MAX_BONDS are kept: a new bond evicts the least recently used one here,
    because NimBLE's own evict-oldest path does not work through these callbacks (a full
    store just fails the write, and the phone is left with keys the insole lacks).
    New bonds are taken only while `accepting` (the pairing window is open).

    The file (type u8, key length u8, value length u16, key, value per entry; bonds
    least recently used first) is written by a task, to a temporary name, then renamed.
    """

    def __init__(self, directory):
        self._path = None if directory is None else directory + "/" + _SECRETS_FILE
        self._entries = {}  # (sec_type, key) -> value
        self._order = []  # bonded peers' keys, least recently used first
        self.accepting = False
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
        while off + 4 <= len(data):
            sec_type = data[off]
            klen = data[off + 1]
            vlen = data[off + 2] | (data[off + 3] << 8)
            end = off + 4 + klen + vlen
            if end > len(data):
                break  # a torn tail: keep what was whole
            self._put(sec_type, bytes(data[off + 4 : off + 4 + klen]), bytes(data[off + 4 + klen : end]), True)
            off = end

    def _touch(self, key):
        order = self._order
        if order and order[-1] == key:
            return
        if key in order:
            order.remove(key)
        order.append(key)

    def _forget(self, key):
        for sec_type in _PEER_TYPES:
            self._entries.pop((sec_type, key), None)
        if key in self._order:
            self._order.remove(key)

    def _put(self, sec_type, key, value, accept):
        if sec_type in _PEER_TYPES:
            if key not in self._order:
                if not accept:
                    return False
                while len(self._order) >= _MAX_BONDS:
                    self._forget(self._order[0])
            self._touch(key)
        elif (sec_type, key) not in self._entries and len(self._entries) >= _MAX_SECRETS:
            return False
        self._entries[(sec_type, key)] = value
        return True

    def get(self, sec_type, index, key):
        if key is not None:
            key = bytes(key)
            value = self._entries.get((sec_type, key))
            if value is not None and sec_type == _SEC_OUR:
                self._touch(key)  # our LTK, read to encrypt a link: this bond is in use
            return value
        if sec_type in _PEER_TYPES:
            for peer in reversed(self._order):  # most recently used first
                value = self._entries.get((sec_type, peer))
                if value is not None:
                    if not index:
                        return value
                    index -= 1
            return None
        for (t, _k), value in self._entries.items():
            if t == sec_type:
                if not index:
                    return value
                index -= 1
        return None

    def set(self, sec_type, key, value):
        key = bytes(key)
        if value is None:
            # "Not found" must be said: NimBLE deletes a bond by repeating the delete
            # until the store says so (ble_store_util_delete_all).
            if self._entries.pop((sec_type, key), None) is None:
                return False
            if sec_type in _PEER_TYPES and key in self._order:
                if not any((t, key) in self._entries for t in _PEER_TYPES):
                    self._order.remove(key)
        elif len(value) > _MAX_SECRET_LEN or len(key) > 255:
            return False
        elif not self._put(sec_type, key, bytes(value), self.accepting):
            return False
        self.dirty = True
        return True

    def peers(self):
        """Bonded peers' keys (7-byte addresses), most recently used first."""
        return list(reversed(self._order))

    def clear(self):
        """Forgets every bond (our IRK stays: it is the insole's identity, not a bond)."""
        for key in list(self._order):
            self._forget(key)
        self.dirty = True

    def save(self):
        self.dirty = False
        if not self._path:
            return
        tmp = self._path + ".tmp"
        # Snapshots: an IRQ may change the store meanwhile.
        entries = self._entries.copy()
        order = list(self._order)
        with open(tmp, "wb") as f:
            for (sec_type, key), value in entries.items():
                if sec_type not in _PEER_TYPES:
                    _write_entry(f, sec_type, key, value)
            for key in order:
                for sec_type in _PEER_TYPES:
                    value = entries.get((sec_type, key))
                    if value is not None:
                        _write_entry(f, sec_type, key, value)
        os.rename(tmp, self._path)


def _write_entry(f, sec_type, key, value):
    f.write(bytes((sec_type, len(key), len(value) & 0xFF, len(value) >> 8)))
    f.write(key)
    f.write(value)


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
                 firmware=None, pairing_window_ms=_PAIRING_WINDOW_MS, ticks_ms=time.ticks_ms):
        # Buffers first, while the heap is least fragmented: 3.6 KB of queues.
        self._bulk = Ring(_BULK_BYTES)  # 2048 B
        self._priority = Ring(_PRIORITY_BYTES)  # 1024 B
        self._rx = Ring(_RX_BYTES)  # 512 B
        self._packet = bytearray(_CONTROL_MAX)  # 256 B: the write being handed to the app
        self._rsc = bytearray(_RSC_LEN)  # RSC Measurement: flags, speed, cadence, stride
        self._one = bytearray(b"\xff")  # battery level (0xFF: not yet written)
        self._ble = ble
        self._ticks_ms = ticks_ms
        self._base_name = name
        self._side = side
        self.on_packet = on_packet
        self.on_bad = on_bad
        self._indicate = indicate_events
        self._secrets = _Secrets(settings_dir)
        self._info = (manufacturer, model, firmware or "%d.%d.%d" % (FW_MAJOR, FW_MINOR, FW_PATCH))
        self._handles = [0] * _N_TAGS
        self._h_control = 0
        self._h_rsc = 0
        self._h_battery = 0
        self._tx_flag = asyncio.ThreadSafeFlag()
        self._rx_flag = asyncio.ThreadSafeFlag()
        self._link_flag = asyncio.ThreadSafeFlag()
        self._started = False
        self._advertising = False  # wanted: a refused gap_advertise is tried again
        self._conn = -1
        self._surplus = -1  # a second central the stack let in: not served, disconnected
        self._conn_ms = 0  # when _conn connected (ticks_ms)
        self._mtu = _ATT_DEFAULT_MTU
        self._encrypted = False
        self._bonded = False
        self._asked = False  # the bonded host on this link asked for gait data
        self._indicating = False
        self._mtu_asked = -1  # the connection we already asked for an MTU exchange
        self._pairing = False
        self._pair_until = 0
        self._pairing_window_ms = pairing_window_ms
        self._rsc_moving = False
        self._last_step_ms = 0
        self._rx_lost = 0  # control writes the full ring refused (counted by the IRQ)
        self._rx_lost_told = 0
        self.conn_interval = 0  # in 1.25 ms units, from _IRQ_CONNECTION_UPDATE (0 = not told)
        self.sent = 0  # packets the stack took
        self.dropped = 0  # packets not sent: queue full, link gone, too big, or not asked for
        self.busy = 0  # times the stack had no buffer (paced, not lost)
        self.rejected = 0  # control writes not passed to the app
        self.connections = 0
        self.refused = 0  # connections ended: not encrypted in time, or not bonded
        self.irq_faults = 0  # exceptions caught in the IRQ handler (it must never raise)

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
    def streaming(self):
        """True while gait samples and events go out: a bonded host asked on this link."""
        return self._asked and self.encrypted

    @property
    def mtu(self):
        return self._mtu

    @property
    def payload_limit(self):
        """The largest packet (header + payload) one notification can carry now."""
        return self._mtu - 3

    @property
    def pairing_open(self):
        return self._pairing

    # -- start-up ----------------------------------------------------------------------

    def start(self):
        ble = self._ble
        # The handler first: NimBLE reads the bonded peers' identity keys through it
        # during active(True); registered later, phones with private addresses could
        # not re-encrypt after a reset.
        ble.irq(self._irq)
        ble.active(True)
        ble.config(gap_name=self.name, mtu=_MTU)
        ble.config(le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        UUID = bluetooth.UUID
        insole = (UUID(SERVICE_UUID), (
            (UUID(SAMPLES_UUID), _FLAG_NOTIFY),
            (UUID(EVENTS_UUID), _FLAG_INDICATE if self._indicate else _FLAG_NOTIFY),
            (UUID(CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_ENCRYPTED | _FLAG_NOTIFY),
            (UUID(STATUS_UUID), _FLAG_READ | _FLAG_READ_ENCRYPTED | _FLAG_NOTIFY),
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
            (UUID(0x2A5D), _FLAG_READ),  # Sensor Location
        ))
        ((samples, events, control, status), (manufacturer, model, firmware), (level,),
         (measurement, feature, location)) = ble.gatts_register_services((insole, info, battery, rsc))
        handles = self._handles
        handles[_TAG_SAMPLES] = samples
        handles[_TAG_EVENTS] = events
        handles[_TAG_CONTROL] = control
        handles[_TAG_STATUS] = status
        self._h_control = control
        self._h_rsc = measurement
        self._h_battery = level
        ble.gatts_set_buffer(control, _CONTROL_MAX)
        for handle, text in zip((manufacturer, model, firmware), self._info):
            ble.gatts_write(handle, text.encode())
        ble.gatts_write(feature, b"\x01\x00")  # instantaneous stride length supported
        ble.gatts_write(location, bytes((_SENSOR_IN_SHOE,)))
        self._write_rsc(0, 0, 0)  # not moving (yet)
        self._started = True
        if self._pairing_window_ms > 0:
            self.open_pairing(self._pairing_window_ms)  # the wearer just switched it on
        else:
            self._set_pairing(False)
        self._advertising = True
        self._advertise()

    def _advertise(self):
        # Advertising data: flags, the RSC service (so sports apps find a footpod), the
        # insole's own service, appearance "in-shoe running speed and cadence sensor".
        # Scan response: the name and service data (side, protocol version).
        name = self.name.encode()
        service = _uuid_le(SERVICE_UUID)
        adv = (_ad(0x01, b"\x06") + _ad(0x03, _RSC_UUID16_LE) + _ad(0x07, service)
               + _ad(0x19, _APPEARANCE_IN_SHOE_LE))
        side = self._side if self._side in (0, 1) else 0xFF
        resp = _ad(0x21, service + bytes((side, 1)))
        room = 31 - len(resp) - 2
        resp += _ad(0x09, name) if len(name) <= room else _ad(0x08, name[:room])
        try:
            self._ble.gap_advertise(_ADV_INTERVAL_US, adv_data=adv, resp_data=resp)
        except OSError:
            return False  # the stack refused (busy): the supervisor tries again
        self._advertising = False
        return True

    def set_side(self, side):
        """The side changed (a settings write): new name and advertising."""
        if side == self._side:
            return
        self._side = side
        if self._started:
            self._ble.config(gap_name=self.name)
            if self._conn < 0:
                self._advertising = True
                self._advertise()

    # -- pairing and bonds -------------------------------------------------------------

    def open_pairing(self, ms):
        """Lets a new central bond for the next `ms` (the wearer asked: power-on, a
        gesture, the USB command). Outside this window pairing gives no bond, and a
        link without a bond is dropped."""
        self._pair_until = time.ticks_add(self._ticks_ms(), ms)
        self._set_pairing(True)

    def _set_pairing(self, on):
        self._pairing = on
        self._secrets.accepting = on
        if self._started:
            self._ble.config(bond=on)

    def bond_peers(self):
        """Bonded centrals' 7-byte addresses (type + address), most recently used first."""
        return self._secrets.peers()

    def clear_bonds(self):
        """Forgets every bond and drops the current link (a bonded one would keep going)."""
        self._secrets.clear()
        self._link_flag.set()  # the link task writes the file
        self.disconnect()

    # -- link control ------------------------------------------------------------------

    def drop_samples(self):
        """Forgets the SAMPLES packets still queued (a stream was stopped: what follows
        on the link is the next stream's). Returns how many."""
        return self._bulk.clear()

    def want_gait_data(self, on):
        """The bonded host on the current link asked for (or stopped) gait samples and
        events (START_STREAM, GET_EVENTS / STOP_STREAM on this link); nothing goes to a
        central that has not asked, since gatts_notify sends regardless of subscriptions."""
        self._asked = bool(on) and self.encrypted

    def disconnect(self):
        """Ends the link from this side (the insole advertises again); False if none."""
        if self._conn < 0:
            return False
        return self._disconnect(self._conn)

    def _disconnect(self, conn):
        try:
            return self._ble.gap_disconnect(conn)
        except OSError:
            return False  # already going

    def stop(self):
        if self._started:
            self._advertising = False
            try:
                self._ble.gap_advertise(None)
            except OSError:
                pass
            if self._conn >= 0:
                self._disconnect(self._conn)

    async def run(self):
        """The link's tasks; returns only if cancelled."""
        if not self._started:
            self.start()
        tasks = [asyncio.create_task(self._tx_task()), asyncio.create_task(self._rx_task()),
                 asyncio.create_task(self._link_task()), asyncio.create_task(self._supervise_task())]
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

        Gait samples and events go only to a bonded host that asked for them; answers
        only on a bonded link, except ERROR (it tells any central why its write was
        refused, and carries no data). Copies the packet, so the caller's buffer is free
        again at once. Allocates nothing.
        """
        ptype = packet[1]
        if length > self._mtu - 3:
            ok = False
        elif ptype == _T_SAMPLES:
            ok = self.streaming and self._bulk.put(_TAG_SAMPLES, packet, length)
        elif ptype == _T_STEP or ptype == _T_HEEL_RAISE or (ptype >= _T_FIRST_EVENT_EXT and ptype != _T_PROGRAM):
            ok = self.streaming and self._priority.put(_TAG_EVENTS, packet, length)
        elif self.encrypted or (ptype == _T_ERROR and self._conn >= 0):
            ok = self._priority.put(_TAG_CONTROL, packet, length)
            if ok and ptype == _T_STATUS:
                self._priority.put(_TAG_STATUS, packet, length)
        else:
            ok = False
        if not ok:
            self.dropped += 1
            return False
        self._tx_flag.set()
        return True

    def can_send(self, ptype, length):
        """Whether send() would take a packet of this type and length now (for pacing
        bulk work such as a backfill instead of letting it drop)."""
        if not self.streaming or length > self._mtu - 3:
            return False
        ring = self._bulk if ptype == _T_SAMPLES else self._priority
        return ring.room(length)

    def queued(self, ptype):
        """Packets of this type's queue not yet taken by the stack (samples and answers
        travel in different queues, answers first: a backfill's end waits for this)."""
        return (self._bulk if ptype == _T_SAMPLES else self._priority).count

    def note_step(self, step):
        """A STEP packet (header included) was made: the RSC Measurement follows it.

        Speed, cadence and stride length all come from the same stride, so speed =
        cadence x stride length / 120 as the RSC service defines them (cadence counts
        foot falls of both feet per minute; stride length is one foot's stride, two
        steps). Written with send_update, it reaches subscribed centrals only, whatever
        else the link is doing; the supervisor zeroes it once walking stops.
        """
        stance = step[16] | (step[17] << 8)
        swing = step[18] | (step[19] << 8)
        stride_mm = step[28] | (step[29] << 8)
        speed_mms = step[30] | (step[31] << 8)
        stride_ms = stance + swing
        if stance == 0xFFFF or swing == 0xFFFF or not 0 < stride_ms <= _RSC_MAX_STRIDE_MS or speed_mms == 0xFFFF:
            # The first step of a bout (its stance or swing holds the pause before
            # it): no cadence to tell yet.
            return
        if stride_mm == 0xFFFF:
            stride_mm = speed_mms * stride_ms // 1000
        self._write_rsc(speed_mms, 120000 // stride_ms, stride_mm)
        self._rsc_moving = True
        self._last_step_ms = self._ticks_ms()

    def _write_rsc(self, speed_mms, cadence_spm, stride_mm):
        rsc = self._rsc
        rsc[0] = _RSC_STRIDE_PRESENT  # walking (bit 2 clear), stride length present
        speed = speed_mms * 256 // 1000  # 1/256 m/s
        rsc[1] = speed & 0xFF
        rsc[2] = (speed >> 8) & 0xFF
        rsc[3] = cadence_spm if cadence_spm < 255 else 255
        stride_cm = stride_mm // 10
        rsc[4] = stride_cm & 0xFF
        rsc[5] = (stride_cm >> 8) & 0xFF
        try:
            self._ble.gatts_write(self._h_rsc, rsc, True)
        except OSError:
            pass  # no room in the stack just now: the next step writes again

    def set_battery(self, percent):
        """Battery level in %, notified to subscribers when it changes."""
        one = self._one
        if not self._started or percent == one[0]:
            return
        one[0] = percent
        try:
            self._ble.gatts_write(self._h_battery, one, True)
        except OSError:
            one[0] = 0xFF  # try again next time

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
        wait_ms = _BUSY_RETRY_MS
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
                    wait_ms = _BUSY_RETRY_MS
                except OSError as exc:
                    code = exc.errno
                    if code == errno.ENOMEM or code == errno.EAGAIN or code == errno.EALREADY:
                        self.busy += 1  # the stack is full: same packet again soon
                        # Buffers free up at connection events (7.5 to 50 ms apart; the
                        # central does not always say which): back off up to one.
                        await asyncio.sleep_ms(wait_ms)
                        wait_ms = wait_ms * 2 if wait_ms < _BUSY_RETRY_MAX_MS else _BUSY_RETRY_MAX_MS
                        continue
                    self.dropped += 1  # the link went away under us
                ring.pop()
                await asyncio.sleep_ms(0)  # let sampling run between packets
            await self._tx_flag.wait()

    # -- receiving ---------------------------------------------------------------------

    def _irq(self, event, data):
        # An exception escaping this handler would disable it until reset (extmod/
        # modbluetooth.c), leaving the insole deaf: count it instead.
        try:
            return self._on_irq(event, data)
        except Exception:
            self.irq_faults += 1
            return None

    def _on_irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            if data[1] == self._h_control:
                value = self._ble.gatts_read(self._h_control)
                secure = 1 if (data[0] == self._conn and self._encrypted and self._bonded) else 0
                if not self._rx.put(secure, value, len(value)):
                    self._rx_lost += 1
                self._rx_flag.set()
        elif event == _IRQ_CENTRAL_CONNECT:
            if self._conn < 0:
                self._conn = data[0]
                self._conn_ms = self._ticks_ms()
                self._mtu = _ATT_DEFAULT_MTU
                self._encrypted = self._bonded = self._indicating = self._asked = False
                self.connections += 1
            else:
                self._surplus = data[0]
            self._link_flag.set()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = -1
                self._encrypted = self._bonded = self._indicating = self._asked = False
                self._mtu = _ATT_DEFAULT_MTU
            elif data[0] == self._surplus:
                self._surplus = -1
            self._link_flag.set()
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self._conn:
                self._mtu = min(data[1], _MTU)
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self._conn:
                self._encrypted = bool(data[1])
                self._bonded = bool(data[3])
                self._link_flag.set()
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
        return None

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
            if self._surplus >= 0:
                self._disconnect(self._surplus)  # one central at a time
                self._surplus = -1
            conn = self._conn
            if conn < 0:
                # Whatever was queued for the old link will not arrive.
                self.dropped += self._bulk.clear() + self._priority.clear()
                if self._started:
                    self._advertising = True  # the stack stops advertising on connect
                    self._advertise()
            elif self._encrypted and not self._bonded:
                # Paired without a bond (outside the pairing window): nothing to offer,
                # and the slot is the owner's.
                self.refused += 1
                self._disconnect(conn)
            elif self._mtu == _ATT_DEFAULT_MTU and self._mtu_asked != conn:
                self._mtu_asked = conn
                await asyncio.sleep_ms(_MTU_WAIT_MS)
                if self._conn == conn and self._mtu == _ATT_DEFAULT_MTU:
                    try:
                        self._ble.gattc_exchange_mtu(conn)
                    except OSError:
                        pass
                self._link_flag.set()  # look again: the link may have changed meanwhile

    async def _supervise_task(self):
        # What must happen after a while: the pairing window closes, a link that has
        # not encrypted in time is dropped (so the owner can always connect), refused
        # advertising is tried again, and RSC stops claiming motion once walking stops.
        while True:
            await asyncio.sleep_ms(_SUPERVISE_MS)
            now = self._ticks_ms()
            if self._pairing and time.ticks_diff(self._pair_until, now) <= 0:
                self._set_pairing(False)
            conn = self._conn
            if conn >= 0 and not self.encrypted:
                limit = _PAIRING_TIMEOUT_MS if self._pairing else _ENCRYPT_TIMEOUT_MS
                if time.ticks_diff(now, self._conn_ms) > limit:
                    self.refused += 1
                    self._conn_ms = now  # once per limit, should the stack be slow to drop it
                    self._disconnect(conn)
            if self._advertising and conn < 0:
                self._advertise()
            if self._rsc_moving and time.ticks_diff(now, self._last_step_ms) > _RSC_STALE_MS:
                self._rsc_moving = False
                self._write_rsc(0, 0, 0)
