"""The `insole` command line. Each subcommand lives in its own module under `insole.commands`.

Errors: an :class:`~insole.errors.InsoleError` ends a command with one line (what went
wrong, and what to do about it) and its ``exit_code`` (2 for unusable input); Ctrl-C
with 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import signal
import sys
import threading

from insole.errors import InsoleError

# Module names under insole.commands; each defines add_parser(subparsers).
COMMAND_MODULES = (
    "demo", "simulate", "import_", "record", "export", "hil", "validate", "cue", "scan", "monitor", "flash",
    "maintenance", "peripheral", "calibrate", "report", "program",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from insole.protocol import PROTOCOL_VERSION

    parser = argparse.ArgumentParser(prog="insole", description=__doc__)
    parser.add_argument(
        "--version", action="version",
        version=f"insole {importlib.metadata.version('insole')} (protocol v{PROTOCOL_VERSION})",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"insole.commands.{name}")
        module.add_parser(subparsers)
    return parser


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    # A terminated command (a service manager, a test, `kill`) unwinds like Ctrl-C, so the
    # simulated insoles, bridges and radios it started are stopped with it, not orphaned.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except InsoleError as exc:
        print(f"insole {args.command}: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
