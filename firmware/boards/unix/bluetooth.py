# bluetooth: a stand-in for MicroPython's built-in module on the unix port.
#
# The unix port has no Bluetooth. This module implements the part of the real API
# (https://docs.micropython.org/en/latest/library/bluetooth.html) that the firmware
# uses, and forwards it over a loopback socket (INSOLE_BLE_BRIDGE=host:port) to the
# peripheral bridge on the host (host/insole/emulation/bridge.py), where a bumble
# device on an emulated controller does the radio work.
#
# IRQs: the real stack calls the handler from its own context. Here events are queued
# as they arrive and the handler runs from BLE().poll(), which the coroutine
# BLE().poll_task() (or the module's poll_task()) calls inside the program's asyncio
# loop. insolefw.ble.BleLink.run starts it; any other program must run it as a task.
# As on the device, handlers should only record and enqueue; _IRQ_GET_SECRET/
# _IRQ_SET_SECRET return their value to the stack.
#
# As strict as the ESP32 port (extmod/modbluetooth.c, extmod/nimble/): an exception
# escaping the handler disables it until reset; bytes in the IRQ data are memoryviews
# that go stale once the handler returns (copy what you keep); gatts_write, gatts_notify,
# gatts_indicate and gatts_set_buffer take positional arguments only (named "_x" here:
# MicroPython has no "/"); gap_advertise's resp_data and connectable are keyword-only;
# the module has only the device's own constants; config() knows
# only the ESP32 build's keys (ValueError otherwise); gatts_notify sends whether or not
# the central subscribed. INSOLE_BLE_FAULTS="gap_advertise:2,3" makes those calls (by
# count, from 1) fail with OSError(EBUSY), as a busy controller does, for tests.
#
# Flow control: like NimBLE's buffer pool, each gatts_notify/gatts_indicate takes one
# of a few transmit credits that the bridge returns once the packet has gone out;
# without one they raise OSError(ENOMEM), as the ESP32 does when its buffers are full.
#
# If the bridge goes away the program exits (SystemExit): a radio does not vanish on
# a real board, so there is nothing sensible to continue with.
from micropython import const
import asyncio
import errno
import json
import os
import select
import socket
import struct
import sys
from binascii import hexlify, unhexlify

# The module's own constants, as extmod/modbluetooth.c exports them (the permission
# flags, 0x0200 and up, exist only as numbers a program defines itself).
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)

# Messages: u16 length (of op + body), u8 op, body.
_OP_CALL = const(0x01)  # json {"m": method, "a": args} -> _OP_REPLY
_OP_NOTIFY = const(0x02)  # <HH conn value_handle> data
_OP_INDICATE = const(0x03)  # <HH conn value_handle> data
_OP_WRITE = const(0x04)  # <HB value_handle send_update> data
_OP_IRQ_RESULT = const(0x05)  # <H id> json result
_OP_REPLY = const(0x81)  # json {"r": result} or {"e": errno}
_OP_IRQ = const(0x82)  # json {"e": event, "d": data, "b": [indexes of hex bytes], "id"?}
_OP_REMOTE_WRITE = const(0x83)  # <HH conn value_handle> data
_OP_CREDIT = const(0x84)  # <H n>

_DEFAULT_BUFFER = const(20)  # the real module's default value size
_EBUSY = const(16)
_ADV_DEFAULT_INTERVAL_US = const(500000)  # gap_advertise's default, as in modbluetooth.c
_UNSET = object()
# config() keys of the ESP32 build (sync events: no rxbuf).
_CONFIG_SET = ("gap_name", "mtu", "addr_mode", "bond", "mitm", "io", "le_secure")
_CONFIG_GET = ("gap_name", "mac", "mtu")
_ADV_MAX = const(31)  # legacy advertising payload
_CALL_TIMEOUT_MS = const(10000)
_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)


