# insolefw.ble against a fake `bluetooth.BLE` object: queues, routing, pacing, the
# control-write checks, who gets what (bonded, asked), the pairing window and link
# timeouts, advertising and the footpod, the bond store, an IRQ handler that never
# raises, and no allocation in send().
# (tests/test_ble.py runs the same module over the emulated radio.)
import asyncio
import errno
import micropython
import os
import struct

from insolefw import ble as B
from insolefw import fast
from insolefw import protocol as P

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30


class FakeClock:
    def __init__(self):
        self.ms = 1000

    def ticks_ms(self):
        return self.ms


class FakeBLE:
    """Records what the link asks of the stack; `full` makes notifications fail with
    ENOMEM; `refuse_advertise` makes that many gap_advertise calls fail with EBUSY."""

    def __init__(self):
        self.handler = None
        self.calls = []  # "irq", "active" in the order made
        self.values = {}
        self.sent = []  # (value handle, bytes)
        self.updates = []  # (value handle, bytes) written with send_update
        self.adverts = []
        self.config_kw = {}
        self.bond_history = []
        self.buffers = {}
        self.disconnects = []
        self.full = False
        self.recording = True  # False: gatts_write keeps nothing (allocates nothing)
        self.refuse_advertise = 0
        self.uuids = {}

    def active(self, *args):
        self.calls.append("active")
        return True

    def config(self, *args, **kwargs):
        self.config_kw.update(kwargs)
        if "bond" in kwargs:
            self.bond_history.append(kwargs["bond"])

    def irq(self, handler):
        self.calls.append("irq")
        self.handler = handler

    def gatts_register_services(self, services):
        handle = 0
        out = []
        for _uuid, chars in services:
            group = []
            for c in chars:
                handle += 2
                group.append(handle)
                self.uuids[handle] = str(c[0])
            out.append(tuple(group))
        return tuple(out)

    def gatts_set_buffer(self, handle, size, *append):
        self.buffers[handle] = size

    def gatts_write(self, handle, data, send_update=False):
        if not self.recording:
            return
        self.values[handle] = bytes(data)
        if send_update:
            self.updates.append((handle, bytes(data)))

    def gatts_read(self, handle):
        return self.values.get(handle, b"")

    def gatts_notify(self, conn, handle, *data):
        if self.full:
            raise OSError(errno.ENOMEM)
        self.sent.append((handle, bytes(data[0])))

    def gatts_indicate(self, conn, handle, *data):
        self.sent.append((handle, self.values[handle]))

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if self.refuse_advertise:
            self.refuse_advertise -= 1
            raise OSError(16)  # EBUSY
        self.adverts.append((interval_us, adv_data, resp_data))

    def gap_disconnect(self, conn):
        self.disconnects.append(conn)
        return True

    def gattc_exchange_mtu(self, conn):
        pass


def _spin(link, ms=40):
    # Runs the link's tasks for a while, as the app's asyncio loop would.
    async def main():
        task = asyncio.create_task(link.run())
        await asyncio.sleep_ms(ms)
        task.cancel()
        await asyncio.sleep_ms(0)

    asyncio.run(main())


def _link(side=0, on_packet=None, on_bad=None, settings_dir=None, clock=None, window_ms=60000):
    fake = FakeBLE()
    link = B.BleLink(fake, "insole", side, on_packet or (lambda buf, n: None), on_bad,
                     settings_dir=settings_dir, pairing_window_ms=window_ms,
                     ticks_ms=(clock or FakeClock()).ticks_ms)
    link.start()
    return fake, link


def _connect(fake, link, mtu=247, bonded=False, asked=False):
    fake.handler(_IRQ_CENTRAL_CONNECT, (5, 1, b"\xc0\x15\x00\x00\x00\xfe"))
    fake.handler(_IRQ_MTU_EXCHANGED, (5, mtu))
    if bonded:
        fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 1, 16))
    if asked:
        link.want_gait_data(True)


def _short(text):
    # "5c981001-..." -> "1001"; 16-bit UUIDs stay as they are ("2a53")
    return text[4:8] if len(text) > 4 else text


def _handle(fake, uuid):
    for handle, text in fake.uuids.items():
        if text == uuid:
            return handle
    raise KeyError(uuid)


