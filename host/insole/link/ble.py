"""The host's BLE client for one insole: find it, keep it connected, lose no event.

- **Scan** by the insole service UUID and side (:func:`find_insole`).
- **Connect** through bleak-retry-connector (retries with backoff on transient
  failures), pair (LE Secure Connections, bonded: control writes need it), subscribe.
- **Notification callbacks only enqueue** (arrival time, characteristic, bytes); one
  consumer task decodes, answers pending requests and forwards the rest.
- **Reconnect** on its own after a link loss, with exponential backoff, and then
  **backfill**: the device's event log is asked for every seq gap (GET_EVENTS), the
  resent events are forwarded (duplicates dropped), and what the device no longer
  holds is reported as lost for good.
- **Clock**: every SAMPLES/STATUS packet's device time and arrival time go to a
  :class:`~insole.link.clocksync.ClockSync`, so both feet share one timeline.

:class:`BleInsoleLink` runs the client on an event loop thread of its own and is an
:class:`~insole.link.base.InsoleLink`, as :class:`~insole.link.serial.SerialLink` is, so
live sessions, recording and the demo use one code path for serial and BLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from insole.errors import DeviceError, LinkError, LinkTimeout, ProtocolError
from insole.link.backfill import GapTracker, SeqRange, keeps_no_log
from insole.link.base import DEFAULT_TIMEOUT_S, InsoleLink, PendingRequest, SeqCounter
from insole.link.clocksync import ClockSync
from insole.link.gatt import (
    CONTROL_UUID,
    EVENTS_UUID,
    SAMPLES_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    advertised_side,
    control_write,
)
from insole.protocol import (
    BACKFILL_TYPES,
    BackfillEnd,
    Body,
    Command,
    CommandCode,
    DecodedPacket,
    PacketType,
    Samples,
    Status,
    decode_packet,
    encode_packet,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SIDES = {"left": 0, "right": 1}
BACKFILL_CHUNK = 16  # seqs per GET_EVENTS: the answer fits the insole's priority queue
MAX_BACKFILL_ROUNDS = 64
RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
BONDED_CHECK_TIMEOUT_S = 5.0
# Pairing (or re-encryption) and the four subscriptions: about 1 s at 50 ms connection
# intervals; generous for a loaded host.
SETUP_TIMEOUT_S = 15.0
# A new host bonds only inside the insole's pairing window (docs/security.md).
PAIRING_ADVICE = ("a new computer pairs only while the insole's pairing window is open: switch the insole on "
                  "(open for a minute), hold its button for 2 s, or run `insole pair --port PORT` on its cable")
_NOTIFY_UUIDS = (CONTROL_UUID, EVENTS_UUID, SAMPLES_UUID, STATUS_UUID)


class InsoleNotFound(LinkTimeout):
    """No insole of the asked side advertised within the scan time."""

    advice = "switch the insole on and bring it close; `insole scan` lists the insoles in reach"


class NoBluetoothError(LinkError):
    """This computer's Bluetooth cannot be used: no adapter, adapter off, or no BlueZ."""

    advice = ("check that this computer has a Bluetooth adapter, that it is on (`bluetoothctl power on`) "
              "and that bluetoothd runs; or connect the insole's cable and use --port")


@contextlib.asynccontextmanager
async def _scanning(scanner_backend: type[BaseBleakScanner] | None) -> AsyncIterator[BleakScanner]:
    """A running scan for the insole service; a computer that cannot scan is one clear error."""
    try:
        scanner = BleakScanner(service_uuids=[SERVICE_UUID], backend=scanner_backend)
        await scanner.start()
    except (BleakError, OSError) as exc:
        # BlueZ unreachable (no D-Bus socket), no adapter, adapter powered off ...
        why = f"BlueZ is not reachable ({exc})" if isinstance(exc, OSError) else str(exc) or type(exc).__name__
        raise NoBluetoothError(f"cannot scan for insoles: {why}") from exc
    try:
        yield scanner
    finally:
        with contextlib.suppress(BleakError, OSError):
            await scanner.stop()


@dataclass(frozen=True)
class FoundInsole:
    device: BLEDevice
    name: str
    side: int


