"""Options several commands share: durations, and one policy for the files they write.

Every command that writes files takes ``-f/--force`` and checks all its outputs before
any work starts, so a typo in a path ends the command at once, not after a ten-minute
replay, and nothing is overwritten unless asked for.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from insole.errors import LinkError, UserError
from insole.link import InsoleLink, SerialLink
from insole.model import Side

SIDES: tuple[Side, Side] = ("left", "right")


def seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be a positive number of seconds")
    return value


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="overwrite output files that exist")


def check_outputs(force: bool, *paths: Path | None) -> None:
    """Every file a command will write can be written: its folder exists, and it does not
    exist yet unless ``force``. Raises :class:`UserError` naming the first that cannot."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise UserError(f"{path} is a folder; give a file name")
        if not path.parent.is_dir():
            raise UserError(f"folder {path.parent} does not exist")
        if path.exists() and not force:
            raise UserError(f"{path} exists; use -f/--force to overwrite")


def per_side_degrees(text: str) -> dict[Side, float]:
    """argparse type: ``"0"`` → both feet 0°; ``"left=5,right=3"`` → per foot (a foot
    not named is left out)."""
    try:
        if "=" not in text:
            return {side: float(text) for side in SIDES}
        out: dict[Side, float] = {}
        for part in text.split(","):
            side, _, value = part.partition("=")
            name = side.strip()
            if name not in SIDES:
                raise ValueError(name)
            out["left" if name == "left" else "right"] = float(value)
        return out
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DEG or left=DEG,right=DEG") from None


def parse_side_ports(values: list[str]) -> dict[Side, str]:
    """``--port left=/dev/ttyACM0`` (repeatable) as {side: port}, each side once."""
    ports: dict[Side, str] = {}
    for value in values:
        side, sep, port = value.partition("=")
        if not sep or side not in SIDES or not port:
            raise UserError(f"--port {value!r}: expected left=PORT or right=PORT")
        if side in ports:
            raise UserError(f"--port {value!r}: each side may be given once")
        ports["left" if side == "left" else "right"] = port
    return ports


def link_advice(exc: Exception) -> str | None:
    """A link error's advice, kept when it becomes a command's UserError."""
    return exc.advice if isinstance(exc, LinkError) else None


def open_serial_insole(stack: ExitStack, port: str) -> SerialLink:
    """An insole on a serial port, answering a PING; a UserError that names the port if not."""
    try:
        link = stack.enter_context(SerialLink(port))
        link.ping(timeout_s=10)
    except (OSError, LinkError) as exc:
        raise UserError(f"cannot reach an insole on {port}: {exc}", advice=link_advice(exc)) from exc
    return link


def open_ble_insoles_of(stack: ExitStack, sides: Sequence[str]) -> list[tuple[str, InsoleLink]]:
    """The bonded insoles of these sides over BLE, (side, link) each; a UserError if one is not reached."""
    from insole.link.ble import open_ble_insoles  # bleak and bumble load only for BLE

    wanted = list(dict.fromkeys(sides))
    try:
        return list(open_ble_insoles(stack, wanted))
    except (OSError, LinkError) as exc:
        raise UserError(f"cannot reach the {' and '.join(wanted)} insole over BLE: {exc}",
                        advice=link_advice(exc)) from exc
