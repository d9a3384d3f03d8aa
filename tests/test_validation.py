"""`insole validate --quick` in CI: every table row, with generous floors under its goals.

The exact figures come from `insole validate` (README); these floors catch a
regression without making the build flaky on a noisy shared machine.
"""

from __future__ import annotations

import math

import pytest

from conftest import require_shared_data
from insole.cli import main
from insole.validation.suite import ROWS, build_rows
from insole.validation.table import Row

# row name -> {metric: (op, floor)}; generous against the goals in insole.validation.suite
FLOORS: dict[str, dict[str, tuple[str, float]]] = {
    "gaitpdb": {"f1": (">=", 0.98), "ic_mae_ms": ("<=", 15.0)},
    "gaitpdb time-reversed": {"f1": (">=", 0.9), "direction_pct": (">=", 90.0)},
    "Moticon, both": {"f1": (">=", 0.95), "ic_mae_ms": ("<=", 30.0), "to_mae_ms": ("<=", 30.0)},
    "Moticon time-reversed": {"f1": (">=", 0.9), "direction_pct": (">=", 90.0)},
    "gaitmap, IMU only": {"f1": (">=", 0.95), "to_f1": (">=", 0.93), "ic_mae_ms": ("<=", 25.0), "to_mae_ms": ("<=", 25.0)},
    "gaitmap time-reversed": {"direction_pct": (">=", 90.0), "f1": (">=", 0.9)},
    "gaitmap FPA": {"fpa_mae_deg": ("<=", 3.0)},
    "Moticon time-reversed, IMU": {"direction_pct": (">=", 90.0)},
    "simulated backward": {"direction_pct": (">=", 97.0), "fpa_mae_deg": ("<=", 1.5)},
    "simulated turns": {"turning_backward": ("<=", 0)},
    "simulated FPA sweep, IMU tilted": {"fpa_mae_deg": ("<=", 1.5), "direction_pct": (">=", 97.0)},
    "simulated, FPA": {"direction_pct": (">=", 97.0), "f1": (">=", 0.9), "fpa_mae_deg": ("<=", 1.5)},
    "simulated heel raises": {"raise_count_error": ("<=", 0)},
}


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    for _, folder in ROWS.values():
        if folder is not None:
            require_shared_data(folder)
    built, missing = build_rows(list(ROWS), quick=True)
    assert not missing
    return built


def _check(row: Row, metric: str, op: str, floor: float) -> None:
    value = getattr(row, metric)
    assert value is not None and not (isinstance(value, float) and math.isnan(value)), (row.data, metric)
    assert (value >= floor) if op == ">=" else (value <= floor), f"{row.data}: {metric} = {value}, floor {op} {floor}"


@pytest.mark.micropython
@pytest.mark.realdata
@pytest.mark.parametrize("prefix", list(FLOORS))
def test_table_row_meets_its_floor(rows: list[Row], prefix: str) -> None:
    matching = [r for r in rows if r.data.startswith(prefix)]
    assert matching, f"no row starts with {prefix!r}"
    for row in matching:
        for metric, (op, floor) in FLOORS[prefix].items():
            _check(row, metric, op, floor)


@pytest.mark.micropython
def test_validate_command_prints_the_table_and_fails_on_a_missed_goal(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", "--quick", "--rows", "sim-raises"])
    out = capsys.readouterr().out
    assert out.startswith("| data | reference | steps | IC F1 | TO F1 |")
    assert "simulated heel raises" in out
    assert status == (0 if "| yes |" in out else 1)


def test_validate_rejects_unknown_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--rows", "nope"]) == 2
    assert "unknown rows nope" in capsys.readouterr().err
