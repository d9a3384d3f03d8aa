"""Child processes of the emulation (the radio, a bridge, a MicroPython firmware): started
by the host, announced on their first stdout line, always ended.

Each runs in its own session (``start_new_session=True``): a Ctrl-C at the terminal
signals the whole foreground process group, and children in it would die mid-exchange
(with their own tracebacks) while the host still talks to them. Outside the group they
hear nothing; the host unwinds and stops them in order.
"""

from __future__ import annotations

import subprocess
import threading

from insole.errors import ToolError

START_TIMEOUT_S = 20.0


def read_first_line(process: subprocess.Popen[str], what: str, timeout_s: float = START_TIMEOUT_S) -> str:
    """The first stdout line of a child that announces its ports, or an error with its stderr."""
    stdout = process.stdout
    assert stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    line = result[0].strip() if result else ""
    if not line:
        process.kill()
        process.wait(timeout=5)
        raise ToolError(
            f"{what} did not start within {timeout_s:.0f} s",
            advice="set INSOLE_BLE_LOG=debug (and keep the firmware log) to see why",
        )
    return line


def stop_process(process: subprocess.Popen[str] | subprocess.Popen[bytes] | None, grace_s: float = 0.0) -> None:
    """Ends a child we started: terminate (with a grace period if asked), then kill."""
    if process is None or process.poll() is not None:
        return
    if grace_s > 0:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait(timeout=5)