def _step_packet(stance_ms, swing_ms, stride_mm, speed_mms):
    b = P.PacketBuilder()
    step = bytearray(P.STEP_LEN)
    struct.pack_into("<HH", step, 8, stance_ms, swing_ms)
    struct.pack_into("<HH", step, 20, stride_mm, speed_mms)
    n = b.event(P.T_STEP, 0, step, P.STEP_LEN)
    return b.buf, n


def test_ring_keeps_order_across_wraps_and_refuses_when_full():
    ring = B.Ring(64)
    src = bytearray(range(40))
    written = []
    popped = []
    for i in range(40):
        n = 5 + (i * 7) % 20
        src[0] = i
        room = ring.room(n)
        assert ring.put(i, src, n) == room
        if room:
            written.append((i, i, n))
        while ring.count > 1 + i % 2:
            length = ring.peek()
            popped.append((ring.tag, ring.buf[ring.off], length))
            ring.pop()
    while ring.peek() >= 0:
        popped.append((ring.tag, ring.buf[ring.off], ring.peek()))
        ring.pop()
    assert popped == written and len(written) > 30  # whole, in order, across many wraps
    assert ring.put(1, src, 40) and not ring.room(30) and not ring.put(2, src, 30)
    assert ring.clear() == 1 and ring.peek() == -1


def test_advertising_is_a_footpod_with_name_uuid_and_side_within_31_bytes():
    fake, link = _link(side=1)
    interval, adv, resp = fake.adverts[-1]
    assert link.name == "insole-R" and fake.config_kw["gap_name"] == "insole-R"
    assert len(adv) <= 31 and len(resp) <= 31
    assert b"\x03\x03\x14\x18" in adv  # 16-bit service list: Running Speed and Cadence
    assert b"\x03\x19\x41\x04" in adv  # appearance 0x0441: in-shoe RSC sensor
    uuid_le = bytes(reversed(bytes(int(B.SERVICE_UUID.replace("-", "")[i:i + 2], 16) for i in range(0, 32, 2))))
    assert bytes((17, 0x07)) + uuid_le in adv
    assert bytes((19, 0x21)) + uuid_le + b"\x01\x01" in resp  # service data: side R, protocol 1
    assert b"\x09\x09insole-R" in resp  # complete local name in the scan response
    assert fake.config_kw["le_secure"] and fake.config_kw["mtu"] == 247
    link.set_side(0)
    assert b"insole-L" in fake.adverts[-1][2]


def test_irq_handler_is_registered_before_the_radio_starts():
    # NimBLE restores bonded peers' identity keys through the handler in active(True).
    fake, _link_ = _link()
    assert fake.calls[:2] == ["irq", "active"], fake.calls


def test_packets_go_to_their_characteristic_events_first():
    fake, link = _link()
    _connect(fake, link, bonded=True, asked=True)
    b = P.PacketBuilder()
    n = b.samples_header(0, 0, 0, 16, 1)
    assert link.send(b.buf, n)
    step, n_step = _step_packet(600, 400, 1400, 1400)
    assert link.send(step, n_step)
    n_ack = b.ack(0, P.T_COMMAND, 1, 7)
    assert link.send(b.buf, n_ack)
    n_status = b.status(0, (0, 1, 0), 0, 0, 0, 0, 0xFF, 10000, 0xFFFF, 0, 0, 1000, 0, 0)
    assert link.send(b.buf, n_status)
    _spin(link)
    order = [_short(fake.uuids[h]) for h, _ in fake.sent]
    # events, control answer, status (control + status characteristic), then samples
    assert order == ["1002", "1003", "1003", "1004", "1001"], order
    assert fake.values[_handle(fake, B.STATUS_UUID)] == fake.sent[3][1]
    assert link.sent == 5 and link.dropped == 0


