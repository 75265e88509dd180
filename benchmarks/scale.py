"""Memory, report size and report load time as a run grows (issue 13).

    .venv/bin/python benchmarks/scale.py [--judgments 10000,100000] [--no-browser]

For each size N, writes synthetic sessions (20 therapist turns each) and a five-criterion rubric the
offline rules judge answers, then runs `evaluator run` in a fresh process (judging, summary.md and
report.html, as `make run` does) and prints: peak RSS of that process, its wall time, the size of
report.html (and of the report/ page folder a large run gets beside it), and the time headless Chromium
takes to load and draw report.html and, where there is one, the first transcript page (a screenshot,
minus the same for an empty page, so 0.0 s is as fast as an empty page). It prints figures; it asserts
nothing. 1,000,000 judgments take about 5 minutes (judging, summary.md, report.html and 10,000 pages)
on 2 free cores, up to 20 when others share them; 100,000 about 30 seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TURNS = 20
CHECKS = ("introduces_exercise", "validates_emotion", "checks_in", "question_count", "relative_length")
SCALES = {
    "question_count": "{type: count, unit: questions}",
    "relative_length": "{type: categorical, categories: [{label: shorter, description: s}, {label: similar, description: s},"
    " {label: longer, description: l}]}",
}
BINARY = '{type: binary, "yes": "it does", "no": "it does not"}'
PATIENT = ("I feel", "it is too much", "maybe", "can we slow down", "my partner", "I could not sleep", "at work")
THERAPIST = ("let us try a breathing exercise", "that sounds hard", "how is this pace for you?", "tell me more?")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def write_inputs(folder: Path, judgments: int) -> tuple[Path, Path]:
    """Sessions of TURNS therapist turns x len(CHECKS) criteria: `judgments` rounded up to whole sessions."""
    rng = random.Random(0)
    sessions = max(1, -(-judgments // (TURNS * len(CHECKS))))
    transcripts = folder / "transcripts"
    transcripts.mkdir(parents=True)
    for s in range(sessions):
        lines = []
        for _ in range(TURNS):
            lines.append("Patient: " + ", ".join(rng.choice(PATIENT) for _ in range(6)) + ".")
            lines.append("Therapist: " + " ".join(rng.choice(THERAPIST) for _ in range(3)))
        (transcripts / f"s{s:05d}.txt").write_text("\n\n".join(lines) + "\n")
    criteria = "".join(
        f"  - id: {check}\n    name: {check.replace('_', ' ')}\n    check: {check}\n"
        f"    question: Does the turn show {check.replace('_', ' ')}?\n    scale: {SCALES.get(check, BINARY)}\n"
        for check in CHECKS
    )
    rubric = folder / "scale.yaml"
    rubric.write_text(f"id: scale\ntitle: Scale benchmark\ncriteria:\n{criteria}")
    return transcripts, rubric


def measure(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process; os.wait4 gives that child's own usage."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KB


def browser_seconds(page: Path, repeat: int = 3) -> float:
    """Median time for headless Chromium to load, lay out and paint `page` (a screenshot)."""
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    flags += ["--disable-component-update", "--disable-sync", "--window-size=1300,2000", "--hide-scrollbars"]
    times = []
    with tempfile.TemporaryDirectory() as profile:
        for _ in range(repeat):
            argv = [CHROMIUM, *flags, f"--user-data-dir={profile}", f"--screenshot={profile}/shot.png", page.as_uri()]
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, timeout=900)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 if path.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judgments", default="10000,100000", help="comma-separated sizes (judgments per run)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium load time")
    parser.add_argument("--no-report", action="store_true", help="pass --no-report (summary.md is sized)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.judgments.split(",")]
    browser = CHROMIUM is not None and not args.no_browser and not args.no_report
    header = f"{'judgments':>10} {'sessions':>9} {'wall':>9} {'peak RSS':>9} {'report.html':>12} {'pages':>9}"
    print(f"{header} {'load':>8} {'page load':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.html"
        empty.write_text("<!doctype html><title>empty</title>")
        baseline = browser_seconds(empty) if browser else 0.0
        for n in sizes:
            folder = Path(tmp) / str(n)
            transcripts, rubric = write_inputs(folder, n)
            out = folder / "results"
            argv = [sys.executable, "-m", "evaluator", "run", str(transcripts), "--rubric", str(rubric)]
            argv += ["--judge", "rules", "--output", str(out), "--run-id", "bench", "--no-progress"]
            wall, rss = measure(argv + ["--no-report"] * args.no_report, REPO)
            report = out / "bench" / ("summary.md" if args.no_report else "report.html")
            pages = folder_mb(out / "bench" / "report")
            load = f"{max(0.0, browser_seconds(report) - baseline):.1f} s" if browser else "-"
            first = min((out / "bench" / "report").glob("*.html"), default=None)
            page_load = f"{max(0.0, browser_seconds(first) - baseline):.1f} s" if browser and first else "-"
            sessions = len(list(transcripts.iterdir()))
            print(
                f"{n:>10,} {sessions:>9,} {wall:>7.1f} s {rss:>6.0f} MB {report.stat().st_size / 1e6:>9.1f} MB"
                f" {pages:>6.1f} MB {load:>8} {page_load:>10}",
                flush=True,
            )
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
