# insolefw.ble against a fake `bluetooth.BLE` object: queues, routing, pacing, the
# control-write checks, advertising, the bond store, and no allocation in send().
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


class FakeBLE:
    """Records what the link asks of the stack; `full` makes notifications fail with ENOMEM."""

    def __init__(self):
        self.handler = None
        self.values = {}
        self.sent = []  # (value handle, bytes)
        self.adverts = []
        self.config_kw = {}
        self.buffers = {}
        self.full = False
        self.uuids = {}

    def active(self, *args):
        return True

    def config(self, *args, **kwargs):
        self.config_kw.update(kwargs)

    def irq(self, handler):
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

    def gatts_set_buffer(self, handle, size, append=False):
        self.buffers[handle] = size

    def gatts_write(self, handle, data, send_update=False):
        self.values[handle] = bytes(data)

    def gatts_read(self, handle):
        return self.values.get(handle, b"")

    def gatts_notify(self, conn, handle, data=None):
        if self.full:
            raise OSError(errno.ENOMEM)
        self.sent.append((handle, bytes(data)))

    def gatts_indicate(self, conn, handle, data=None):
        self.sent.append((handle, self.values[handle]))

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self.adverts.append((interval_us, adv_data, resp_data))

    def gap_disconnect(self, conn):
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


def _link(side=0, on_packet=None, on_bad=None, settings_dir=None):
    fake = FakeBLE()
    link = B.BleLink(fake, "insole", side, on_packet or (lambda buf, n: None), on_bad,
                     settings_dir=settings_dir)
    link.start()
    return fake, link


def _connect(fake, link, mtu=247, bonded=False):
    fake.handler(_IRQ_CENTRAL_CONNECT, (5, 1, b"\xc0\x15\x00\x00\x00\xfe"))
    fake.handler(_IRQ_MTU_EXCHANGED, (5, mtu))
    if bonded:
        fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 1, 16))


def _short(text):
    # "5c981001-..." -> "1001"; 16-bit UUIDs stay as they are ("2a53")
    return text[4:8] if len(text) > 4 else text


def _handle(fake, uuid):
    for handle, text in fake.uuids.items():
        if text == uuid:
            return handle
    raise KeyError(uuid)


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


def test_advertising_has_name_uuid_and_side_within_31_bytes():
    fake, link = _link(side=1)
    interval, adv, resp = fake.adverts[-1]
    assert link.name == "insole-R" and fake.config_kw["gap_name"] == "insole-R"
    assert len(adv) <= 31 and len(resp) <= 31
    assert b"\x09\x09insole-R" in adv  # complete local name in the advertising data
    uuid_le = bytes(reversed(bytes(int(B.SERVICE_UUID.replace("-", "")[i:i + 2], 16) for i in range(0, 32, 2))))
    assert bytes((17, 0x07)) + uuid_le in adv
    assert bytes((19, 0x21)) + uuid_le + b"\x01\x01" in resp  # service data: side R, protocol 1
    assert b"\x05\x12\x06\x00\x0c\x00" in resp  # 7.5-15 ms connection interval
    assert fake.config_kw["bond"] and fake.config_kw["le_secure"] and fake.config_kw["mtu"] == 247
    link.set_side(0)
    assert b"insole-L" in fake.adverts[-1][1]


def test_packets_go_to_their_characteristic_events_first():
    fake, link = _link()
    _connect(fake, link)
    b = P.PacketBuilder()
    n = b.samples_header(0, 0, 0, 16, 1)
    assert link.send(b.buf, n)
    step = bytearray(P.STEP_LEN)
    struct.pack_into("<HH", step, 8, 600, 400)  # stance, swing: a 1 s stride = 120 steps/min
    struct.pack_into("<HH", step, 20, 1400, 1400)  # stride 1.4 m at 1.4 m/s
    n_step = b.event(P.T_STEP, 0, step, P.STEP_LEN)
    assert link.send(b.buf, n_step)
    n_ack = b.ack(0, P.T_COMMAND, 1, 7)
    assert link.send(b.buf, n_ack)
    n_status = b.status(0, (0, 1, 0), 0, 0, 0, 0, 0xFF, 10000, 0xFFFF, 0, 0, 1000)
    assert link.send(b.buf, n_status)
    _spin(link)
    order = [_short(fake.uuids[h]) for h, _ in fake.sent]
    # events, RSC, control answer, status (control + status characteristic), then samples
    assert order == ["1002", "2a53", "1003", "1003", "1004", "1001"], order
    rsc = fake.sent[1][1]
    assert rsc[0] == 0x01 and rsc[3] == 120  # cadence, steps/min of both feet
    assert rsc[1] | (rsc[2] << 8) == 1400 * 256 // 1000 and rsc[4] | (rsc[5] << 8) == 140
    assert fake.values[_handle(fake, B.STATUS_UUID)] == fake.sent[4][1]
    assert link.sent == 6 and link.dropped == 0


