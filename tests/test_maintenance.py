"""Maintenance is USB only: `insole bonds list|clear`, `insole factory-reset` and `insole pair`
over the simulated board's pty, and every control command a bonded central sends over
the emulated radio, where the maintenance ones are refused (NOT_PERMITTED) and change
nothing: the firmware runs on, measuring, with its settings and bonds."""

from __future__ import annotations

import os
import subprocess
import time
import tty
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from unittest import mock

import numpy as np
import pytest

from insole.cli import main
from insole.emulation.board import BLE_HEAP, SimulatedBoard, micropython_executable
from insole.emulation.peripheral import BridgedPeripheral
from insole.errors import DeviceError
from insole.link import SerialLink
from insole.link.ble import BleInsoleLink
from insole.protocol import (
    USB_ONLY_COMMANDS,
    BackfillEnd,
    Body,
    Command,
    CommandCode,
    CueMode,
    ErrorCode,
    Layout,
    Mode,
    PacketType,
    Program,
    ProgramBlock,
    Samples,
    Settings,
)
from test_pty_link import _replay, _walk_counts

BOARD_LAYOUT = ((20, -15), (20, 15), (120, -30), (120, 25), (200, -20), (210, 20), (250, -5), (255, 10))
WORN = Settings(side=0, cue_mode=CueMode.FOOT_ANGLE, cue_duty_pct=80, fpa_target_cdeg=-500, seed=4242)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimulatedBoard]:
    layout = ",".join(str(v) for xy in BOARD_LAYOUT for v in xy)
    with SimulatedBoard(side="left", settings_dir=tmp_path / "settings", log_path=tmp_path / "fw.log",
                        env={"INSOLE_SIM_LAYOUT": layout}) as b:  # fmt: skip
        with SerialLink(b.port) as link:
            link.ping(timeout_s=10)  # the first answer also waits out the start-up
        yield b


def _cli(*argv: str) -> int:
    return main(list(argv))


# --------------------------------------------------------------------------- over USB (pty)