async def find_insole(
    side: str, *, timeout_s: float = 10.0, scanner_backend: type[BaseBleakScanner] | None = None
) -> FoundInsole:
    """The first insole of ``side`` ("left"/"right") advertising the insole service."""
    wanted = SIDES[side]
    async with _scanning(scanner_backend) as scanner:
        try:
            async with asyncio.timeout(timeout_s):
                async for device, adv in scanner.advertisement_data():
                    if _side_of(adv) == wanted:
                        return FoundInsole(device, adv.local_name or device.name or device.address, wanted)
        except TimeoutError:
            pass
    raise InsoleNotFound(f"no {side} insole advertising within {timeout_s:g} s")


async def scan_insoles(
    timeout_s: float = 5.0, *, scanner_backend: type[BaseBleakScanner] | None = None
) -> list[tuple[FoundInsole, int | None]]:
    """Every insole heard within ``timeout_s``, with its RSSI."""
    found: dict[str, tuple[FoundInsole, int | None]] = {}
    async with _scanning(scanner_backend) as scanner:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                async for device, adv in scanner.advertisement_data():
                    side = _side_of(adv)
                    if side is not None:
                        found[device.address] = (FoundInsole(device, adv.local_name or device.address, side), adv.rssi)
    return sorted(found.values(), key=lambda item: (item[0].side, item[0].name))


def _side_of(adv: AdvertisementData) -> int | None:
    side = advertised_side(adv.service_data)
    if side is None and adv.local_name and adv.local_name[-2:] in ("-L", "-R"):
        side = 0 if adv.local_name.endswith("-L") else 1
    return side


