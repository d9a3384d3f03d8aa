"""The live dashboard in real headless Chromium, against two simulated insoles over the
emulated BLE radio: live updates, the heat map and trend drawn (checked by their
pixels), the cue-settings form written to the insoles (read back through the links),
bad values refused next to their field, recording, and the token."""

from __future__ import annotations

import argparse
import threading
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from insole.commands.demo import DEMO_BAND_DEG, live_demo_plan
from insole.protocol import Settings
from insole.web.dashboard import Dashboard, token_for
from insole.web.form import validate_form
from insole.web.server import DashboardServer

# The page's colours (dashboard.css / dashboard.js): left and right foot in the trend.
LEFT_RGB = (0x25, 0x63, 0xEB)
RIGHT_RGB = (0xEA, 0x58, 0x0C)


@dataclass
class Live:
    url: str  # with the token
    dashboard: Dashboard
    paused: threading.Lock  # held by the polling loop while it polls: take it to use the links
    record_dir: Path

    @contextmanager
    def links_to_myself(self) -> Iterator[None]:
        with self.paused:
            yield


def _poll_forever(live_session, dashboard: Dashboard, lock: threading.Lock, stop: threading.Event) -> None:
    while not stop.is_set():
        with lock:
            live_session.poll(0.05)
            dashboard.tick()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Generator[Live, None, None]:
    from insole.emulation.insoles import open_simulated_insoles
    from insole.layouts import load_layout
    from insole.recording import make_header, stream_header_for
    from insole.session.live import LiveSession
    from insole.settings import apply_cue_options
    from insole.sim import simulate_session

    sim = simulate_session(live_demo_plan(), rate_hz=100.0, seed=3)
    record_dir = tmp_path_factory.mktemp("recordings")
    with ExitStack() as stack:
        insoles = open_simulated_insoles(stack, sim.streams, ble=True)
        for _side, link in insoles.links:
            link.set_settings(apply_cue_options(link.get_settings(), mode="band", target_deg=DEMO_BAND_DEG[0],
                                                half_width_deg=DEMO_BAND_DEG[1]))
        session = LiveSession(insoles.links, layouts=insoles.layouts)
        session.start()

        def header() -> dict[str, object]:
            entries = [stream_header_for(s, k) for s, k in zip(sim.streams, insoles.pressure_scales, strict=True)]
            return make_header(source="simulated", streams=entries)

        # Only ever loopback; the token forced on, as off loopback.
        server = stack.enter_context(DashboardServer(host="127.0.0.1", token=token_for("127.0.0.1", force=True)))
        dashboard = Dashboard(session, server, record_dir=record_dir, recording_header=header,
                              layouts={s.side: load_layout(s.layout) for s in sim.streams})
        url = dashboard.start()
        lock, stop = threading.Lock(), threading.Event()
        poller = threading.Thread(target=_poll_forever, args=(session, dashboard, lock, stop), daemon=True)
        poller.start()
        try:
            yield Live(url, dashboard, lock, record_dir)
        finally:
            stop.set()
            poller.join(10)
            session.stop_recording()
            session.stop()


@pytest.fixture(scope="module")
def page(browser: object, live: Live) -> Generator[object, None, None]:
    """One page for the module's browser tests, in their order (loading one is slow on a busy machine)."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(live.url)
    page.wait_for_function("window.insoleDashboard && window.insoleDashboard.frames > 0", timeout=30_000)
    try:
        yield page
    finally:
        context.close()


def _count_near(image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    return int((np.abs(pixels - np.array(rgb)).sum(axis=2) < tolerance).sum())


def _heat_pixels(image: Image.Image) -> int:
    """Pixels of the heat map's colours: saturated, unlike the grey outline and the white card."""
    hsv = np.asarray(image.convert("HSV"), dtype=np.int32)
    return int(((hsv[..., 1] > 90) & (hsv[..., 2] > 60)).sum())


def _steps_shown(page, side: str) -> int:
    return int(page.inner_text(f"#foot-{side} [data-k=steps]"))


def _insole_settings(live: Live) -> dict[str, Settings]:
    with live.links_to_myself():
        return {foot.side: foot.link.get_settings() for foot in live.dashboard.session.feet}


