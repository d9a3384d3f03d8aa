"""The CLI fails gracefully: one clear line and a non-zero exit for bad input, a missing
adapter or an existing output; Ctrl-C ends live commands cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from insole import cli

INSOLE = [sys.executable, "-m", "insole.cli"]


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Runs the CLI in-process; argparse errors (exit 2) count as a return code."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("insole 0.")


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--duration-s", "-1"],
        ["demo", "--duration-s", "0"],
        ["record", "--simulate", "-o", "x.insole", "--duration-s", "nan"],
        ["monitor", "--simulate", "--duration-s", "-5"],
        ["scan", "--timeout-s", "-1"],
        ["simulate", "-o", "x.insole", "--duration-s", "inf"],
        ["peripheral", "--walk-s", "0"],
    ],
)
def test_durations_and_timeouts_must_be_positive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # where x.insole would go
    code, err = _main(capsys, *argv)
    assert code == 2
    assert "must be a positive number of seconds" in err


def _recording(tmp_path: Path) -> Path:
    path = tmp_path / "walk.insole"
    assert cli.main(["simulate", "--plan", "heel-raises", "--no-noise", "-o", str(path)]) == 0
    return path


# Each command that writes files, with the file it would write already there.
OUTPUT_CASES = {
    "simulate": lambda rec, out: ["simulate", "--plan", "heel-raises", "-o", str(out)],
    "export": lambda rec, out: ["export", str(rec), "-o", str(out)],
    "hil": lambda rec, out: ["hil", str(rec), "--steps", str(out)],
    "import": lambda rec, out: ["import", "csv", "--left", str(rec), "-o", str(out)],
    "record": lambda rec, out: ["record", "--simulate", "-o", str(out)],
    "demo": lambda rec, out: ["demo", "-o", str(out)],
}


@pytest.mark.parametrize("command", list(OUTPUT_CASES))
def test_an_existing_output_is_kept_unless_forced_and_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    recording = _recording(tmp_path)
    capsys.readouterr()
    existing = tmp_path / "existing.out"
    existing.write_bytes(b"keep me")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("a simulated insole or replay was started before the outputs were checked")

    monkeypatch.setattr(subprocess, "Popen", no_work)
    code, err = _main(capsys, *OUTPUT_CASES[command](recording, existing))
    assert code == 2, err
    assert f"{existing} exists; use -f/--force to overwrite" in err
    assert existing.read_bytes() == b"keep me"
    code, err = _main(capsys, *OUTPUT_CASES[command](recording, tmp_path / "no" / "such" / "folder.out"))
    assert code == 2 and "does not exist" in err


def test_force_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = _recording(tmp_path)
    out = tmp_path / "samples.csv"
    out.write_text("old")
    assert cli.main(["export", str(recording), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("side,index,t_s")


def test_no_bluetooth_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    # BlueZ is reached over the system D-Bus; a socket that is not there is a computer
    # without Bluetooth (or with bluetoothd stopped).
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-dbus'}"}
    for argv in (["scan"], ["record", "--ble", "-o", str(tmp_path / "r.insole")], ["monitor"]):
        done = subprocess.run([*INSOLE, *argv], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot scan for insoles" in lines[0] and "Bluetooth adapter" in lines[0]
    assert not (tmp_path / "r.insole").exists()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.micropython
@pytest.mark.parametrize("command", ["monitor", "record"])
def test_ctrl_c_ends_a_live_command_cleanly(tmp_path: Path, command: str) -> None:
    recording = tmp_path / "r.insole"
    if command == "monitor":  # over the emulated radio, with the dashboard (it prints its address once streaming)
        argv, n_children = ["monitor", "--simulate", "--web", "--no-browser"], 5  # radio, 2 bridges, 2 firmwares
    else:  # over ptys: the 2 firmwares
        argv, n_children = ["record", "--simulate", "--duration-s", "600", "-o", str(recording)], 2
    # A terminal's Ctrl-C signals the whole foreground process group: the command leads one here,
    # with SIGINT at its default as a terminal gives it (scripts/test.sh runs the second pass as
    # a background job, which bash starts with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt). PYTHONFAULTHANDLER: should it hang, SIGABRT makes it print where.
    process = subprocess.Popen([*INSOLE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_sigint_as_in_a_terminal,
                               env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # fmt: skip
    output: list[str] = []
    readers = [threading.Thread(target=lambda pipe=pipe: output.extend(iter(pipe.readline, "")), daemon=True)
               for pipe in (process.stdout, process.stderr)]  # fmt: skip
    for reader in readers:
        reader.start()

    def streaming() -> bool:
        if command == "monitor":
            return any("http://127.0.0.1:" in line for line in output)
        return recording.exists() and recording.stat().st_size > 20_000

    try:
        deadline = time.monotonic() + 90
        while not streaming() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert streaming(), "".join(output)
        children = _children(process.pid)
        assert len(children) == n_children, children
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # the faulthandler prints every thread's stack
            process.wait(timeout=10)
            for reader in readers:
                reader.join(timeout=5)
            pytest.fail("still running 60 s after Ctrl-C:\n" + "".join(output))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for reader in readers:
        reader.join(timeout=10)
    text = "".join(output)
    assert "Traceback" not in text, text
    assert process.returncode == 0, text
    assert "stopping" in text
    assert not [pid for pid in children if _alive(pid)], "a simulated insole outlived the command"
    if command == "record":
        from insole.recording import read_recording

        assert "recorded to" in text
        assert all(stream.n_samples > 100 for stream in read_recording(recording).streams)


@pytest.mark.micropython
def test_record_on_a_port_describes_the_insole_from_its_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from insole.emulation.board import SimulatedBoard, write_sample_file
    from insole.recording import read_recording

    samples = tmp_path / "stand.ismp"  # 8 loaded cells at 100 Hz, no IMU
    write_sample_file(samples, 10000, np.full((300, 8), 5000, dtype=np.uint16), None)
    out = tmp_path / "device.insole"
    with SimulatedBoard(side="left", samples_file=samples, settings_dir=tmp_path / "settings") as board:
        assert cli.main(["record", "--port", f"left={board.port}", "--duration-s", "2", "-o", str(out)]) == 0
        assert cli.main(["record", "--port", f"left={board.port}", "--port", "left=/dev/null",
                         "-o", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "--port 'left=/dev/null': each side may be given once" in capsys.readouterr().err
    recording = read_recording(out)
    assert recording.header["source"] == "device" and recording.header["start_time_utc"]
    (stream,) = recording.header["streams"]
    assert stream["side"] == "left" and stream["device"] == board.port and stream["firmware_version"].count(".") == 2
    assert recording.streams[0].n_samples > 50
