"""Outcomes of (answer, test) pairs cached by content, so a rerun executes nothing twice.

The key is a sha256 of the answer's code, the test, the limits, the isolation and the version
of the execution protocol: the same pair under the same conditions has one outcome, whichever
run produced it. Stored in one SQLite file (e.g. `<journal folder>/outcomes.sqlite`); each
answer's outcomes are committed as soon as its sandboxed process has ended, so a killed run
re-executes only the pairs whose process had not ended.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from warriorcoder.sandbox.isolation import Limits
from warriorcoder.sandbox.outcome import Outcome

PROTOCOL_VERSION = 1
"""Bumped whenever the way a test is run or decided changes (old outcomes then miss)."""


def cache_key(code: str, test: str, limits: Limits, isolation: str) -> str:
    """The content key of one (answer, test) pair under these conditions."""
    payload = json.dumps(
        {"protocol": PROTOCOL_VERSION, "code": code, "test": test,
         "limits": dataclasses.asdict(limits), "isolation": isolation},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class OutcomeCache:
    """A thread-safe SQLite table key -> Outcome. `executed` counts pairs stored by `put_many`
    through this object (the pairs this process actually ran)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (key TEXT PRIMARY KEY, status TEXT NOT NULL, "
            "detail TEXT NOT NULL, weak INTEGER NOT NULL)"
        )
        self._db.commit()
        self.executed = 0

    def get_many(self, keys: list[str]) -> dict[str, Outcome]:
        """The cached outcomes among `keys`."""
        found: dict[str, Outcome] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, status, detail, weak FROM outcomes WHERE key IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                for key, status, detail, weak in rows:
                    found[key] = Outcome(status, detail, bool(weak))
        return found

    def put_many(self, items: dict[str, Outcome]) -> None:
        """Store and commit (one transaction)."""
        if not items:
            return
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?)",
                [(k, o.status, o.detail, int(o.weak)) for k, o in items.items()],
            )
            self._db.commit()
            self.executed += len(items)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> OutcomeCache:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