@pytest.mark.micropython
@pytest.mark.ui
def test_page_updates_live_and_draws_heat_map_and_trend(page, live: Live, tmp_path: Path) -> None:
    before = {side: _steps_shown(page, side) for side in ("left", "right")}
    page.wait_for_function(
        "([l, r]) => +document.querySelector('#foot-left [data-k=steps]').textContent > l"
        " && +document.querySelector('#foot-right [data-k=steps]').textContent > r",
        arg=[before["left"], before["right"]], timeout=30_000,
    )
    # The trend: both feet's lines, in their colours, drawn by the chart library.
    page.wait_for_function("window.insoleDashboard.lastFrame.trend.left.length >= 3"
                           " && window.insoleDashboard.lastFrame.trend.right.length >= 3", timeout=30_000)
    trend = Image.open(BytesIO(page.locator("#trend canvas").first.screenshot()))
    assert _count_near(trend, LEFT_RGB) > 100 and _count_near(trend, RIGHT_RGB) > 100
    # The heat maps: a foot in swing carries nothing, so look until each has shown its load.
    boxes = {side: page.locator(f"#foot-{side} canvas").bounding_box() for side in ("left", "right")}
    assert all(boxes.values())
    top = min(b["y"] for b in boxes.values() if b)
    bottom = max(b["y"] + b["height"] for b in boxes.values() if b)
    seen = {"left": 0, "right": 0}
    for _ in range(60):
        shot = Image.open(BytesIO(page.screenshot(clip={"x": 0, "y": top, "width": 1280, "height": bottom - top})))
        for side, box in boxes.items():
            assert box is not None
            canvas = shot.crop((int(box["x"]), 0, int(box["x"] + box["width"]), shot.height))
            seen[side] = max(seen[side], _heat_pixels(canvas))
        if min(seen.values()) > 400:
            break
        page.wait_for_timeout(200)
    assert min(seen.values()) > 400, seen
    page.screenshot(path=tmp_path / "dashboard.png")
    assert page.locator("#symmetry tbody tr").count() == 4
    assert "not a diagnosis" in page.inner_text("#both")


@pytest.mark.micropython
@pytest.mark.ui
def test_form_writes_settings_to_both_insoles(page, live: Live) -> None:
    page.fill("#f-target_deg", "-4")
    page.fill("#f-half_width_deg", "2.5")
    page.fill("#f-duty_pct", "75")
    page.click("#settings-apply")
    page.wait_for_function("document.querySelector('#settings-message').textContent.startsWith('written')",
                           timeout=15_000)
    for side, settings in _insole_settings(live).items():
        assert (settings.fpa_target_cdeg, settings.fpa_half_width_cdeg, settings.cue_duty_pct) == (-400, 250, 75), side
    # The page then shows the band the insoles hold.
    page.wait_for_function("document.querySelector('#foot-left [data-k=band]').textContent.startsWith('-6.5')",
                           timeout=15_000)


@pytest.mark.micropython
@pytest.mark.ui
def test_bad_values_are_refused_next_to_their_field(page, live: Live) -> None:
    held = _insole_settings(live)
    page.fill("#f-duty_pct", "150")
    page.fill("#f-spm", "fast")
    page.click("#settings-apply")
    page.wait_for_function("document.querySelector('.error[data-for=duty_pct]').textContent !== ''", timeout=15_000)
    assert "outside 0..100%" in page.inner_text(".error[data-for=duty_pct]")
    assert "not a whole number" in page.inner_text(".error[data-for=spm]")
    assert page.inner_text(".error[data-for=target_deg]") == ""
    # Valid alone, refused together: the cap below the base length is the cap's error.
    page.fill("#f-duty_pct", "60")
    page.fill("#f-spm", "100")
    page.fill("#f-duration_ms", "500")
    page.fill("#f-max_ms", "400")
    page.click("#settings-apply")
    page.wait_for_function("document.querySelector('.error[data-for=max_ms]').textContent !== ''", timeout=15_000)
    assert "below --duration-ms" in page.inner_text(".error[data-for=max_ms]")
    assert _insole_settings(live) == held


@pytest.mark.micropython
@pytest.mark.ui
def test_record_button_writes_a_recording(page, live: Live) -> None:
    from insole.recording import read_recording

    page.click("#record-start")
    page.wait_for_function("document.querySelector('#recording-state').textContent.startsWith('recording to')",
                           timeout=15_000)
    page.wait_for_timeout(1500)
    page.click("#record-stop")
    page.wait_for_function("document.querySelector('#record-message').textContent.startsWith('recorded to')",
                           timeout=15_000)
    [path] = live.record_dir.glob("*.insole")
    recording = read_recording(path)
    assert [s.side for s in recording.streams] == ["left", "right"]
    assert all(s.n_samples > 50 for s in recording.streams)
    assert recording.bad_frames == 0


