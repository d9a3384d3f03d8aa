"""The dashboard as the polling loop sees it: frames out, page requests carried out.

:class:`Dashboard` runs on the thread that polls the :class:`LiveSession`; each
:meth:`Dashboard.tick` publishes a frame (at most every :data:`FRAME_EVERY_S`) and
carries out what the pages asked for: cue settings, validated by the host's settings
validation and written to the insoles through the session's links (and read back), and
recordings started and stopped in the folder given on the command line.
"""

from __future__ import annotations

import argparse
import json
import queue
import time
import webbrowser
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from insole.errors import InsoleError, UserError
from insole.layouts import Layout
from insole.recording import RecordingWriter
from insole.session.live import LiveSession
from insole.web.form import FORM_ERROR, validate_form
from insole.web.geometry import foot_geometry
from insole.web.server import DashboardServer, PageRequest, is_loopback, new_token
from insole.web.snapshot import session_frame

FRAME_EVERY_S = 0.1
SIDES = ("left", "right")


def add_web_arguments(parser: argparse.ArgumentParser, *, web_default: bool = False) -> None:
    """The dashboard's options, the same for `monitor` and `demo`."""
    group = parser.add_argument_group("live dashboard in the browser")
    if not web_default:
        group.add_argument("--web", action="store_true", help="also show both feet live in the browser")
    group.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                       help="address to serve on (default 127.0.0.1; any other needs the printed token)")
    group.add_argument("--port-web", type=int, default=0, metavar="PORT", help="port (default: a free one)")
    group.add_argument("--token", action="store_true", help="require the token on 127.0.0.1 as well")
    group.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")
    group.add_argument("--record-dir", type=Path, default=Path("."), metavar="DIR",
                       help="where the dashboard's Record button writes .insole files (default: here)")  # fmt: skip


def check_web_arguments(args: argparse.Namespace) -> None:
    if not 0 <= args.port_web <= 65535:
        raise UserError(f"--port-web {args.port_web}: a port is 0..65535 (0: any free one)")
    if not args.record_dir.is_dir():
        raise UserError(f"--record-dir {args.record_dir}: no such folder")


def recording_name(folder: Path, now: float | None = None) -> Path:
    """A new file in ``folder`` named by the local time, never one that exists."""
    stem = time.strftime("insole-%Y%m%d-%H%M%S", time.localtime(now))
    path = folder / f"{stem}.insole"
    k = 2
    while path.exists():
        path = folder / f"{stem}-{k}.insole"
        k += 1
    return path


class Dashboard:
    """The page's view of ``session``, served by ``server`` (started by :meth:`start`)."""

    def __init__(
        self,
        session: LiveSession,
        server: DashboardServer,
        *,
        record_dir: Path,
        recording_header: Callable[[], dict[str, Any]],
        layouts: dict[str, Layout] | None = None,
    ) -> None:
        self.session = session
        self.server = server
        self.record_dir = record_dir
        self.recording_header = recording_header
        self.layouts = layouts or {}
        self._next_frame = 0.0
        self.frames_published = 0

    def start(self) -> str:
        """Serves the page (the session has started: the insoles' layouts are known)."""
        geometry = [foot_geometry(f.side, f.cell_positions_mm, self.layouts.get(f.side)).as_json()
                    for f in self.session.feet]
        self.server.hello = json.dumps({"type": "hello", "feet": geometry})
        return self.server.start()

    def tick(self) -> None:
        """Carries out waiting page requests, then publishes a frame if one is due."""
        while True:
            try:
                request = self.server.requests.get_nowait()
            except queue.Empty:
                break
            self._carry_out(request)
        now = time.monotonic()
        if now >= self._next_frame:
            self._next_frame = now + FRAME_EVERY_S
            if self.server.has_clients:
                self.server.publish(session_frame(self.session))
                self.frames_published += 1

    def _carry_out(self, request: PageRequest) -> None:
        message = request.message
        answer: dict[str, Any] = {"type": "reply", "id": message.get("id"), "request": message.get("type")}
        try:
            if message.get("type") == "settings":
                answer |= self._write_settings(message)
            elif message.get("type") == "record":
                answer |= self._record(str(message.get("action")))
            else:
                answer |= {"ok": False, "message": f"unknown request {message.get('type')!r}"}
        except InsoleError as exc:  # an insole refused or did not answer: the page says so
            answer |= {"ok": False, "message": exc.one_line()}
        request.reply(answer)
        self._next_frame = 0.0  # the page sees the outcome at once

    def _write_settings(self, message: dict[str, Any]) -> dict[str, Any]:
        side = message.get("side", "both")
        feet = [f for f in self.session.feet if side in ("both", f.side)]
        values = message.get("values")
        if not feet or not isinstance(values, dict):
            return {"ok": False, "errors": {FORM_ERROR: f"no insole {side!r} in this session"}}
        planned = []
        for foot in feet:
            current = foot.settings or foot.link.get_settings()
            new, errors = validate_form(current, values)
            if new is None:
                return {"ok": False, "errors": errors}
            planned.append((foot, new))
        written = [(foot.side, new, self.session.write_settings(foot, new)) for foot, new in planned]
        kept_other = [side for side, wanted, held in written if held != wanted]
        if kept_other:
            return {"ok": False, "errors": {FORM_ERROR: f"the {' and '.join(kept_other)} insole kept other settings"}}
        sides = [side for side, _, _ in written]
        return {"ok": True, "message": f"written to the {' and '.join(sides)} insole{'s' if len(sides) > 1 else ''}"}

    def _record(self, action: str) -> dict[str, Any]:
        if action == "start":
            path = recording_name(self.record_dir)
            self.session.start_recording(RecordingWriter(path, self.recording_header()))
            return {"ok": True, "message": f"recording to {path}"}
        if action == "stop":
            stopped = self.session.stop_recording()
            return {"ok": True, "message": "no recording running" if stopped is None else f"recorded to {stopped}"}
        return {"ok": False, "message": f"unknown record action {action!r}"}


def token_for(bind: str, *, force: bool = False) -> str | None:
    """A new random token when the page is served beyond this computer (or asked for)."""
    return new_token() if force or not is_loopback(bind) else None


def open_dashboard(
    stack: ExitStack,
    session: LiveSession,
    args: argparse.Namespace,
    *,
    recording_header: Callable[[], dict[str, Any]],
    layouts: dict[str, Layout] | None = None,
    announce: Callable[[str], None] = print,
) -> Dashboard:
    """Serves the dashboard of a started session as the command line asks (closed by
    ``stack``), says where, and opens the browser unless --no-browser."""
    token = token_for(args.bind, force=args.token)
    server = stack.enter_context(DashboardServer(host=args.bind, port=args.port_web, token=token))
    stack.callback(session.stop_recording)  # a recording started on the page ends with the command
    dashboard = Dashboard(session, server, record_dir=args.record_dir, recording_header=recording_header,
                          layouts=layouts)
    try:
        url = dashboard.start()
    except OSError as exc:
        raise UserError(f"cannot serve the dashboard on {args.bind}:{args.port_web}: {exc.strerror or exc}") from exc
    announce(f"dashboard: {url}")
    if not args.no_browser:
        webbrowser.open(url)
    return dashboard