def _client_class(backend: type[BaseBleakClient] | None) -> type[BleakClient]:
    """BleakClient with the backend fixed, for bleak-retry-connector (it builds the client)."""
    if backend is None:
        return BleakClient

    class _Client(BleakClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("_is_retry_client", None)
            super().__init__(*args, backend=backend, **kwargs)

    return _Client


@dataclass
class LinkStats:
    connections: int = 0
    disconnects: int = 0
    duplicate_events: int = 0  # events and SAMPLES packets received twice (resent), dropped
    lost_events: list[SeqRange] = field(default_factory=list)  # STEP/HEEL_RAISE/CUE gone for good
    lost_sample_packets: int = 0  # SAMPLES packets the insole no longer held
    lost_samples: int = 0  # sample indices skipped in the stream as it arrived


class InsoleClient:
    """One insole over BLE (asyncio). ``on_packet(packet, raw, arrival_s)`` gets every
    new packet, in arrival order, from the consumer task; backfilled events included,
    duplicates and request answers not."""

    def __init__(
        self,
        side: str,
        on_packet: Callable[[DecodedPacket, bytes, float], None],
        *,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        scan_timeout_s: float = 10.0,
        reconnect: bool = True,
    ) -> None:
        self.side = side
        self.on_packet = on_packet
        self._scanner_backend = scanner_backend
        self._client_class = _client_class(client_backend)
        self._scan_timeout_s = scan_timeout_s
        self._reconnect = reconnect
        self.client: BleakClient | None = None
        self.name = ""
        # Live SAMPLES are tracked too: an insole with a sample log backfills them.
        self.tracker = GapTracker(BACKFILL_TYPES)
        # Event types this insole said it keeps no log of: no sample log (BAD_STATE), or
        # firmware older than the type (GET_EVENTS event_type refused, e.g. PROGRAM_EVENT).
        self._not_logged: set[int] = set()
        self.clock = ClockSync()
        self.stats = LinkStats()
        self._rx: asyncio.Queue[tuple[float, str, bytes]] = asyncio.Queue()
        self._seqs = SeqCounter()
        self._pending: deque[tuple[PendingRequest, asyncio.Future[DecodedPacket]]] = deque()
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()  # strong references
        self._next_sample = -1
        self._t0 = time.monotonic()
        # The insole sends gait data only to a host that asked on the current link
        # (docs/security.md): a stream asked for is asked for again after a reconnect.
        self._streaming = False

    # -- connection policy -----------------------------------------------------------

    async def start(self) -> None:
        await self._connect()
        self._spawn(self._consume())
        try:
            # Paired is not yet bonded: outside its pairing window the insole takes no
            # new bond and drops the link, or refuses control writes (NOT_BONDED).
            await self.command(Command(CommandCode.PING), timeout_s=BONDED_CHECK_TIMEOUT_S)
        except (LinkError, DeviceError, BleakError) as exc:
            await self.close()
            raise LinkError(f"{self.name} did not accept this computer: {exc}", advice=PAIRING_ADVICE) from exc
        if self._reconnect:
            self._spawn(self._keep_connected())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        found = await find_insole(self.side, timeout_s=self._scan_timeout_s, scanner_backend=self._scanner_backend)
        self.name = found.name
        client = await establish_connection(
            self._client_class, found.device, found.name, disconnected_callback=self._on_disconnect, max_attempts=4
        )
        try:
            try:
                # Bounded: an insole that neither answers nor drops the link (a refusal
                # racing the set-up) must not hold the host for ATT's 30 s per request.
                async with asyncio.timeout(SETUP_TIMEOUT_S):
                    await client.pair()
                    for uuid in _NOTIFY_UUIDS:
                        await client.start_notify(uuid, self._notifier(uuid))
            except TimeoutError as exc:
                raise LinkError(f"{found.name} did not finish setting up the link in {SETUP_TIMEOUT_S:g} s",
                                advice=PAIRING_ADVICE) from exc  # fmt: skip
            except BleakError as exc:
                if client.is_connected:
                    raise
                # Refused or dropped right after pairing: the insole kept no bond.
                raise LinkError(f"{found.name} did not accept this computer: {exc}", advice=PAIRING_ADVICE) from exc
        except BaseException:
            await client.disconnect()
            raise
        self.client = client
        self.stats.connections += 1
        self._lost.clear()
        self._connected.set()

    def _notifier(self, uuid: str) -> Callable[[Any, bytearray], None]:
        rx = self._rx

        def enqueue(_characteristic: Any, data: bytearray) -> None:
            rx.put_nowait((time.monotonic(), uuid, bytes(data)))  # nothing else here

        return enqueue

    def _on_disconnect(self, _client: BleakClient) -> None:
        self._connected.clear()
        if not self._closing:
            self.stats.disconnects += 1
            self._lost.set()
        for _request, future in self._pending:
            if not future.done():
                future.set_exception(LinkTimeout(f"{self.name}: link lost"))
        self._pending.clear()

    async def _keep_connected(self) -> None:
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            for attempt, delay_s in enumerate(RECONNECT_BACKOFF_S * 1000):
                await asyncio.sleep(delay_s)
                try:
                    await self._connect()
                    break
                except (BleakError, LinkError, TimeoutError, OSError) as exc:
                    log.info("%s: reconnect attempt %d failed: %s", self.side, attempt + 1, exc)
                if self._closing:
                    return
            try:
                if self._streaming:
                    await self.command(Command(CommandCode.START_STREAM))  # continues, unbroken
                await self.backfill()
            except (LinkTimeout, DeviceError) as exc:  # the next reconnect tries again
                log.info("%s: backfill incomplete: %s", self.side, exc)

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self.client is not None and self.client.is_connected:
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await self.client.disconnect()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def disconnect(self) -> None:
        """Drops the link as a radio loss would (the client reconnects by itself)."""
        if self.client is not None:
            await self.client.disconnect()

    # -- requests --------------------------------------------------------------------

    async def request(
        self, body: Body, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        """Writes one control packet (with response) and waits for its answer: ACK,
        ERROR (raised as DeviceError), or a packet of type ``answer``."""
        await asyncio.wait_for(self._connected.wait(), timeout_s)
        assert self.client is not None
        ptype = int(body.TYPE)
        pending = PendingRequest(ptype, self._seqs.take(ptype), answer)
        packet = encode_packet(ptype, pending.seq, int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF, body.payload())
        future: asyncio.Future[DecodedPacket] = asyncio.get_running_loop().create_future()
        entry = (pending, future)
        self._pending.append(entry)
        try:
            await self.client.write_gatt_char(CONTROL_UUID, control_write(packet), response=True)
            reply = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise LinkTimeout(f"no answer from {self.name} to {pending.name()} in {timeout_s} s") from None
        finally:
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
        checked = pending.check(reply, self.name)
        if isinstance(body, Command) and body.command in (CommandCode.START_STREAM, CommandCode.STOP_STREAM):
            self._streaming = body.command == CommandCode.START_STREAM
        return checked

    async def command(
        self, command: Command, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        return await self.request(command, answer, timeout_s)

    async def backfill(self) -> list[SeqRange]:
        """Asks for every seq gap (and what was sent since the last event received).
        Returns the ranges found lost for good in this round."""
        lost_before = {(r.event_type, s) for r in self.tracker.lost_ for s in r.seqs()}
        # The first round also asks past the last event received (the tail); its answers
        # tell the device's next seqs, so later rounds see every gap. A chunk whose
        # resends the radio dropped stays a gap and is asked again.
        tail = True
        for _ in range(MAX_BACKFILL_ROUNDS):
            commands = [c for c in self.tracker.requests(tail=tail, tail_count=BACKFILL_CHUNK) if self._wanted(c)]
            if not commands:
                break
            for command in commands:
                for part in _chunks(command):
                    try:
                        reply = await self.request(part, PacketType.BACKFILL_END)
                    except DeviceError as exc:
                        assert part.event_type is not None
                        if not keeps_no_log(part.event_type, exc.code, exc.detail):
                            raise
                        self._not_logged.add(part.event_type)
                        break
                    assert isinstance(reply.body, BackfillEnd)
                    await self._drain_rx()  # resent packets were queued before the answer
                    self.tracker.on_backfill_end(reply.body)
            tail = False
        lost = [r for r in self.tracker.lost_ if any((r.event_type, s) not in lost_before for s in r.seqs())]
        self.stats.lost_events.extend(r for r in lost if r.event_type != PacketType.SAMPLES)
        self.stats.lost_sample_packets += sum(r.count for r in lost if r.event_type == PacketType.SAMPLES)
        return lost

    def _wanted(self, command: Command) -> bool:
        if command.event_type in self._not_logged:
            return False
        # Samples from before the host first heard the stream were never its to lose; an
        # insole that has sent no PROGRAM_EVENT on this link runs no program: asking for
        # them each round cost a 50 ms link its backfill's time (test_ble_insole).
        if command.event_type in (PacketType.SAMPLES, PacketType.PROGRAM_EVENT):
            return self.tracker.seen(command.event_type)
        return True

    # -- consumer --------------------------------------------------------------------

    async def _drain_rx(self) -> None:
        while not self._rx.empty():
            self._handle(*self._rx.get_nowait())

    async def _consume(self) -> None:
        while True:
            self._handle(*await self._rx.get())

    def _handle(self, arrival_s: float, uuid: str, data: bytes) -> None:
        try:
            packet = decode_packet(data)
        except ProtocolError as exc:
            log.warning("%s: undecodable notification on %s: %s", self.side, uuid, exc)
            return
        body = packet.body
        if self._answers(packet):
            return
        if isinstance(body, (Samples, Status)):
            self.clock.add(packet.header.time_ms, arrival_s)
        if packet.type in self.tracker.event_types:
            if not self.tracker.observe(packet):
                self.stats.duplicate_events += 1
                return
        if isinstance(body, Samples):
            if self._next_sample >= 0 and body.first_index > self._next_sample:
                self.stats.lost_samples += body.first_index - self._next_sample
            self._next_sample = max(self._next_sample, body.first_index + body.count)
        self.on_packet(packet, data, arrival_s)

    def _answers(self, packet: DecodedPacket) -> bool:
        """Hands an answer to the request waiting for it; True when the packet is
        consumed (a BACKFILL_END also goes on: a recording keeps it, it names lost events)."""
        for pending, future in self._pending:
            if not future.done() and pending.answered_by(packet):
                future.set_result(packet)
                return not isinstance(packet.body, BackfillEnd)
        return False


def _chunks(command: Command) -> list[Command]:
    """A GET_EVENTS split into parts of at most BACKFILL_CHUNK seqs."""
    assert command.event_type is not None and command.from_seq is not None and command.count is not None
    return [
        Command.get_events(command.event_type, (command.from_seq + offset) & 0xFFFF,
                           min(BACKFILL_CHUNK, command.count - offset))
        for offset in range(0, command.count, BACKFILL_CHUNK)
    ]


class _RadioLoop:
    """The one event loop thread all BLE links of this process share: the host has one
    radio, and a bleak backend's adapter belongs to the loop that opened it."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or not cls._loop.is_running():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="insole-ble", daemon=True).start()
                cls._loop = loop
            return cls._loop


def run_on_radio(coro: Coroutine[Any, Any, _T], timeout_s: float | None = None) -> _T:
    """Runs a coroutine on the shared BLE loop and returns its result."""
    future: Future[_T] = asyncio.run_coroutine_threadsafe(coro, _RadioLoop.get())
    try:
        return future.result(timeout_s)
    except BaseException:
        future.cancel()
        raise


class BleInsoleLink(InsoleLink):
    """An :class:`InsoleClient` on the shared BLE loop thread, as an :class:`InsoleLink`.

    ``port`` is the insole's advertised name; packets that are not answers wait in
    ``inbox`` (and :meth:`poll`) in arrival order.
    """

    def __init__(self, side: str, **client_options: Any) -> None:
        self._incoming: queue.Queue[DecodedPacket] = queue.Queue()
        self.inbox: deque[DecodedPacket] = deque()
        self.on_packet_bytes: Callable[[bytes], None] | None = None
        try:
            self.client: InsoleClient = run_on_radio(self._make_client(side, client_options))
        except (BleakError, OSError) as exc:  # no adapter, radio off, connection refused
            raise LinkError(
                f"cannot connect to the {side} insole over BLE: {exc}",
                advice="check that this computer's Bluetooth is on and the insole is within reach",
            ) from exc
        self.port = self.client.name

    async def _make_client(self, side: str, options: dict[str, Any]) -> InsoleClient:
        client = InsoleClient(side, self._forward, **options)
        await client.start()
        return client

    def _forward(self, packet: DecodedPacket, raw: bytes, _arrival_s: float) -> None:
        if self.on_packet_bytes is not None:
            self.on_packet_bytes(raw)
        self._incoming.put(packet)

    def request(
        self, body: Body, answer: PacketType = PacketType.ACK, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> DecodedPacket:
        self.inbox.extend(self.poll())  # what came before the answer stays in order
        return run_on_radio(self.client.request(body, answer, timeout_s))

    def poll(self, timeout_s: float = 0.0) -> list[DecodedPacket]:
        out: list[DecodedPacket] = []
        try:
            out.append(self._incoming.get(timeout=timeout_s) if timeout_s > 0 else self._incoming.get_nowait())
            while True:
                out.append(self._incoming.get_nowait())
        except queue.Empty:
            pass
        return out

    def drain_inbox(self) -> list[DecodedPacket]:
        out = list(self.inbox) + self.poll()
        self.inbox.clear()
        return out

    def backfill(self) -> list[SeqRange]:
        return run_on_radio(self.client.backfill())

    def disconnect(self) -> None:
        run_on_radio(self.client.disconnect())

    @property
    def stats(self) -> LinkStats:
        return self.client.stats

    def close(self) -> None:
        run_on_radio(self.client.close(), timeout_s=10.0)

    def __enter__(self) -> BleInsoleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_ble_insoles(stack: ExitStack, sides: Sequence[str], **client_options: Any) -> list[tuple[str, BleInsoleLink]]:
    """Insoles over BLE, found by scanning for the insole service and their side (bleak's
    platform backend unless ``client_options`` name others); each link closes with
    ``stack``."""
    links: list[tuple[str, BleInsoleLink]] = []
    for side in sides:
        link = BleInsoleLink(side, **client_options)
        stack.callback(link.close)
        links.append((side, link))
    return links
