"""The firmware's own tests, run under the real MicroPython unix port at 128K heap."""

from __future__ import annotations

import pytest

from conftest import run_micropython
from insole.resources import FIRMWARE_DIR

pytestmark = pytest.mark.micropython

FIRMWARE_TESTS = sorted(p.stem for p in (FIRMWARE_DIR / "tests").glob("fwtest_*.py"))


@pytest.mark.parametrize("module", FIRMWARE_TESTS)
def test_firmware_module_under_micropython(module: str) -> None:
    result = run_micropython(FIRMWARE_DIR / "tests" / "mpytest.py", module)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0 and summary.endswith(" 0 failed"), result.stdout + result.stderr
    assert not summary.startswith("0 passed"), f"{module} ran no test"
