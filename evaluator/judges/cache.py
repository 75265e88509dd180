"""A response cache in SQLite, keyed by everything that can change a reply.

The key covers the endpoint, model, every generation parameter, the messages, the response format
and the sample index, so an unchanged re-run sends no request and editing one criterion re-sends
only that criterion's items. Only successful HTTP replies are stored; what a reply *means* (valid or
not) is decided again on every read, so a fixed parser never serves a stale verdict.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson


def cache_key(request: dict[str, Any], base_url: str, sample: int) -> str:
    """Keys sorted at every level, so the order parameters were written in does not matter."""
    blob = orjson.dumps(
        {"base_url": base_url, "request": request, "sample": sample},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(blob).hexdigest()


class ResponseCache:
    """Get and put raw response JSON. One connection, WAL mode: a killed run leaves a consistent file.

    Writes are gathered and committed together, every `batch` entries or `flush_every` seconds and on
    close: a transaction per reply cost more CPU than all the rest of the cache. A killed run loses at
    most the last moment's entries, never a judgment (judgments.jsonl holds those)."""

    def __init__(self, path: Path, batch: int = 256, flush_every: float = 1.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        self.batch, self.flush_every = batch, flush_every
        self._pending: dict[str, str] = {}
        self._flushed = time.monotonic()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> str | None:
        response = self._pending.get(key)
        if response is None:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            response = None if row is None else str(row[0])
        if response is None:
            self.misses += 1
        else:
            self.hits += 1
        return response

    def put(self, key: str, response: str) -> None:
        self._pending[key] = response
        if len(self._pending) >= self.batch or time.monotonic() - self._flushed >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Commit the gathered entries in one transaction."""
        self._flushed = time.monotonic()
        if not self._pending:
            return
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)", self._pending.items())
        self._db.execute("COMMIT")
        self._pending.clear()

    def clear(self) -> int:
        self._pending.clear()
        removed = self._db.execute("DELETE FROM responses").rowcount
        self._db.execute("VACUUM")
        return int(removed)

    def __len__(self) -> int:
        self.flush()
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self.flush()
        self._db.close()
