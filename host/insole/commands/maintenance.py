"""`insole bonds list|clear`, `insole factory-reset`, `insole pair`: the insole's maintenance.

The insole takes these only on its USB serial link: a BLE central, even a bonded one,
is refused (NOT_PERMITTED). So they name a serial port (``--port /dev/ttyACM0``), never
a BLE address. ``bonds clear`` and ``factory-reset`` ask before they act unless ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from insole.errors import DeviceError, LinkError, UserError
from insole.link import SerialLink
from insole.protocol import OPEN_PAIRING_MAX_S, OPEN_PAIRING_MIN_S, ErrorCode

DEFAULT_PAIRING_S = 60
_UNCHANGED_SETTINGS_FILE = 0xFF  # FACTORY_RESET's BAD_STATE detail: the settings file could not be removed


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bonds = subparsers.add_parser(
        "bonds",
        help="list or forget the hosts bonded with an insole (over USB)",
        description="The hosts (BLE centrals) bonded with the insole on a serial port, most recently used first.",
    )
    actions = bonds.add_subparsers(dest="bonds_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print the bonded hosts: address and address type")
    _add_port(listing)
    listing.set_defaults(func=run_bonds_list)
    clear = actions.add_parser(
        "clear", help="forget every bond (and drop the BLE link): each host must pair again"
    )
    _add_port(clear)
    _add_yes(clear)
    clear.set_defaults(func=run_bonds_clear)

    reset = subparsers.add_parser(
        "factory-reset",
        help="reset an insole over USB: default settings, no bonds, empty logs, the board's own layout",
    )
    _add_port(reset)
    _add_yes(reset)
    reset.set_defaults(func=run_factory_reset)

    pair = subparsers.add_parser(
        "pair",
        help="open an insole's pairing window over USB, so that a new host can pair",
        description="Opens the pairing window of the insole on a serial port; pair the new host within it.",
    )
    _add_port(pair)
    pair.add_argument(
        "--seconds",
        type=int,
        default=DEFAULT_PAIRING_S,
        help=f"how long the window stays open ({OPEN_PAIRING_MIN_S}..{OPEN_PAIRING_MAX_S} s, "
        f"default {DEFAULT_PAIRING_S})",
    )
    pair.set_defaults(func=run_pair)


def _add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port of the insole's USB link, e.g. /dev/ttyACM0")


def _add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do it without asking")


@contextmanager
def _usb_link(port: str) -> Iterator[SerialLink]:
    try:
        link = SerialLink(port)
    except LinkError as exc:
        raise UserError(f"cannot reach an insole on {port}: {exc}", advice=exc.advice) from exc
    with link:
        try:
            link.ping(timeout_s=10)  # the first answer also waits out the firmware's start-up
        except (OSError, LinkError) as exc:
            raise UserError(
                f"cannot reach an insole on {port}: {exc}", advice=exc.advice if isinstance(exc, LinkError) else None
            ) from exc
        yield link


def _confirmed(question: str, yes: bool) -> bool:
    if yes:
        return True
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:  # no terminal to ask on
        raise UserError(f"{question} needs a confirmation", advice="pass --yes to confirm without a prompt") from None
    return answer.strip().lower() in ("y", "yes")


def _cancelled(command: str) -> int:
    print(f"insole {command}: cancelled, nothing changed", file=sys.stderr)
    return 1


def run_bonds_list(args: argparse.Namespace) -> int:
    with _usb_link(args.port) as link:
        bonds = link.list_bonds()
    if not bonds.peers:
        print(f"no host is bonded with the insole on {args.port}")
        return 0
    print(f"{'address':<19}type")
    for peer in bonds.peers:
        print(f"{peer.address:<19}{peer.type_name}")
    return 0


def run_bonds_clear(args: argparse.Namespace) -> int:
    if not _confirmed(f"Forget every host bonded with the insole on {args.port}?", args.yes):
        return _cancelled("bonds clear")
    with _usb_link(args.port) as link:
        link.clear_bonds()
    print(f"every bond forgotten; a host pairs again within a pairing window (insole pair --port {args.port})")
    return 0


def run_factory_reset(args: argparse.Namespace) -> int:
    question = (
        f"Reset the insole on {args.port} to its factory state (settings, bonds and logged events are lost)?"
    )
    if not _confirmed(question, args.yes):
        return _cancelled("factory-reset")
    with _usb_link(args.port) as link:
        try:
            link.factory_reset()
        except DeviceError as exc:
            if exc.code == ErrorCode.BAD_STATE and exc.detail == _UNCHANGED_SETTINGS_FILE:
                raise UserError(
                    "the insole reset itself but could not remove its settings file: "
                    "its old settings would come back at its next start",
                    advice="run insole factory-reset again; if it keeps failing, reflash it (insole flash)",
                ) from exc
            raise
    print(f"the insole on {args.port} is as it left the factory: default settings, no bonds, empty logs")
    return 0


def run_pair(args: argparse.Namespace) -> int:
    if not OPEN_PAIRING_MIN_S <= args.seconds <= OPEN_PAIRING_MAX_S:
        raise UserError(f"--seconds {args.seconds} is outside {OPEN_PAIRING_MIN_S}..{OPEN_PAIRING_MAX_S}")
    with _usb_link(args.port) as link:
        try:
            link.open_pairing(args.seconds)
        except DeviceError as exc:
            if exc.code == ErrorCode.BAD_STATE:
                raise UserError(f"the insole on {args.port} has no radio: there is nothing to pair") from exc
            raise
    print(f"pairing window open for {args.seconds} s: pair the new host with the insole now")
    return 0