def test_rsc_from_each_step_reaches_subscribers_only_and_zeroes_when_walking_stops():
    clock = FakeClock()
    fake, link = _link(clock=clock)
    rsc = _handle(fake, "2a53")
    assert fake.values[_handle(fake, "2a5d")] == b"\x02"  # sensor location: in shoe
    step, n = _step_packet(600, 400, 1400, 1400)  # a 1 s stride of 1.4 m at 1.4 m/s
    link.note_step(step)  # no central at all: still written (a subscriber may come)
    value = fake.updates[-1]
    assert value[0] == rsc and value[1][0] == 0x01  # stride length present, walking
    speed = value[1][1] | (value[1][2] << 8)
    cadence = value[1][3]
    stride_cm = value[1][4] | (value[1][5] << 8)
    assert speed == 1400 * 256 // 1000 and cadence == 120 and stride_cm == 140
    # speed = cadence x stride / 120 (two foot falls per stride)
    assert abs(speed / 256 - cadence * stride_cm / 100 / 120) < 0.01
    assert fake.sent == []  # never queued behind the gait packets (MTU 23 fits it anyway)
    clock.ms += 2000
    _spin(link, 300)
    assert fake.updates[-1][1][1:4] == value[1][1:4]  # still walking
    clock.ms += 1500
    _spin(link, 300)
    assert fake.updates[-1][1][1:] == b"\x00\x00\x00\x00\x00"  # stopped: no stale values
    link.note_step(_step_packet(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)[0])
    assert fake.updates[-1][1][1:] == b"\x00\x00\x00\x00\x00"  # a step without a stride
    for stance, swing in ((600, 8600), (8600, 470)):  # the first step after standing 8 s
        link.note_step(_step_packet(stance, swing, 1300, 1200)[0])
        assert fake.updates[-1][1][1:] == b"\x00\x00\x00\x00\x00"  # no cadence of 13


def test_battery_level_is_notified_when_it_changes():
    fake, link = _link()
    level = _handle(fake, "2a19")
    link.set_battery(87)
    link.set_battery(87)
    link.set_battery(86)
    updates = [u for u in fake.updates if u[0] == level]
    assert updates == [(level, b"\x57"), (level, b"\x56")] and fake.values[level] == b"\x56"


def test_send_allocates_nothing():
    fake, link = _link()
    _connect(fake, link, bonded=True, asked=True)
    b = P.PacketBuilder()
    n = b.samples_header(0, 0, 5, 16, 1) + 5 * 44
    step, n_step = _step_packet(600, 400, 1400, 1400)
    fake.recording = False
    micropython.heap_lock()
    try:
        for _ in range(4):
            link.send(b.buf, n)
            link.send(step, n_step)
            link.can_send(P.T_SAMPLES, n)
            link.note_step(step)
    finally:
        micropython.heap_unlock()
    assert link.dropped == 0


def test_full_stack_paces_instead_of_dropping():
    fake, link = _link()
    _connect(fake, link, bonded=True)
    b = P.PacketBuilder()
    fake.full = True
    for seq in range(3):
        link.send(b.buf, b.ack(0, P.T_COMMAND, 1, seq))
    _spin(link, 30)
    assert fake.sent == [] and link.busy > 0 and link.dropped == 0
    fake.full = False
    _spin(link, 30)
    assert [struct.unpack_from("<H", data, P.HEADER_LEN + 2)[0] for _, data in fake.sent] == [0, 1, 2]


def test_gait_data_only_to_a_bonded_host_that_asked():
    fake, link = _link()
    b = P.PacketBuilder()
    n_samples = b.samples_header(0, 0, 0, 16, 1)
    samples = bytes(b.buf[:n_samples])
    step, n_step = _step_packet(600, 400, 1400, 1400)
    n_ack = b.ack(0, P.T_COMMAND, 1, 7)
    ack = bytes(b.buf[:n_ack])
    n_error = b.error(0, 0, 0, 0, P.E_NOT_BONDED, 0)
    error = bytes(b.buf[:n_error])

    def offered():
        return [link.send(samples, n_samples), link.send(step, n_step), link.send(ack, n_ack),
                link.send(error, n_error)]

    _connect(fake, link)  # a stranger: nothing but the answer to its own refused write
    assert offered() == [False, False, False, True]
    fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 1, 16))  # bonded, has not asked
    link.want_gait_data(False)
    assert offered() == [False, False, True, True]
    link.want_gait_data(True)
    assert offered() == [True, True, True, True] and link.streaming
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    _connect(fake, link, bonded=True)  # the next link must ask again
    assert offered() == [False, False, True, True] and not link.streaming
    link.want_gait_data(True)
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    _connect(fake, link)
    link.want_gait_data(True)  # not bonded: asking is not enough
    assert offered() == [False, False, False, True]


