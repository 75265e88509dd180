"""Start-up time and memory of the `evaluator` command.

    .venv/bin/python benchmarks/startup.py [--repeat 5]

Runs, each in a fresh process: `evaluator --help`, `evaluator run --help`, and `evaluator run` with
the offline rules judge on the bundled transcripts and rubrics (it writes summary.md and report.html
into a temporary folder). Prints the median wall time, the median CPU time (user + system: on a machine
other work keeps busy, wall time waits for a core and CPU time does not) and the largest maximum RSS of
each, with the load average, next to the targets of issue 12 (0.5 s / 80 MB for help, 1.5 s for the run).
It prints figures; it asserts nothing.

The speed of a shared or virtual machine moves by tens of percent from minute to minute, whatever runs
on it. So each measured run is paired with a reference workload (a fixed pure-Python loop in a fresh
interpreter, REFERENCE) run just before it, and the reference's median is printed beside the figures:
compare runs by their ratio to it, or take figures whose reference is near the machine's usual one.

Each command runs once unmeasured first, with the bytecode cache in a private temporary folder
(PYTHONPYCACHEPREFIX), so the figures are those of an installed package, whose modules pip compiled, and
not of whatever stale or missing __pycache__ the checkout has (PYTHONDONTWRITEBYTECODE=1 on a shared
machine makes every edited module compile from source on every start). --as-is measures without that.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and max RSS (MB) of one child process; os.wait4 gives that child's own usage."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}:\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KB


REFERENCE = "s = 0\nfor i in range(3_000_000):\n    s += i"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command (median wall, max RSS)")
    parser.add_argument(
        "--as-is", action="store_true", help="no warm-up run and the environment's own bytecode cache, as it is"
    )
    args = parser.parse_args()
    command = [sys.executable, "-m", "evaluator"]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as pycache:
        if not args.as_is:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
        cases = [
            ("evaluator --help", [*command, "--help"], 0.5, 80.0),
            ("evaluator run --help", [*command, "run", "--help"], 0.5, 80.0),
            (
                "evaluator run --judge rules (bundled)",
                [*command, "run", "transcripts", "--rubric", "rubrics", "--judge", "rules"]
                + ["--output", out, "--no-progress"],
                1.5,
                None,
            ),
        ]
        reference = [sys.executable, "-c", REFERENCE]
        print("load average (1, 5, 15 min): " + ", ".join(f"{n:.2f}" for n in os.getloadavg()))
        print(
            f"{'command':<40} {'wall (median)':>14} {'wall (least)':>13} {'cpu (median)':>13} {'max RSS':>10}"
            f" {'reference':>10}   target"
        )
        for name, argv, wall_target, rss_target in cases:
            if not args.as_is:
                measure(argv, REPO, env)  # compiles the bytecode this command needs
            figures, references = [], []
            for _ in range(args.repeat):
                references.append(measure(reference, REPO, env)[0])
                figures.append(measure(argv, REPO, env))
            wall = statistics.median(w for w, _, _ in figures)
            least = min(w for w, _, _ in figures)
            cpu = statistics.median(c for _, c, _ in figures)
            rss = max(r for _, _, r in figures)
            target = f"< {wall_target} s" + (f", < {rss_target:.0f} MB" if rss_target else "")
            print(
                f"{name:<40} {wall:>12.2f} s {least:>11.2f} s {cpu:>11.2f} s {rss:>7.0f} MB"
                f" {statistics.median(references):>8.2f} s   {target}"
            )


if __name__ == "__main__":
    main()
