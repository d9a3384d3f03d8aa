"""What the package ships besides Python: the firmware and the sensor layouts.

Both live in the repository's own folders (``firmware/``, ``hardware/layouts/``) and
reach the package through the symlinks in ``insole/bundled/``; a wheel carries copies
of them as package data (pyproject.toml). So a checkout, an editable install and a
plain ``pip install .`` find them at the same place, beside this module.
"""

from __future__ import annotations

import os
from pathlib import Path

# Resolved: in a checkout these are the repository's folders themselves (so the
# firmware's own relative paths, e.g. its tests' ../../docs, hold).
BUNDLED_DIR = Path(__file__).parent / "bundled"
FIRMWARE_DIR = (BUNDLED_DIR / "firmware").resolve()  # insolefw/, boards/, drivers/, main.py
LAYOUTS_DIR = (BUNDLED_DIR / "layouts").resolve()  # <name>.json, see hardware/layouts/README.md

# Real recordings for `insole validate` (../shared/data beside a checkout); never shipped.
DATA_DIR_ENV = "INSOLE_DATA_DIR"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"


def shared_data_dir() -> Path:
    """The folder of reference recordings: ``$INSOLE_DATA_DIR``, else ``../shared/data``
    from the current directory (a checkout's root)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
