"""The `insole` command line. Each subcommand lives in its own module under `insole.commands`.

Errors: an :class:`~insole.errors.InsoleError` ends a command with one line (what went
wrong, and what to do about it) and its ``exit_code`` (2 for unusable input); Ctrl-C
with 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from insole.errors import InsoleError

# Module names under insole.commands; each defines add_parser(subparsers).
COMMAND_MODULES = (
    "demo", "simulate", "import_", "record", "export", "hil", "validate", "cue", "scan", "monitor", "flash",
    "maintenance", "peripheral",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="insole", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"insole.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except InsoleError as exc:
        print(f"insole {args.command}: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