class UUID:
    """16-bit (int) or 128-bit (str) UUID; str(u) is the canonical form the bridge reads."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._s = value._s
        elif isinstance(value, int):
            self._s = "%04x" % (value & 0xFFFF)
        elif isinstance(value, str):
            s = value.lower().replace("-", "")
            if len(s) != 32:
                raise ValueError("invalid UUID")
            self._s = "%s-%s-%s-%s-%s" % (s[0:8], s[8:12], s[12:16], s[16:20], s[20:32])
        else:
            b = bytes(value)  # little-endian, as in advertising data
            if len(b) == 2:
                self._s = "%04x" % (b[0] | (b[1] << 8))
            elif len(b) == 16:
                self.__init__(hexlify(bytes(reversed(b))).decode())
            else:
                raise ValueError("invalid UUID")

    def __str__(self):
        return self._s

    def __repr__(self):
        return "UUID(%s)" % (("0x" + self._s) if len(self._s) == 4 else repr(self._s))

    def __eq__(self, other):
        return isinstance(other, UUID) and other._s == self._s

    def __hash__(self):
        return hash(self._s)


class _Value:
    # One attribute's local value, as the stack keeps it.
    def __init__(self):
        self.data = b""
        self.size = _DEFAULT_BUFFER
        self.append = False


class _BLE:
    def __init__(self):
        where = os.getenv("INSOLE_BLE_BRIDGE")
        if not where:
            raise OSError(errno.ENODEV)  # no radio on this board
        host, port = where.rsplit(":", 1)
        self._sock = socket.socket()
        self._sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self._sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)  # small messages, no batching delay
        self._sock.setblocking(False)
        self._poller = select.poll()
        self._poller.register(self._sock, select.POLLIN)
        self._rx = bytearray(2048)  # what the bridge sent, not yet parsed
        self._rx_len = 0
        self._tx = bytearray(512)  # grows for a larger message
        self._handler = None
        self._events = []  # (event, data, written value or None), in arrival order
        self._reply = None
        self._credits = 0
        self._conns = set()
        self._indicating = set()
        self._values = {}
        self._active = False
        self._faults = _parse_faults(os.getenv("INSOLE_BLE_FAULTS") or "")
        self._calls = {}
        self.flag = asyncio.ThreadSafeFlag()  # set when events wait for poll()

    # -- socket ------------------------------------------------------------------------

    def _write(self, buf):
        off = 0
        mv = memoryview(buf)
        while off < len(buf):
            n = self._sock.write(mv[off:])
            if n:
                off += n
            else:
                waiter = select.poll()
                waiter.register(self._sock, select.POLLOUT)
                waiter.poll(100)

    def _send(self, op, fmt, args, data=b""):
        # One write per message: header and data copied into one buffer.
        n = 3 + struct.calcsize(fmt)
        end = n + len(data)
        if end > len(self._tx):
            self._tx = bytearray(end)
        struct.pack_into("<HB", self._tx, 0, end - 2, op)
        struct.pack_into(fmt, self._tx, 3, *args)
        self._tx[n:end] = data
        self._write(memoryview(self._tx)[:end])

    def _pump(self, timeout_ms=0):
        """Reads what the bridge sent; credits and replies take effect at once."""
        if not self._poller.poll(timeout_ms):
            return
        rx = self._rx
        if self._rx_len == len(rx):
            self._rx = rx = rx + bytearray(len(rx))  # a message larger than the buffer
        n = self._sock.readinto(memoryview(rx)[self._rx_len :])
        if n is None:
            return
        if not n:
            raise SystemExit("bluetooth: the bridge closed the connection")
        end = self._rx_len + n
        start = 0
        while end - start >= 2:
            size = rx[start] | (rx[start + 1] << 8)
            if end - start < 2 + size:
                break
            self._on_message(rx[start + 2], bytes(rx[start + 3 : start + 2 + size]))
            start += 2 + size
        if start:
            rx[0 : end - start] = rx[start:end]
        self._rx_len = end - start
        if self._events:
            self.flag.set()

    def _on_message(self, op, body):
        if op == _OP_CREDIT:
            self._credits += body[0] | (body[1] << 8)
        elif op == _OP_REPLY:
            self._reply = json.loads(body)
        elif op == _OP_REMOTE_WRITE:
            conn, handle = struct.unpack_from("<HH", body)
            self._events.append((_IRQ_GATTS_WRITE, (conn, handle), body[4:]))
        elif op == _OP_IRQ:
            msg = json.loads(body)
            data = msg["d"]
            for i in msg.get("b", ()):
                data[i] = None if data[i] is None else unhexlify(data[i])
            event = msg["e"]
            if "id" in msg:
                # The stack waits for this answer (the bond store): the handler runs now,
                # even inside another call, as NimBLE calls it synchronously.
                self._answer(msg["id"], event, tuple(data))
                return
            if event == _IRQ_CENTRAL_CONNECT:
                self._conns.add(data[0])
            elif event == _IRQ_CENTRAL_DISCONNECT:
                self._conns.discard(data[0])
                self._indicating.discard(data[0])
            elif event == _IRQ_GATTS_INDICATE_DONE:
                self._indicating.discard(data[0])
            self._events.append((event, tuple(data), None))

    def _call(self, method, *args):
        self._reply = None
        self._send(_OP_CALL, "", (), json.dumps({"m": method, "a": args}).encode())
        waited = 0
        while self._reply is None:
            if waited > _CALL_TIMEOUT_MS:
                raise OSError(errno.ETIMEDOUT)
            self._pump(50)
            waited += 50
        reply = self._reply
        if "e" in reply:
            raise OSError(reply["e"])
        return reply.get("r")

    # -- IRQs --------------------------------------------------------------------------

    def irq(self, _handler):
        self._handler = _handler

    def poll(self):
        """Runs the IRQ handler for every queued event; returns how many ran."""
        self._pump()
        done = 0
        while self._events:
            event, data, written = self._events.pop(0)
            if event == _IRQ_GATTS_WRITE:
                self._remote_write(data[1], written)
            self._run_handler(event, data)
            done += 1
        return done

    def _run_handler(self, event, data):
        handler = self._handler
        if handler is None:
            return None
        # Bytes arrive as memoryviews of the stack's own buffers, valid during the call.
        views = []
        items = list(data)
        for i in range(len(items)):
            if isinstance(items[i], (bytes, bytearray)):
                buf = bytearray(items[i])
                views.append(buf)
                items[i] = memoryview(buf)
        try:
            return handler(event, tuple(items))
        except Exception as exc:
            # modbluetooth.c: "Unhandled exception in IRQ callback handler", and the
            # handler is disabled until the next reset.
            print("Unhandled exception in IRQ callback handler", file=sys.stderr)
            sys.print_exception(exc)
            self._handler = None
            return None
        finally:
            for buf in views:
                for i in range(len(buf)):
                    buf[i] = 0

    def _answer(self, request_id, event, data):
        result = self._run_handler(event, data)
        if result is not None and not isinstance(result, (bool, bytes, bytearray, memoryview)):
            result = None  # the stack reads only a buffer (GET) or a truth value (SET)
        if isinstance(result, (bytes, bytearray, memoryview)):
            result = hexlify(result).decode()
        self._send(_OP_IRQ_RESULT, "<H", (request_id,), json.dumps({"r": result}).encode())

    def _remote_write(self, handle, data):
        value = self._values.get(handle)
        if value is None:
            return
        if value.append:
            data = (value.data + data)[: value.size]
        value.data = bytes(data[: value.size])  # the stack keeps at most its buffer

    async def _reader(self):
        while True:
            yield asyncio.core._io_queue.queue_read(self._sock)
            self._pump()

    async def poll_task(self):
        """Runs the IRQ handler for events as they arrive; never returns (cancel it)."""
        reader = asyncio.create_task(self._reader())
        try:
            while True:
                self.poll()
                await self.flag.wait()
        finally:
            reader.cancel()

    # -- configuration -----------------------------------------------------------------

    # Parameters named with a leading "_" are positional only on the device
    # (MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN); MicroPython has no "/" to say so.
    def active(self, _on=_UNSET):
        if _on is not _UNSET:
            self._active = bool(self._call("active", bool(_on)))
        return self._active

    def config(self, *args, **kwargs):
        if kwargs:
            if args:
                raise TypeError("can't specify pos and kw args")
            for key in kwargs:
                if key not in _CONFIG_SET:
                    raise ValueError("unknown config param")
            self._call("config_set", kwargs)
            return None
        if len(args) != 1:
            raise TypeError("must query one param")
        if args[0] not in _CONFIG_GET:
            raise ValueError("unknown config param")
        value = self._call("config_get", args[0])
        if args[0] == "mac":
            return (value[0], unhexlify(value[1]))
        if args[0] == "gap_name":
            return value.encode()
        return value

    # -- GAP ---------------------------------------------------------------------------

    def _fault(self, name):
        n = self._calls.get(name, 0) + 1
        self._calls[name] = n
        if n in self._faults.get(name, ()):
            raise OSError(_EBUSY)

    def gap_advertise(self, interval_us=_ADV_DEFAULT_INTERVAL_US, adv_data=None, *, resp_data=None, connectable=True):
        self._fault("gap_advertise")
        for data in (adv_data, resp_data):
            if data is not None and len(data) > _ADV_MAX:
                raise OSError(errno.EINVAL)
        self._call(
            "advertise",
            interval_us,
            None if adv_data is None else hexlify(bytes(adv_data)).decode(),
            None if resp_data is None else hexlify(bytes(resp_data)).decode(),
            bool(connectable),
        )

    def gap_disconnect(self, _conn_handle):
        if _conn_handle not in self._conns:
            return False
        return bool(self._call("disconnect", _conn_handle))

    def gap_pair(self, _conn_handle):
        self._call("pair", _conn_handle)

    def gattc_exchange_mtu(self, _conn_handle):
        self._call("exchange_mtu", _conn_handle)

    # -- GATT server -------------------------------------------------------------------

    def gatts_register_services(self, _services):
        spec = []
        for service_uuid, characteristics in _services:
            chars = []
            for c in characteristics:
                descriptors = [[str(d[0]), d[1]] for d in (c[2] if len(c) > 2 else ())]
                chars.append([str(c[0]), c[1], descriptors])
            spec.append([str(service_uuid), chars])
        handles = self._call("register", spec)
        for group in handles:
            for handle in group:
                self._values[handle] = _Value()
        return tuple(tuple(group) for group in handles)

    def gatts_read(self, _value_handle):
        value = self._values[_value_handle]
        data = value.data
        if value.append:
            value.data = b""
        return data

    def gatts_write(self, _value_handle, _data, _send_update=False):
        value = self._values[_value_handle]
        value.data = bytes(_data)
        if len(_data) > value.size:
            value.size = len(_data)  # a local write grows the buffer, as on the device
        self._send(_OP_WRITE, "<HB", (_value_handle, 1 if _send_update else 0), value.data)

    def gatts_set_buffer(self, _value_handle, _size, _append=False):
        value = self._values[_value_handle]
        value.size = _size
        value.append = bool(_append)

    def _take_credit(self, conn_handle):
        if conn_handle not in self._conns:
            raise OSError(errno.ENOTCONN)
        if not self._credits:
            self._pump()
            if not self._credits:
                raise OSError(errno.ENOMEM)
        self._credits -= 1

    def gatts_notify(self, _conn_handle, _value_handle, _data=None):
        self._take_credit(_conn_handle)
        self._send(_OP_NOTIFY, "<HH", (_conn_handle, _value_handle),
                   self._values[_value_handle].data if _data is None else _data)

    def gatts_indicate(self, _conn_handle, _value_handle, _data=None):
        if _conn_handle in self._indicating:
            raise OSError(errno.EALREADY)  # one indication at a time per connection
        self._take_credit(_conn_handle)
        self._indicating.add(_conn_handle)
        self._send(_OP_INDICATE, "<HH", (_conn_handle, _value_handle),
                   self._values[_value_handle].data if _data is None else _data)


def _parse_faults(text):
    # "gap_advertise:2,3;other:1" -> {"gap_advertise": (2, 3), "other": (1,)}
    faults = {}
    for part in text.split(";"):
        if ":" in part:
            name, counts = part.split(":", 1)
            faults[name.strip()] = tuple(int(c) for c in counts.split(",") if c.strip())
    return faults


_ble = None


def BLE():
    """The singleton, as on the device; connects to the bridge on first use."""
    global _ble
    if _ble is None:
        _ble = _BLE()
    return _ble


async def poll_task():
    """Delivers the bridge's events to the IRQ handler from inside the asyncio loop."""
    await BLE().poll_task()
