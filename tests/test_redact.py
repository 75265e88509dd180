"""No credential reaches a file, a message or the recorded command line, whichever way it came in."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.redact import MASK, Redactor, api_key_env_problem, redact_url, url_secrets
from tests.conftest import SLOWING_SEED

KEY = "sk-proj-Zq8VtH2mN4pW6yB1cX3rL5kJ7"
PASSWORD = "hunter2-s3cret"
QUERY_SECRET = "qs-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("url", "written"),
    [
        ("https://user:pa%40ss@example.org:8443/v1", "https://example.org:8443/v1"),
        (
            "http://[::1]:8080/v1?api-key=abc&api-version=2024-06-01",
            f"http://[::1]:8080/v1?api-key={MASK}&api-version=2024-06-01",
        ),
        ("http://localhost:8000/v1#token", f"http://localhost:8000/v1#{MASK}"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
    ],
)
def test_urls_are_written_without_credentials(url: str, written: str) -> None:
    assert redact_url(url) == written


def test_secrets_are_masked_as_whole_tokens_only() -> None:
    redact = Redactor(["x", KEY])
    message = "max_tokens exceeded for model x-large; key x was refused"
    assert redact(message) == f"max_tokens exceeded for model x-large; key {MASK} was refused"
    assert redact(f"Bearer {KEY}.") == f"Bearer {MASK}."
    assert redact(f"token={KEY}&y=1") == f"token={MASK}&y=1"
    assert Redactor([])("nothing to hide") == "nothing to hide"


def test_a_percent_encoded_password_is_masked_in_both_spellings() -> None:
    redact = Redactor(url_secrets("https://me:p%40ss-word@host/v1"))
    assert MASK in redact("tried p@ss-word") and MASK in redact("tried p%40ss-word")
    assert "me" not in redact("user me rejected").split()


def test_a_key_pasted_for_the_variable_name_is_recognised_and_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY_VAR", KEY)
    assert api_key_env_problem("OPENAI_API_KEY") is None and api_key_env_problem("MY_KEY_VAR") is None
    for pasted in (KEY, "a1b2c3d4e5f6a7b8c9d0e1f2"):
        problem = api_key_env_problem(pasted)
        assert problem is not None and pasted not in problem


def test_the_recorded_command_line_carries_no_credential() -> None:
    argv = [
        "evaluator",
        "run",
        "--base-url",
        f"http://bob:{PASSWORD}@127.0.0.1:9/v1?key={QUERY_SECRET}",
        "--api-key-env",
        KEY,
        f"--api-key-env={KEY}",
        "--param",
        f"user={PASSWORD}",
    ]
    recorded = " ".join(Redactor(url_secrets(argv[3])).argv(argv))
    for secret in (KEY, PASSWORD, QUERY_SECRET, "bob"):
        assert secret not in recorded
    assert "127.0.0.1:9/v1" in recorded and "--api-key-env" in recorded


def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "s.txt").write_text(SLOWING_SEED.read_text())
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _everything_written(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_a_run_with_credentials_in_the_base_url_writes_and_prints_none_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_server, repo: Path
) -> None:
    workdir = _workdir(tmp_path, monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fake_server()
    host = server.url.removeprefix("http://")
    base_url = f"http://bob:{PASSWORD}@{host}?key={QUERY_SECRET}"
    code = main(
        [
            "run",
            "transcripts",
            "-r",
            str(repo / "rubrics" / "act_fidelity.yaml"),
            "--base-url",
            base_url,
            "--model",
            "fake-judge",
            "--no-progress",
            "--cache",
            str(workdir / "cache.sqlite"),
            "--run-id",
            "r",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (workdir / "results" / "r" / "judgments.jsonl").stat().st_size > 0
    written = _everything_written(workdir) + out.encode() + err.encode()
    for secret in (KEY, PASSWORD, QUERY_SECRET):
        assert secret.encode() not in written, secret
    manifest = (workdir / "results" / "r" / "manifest.json").read_text()
    assert f"http://{host}" in manifest and MASK in manifest
    basic = "Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    assert server.received and all(r.headers["authorization"] == basic for r in server.received)


def test_an_error_message_never_shows_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    _workdir(tmp_path, monkeypatch)
    code = main(["run", "-r", str(repo / "rubrics" / "pacing.yaml"), "--api-key-env", KEY, "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and "--api-key-env takes the NAME" in err
    assert KEY not in out + err
    assert not (tmp_path / "results").exists()
