"""Shared fixtures: the real-data folder and the MicroPython unix port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import NoReturn

import pytest

from insole.emulation.board import (
    ESP32_NUMBER_MODEL_BUILD,
    HEAP,
    MICROPYTHON_ENV,
    micropython_env,
    micropython_executable,
)
from insole.resources import DATA_DIR_ENV, FIRMWARE_DIR

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO_ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_VECTORS = REPO_ROOT / "docs" / "protocol-vectors.json"
# The real recordings beside the checkout; commands run by the tests (insole validate)
# find them there too, wherever pytest was started.
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
os.environ.setdefault(DATA_DIR_ENV, str(SHARED_DATA_DIR))
# Where scripts/build-micropython-esp32.sh puts the unix port with the ESP32's number model.
ESP32_MICROPYTHON = REPO_ROOT / ".build" / "micropython-esp32" / "micropython"


def skip_or_fail(message: str) -> NoReturn:
    """Skip outside CI, fail in CI: there everything the suite needs must be present."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `micropython` under a chosen interpreter that is not there: skip (fail in CI)."""
    chosen = os.environ.get(MICROPYTHON_ENV)
    if chosen and item.get_closest_marker("micropython") and not os.access(chosen, os.X_OK):
        skip_or_fail(f"no MicroPython at {MICROPYTHON_ENV}={chosen}; build it with `{ESP32_NUMBER_MODEL_BUILD}`")


# Every test that starts MicroPython must carry the `micropython` marker, or the ESP32
# number-model run misses it. The subprocess audit event names each program the tests
# start in this process (what their children start is not seen); a test that started
# MicroPython without the marker fails at teardown.
_running: list[pytest.Item] = []
_unmarked_starts: dict[str, str] = {}  # test id -> the MicroPython it started


def _note_micropython_start(event: str, args: tuple[object, ...]) -> None:
    if event != "subprocess.Popen" or not _running:
        return
    item = _running[-1]
    argv = args[1]
    program = argv[0] if isinstance(argv, (list, tuple)) and argv else (argv or args[0])
    if (os.path.basename(os.fsdecode(str(program))) == "micropython"
            and item.get_closest_marker("micropython") is None):
        _unmarked_starts.setdefault(item.nodeid, str(program))


sys.addaudithook(_note_micropython_start)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield
    started = _unmarked_starts.pop(item.nodeid, None)
    if started:
        pytest.fail(f"started MicroPython ({started}) but is not marked `micropython`: the ESP32 "
                    "number-model run of scripts/test.sh would miss it", pytrace=False)


def pytest_report_header() -> str:
    chosen = os.environ.get(MICROPYTHON_ENV)
    return f"micropython: {chosen} (${MICROPYTHON_ENV})" if chosen else "micropython: the PyPI unix port"


def require_shared_data(*relative: str) -> Path:
    """Path under ../shared/data; skip with a message outside CI when missing, fail in CI."""
    path = SHARED_DATA_DIR.joinpath(*relative)
    if not path.exists():
        skip_or_fail(f"real data not found at {path} (expected ../shared/data beside the checkout)")
    return path


def micropython_test_env() -> dict[str, str]:
    """The simulated board's environment plus the firmware tests, writing settings to a temp dir."""
    env = micropython_env(extra_paths=(FIRMWARE_DIR / "tests",))
    # Firmware tests that write settings must not touch a real or shared directory.
    env["INSOLE_SETTINGS_DIR"] = tempfile.mkdtemp(prefix="insole-fwtest-settings-")
    return env


def run_micropython(script: Path | str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a script under `micropython -X heapsize=128K` with the firmware on its path."""
    return subprocess.run(
        [micropython_executable(), "-X", f"heapsize={HEAP}", str(script), *args],
        env=micropython_test_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# Debian's Chromium (scripts/install-chromium.sh), driven by playwright: never a browser
# download of playwright's own. The flags keep it off this machine's closed network.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Generator[object, None, None]:
    """A headless Chromium (playwright's sync ``Browser``) for the module's tests.

    Typed ``object`` so that modules without browser tests need no playwright types;
    tests annotate it as ``playwright.sync_api.Browser``."""
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (scripts/install-chromium.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
