"""The dashboard's web server: aiohttp on its own asyncio loop in a thread.

Three concerns, one task each: HTTP (the page and its static files), one WebSocket
per browser that sends frames and replies (:class:`_Client`), and requests from the
page (settings, recording) handed to the polling thread through a bounded queue. The
polling thread publishes frames with :meth:`DashboardServer.publish` (thread-safe); a
slow browser skips frames instead of queueing them.

Bound to 127.0.0.1 by default. Bound anywhere else (or asked to), every page load and
WebSocket must carry the random token printed with the address (``?token=``). The
WebSocket also refuses pages of another origin, so a website open in the same browser
cannot drive the insoles through a dashboard on this computer.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import queue
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

STATIC_DIR = Path(__file__).parent / "static"  # package data
# Requests from pages waiting for the polling thread; more are refused as busy.
MAX_PENDING_REQUESTS = 8
# Replies waiting for one browser's WebSocket (frames never wait: only the newest is kept).
MAX_PENDING_REPLIES = 16
START_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)
Reply = Callable[[dict[str, Any]], None]


@dataclass
class PageRequest:
    """A message from a page (``type``: settings, record) and how to answer it (thread-safe)."""

    message: dict[str, Any]
    reply: Reply


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Client:
    """One browser's WebSocket: the newest frame and the replies not yet sent."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.frame: str | None = None
        self.replies: deque[str] = deque(maxlen=MAX_PENDING_REPLIES)
        self.wake = asyncio.Event()

    def offer_frame(self, text: str) -> None:
        self.frame = text
        self.wake.set()

    def offer_reply(self, reply: dict[str, Any]) -> None:
        self.replies.append(json.dumps(reply))
        self.wake.set()

    async def send_forever(self) -> None:
        while not self.ws.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.replies:
                await self.ws.send_str(self.replies.popleft())
            frame, self.frame = self.frame, None
            if frame is not None:
                await self.ws.send_str(frame)


class DashboardServer:
    """The page, its static files and its WebSocket, served from a thread of its own.

    ``token``: None serves without one (loopback only); :func:`new_token` makes one."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        if token is None and not is_loopback(host):
            raise ValueError(f"a dashboard bound to {host} needs a token")
        self.host = host
        self.port = port
        self.token = token
        self.url = ""
        self.requests: queue.Queue[PageRequest] = queue.Queue(maxsize=MAX_PENDING_REQUESTS)
        self.hello = "{}"  # sent first to every page: what does not change (the feet's geometry)
        self._clients: set[_Client] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="insole-dashboard", daemon=True)
        self._runner: web.AppRunner | None = None

    # -- the polling thread's side ---------------------------------------------------

    def start(self) -> str:
        """Serves; returns the page's address (with the token, if one is needed)."""
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(START_TIMEOUT_S)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{port}/" + (f"?token={self.token}" if self.token else "")
        return self.url

    @property
    def has_clients(self) -> bool:
        return bool(self._clients)

    def publish(self, frame: dict[str, Any]) -> None:
        """Sends a frame to every page (the newest replaces one not yet sent)."""
        if self._clients:
            text = json.dumps(frame, separators=(",", ":"))
            self._loop.call_soon_threadsafe(self._offer_frame, text)

    def close(self) -> None:
        if self._thread.is_alive():
            if self._runner is not None:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(START_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the server's loop -----------------------------------------------------------

    def _offer_frame(self, text: str) -> None:
        for client in self._clients:
            client.offer_frame(text)

    async def _serve(self) -> int:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._websocket)
        app.router.add_static("/static/", STATIC_DIR)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        return int(address[1])

    def _token_ok(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            return web.Response(status=403, text="This dashboard needs its token: open the address insole printed.\n")
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request):
            return web.Response(status=403, text="token missing or wrong\n")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text="another site's page may not use this dashboard\n")
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        client = _Client(ws)
        await ws.send_str(self.hello)
        self._clients.add(client)
        sender = asyncio.create_task(client.send_forever())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._take_request(client, message.data)
        finally:
            self._clients.discard(client)
            sender.cancel()
        return ws

    def _take_request(self, client: _Client, data: str) -> None:
        loop = self._loop

        def reply(answer: dict[str, Any]) -> None:  # from the polling thread
            loop.call_soon_threadsafe(client.offer_reply, answer)

        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            client.offer_reply({"type": "reply", "id": None, "ok": False, "message": "not a JSON object"})
            return
        try:
            self.requests.put_nowait(PageRequest(message, reply))
        except queue.Full:
            client.offer_reply({"type": "reply", "id": message.get("id"), "ok": False,
                                "message": "busy: earlier requests are still being carried out"})


def new_token() -> str:
    return secrets.token_urlsafe(16)
