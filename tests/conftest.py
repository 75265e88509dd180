"""Shared fixtures: the repository's bundled inputs, and small files written per test."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IGNORING_SEED = REPO / "transcripts" / "000_76910fef4a2e608d.txt"  # the therapist pushes on
SLOWING_SEED = REPO / "transcripts" / "004_d8361cbb940345fc.txt"  # the therapist slows down


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def rubrics_dir() -> Path:
    return REPO / "rubrics"


@pytest.fixture
def write(tmp_path: Path):
    """Write a file under tmp_path and return its path: write("a/b.txt", "text")."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def fake_server():
    """Start scripted OpenAI-compatible servers on 127.0.0.1: fake_server(script=[...], latency=...)."""
    from tests.fake_openai import FakeOpenAI

    servers = []

    def _start(**kwargs):
        server = FakeOpenAI(**kwargs).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def judge_session(tmp_path: Path, no_llm_env: None):
    """Judge one made-up session with the pacing rubric and the rules judge, offline; returns the run
    folder: judge_session({"session_id": "...", "site": "..."}, therapist="-Of course.")."""
    import json

    from evaluator.config import RunConfig
    from evaluator.runner import run

    def _judge(fields: dict, therapist: str = "Of course.") -> Path:
        messages = [{"role": "user", "content": "Can we slow down?"}, {"role": "assistant", "content": therapist}]
        session = tmp_path / "in.jsonl"
        session.write_text(json.dumps({**fields, "messages": messages}) + "\n", encoding="utf-8")
        config = RunConfig(
            transcripts=[session], rubrics=[REPO / "rubrics" / "pacing.yaml"], output=tmp_path, show_progress=False
        )
        return run(config).run_dir

    return _judge


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or base URL from the developer's shell leaks into a test."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def vcr_config() -> dict:
    """Cassettes pin the judge's requests (model, messages, schema) and replay the replies. Secrets are
    filtered before anything is written; requests match on their parsed body, so concurrent calls
    get their own replies and any change to a prompt, template or schema shows as a mismatch."""
    return {
        "filter_headers": ["authorization", "openai-organization", "openai-project", "cookie", "set-cookie", "api-key"],
        "match_on": ["method", "path", "body"],
        "decode_compressed_response": True,
    }


CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's Chromium; the browser tests skip without it, except in CI, which installs it."""
    path = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: install it with apt-get install chromium")
        pytest.skip("install Debian's chromium to run the browser tests: apt-get install chromium")
    return path


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium driven by Playwright (playwright-core, no browser download)."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shelf_parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each transcript is parsed back from a run's shelf (transcript_shelf), by id."""
    from evaluator.transcript_shelf import TranscriptShelf

    parses = Counter[str]()
    getitem = TranscriptShelf.__getitem__

    def counting_getitem(shelf: TranscriptShelf, index):  # type: ignore[no-untyped-def]
        found = getitem(shelf, index)
        parses[found.id] += 1
        return found

    monkeypatch.setattr(TranscriptShelf, "__getitem__", counting_getitem)
    return parses
