"""A session's results (and samples) as a Parquet dataset, hive-partitioned (docs/export.md).

    ROOT/<table>/participant=<P>/session=<S>/foot=<left|right>/part-0.parquet

with ``<table>`` one of steps, cues, heel_raises, strides (the tables of
:mod:`insole.export.results_tables`) and samples. Many sessions, of many participants,
share one ROOT: each export adds its own partitions, so a folder of sessions is one
dataset for DuckDB, Spark, Trino or pyarrow. The partition keys live in the folder
names only, as hive partitioning has it. A table without rows still gets its file (the
schema, zero rows), so that every session has every table.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]  # no type information published
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from insole.analysis.results import SessionResults
from insole.errors import UserError
from insole.export.results_tables import TABLES, ColumnKind, Table
from insole.model import FootStream, Side
from insole.protocol import IMU_FIELD_NAMES

SAMPLES_TABLE = "samples"
TABLE_NAMES = (*(t.name for t in TABLES), SAMPLES_TABLE)
PART_FILE = "part-0.parquet"
_ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}


def partition_dir(root: Path, table: str, participant: str, session: str, side: Side) -> Path:
    return root / table / f"participant={participant}" / f"session={session}" / f"foot={side}"


def partition_dirs(root: Path, participant: str, session: str, sides: list[Side]) -> list[Path]:
    """Every folder an export of this session writes."""
    return [partition_dir(root, table, participant, session, side) for table in TABLE_NAMES for side in sides]


def check_partitions(root: Path, participant: str, session: str, sides: list[Side], force: bool) -> None:
    """The session's partitions may be written: ROOT is a folder (or can be made in an existing
    one), and none of them exists yet unless ``force``."""
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file; give the dataset's folder")
    if not root.exists() and not root.parent.is_dir():
        raise UserError(f"folder {root.parent} does not exist")
    for folder in partition_dirs(root, participant, session, sides):
        if folder.exists() and not force:
            raise UserError(
                f"{folder} exists: participant {participant}, session {session} is in the dataset already; "
                "use -f/--force to replace it, or --session to give this one another id"
            )


def _table_arrow(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([(c.name, _ARROW_TYPES[c.kind]) for c in table.columns])
    return pa.table({c.name: [row[c.name] for row in rows] for c in table.columns}, schema=schema)


def samples_arrow(stream: FootStream) -> pa.Table:
    """One foot's samples: index, t_s, p1..pN (its pressure unit), ax..az (m/s²), gx..gz (deg/s); null where lost."""
    columns: dict[str, Any] = {
        "index": pa.array(np.arange(stream.n_samples, dtype=np.int64)),
        "t_s": pa.array(stream.times_s()),
    }
    if stream.pressure is not None:
        for k in range(stream.n_pressure):
            columns[f"p{k + 1}"] = pa.array(stream.pressure[:, k], from_pandas=True)  # NaN → null
    if stream.acc_ms2 is not None and stream.gyro_dps is not None:
        imu = np.hstack([stream.acc_ms2, stream.gyro_dps])
        for k, name in enumerate(IMU_FIELD_NAMES):
            columns[name] = pa.array(imu[:, k], from_pandas=True)
    metadata = {b"pressure_unit": stream.pressure_unit.encode(), b"rate_hz": repr(stream.rate_hz).encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def write_parquet(results: SessionResults, root: Path, *, force: bool = False) -> dict[str, int]:
    """Write the session's partitions under ``root``; returns rows per table (both feet)."""
    check_partitions(root, results.participant, results.session, results.sides, force)
    counts: dict[str, int] = {}
    try:
        for table in TABLES:
            rows = table.rows(results)
            for side in results.sides:
                own = [row for row_side, row in rows if row_side == side]
                _write(
                    _table_arrow(table, own),
                    partition_dir(root, table.name, results.participant, results.session, side),
                )
            counts[table.name] = len(rows)
        counts[SAMPLES_TABLE] = 0
        for stream in results.streams:
            folder = partition_dir(root, SAMPLES_TABLE, results.participant, results.session, stream.side)
            _write(samples_arrow(stream), folder)
            counts[SAMPLES_TABLE] += stream.n_samples
    except OSError as exc:
        raise UserError(f"cannot write the Parquet dataset under {root}: {exc.strerror or exc}") from exc
    return counts


def _write(table: pa.Table, folder: Path) -> None:
    if folder.exists():  # replaced whole (checked with force above): no stale part files
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pq.write_table(table, folder / PART_FILE, compression="zstd")
