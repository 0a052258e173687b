"""The results store: one SQLite row per run point, appended in its own transaction.

Rows are never updated: re-running a point with --force appends a newer row, and readers take the
latest row per point key. Killing a sweep mid-way loses at most the point in flight, because each
row is one committed INSERT (SQLite's journal makes it all-or-nothing).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from mlperf_ext.errors import ConfigError

STATUSES = ("ok", "failed", "refused", "timeout", "crashed")

#: column -> SQLite type; the order is the CSV/table order
COLUMNS: dict[str, str] = {
    "point_key": "TEXT NOT NULL",
    "run_id": "TEXT NOT NULL",
    "status": "TEXT NOT NULL",
    "error": "TEXT",
    "model_name": "TEXT",
    "family": "TEXT",
    "precision": "TEXT",
    "pruning": "REAL",
    "model_path": "TEXT",
    "model_sha256": "TEXT",
    "dataset": "TEXT",
    "backend": "TEXT",
    "device": "TEXT",
    "platform": "TEXT",
    "scenario": "TEXT",
    "mode": "TEXT",
    "profile": "TEXT",
    "compliant": "INTEGER",  # 1 only for a VALID run under the submission profile
    "batch": "INTEGER",
    "threads": "INTEGER",
    "streams": "INTEGER",
    "operating_mode": "TEXT",
    "loadgen_version": "TEXT",
    "valid": "INTEGER",
    "metric_name": "TEXT",
    "metric_value": "REAL",
    "sys_lat_mean_ms": "REAL",
    "sys_lat_p50_ms": "REAL",
    "sys_lat_p90_ms": "REAL",
    "sys_lat_p99_ms": "REAL",
    "sys_throughput": "REAL",  # samples/s as LoadGen measured them
    "compute_batch": "INTEGER",
    "compute_lat_mean_ms": "REAL",  # per batch of compute_batch samples
    "compute_lat_p50_ms": "REAL",
    "compute_lat_p90_ms": "REAL",
    "compute_lat_p99_ms": "REAL",
    "compute_throughput": "REAL",  # compute fps = compute_batch / mean compute latency
    "accuracy": "REAL",
    "accuracy_good": "INTEGER",
    "accuracy_total": "INTEGER",
    "callback_errors": "INTEGER",
    "runtime_json": "TEXT",  # the backend's describe(): runtime, version, providers really used
    "settings_json": "TEXT",  # LoadGen's effective settings
    "host_json": "TEXT",
    "config_json": "TEXT",  # the resolved RunPoint
    "started_at": "TEXT",
    "finished_at": "TEXT",
    "run_dir": "TEXT",
}
JSON_COLUMNS = ("runtime_json", "settings_json", "host_json", "config_json")

class ResultsStore:
    """Append-only table of run points in `<workdir>/results.sqlite`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            cols = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
            conn.execute(f"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            conn.execute("CREATE INDEX IF NOT EXISTS runs_point ON runs(point_key)")
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            missing = [c for c in COLUMNS if c not in have]
            for name in missing:  # forward-compatible with stores made by an older version
                conn.execute(f'ALTER TABLE runs ADD COLUMN "{name}" {COLUMNS[name].replace(" NOT NULL", "")}')

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def append(self, row: dict) -> None:
        """Insert one row atomically; JSON columns may be given as dicts."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        if row.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
        values = {k: (json.dumps(v, sort_keys=True, default=str) if k in JSON_COLUMNS and
                      not isinstance(v, str) and v is not None else v) for k, v in row.items()}
        names = ", ".join(f'"{k}"' for k in values)
        marks = ", ".join("?" for _ in values)
        conn = self._connect()
        try:
            with conn:
                conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(values.values()))
        finally:
            conn.close()

    def has_ok(self, point_key: str) -> bool:
        """True when the latest row of this point succeeded (such points are skipped on re-runs)."""
        latest = self.latest(point_key)
        return latest is not None and latest["status"] == "ok"

    def latest(self, point_key: str) -> dict | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT * FROM runs WHERE point_key = ? ORDER BY id DESC LIMIT 1",
                               (point_key,)).fetchone()
        finally:
            conn.close()
        return dict(row) if row else None

    def rows(self, status: str | None = None, latest_only: bool = True) -> list[dict]:
        """Rows in insertion order; by default only the newest row of each point."""
        query = "SELECT * FROM runs"
        if latest_only:
            query += " WHERE id IN (SELECT MAX(id) FROM runs GROUP BY point_key)"
        query += " ORDER BY id"
        conn = self._connect()
        try:
            rows = [dict(r) for r in conn.execute(query)]
        finally:
            conn.close()
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        return rows

    def dataframe(self, rows: Iterable[dict] | None = None):
        import pandas as pd

        data = list(self.rows() if rows is None else rows)
        return pd.DataFrame(data, columns=["id", *COLUMNS])

    def export_csv(self, out: Path, latest_only: bool = True) -> int:
        """Write the rows as CSV (atomically); returns the number of rows."""
        if out.is_dir():
            raise ConfigError(f"{out} is a directory; fix: name a .csv file")
        if not out.parent.is_dir():
            raise ConfigError(f"folder {out.parent} does not exist; fix: create it or name another path")
        frame = self.dataframe(self.rows(latest_only=latest_only))
        tmp = out.with_name(out.name + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(out)
        return len(frame)
