"""The results store: one SQLite row per point run, appended in its own transaction.

Its columns are derived from `mlperf_ext.result` (the one definition of a result), so a new field there
is a new column here; a store made by an older version gains the new columns when it is opened.
Rows are never updated: re-running a point appends a newer row, and readers take the latest row per
point key. Killing a sweep mid-way loses at most the point in flight, because each row is one
committed INSERT (SQLite's journal makes it all-or-nothing). A file that is not a readable store is
refused, never overwritten.

`compliant` is the audit checker's verdict on a run, kept in a table of its own (`verdicts`, appended
by the checker only) and joined in when rows are read: the runner cannot set it, and a run nobody has
checked reads as unknown (NULL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.result import STATUSES, PointResult, columns

COLUMNS: dict[str, str] = columns()
#: the store's file name inside a workdir (the rest of the workdir layout: tiers/runner/layout.py)
STORE_NAME = "results.sqlite"


class ResultsStore:
    """Append-only table of point runs in `<workdir>/results.sqlite`."""

    def __init__(self, path: Path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"no results store at {self.path}; fix: run 'mlperf-ext run' first or pass --workdir")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                cols = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
                conn.execute(f"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
                conn.execute("CREATE INDEX IF NOT EXISTS runs_point ON runs(point_key)")
                conn.execute("CREATE TABLE IF NOT EXISTS verdicts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "run_id TEXT NOT NULL, compliant INTEGER NOT NULL, problems TEXT, checker TEXT, "
                             "checked_at TEXT)")
                have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
                for name in (c for c in COLUMNS if c not in have):  # a store made by an older version
                    conn.execute(f'ALTER TABLE runs ADD COLUMN "{name}" {COLUMNS[name]}')
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a readable results store ({exc}); fix: move it away (it is "
                              "kept as it is) or pass another --workdir") from exc
        except OSError as exc:
            raise ConfigError(f"cannot create the results store {self.path} ({exc.strerror or exc}); fix: pass a "
                              "writable --workdir") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        conn = self._connect()
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} cannot be read ({exc}); fix: move it away or pass another "
                              "--workdir") from exc
        finally:
            conn.close()

    def append(self, result: PointResult) -> None:
        """Insert one result atomically."""
        if result.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {result.status!r}")
        if not result.point_key or not result.run_id:
            raise ValueError("a stored result needs its point_key and run_id")
        if result.compliant is not None:
            raise ValueError("compliant is the audit checker's verdict (record_verdict), never part of a run's row")
        values = {k: v for k, v in result.to_row().items() if v is not None}
        names = ", ".join(f'"{k}"' for k in values)
        marks = ", ".join("?" for _ in values)
        conn = self._connect()
        try:
            with conn:
                conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(values.values()))
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"cannot write to {self.path} ({exc}); fix: check that the workdir is writable") from exc
        finally:
            conn.close()

    def record_verdict(self, run_id: str, compliant: bool, problems: list[str], checker: str) -> None:
        """Append the audit checker's verdict on one run (the latest verdict is the one rows show)."""
        import json
        from datetime import datetime, timezone

        conn = self._connect()
        try:
            with conn:
                conn.execute("INSERT INTO verdicts (run_id, compliant, problems, checker, checked_at) VALUES "
                             "(?, ?, ?, ?, ?)", (run_id, int(compliant), json.dumps(problems), checker,
                                                  datetime.now(timezone.utc).isoformat()))
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"cannot write to {self.path} ({exc}); fix: check that the workdir is writable") from exc
        finally:
            conn.close()

    def verdict(self, run_id: str) -> dict | None:
        """The latest verdict on a run: compliant, problems, checker, checked_at (None when never checked)."""
        import json

        rows = self._query("SELECT * FROM verdicts WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,))
        if not rows:
            return None
        row = rows[0]
        return {"compliant": bool(row["compliant"]), "problems": json.loads(row["problems"] or "[]"),
                "checker": row["checker"], "checked_at": row["checked_at"]}

    #: runs joined with the latest verdict on each (the only source of `compliant`)
    _JOINED = ("SELECT runs.*, v.compliant AS _verdict FROM runs LEFT JOIN verdicts v ON v.id = "
               "(SELECT MAX(id) FROM verdicts WHERE verdicts.run_id = runs.run_id)")

    def _joined(self, where: str = "", args: tuple = ()) -> list[dict]:
        rows = self._query(f"{self._JOINED} {where}", args)
        for row in rows:
            row["compliant"] = row.pop("_verdict")
        return rows

    def latest(self, point_key: str) -> dict | None:
        rows = self._joined("WHERE runs.point_key = ? ORDER BY runs.id DESC LIMIT 1", (point_key,))
        return rows[0] if rows else None

    def latest_status(self, point_key: str) -> str | None:
        row = self.latest(point_key)
        return None if row is None else row["status"]

    def run_ids(self) -> set[str]:
        return {r["run_id"] for r in self._query("SELECT run_id FROM runs")}

    def by_run_id(self, run_id: str) -> dict | None:
        rows = self._joined("WHERE runs.run_id = ? ORDER BY runs.id DESC LIMIT 1", (run_id,))
        return rows[0] if rows else None

    def rows(self, status: str | None = None, latest_only: bool = True) -> list[dict]:
        """Rows in insertion order; by default only the newest row of each point."""
        where = "WHERE runs.id IN (SELECT MAX(id) FROM runs GROUP BY point_key)" if latest_only else ""
        rows = self._joined(where + " ORDER BY runs.id")
        return rows if status is None else [r for r in rows if r["status"] == status]

    def results(self, status: str | None = None, latest_only: bool = True) -> list[PointResult]:
        return [PointResult.from_row(r) for r in self.rows(status, latest_only)]

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
        try:
            frame.to_csv(tmp, index=False)
            tmp.replace(out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {out} ({exc.strerror or exc}); fix: name a writable path") from exc
        return len(frame)