def test_too_big_full_queue_or_no_link_is_counted_as_dropped():
    fake, link = _link()
    b = P.PacketBuilder()
    n = b.ack(0, P.T_COMMAND, 1, 1)
    assert not link.send(b.buf, n)  # no central
    _connect(fake, link, mtu=23, bonded=True, asked=True)
    big = b.samples_header(0, 0, 1, 16, 1) + 44
    assert not link.send(b.buf, big) and not link.can_send(P.T_SAMPLES, big)  # > MTU - 3
    fake.handler(_IRQ_MTU_EXCHANGED, (5, 247))
    sent = 0
    while link.send(b.buf, big):
        sent += 1
    assert sent == link._bulk._size // (big + 3) and link.dropped == 3
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    adverts = len(fake.adverts)
    _spin(link)
    assert link.dropped == 3 + sent  # what waited for the lost link
    assert len(fake.adverts) == adverts + 1  # advertising again


def test_re_advertising_survives_a_refused_gap_advertise():
    fake, link = _link()
    _connect(fake, link, bonded=True)
    fake.refuse_advertise = 2  # the controller is busy for a while
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    adverts = len(fake.adverts)
    _spin(link, 700)
    assert len(fake.adverts) == adverts + 1 and fake.refuse_advertise == 0


def test_control_writes_need_a_bonded_link_and_a_good_crc():
    got = []
    bad = []
    fake, link = _link(on_packet=lambda buf, n: got.append(bytes(buf[:n])), on_bad=bad.append)
    control = _handle(fake, B.CONTROL_UUID)
    assert fake.buffers[control] >= 64
    b = P.PacketBuilder()
    n = b.ack(0, 0, 0, 9)  # any packet will do: the link does not judge content
    crc = fast.crc16(b.buf, 0, n)
    good = bytes(b.buf[:n]) + bytes((crc & 0xFF, crc >> 8))

    def write(value):
        fake.values[control] = value
        fake.handler(_IRQ_GATTS_WRITE, (5, control))

    _connect(fake, link)
    write(good)  # not encrypted
    fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 0, 16))  # encrypted, not bonded
    write(good)
    _spin(link, 20)
    assert got == [] and bad == [B.BAD_NOT_BONDED] * 2 and not link.encrypted
    assert fake.disconnects == [5]  # and dropped: nothing to offer it, the slot is the owner's
    fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 1, 16))
    assert link.encrypted
    write(good)
    write(good[:-1] + bytes((good[-1] ^ 1,)))
    write(good[:5])
    _spin(link, 20)
    assert got == [good[:-2]]
    assert bad == [B.BAD_NOT_BONDED] * 2 + [B.BAD_CRC, B.BAD_LENGTH] and link.rejected == 4


def test_the_pairing_window_opens_at_power_on_and_closes():
    clock = FakeClock()
    fake, link = _link(clock=clock, window_ms=60000)
    assert link.pairing_open and fake.bond_history == [True]
    clock.ms += 59000
    _spin(link, 300)
    assert link.pairing_open
    clock.ms += 2000
    _spin(link, 300)
    assert not link.pairing_open and fake.bond_history == [True, False]
    link.open_pairing(10000)  # the wearer's gesture or the USB command
    assert link.pairing_open and fake.bond_history[-1] is True
    fake2, link2 = _link(window_ms=0)
    assert not link2.pairing_open and fake2.bond_history == [False]


def test_a_link_that_does_not_encrypt_in_time_is_dropped():
    clock = FakeClock()
    fake, link = _link(clock=clock, window_ms=0)
    _connect(fake, link)  # a stranger that just sits there
    clock.ms += 4000
    _spin(link, 300)
    assert fake.disconnects == []
    clock.ms += 2000
    _spin(link, 300)
    assert fake.disconnects == [5] and link.refused == 1
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    _connect(fake, link, bonded=True)  # the owner: stays
    clock.ms += 60000
    _spin(link, 300)
    assert fake.disconnects == [5]
    # While the window is open the wearer may take a while to confirm on the phone.
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    link.open_pairing(120000)
    _connect(fake, link)
    clock.ms += 20000
    _spin(link, 300)
    assert fake.disconnects == [5]
    clock.ms += 11000
    _spin(link, 300)
    assert fake.disconnects == [5, 5]


def test_irq_handler_never_raises():
    fake, link = _link()
    assert fake.handler(_IRQ_GATTS_WRITE, ()) is None  # malformed: would raise inside
    assert fake.handler(_IRQ_SET_SECRET, (2, None, b"x")) is None
    assert link.irq_faults == 2
    _connect(fake, link, bonded=True)  # and it still works
    assert link.encrypted


