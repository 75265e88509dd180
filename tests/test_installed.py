"""The package as a user gets it: a wheel installed with plain pip, run from a folder that is not the
repository, finds the rubrics and prompts it ships (`-r pacing` with no ./rubrics/ anywhere)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SLOWING_SEED

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="building the wheel offline needs the build backend: pip install hatchling (in the dev extras)",
)


def test_an_installed_wheel_runs_a_bundled_rubric_by_name_from_anywhere(tmp_path: Path) -> None:
    """Built without build isolation and installed with --no-deps into a target folder, so it runs offline
    in a few seconds against the dependencies already installed; the source tree is kept off sys.path."""
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("therapist_evaluator-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], check=True)
    (elsewhere / "session.txt").write_text(SLOWING_SEED.read_text())
    script = (
        "import sys; sys.path = [p for p in sys.path if p not in ('', {repo!r})]; sys.path.insert(0, {target!r}); "
        "import evaluator; assert evaluator.__file__.startswith({target!r}), evaluator.__file__; "
        "from evaluator.cli import main; sys.exit(main(sys.argv[1:]))"
    ).format(repo=str(REPO), target=str(target))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTHONPATH")}
    argv = ["run", "--rubric", "pacing", "session.txt", "--no-progress", "--run-id", "r", "--no-cache"]
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, *argv], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    manifest = (elsewhere / "results" / "r" / "manifest.json").read_text()
    assert "_bundled" in manifest and "slow_down_responsiveness" in done.stdout
    listed = subprocess.run(
        [sys.executable, "-I", "-c", script, "rubrics"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "pacing  installed" in listed.stdout, listed.stderr