def _handshake_status(host: str, origin: str, path: str = "/ws") -> int:
    """The status of a WebSocket opening handshake sent by a page of ``origin``."""
    import base64
    import http.client
    import os

    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        connection.request("GET", path, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Origin": origin,
        })  # fmt: skip
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.micropython
@pytest.mark.ui
def test_token_is_required_on_page_and_websocket(live: Live) -> None:
    bare, _, query = live.url.partition("?")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(bare + "?token=guess", timeout=10)
    assert wrong.value.code == 403
    with urllib.request.urlopen(live.url, timeout=10) as page:
        assert page.status == 200
    host = bare.split("/")[2]
    origin = f"http://{host}"
    assert _handshake_status(host, origin) == 403
    assert _handshake_status(host, origin, "/ws?token=guess") == 403
    assert _handshake_status(host, origin, "/ws?" + query) == 101


def test_websocket_refuses_pages_of_another_origin() -> None:
    with DashboardServer() as server:
        host = server.start().split("/")[2]
        assert _handshake_status(host, "http://evil.example") == 403
        assert _handshake_status(host, f"http://{host}") == 101


def test_token_whenever_served_beyond_loopback() -> None:
    assert token_for("127.0.0.1") is None and token_for("::1") is None
    assert token_for("0.0.0.0") and token_for("192.168.1.20") and token_for("127.0.0.1", force=True)
    with pytest.raises(ValueError):
        DashboardServer(host="0.0.0.0")  # never bound: refused before


def test_form_errors_name_their_field() -> None:
    current = Settings()
    new, errors = validate_form(current, {"duty_pct": "101", "target_deg": "x", "mode": "band"})
    assert new is None and set(errors) == {"target_deg", "duty_pct"}  # every field's error at once
    new, errors = validate_form(current, {"duty_pct": "101", "mode": "band"})
    assert new is None and set(errors) == {"duty_pct"}
    new, errors = validate_form(current, {"duration_ms": "500", "max_ms": "400"})
    assert new is None and set(errors) == {"max_ms"}
    # A longer cap with a longer base is fine, whatever the insole held before.
    new, errors = validate_form(current, {"duration_ms": "800", "max_ms": "900", "schedule": "every-kth", "every": "3"})
    assert errors == {} and new is not None
    assert (new.cue_duration_ms, new.cue_max_ms, new.fade_every) == (800, 900, 3)


def test_cli_web_options_are_checked(tmp_path: Path) -> None:
    from insole.errors import UserError
    from insole.web.dashboard import check_web_arguments

    args = argparse.Namespace(port_web=70000, record_dir=tmp_path)
    with pytest.raises(UserError, match="--port-web"):
        check_web_arguments(args)
    args = argparse.Namespace(port_web=0, record_dir=tmp_path / "missing")
    with pytest.raises(UserError, match="--record-dir"):
        check_web_arguments(args)
    check_web_arguments(argparse.Namespace(port_web=0, record_dir=tmp_path))


@pytest.mark.micropython
@pytest.mark.ui
def test_program_block_shown_per_foot(page, live: Live) -> None:
    # The simulated insoles run no program: the left one's events are handed to the
    # session as if it had sent them (a backward-walking block, 1 of 2 s done).
    from insole.protocol import BlockKind, Direction, ProgramEvent, ProgramEventKind, Step

    assert page.locator("#foot-left .program").is_hidden()  # no program: no box
    with live.links_to_myself():
        left = next(foot for foot in live.dashboard.session.feet if foot.side == "left")
        left.program.absorb(ProgramEvent(ProgramEventKind.SESSION_START, None, None, 0, 10**8, 3, 7, None, None, None,
                                         None, None, None))  # fmt: skip
        left.program.absorb(ProgramEvent(ProgramEventKind.BLOCK_START, 1, BlockKind.BACKWARD_WALK, 0, 10**8, 3, 7, 2, 0,
                                         None, None, None, None))  # fmt: skip
        block = left.program.block
        assert block is not None
        for number, ic in ((10**6, 10**8 + 10), (10**6 + 1, 10**8 + 110)):
            block.add_step(Step(ic, ic + 60, 600, 400, None, Direction.BACKWARD, 1, None, None, None, None, number),
                           left.rate_hz)  # fmt: skip
    page.wait_for_function("document.querySelector('#foot-left .program-detail').textContent.startsWith('1 / 2 s')",
                           timeout=30_000)  # fmt: skip
    assert page.inner_text("#foot-left .program-title") == "program session 3: block 2, backward walk"
    assert page.locator("#foot-left progress.program-progress").evaluate("p => p.value / p.max") == 0.5
    assert page.locator("#foot-right .program").is_hidden()
    with live.links_to_myself():
        left.program = type(left.program)()  # back to no program for the tests after this one
