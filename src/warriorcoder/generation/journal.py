"""The request journal: every LLM call keyed by what determines its answer, on disk at once.

SQLite in WAL mode, one row per call, committed as each result arrives: a commit is atomic (a
killed process never leaves a torn row), lookups by key need no scan of the whole history,
a reader (`warriorcoder status`) can read while a phase writes, and a failed call is an upsert
away from being replaced by its retry. With `synchronous=NORMAL` a WAL commit is a write
without fsync (~20 us); a power cut may lose the last commits, a killed process loses nothing.

The key is the sha256 of the canonical JSON of (model id + revision, kind, prompt or
messages, every sampling parameter including seed, stop and grammar). Endpoint tokens and
headers never enter it or the journal.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from warriorcoder.errors import JournalError
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    GenerationResult,
    Request,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    expert TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_revision TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT,
    finish_reason TEXT,
    generated_tokens INTEGER,
    prompt_tokens INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    url TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_UPSERT = """
INSERT INTO calls (key, expert, model_id, model_revision, kind, request, text, finish_reason,
                   generated_tokens, prompt_tokens, error, attempts, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    text = excluded.text, finish_reason = excluded.finish_reason,
    generated_tokens = excluded.generated_tokens, prompt_tokens = excluded.prompt_tokens,
    error = excluded.error, attempts = calls.attempts + excluded.attempts,
    updated_at = excluded.updated_at
WHERE calls.error IS NOT NULL
"""


def request_payload(request: Request, model_id: str, model_revision: str) -> dict[str, Any]:
    """What determines a call's answer, as plain data (the expert's name is not part of it)."""
    p = request.params
    params = {
        "max_new_tokens": p.max_new_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "seed": p.seed,
        "stop": list(p.stop),
        "grammar": p.grammar,
    }
    payload: dict[str, Any] = {"model": f"{model_id}@{model_revision}", "params": params}
    if isinstance(request, CompletionRequest):
        payload["kind"] = "completion"
        payload["prompt"] = request.prompt
    elif isinstance(request, ChatRequest):
        payload["kind"] = "chat"
        payload["messages"] = [list(m) for m in request.messages]
    else:
        raise TypeError(f"not a generation request: {request!r}")
    return payload


def request_key(request: Request, model_id: str, model_revision: str) -> tuple[str, str]:
    """(sha256 key, canonical JSON) of one call."""
    canonical = json.dumps(
        request_payload(request, model_id, model_revision),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest(), canonical


class Journal:
    """The journal file; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as error:  # not SQLite, damaged, a folder, locked
            raise JournalError(
                f"journal {self.path} cannot be opened ({error}); if it is damaged, move it "
                "away to start a new one (generation.journal)"
            ) from None
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema {row[0]}, this warriorcoder writes "
                f"{SCHEMA_VERSION}; move it away to start a new one"
            )

    def results(self, keys: Iterable[str]) -> dict[str, GenerationResult]:
        """The successful results already journaled for these keys."""
        keys = list(keys)
        found: dict[str, GenerationResult] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT key, text, finish_reason, generated_tokens, prompt_tokens, model_id, "
                    f"model_revision FROM calls WHERE error IS NULL AND key IN ({marks})",
                    chunk,
                )
                for key, text, reason, generated, prompt, model_id, revision in rows:
                    found[key] = GenerationResult(
                        text=text,
                        finish_reason=reason,
                        generated_tokens=generated,
                        prompt_tokens=prompt,
                        model_id=model_id,
                        model_revision=revision,
                    )
        return found

    def record(
        self,
        key: str,
        expert: str,
        kind: str,
        canonical: str,
        result: GenerationResult,
        attempts: int,
    ) -> None:
        """Store one result (or failure) and commit; a failure never replaces a success."""
        row = (
            key,
            expert,
            result.model_id,
            result.model_revision,
            kind,
            canonical,
            result.text,
            result.finish_reason,
            result.generated_tokens,
            result.prompt_tokens,
            result.error,
            attempts,
            time.time(),
        )
        with self._lock:
            self._db.execute(_UPSERT, row)

    def counts(self) -> dict[str, int]:
        """Journaled calls: `ok` and `failed`."""
        with self._lock:
            ok, failed = self._db.execute(
                "SELECT SUM(error IS NULL), SUM(error IS NOT NULL) FROM calls"
            ).fetchone()
        return {"ok": ok or 0, "failed": failed or 0}

    def save_info(self, url: str, info: dict[str, Any]) -> None:
        """Remember an endpoint's `/info`, to read cached results while it is down."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                (url, json.dumps(info, sort_keys=True), time.time()),
            )

    def load_info(self, url: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT info FROM endpoints WHERE url = ?", (url,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
