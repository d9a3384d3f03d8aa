"""Where the repository's non-Python parts live (the package is installed editable)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
LAYOUTS_DIR = REPO_ROOT / "hardware" / "layouts"
PROTOCOL_VECTORS = REPO_ROOT / "docs" / "protocol-vectors.json"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