def _addr(i):
    return bytes((1, i, 0, 0, 0, 0xC0, 0xFE))  # type random, 6 address bytes


def _bond(fake, i):
    assert fake.handler(_IRQ_SET_SECRET, (1, _addr(i), b"ours-%d" % i)) is True
    assert fake.handler(_IRQ_SET_SECRET, (2, _addr(i), b"peer-%d" % i)) is True


def test_bond_store_answers_at_once_and_persists():
    directory = os.getenv("INSOLE_SETTINGS_DIR") or "/tmp"
    path = directory + "/ble_secrets.bin"
    try:
        os.remove(path)
    except OSError:
        pass
    fake, link = _link(settings_dir=directory)
    assert fake.handler(_IRQ_SET_SECRET, (10, b"irk", b"our-irk")) is True
    _bond(fake, 1)
    _bond(fake, 2)
    assert fake.handler(_IRQ_GET_SECRET, (2, 0, memoryview(_addr(2)))) == b"peer-2"
    assert fake.handler(_IRQ_GET_SECRET, (2, 0, None)) == b"peer-2"  # most recently used first
    assert fake.handler(_IRQ_GET_SECRET, (2, 1, None)) == b"peer-1"
    assert fake.handler(_IRQ_GET_SECRET, (2, 2, None)) is None
    assert fake.handler(_IRQ_GET_SECRET, (10, 0, b"irk")) == b"our-irk"
    assert link.bond_peers() == [_addr(2), _addr(1)]
    _spin(link, 20)  # the link task writes the file
    fake2, link2 = _link(settings_dir=directory)
    assert fake2.handler(_IRQ_GET_SECRET, (1, 0, _addr(1))) == b"ours-1"
    assert link2.bond_peers() == [_addr(1), _addr(2)]  # the read made peer 1 the most recent
    assert fake2.handler(_IRQ_GET_SECRET, (10, 0, b"irk")) == b"our-irk"
    assert fake2.handler(_IRQ_SET_SECRET, (2, _addr(1), None)) is True
    assert fake2.handler(_IRQ_SET_SECRET, (1, _addr(1), None)) is True
    assert fake2.handler(_IRQ_GET_SECRET, (2, 0, _addr(1))) is None
    assert fake2.handler(_IRQ_SET_SECRET, (2, _addr(1), None)) is False  # "not found" ends NimBLE's delete loop
    assert link2.bond_peers() == [_addr(2)]
    link2.clear_bonds()
    assert link2.bond_peers() == [] and fake2.handler(_IRQ_GET_SECRET, (10, 0, b"irk")) == b"our-irk"
    os.remove(path)


def test_bonds_are_bounded_and_the_least_recently_used_is_evicted():
    fake, link = _link()
    for i in range(1, 9):  # the 8th central still fits
        _bond(fake, i)
    assert len(link.bond_peers()) == 8
    assert fake.handler(_IRQ_GET_SECRET, (1, 0, _addr(1))) == b"ours-1"  # central 1 came back
    for i in range(9, 21):  # the 9th ... 20th central: each evicts the least recently used
        _bond(fake, i)
        peers = link.bond_peers()
        assert len(peers) == 8 and peers[0] == _addr(i)
    peers = link.bond_peers()
    assert peers == [_addr(i) for i in range(20, 12, -1)], peers
    for i in (1, 2, 12):  # evicted: none of their records is left
        assert fake.handler(_IRQ_GET_SECRET, (1, 0, _addr(i))) is None
        assert fake.handler(_IRQ_GET_SECRET, (2, 0, _addr(i))) is None


def test_new_bonds_only_inside_the_pairing_window():
    clock = FakeClock()
    fake, link = _link(clock=clock, window_ms=0)
    assert fake.handler(_IRQ_SET_SECRET, (2, _addr(1), b"peer-1")) is False
    assert link.bond_peers() == []
    link.open_pairing(1000)
    _bond(fake, 1)
    clock.ms += 2000
    _spin(link, 300)
    assert not link.pairing_open
    assert fake.handler(_IRQ_SET_SECRET, (2, _addr(2), b"peer-2")) is False
    assert fake.handler(_IRQ_SET_SECRET, (2, _addr(1), b"peer-1b")) is True  # a known peer's keys renew
    assert link.bond_peers() == [_addr(1)]