def test_send_allocates_nothing():
    fake, link = _link()
    _connect(fake, link)
    b = P.PacketBuilder()
    n = b.samples_header(0, 0, 5, 16, 1) + 5 * 44
    step = P.PacketBuilder()
    n_step = step.event(P.T_STEP, 0, bytearray(P.STEP_LEN), P.STEP_LEN)
    micropython.heap_lock()
    try:
        for _ in range(4):
            link.send(b.buf, n)
            link.send(step.buf, n_step)
            link.can_send(P.T_SAMPLES, n)
    finally:
        micropython.heap_unlock()
    assert link.dropped == 0


def test_full_stack_paces_instead_of_dropping():
    fake, link = _link()
    _connect(fake, link)
    b = P.PacketBuilder()
    fake.full = True
    for seq in range(3):
        link.send(b.buf, b.ack(0, P.T_COMMAND, 1, seq))
    _spin(link, 30)
    assert fake.sent == [] and link.busy > 0 and link.dropped == 0
    fake.full = False
    _spin(link, 30)
    assert [struct.unpack_from("<H", data, P.HEADER_LEN + 2)[0] for _, data in fake.sent] == [0, 1, 2]


def test_too_big_full_queue_or_no_link_is_counted_as_dropped():
    fake, link = _link()
    b = P.PacketBuilder()
    n = b.ack(0, P.T_COMMAND, 1, 1)
    assert not link.send(b.buf, n)  # no central
    _connect(fake, link, mtu=23)
    big = b.samples_header(0, 0, 1, 16, 1) + 44
    assert not link.send(b.buf, big) and not link.can_send(P.T_SAMPLES, big)  # > MTU - 3
    _connect(fake, link, mtu=247)
    sent = 0
    while link.send(b.buf, big):
        sent += 1
    assert sent == link._bulk._size // (big + 3) and link.dropped == 3
    fake.handler(_IRQ_CENTRAL_DISCONNECT, (5, 1, b""))
    adverts = len(fake.adverts)
    _spin(link)
    assert link.dropped == 3 + sent  # what waited for the lost link
    assert len(fake.adverts) == adverts + 1  # advertising again


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
    write(good)  # encrypted but not bonded yet
    _spin(link, 20)
    assert got == [] and bad == [B.BAD_NOT_BONDED] and not link.encrypted
    fake.handler(_IRQ_ENCRYPTION_UPDATE, (5, 1, 0, 1, 16))
    assert link.encrypted
    write(good)
    write(good[:-1] + bytes((good[-1] ^ 1,)))
    write(good[:5])
    _spin(link, 20)
    assert got == [good[:-2]]
    assert bad == [B.BAD_NOT_BONDED, B.BAD_CRC, B.BAD_LENGTH] and link.rejected == 3


def test_bond_store_answers_at_once_and_persists():
    directory = os.getenv("INSOLE_SETTINGS_DIR") or "/tmp"
    path = directory + "/ble_secrets.bin"
    try:
        os.remove(path)
    except OSError:
        pass
    fake, link = _link(settings_dir=directory)
    assert fake.handler(_IRQ_SET_SECRET, (2, b"peer-1", b"keys-1")) is True
    assert fake.handler(_IRQ_SET_SECRET, (2, b"peer-2", b"keys-2")) is True
    assert fake.handler(_IRQ_GET_SECRET, (2, 0, memoryview(b"peer-2"))) == b"keys-2"
    assert fake.handler(_IRQ_GET_SECRET, (2, 1, None)) in (b"keys-1", b"keys-2")
    assert fake.handler(_IRQ_GET_SECRET, (2, 2, None)) is None
    assert fake.handler(_IRQ_GET_SECRET, (1, 0, None)) is None
    _spin(link, 20)  # the link task writes the file
    fake2, link2 = _link(settings_dir=directory)
    assert fake2.handler(_IRQ_GET_SECRET, (2, 0, b"peer-1")) == b"keys-1"
    assert fake2.handler(_IRQ_SET_SECRET, (2, b"peer-1", None)) is True
    assert fake2.handler(_IRQ_GET_SECRET, (2, 0, b"peer-1")) is None
    os.remove(path)