@pytest.mark.micropython
def test_bonds_and_pairing_on_a_board_without_a_radio(board: SimulatedBoard, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("bonds", "list", "--port", board.port) == 0
    assert capsys.readouterr().out == f"no host is bonded with the insole on {board.port}\n"
    assert _cli("bonds", "clear", "--port", board.port, "--yes") == 0
    assert "every bond forgotten" in capsys.readouterr().out
    # No radio, no pairing window: one line, in the user's words.
    assert _cli("pair", "--port", board.port) == 2
    err = capsys.readouterr().err
    assert err == f"insole pair: error: the insole on {board.port} has no radio: there is nothing to pair\n"
    assert _cli("pair", "--port", board.port, "--seconds", "601") == 2
    assert "--seconds 601 is outside 1..600" in capsys.readouterr().err
    with SerialLink(board.port) as link:  # the raw answers behind those lines
        assert link.list_bonds().peers == ()
        with pytest.raises(DeviceError) as refused:
            link.open_pairing(60)
        assert refused.value.code == ErrorCode.BAD_STATE


@pytest.mark.micropython
def test_factory_reset_forgets_settings_events_layout_and_program(
    board: SimulatedBoard, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file = board.settings_dir / "settings.bin"
    program_files = [board.settings_dir / "program.bin", board.settings_dir / "program_state.bin"]
    with SerialLink(board.port) as link:
        link.set_settings(WORN)
        link.set_program(Program(3, (ProgramBlock.walk(5),)))
        steps = _replay(link, _walk_counts(1000))  # logs STEP events; sets the replay's own layout
        assert len(steps) >= 9 and settings_file.exists() and all(f.exists() for f in program_files)
        assert link.get_layout() != _board_layout()
        logged = _get_steps(link, 0, len(steps))
        assert (logged.resent, logged.lost_count) == (len(steps), 0)  # seqs 0 .. n-1 are in the log
    assert _cli("factory-reset", "--port", board.port, "--yes") == 0
    assert "as it left the factory" in capsys.readouterr().out
    assert not settings_file.exists() and not any(f.exists() for f in program_files)
    with SerialLink(board.port) as link:
        assert link.get_settings() == Settings()
        assert not link.get_program().stored
        assert link.get_layout() == _board_layout()
        status = link.get_status()
        assert (status.mode, status.sample_count, status.side) == (Mode.IDLE, 0, 0)  # the board's own side
        gone = _get_steps(link, 0, len(steps))
        assert (gone.resent, gone.lost_count) == (0, len(steps))  # every logged event gone for good
        assert link.drain_inbox() == []
    board.stop()  # and at the next start the defaults stay: nothing was left on flash
    board.start()
    with SerialLink(board.port) as link:
        link.ping(timeout_s=10)
        assert link.get_settings() == Settings()


def _board_layout() -> Layout:
    return Layout(tuple(x for x, _ in BOARD_LAYOUT), tuple(y for _, y in BOARD_LAYOUT))


def _get_steps(link: SerialLink, from_seq: int, count: int) -> BackfillEnd:
    body = link.command(Command.get_events(PacketType.STEP, from_seq, count), PacketType.BACKFILL_END).body
    assert isinstance(body, BackfillEnd)
    return body


@pytest.mark.micropython
def test_destructive_commands_ask_first(
    board: SimulatedBoard, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with SerialLink(board.port) as link:
        link.set_settings(WORN)
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    assert _cli("factory-reset", "--port", board.port) == 1
    assert _cli("bonds", "clear", "--port", board.port) == 1
    assert capsys.readouterr().err.count("cancelled, nothing changed") == 2

    def no_terminal(_prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    assert _cli("factory-reset", "--port", board.port) == 2
    assert "needs a confirmation (pass --yes to confirm without a prompt)" in capsys.readouterr().err
    with SerialLink(board.port) as link:
        assert link.get_settings() == WORN  # asked, declined: nothing happened
    monkeypatch.setattr("builtins.input", lambda _prompt: "yes")
    assert _cli("factory-reset", "--port", board.port) == 0
    with SerialLink(board.port) as link:
        assert link.get_settings() == Settings()


def test_maintenance_commands_name_a_serial_port_never_a_ble_address(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["bonds", "list", "--ble", "left"], ["factory-reset", "--yes"], ["pair", "--ble", "left"]):
        with pytest.raises(SystemExit) as usage:
            _cli(*argv)
        assert usage.value.code == 2
    assert "--port" in capsys.readouterr().err


# --------------------------------------------------------------------------- over BLE, from a bonded central


@pytest.mark.micropython
@pytest.mark.ble
def test_every_control_command_over_ble_maintenance_refused_and_nothing_changed() -> None:
    from insole.emulation.insoles import open_simulated_insoles
    from insole.sim import Stand, Walk, simulate_session

    sim = simulate_session([Stand(duration_s=1.0), Walk(duration_s=60.0, fpa_deg=10.0)], rate_hz=104.0, seed=3)
    with ExitStack() as stack:
        insoles = open_simulated_insoles(stack, sim.streams[:1], ble=True)
        _, link = insoles.links[0]
        assert isinstance(link, BleInsoleLink)  # bonded and encrypted: it pairs on connecting
        link.set_settings(WORN)  # everyday control works over BLE
        before = link.get_status()
        assert before.mode == Mode.LIVE  # worn: measuring since power-on
        maintenance: dict[str, Body] = {
            "REPLAY_BEGIN": Command.replay_begin(10000, 8, 0, side=0),
            "REPLAY_END": Command(CommandCode.REPLAY_END),
            "SAMPLES": Samples(0, np.zeros((3, 8), np.uint16), None),
            "LIST_BONDS": Command(CommandCode.LIST_BONDS),
            "CLEAR_BONDS": Command(CommandCode.CLEAR_BONDS),
            "FACTORY_RESET": Command(CommandCode.FACTORY_RESET),
            "OPEN_PAIRING": Command.open_pairing(600),
            "EXIT_TO_REPL": Command(CommandCode.EXIT_TO_REPL),
        }
        assert {b.command for b in maintenance.values() if isinstance(b, Command)} == USB_ONLY_COMMANDS
        refusals = {}
        for name, body in maintenance.items():
            answer = PacketType.BONDS if name == "LIST_BONDS" else PacketType.ACK
            with pytest.raises(DeviceError) as refused:
                link.request(body, answer)
            refusals[name] = (ErrorCode(refused.value.code).name, refused.value.advice)
        advice = "maintenance command refused on this link: USB only; connect the insole by cable and use --port"
        assert refusals == {name: ("NOT_PERMITTED", advice) for name in maintenance}
        # The everyday commands are answered as ever.
        link.ping()
        assert link.get_settings() == WORN  # FACTORY_RESET changed nothing
        assert link.get_layout() == insoles.layouts["left"]
        link.command(Command.cue_test(50, 30))
        link.command(Command.get_events(PacketType.STEP, 0, 1), PacketType.BACKFILL_END)
        # Still running, still measuring, on the same bonded link (CLEAR_BONDS dropped nothing).
        time.sleep(1.0)
        after = link.get_status()
        assert after.mode == Mode.LIVE and after.sample_count > before.sample_count + 50
        assert (link.stats.connections, link.stats.disconnects) == (1, 0)


class _InsoleOnUsbAndRadio(BridgedPeripheral):
    """The firmware on the emulated radio with its USB link on a pty too (``port``), as a
    worn insole on its charging cable: BridgedPeripheral gives it no USB link."""

    port = ""
    _pty: tuple[int, ...] = ()

    def _start(self, stderr: IO[bytes] | int | None) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)  # the firmware's reads return what is there
        self._pty = (master, slave)
        self.port = os.ttyname(slave)
        popen = subprocess.Popen

        def with_usb(argv: list[str], **options: Any) -> subprocess.Popen[str]:
            if argv[0] == micropython_executable() and str(self.script) in argv:  # the firmware
                options.update(stdin=master, stdout=master, text=False)
            return popen(argv, **options)

        with mock.patch.object(subprocess, "Popen", with_usb):
            super()._start(stderr)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for fd in getattr(self, "_pty", ()):
                os.close(fd)
            self._pty = ()


@pytest.mark.micropython
@pytest.mark.ble
def test_pairing_window_bonds_list_and_clear_over_usb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from insole.emulation import bumble_backend
    from insole.emulation.bumble_backend import HOST_ADDRESS, BumbleClient, BumbleScanner
    from insole.emulation.radio import VirtualRadio
    from insole.link.ble import run_on_radio

    with ExitStack() as stack:
        radio = stack.enter_context(VirtualRadio(n_controllers=2))
        bumble_backend.use_transport(radio.transports[0])
        stack.callback(lambda: run_on_radio(bumble_backend.shutdown(), timeout_s=10.0))
        insole = _InsoleOnUsbAndRadio(
            radio.transports[1], side="left", settings_dir=tmp_path, heap=BLE_HEAP,
            env={"INSOLE_PAIRING_WINDOW_S": "0"},  # closed from power-on: only the USB command opens it
        )  # fmt: skip
        stack.enter_context(insole)
        with SerialLink(insole.port) as usb:
            usb.ping(timeout_s=10)
            assert usb.list_bonds().peers == ()
        assert _cli("pair", "--port", insole.port, "--seconds", "30") == 0
        assert capsys.readouterr().out == "pairing window open for 30 s: pair the new host with the insole now\n"
        host = stack.enter_context(BleInsoleLink("left", scanner_backend=BumbleScanner, client_backend=BumbleClient))
        host.ping()  # paired and bonded inside the window
        assert _cli("bonds", "list", "--port", insole.port) == 0
        assert capsys.readouterr().out == f"address            type\n{HOST_ADDRESS}  random\n"
        assert _cli("bonds", "clear", "--port", insole.port, "--yes") == 0
        deadline = time.monotonic() + 10.0
        while host.stats.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host.stats.disconnects == 1  # the insole dropped the link of the forgotten bond
        with SerialLink(insole.port) as usb:
            assert usb.list_bonds().peers == ()
