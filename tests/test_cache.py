"""The response cache: keyed by everything that changes a reply, survives reopening."""

from __future__ import annotations

from pathlib import Path

from evaluator.judges.cache import ResponseCache, cache_key

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_keys_change_with_anything_that_changes_a_reply() -> None:
    base = cache_key(BODY, "http://a/v1", 0)
    assert base == cache_key(dict(reversed(list(BODY.items()))), "http://a/v1", 0)
    assert base != cache_key(BODY, "http://a/v1", 1)
    assert base != cache_key(BODY, "http://b/v1", 0)
    assert base != cache_key({**BODY, "temperature": 0.5}, "http://a/v1", 0)


def test_put_get_reopen_and_clear(tmp_path: Path) -> None:
    path = tmp_path / "c" / "responses.sqlite"
    cache = ResponseCache(path)
    assert cache.get("k") is None
    cache.put("k", '{"choices": []}')
    cache.close()
    reopened = ResponseCache(path)
    assert reopened.get("k") == '{"choices": []}' and len(reopened) == 1
    assert (reopened.hits, reopened.misses) == (1, 0)
    assert reopened.clear() == 1 and len(reopened) == 0
    reopened.close()


def test_entries_are_served_at_once_and_kept_on_close(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path, batch=1000, flush_every=3600)  # nothing committed before close
    for n in range(300):
        cache.put(f"k{n}", f"reply {n}")
    assert cache.get("k7") == "reply 7"
    cache.close()
    reopened = ResponseCache(path)
    assert len(reopened) == 300 and reopened.get("k299") == "reply 299"
    reopened.close()


def test_a_full_batch_is_committed_without_waiting_for_close(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path, batch=10, flush_every=3600)
    for n in range(10):
        cache.put(f"k{n}", "reply")
    other = ResponseCache(path)  # another process's view: only committed entries
    assert len(other) == 10
    other.close()
    cache.close()
