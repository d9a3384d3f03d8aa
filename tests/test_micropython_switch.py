"""The MicroPython the tests run under: the switch ($INSOLE_MICROPYTHON) and the ESP32 number-model build.

scripts/build-micropython-esp32.sh builds a 32-bit unix port with float32 into
.build/micropython-esp32/; scripts/test.sh runs every `micropython` test a second time
under it. Without it these tests skip with the command that builds it (they fail in CI).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ESP32_MICROPYTHON, REPO_ROOT, skip_or_fail
from insole.emulation.board import (
    ESP32_NUMBER_MODEL_BUILD,
    MICROPYTHON_ENV,
    compiled_firmware_dir,
    micropython_env,
    micropython_executable,
)
from insole.errors import ToolError

MPY_ARCH_X86 = 1  # py/persistentcode.h MP_NATIVE_ARCH_X86

# What the ESP32 does with numbers, asked of a binary: each line prints one fact (the
# build script checks its build with the same probe).
NUMBER_MODEL_PROBE = REPO_ROOT / "scripts" / "number_model_probe.py"


def _esp32_build() -> Path:
    if not os.access(ESP32_MICROPYTHON, os.X_OK):
        skip_or_fail(f"no ESP32 number-model MicroPython at {ESP32_MICROPYTHON}; build it with `{ESP32_NUMBER_MODEL_BUILD}`")
    return ESP32_MICROPYTHON


@pytest.mark.micropython
def test_the_esp32_build_has_the_esp32_number_model() -> None:
    result = subprocess.run([str(_esp32_build()), str(NUMBER_MODEL_PROBE)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:5] == [
        str(2**31 - 1),  # 31-bit small ints
        "True False",  # 2**30 is a heap-allocated big int (MemoryError under heap_lock), 2**29 is not
        "True",  # float32: 1e-8 is below half an ulp of 1.0
        str(2**30 - 1),  # ticks wrap at 2**30
        "20",  # ... and ticks_diff unwraps across the wrap
    ]


@pytest.mark.micropython
def test_the_pypi_port_does_not_have_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason for the second build: the default port passes what the ESP32 fails."""
    monkeypatch.delenv(MICROPYTHON_ENV, raising=False)
    result = subprocess.run([micropython_executable(), str(NUMBER_MODEL_PROBE)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [str(2**63 - 1), "False False", "False"]


def test_the_switch_picks_the_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MICROPYTHON_ENV, raising=False)
    default = micropython_executable()
    fake = tmp_path / "micropython"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MICROPYTHON_ENV, "micropython")  # relative: made absolute, the firmware may run elsewhere
    assert micropython_executable() == str(fake)
    monkeypatch.setenv(MICROPYTHON_ENV, str(tmp_path / "missing"))
    with pytest.raises(ToolError) as missing:
        micropython_executable()
    assert ESP32_NUMBER_MODEL_BUILD in missing.value.one_line()
    monkeypatch.delenv(MICROPYTHON_ENV)
    assert micropython_executable() == default


@pytest.mark.micropython
def test_the_firmware_is_compiled_for_each_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    esp32 = _esp32_build()
    monkeypatch.delenv(MICROPYTHON_ENV, raising=False)
    pypi_dir = compiled_firmware_dir()
    monkeypatch.setenv(MICROPYTHON_ENV, str(esp32))
    esp32_dir = compiled_firmware_dir()
    assert pypi_dir is not None and esp32_dir is not None and pypi_dir != esp32_dir
    # Modules with native code (viper) carry their architecture; the rest none (0).
    arches = {p.name: p.read_bytes()[2] >> 2 for p in esp32_dir.rglob("*.mpy")}
    assert set(arches.values()) == {0, MPY_ARCH_X86}, arches


@pytest.mark.micropython
def test_the_firmware_runs_under_the_chosen_interpreter() -> None:
    """The firmware (its .mpy) loads under whichever port the switch names, with that port's numbers."""
    chosen = os.environ.get(MICROPYTHON_ENV)
    probe = subprocess.run([micropython_executable(), "-c", "import sys, insolefw.gait; print(sys.maxsize)"],
                           env=micropython_env(), capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode == 0, probe.stderr
    if not chosen:
        assert int(probe.stdout) == 2**63 - 1
    elif Path(chosen).resolve() == ESP32_MICROPYTHON.resolve():
        assert int(probe.stdout) == 2**31 - 1
