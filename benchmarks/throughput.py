"""Throughput and token cost of the LLM judge against a local OpenAI-compatible server.

    .venv/bin/python benchmarks/throughput.py [--items 10240] [--latency 0.5] [--concurrency 128]

Starts `tests/fake_openai.py` in its own process with a fixed reply latency, generates synthetic
sessions and a five-criterion rubric, and prints:

1. achieved throughput as a fraction of the ideal (items x latency / concurrency), over the run
   window (first request to last judgment), over the wall clock of judging (reading inputs to the
   manifest), and over the wall clock of the whole `evaluator run` command in a fresh process;
   and the same for the bare openai client sending the same requests, in the benchmark's process and
   as a script of its own (interpreter start-up, the client's import, the calls: the floor for a whole
   command);
2. CPU time per judgment of the whole evaluator process, of the bare openai client making the same
   calls, and the difference: the judge's own CPU (render, validate, cache, store). The evaluator
   runs as `evaluator run` does, with a response cache (a fresh one, so every call is sent);
3. prompt tokens per judgment in each judgment mode.

It prints figures; it asserts nothing. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402
import openai  # noqa: E402
import orjson  # noqa: E402

from evaluator.config import JudgeSettings, RunConfig  # noqa: E402
from evaluator.judges.openai import JSON_HEADERS, OpenAIJudge  # noqa: E402
from evaluator.plan import plan_turns  # noqa: E402
from evaluator.prompts import PromptRenderer  # noqa: E402
from evaluator.rubrics import load_rubrics  # noqa: E402
from evaluator.runner import make_call, run_async  # noqa: E402
from evaluator.store import load_judgments  # noqa: E402
from evaluator.transcripts import discover, read_all  # noqa: E402

RUBRIC = """\
id: bench
title: Benchmark rubric
context: {before: 6, after: 0}
criteria:
"""
CRITERION = """\
  - id: c{n}
    name: Criterion {n}
    question: Does the therapist turn do thing number {n}, as a clinician would recognise it?
    scale:
      type: likert
      min: 1
      max: 5
      anchors:
        1: Not at all; the turn does the opposite of thing {n}.
        2: Barely.
        3: Partly; thing {n} is there in words but not in substance.
        4: Mostly.
        5: Fully and clearly; thing {n} is the heart of the turn.
"""
WORDS = ("feel", "slow", "breath", "partner", "work", "shame", "tired", "maybe", "today", "notice", "worry", "sleep")


def write_inputs(folder: Path, items: int, criteria: int = 5, turns: int = 10) -> tuple[Path, Path]:
    """Sessions of `turns` therapist turns (the last one shorter) giving `items` judgments, rounded up
    to whole turns. With `items` a multiple of the concurrency the ideal is reachable: no last wave of
    calls runs part-empty."""
    rng = random.Random(0)
    total_turns = max(1, -(-items // criteria))
    transcripts = folder / "transcripts"
    transcripts.mkdir(parents=True)
    for s, start in enumerate(range(0, total_turns, turns)):
        lines = []
        for _ in range(min(turns, total_turns - start)):
            lines.append("Patient: " + " ".join(rng.choice(WORDS) for _ in range(40)) + ".")
            lines.append("Therapist: " + " ".join(rng.choice(WORDS) for _ in range(30)) + "?")
        (transcripts / f"s{s:04d}.txt").write_text("\n\n".join(lines) + "\n")
    rubric = folder / "bench.yaml"
    rubric.write_text(RUBRIC + "".join(CRITERION.format(n=n) for n in range(criteria)))
    return transcripts, rubric


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (Linux /proc), to show what the server itself costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", str(latency)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


async def evaluator_run(
    url: str, transcripts: Path, rubric: Path, out: Path, mode: str, concurrency: int, limit: int | None = None
) -> dict[str, float]:
    """A run as `evaluator run` makes one, response cache included (a fresh one: every call misses)."""
    judge = JudgeSettings(kind="openai", model="fake-judge", base_url=url, cache_path=out / "cache.sqlite")
    files = sorted(transcripts.iterdir())[:limit] if limit else [transcripts]
    config = RunConfig(
        transcripts=files,
        rubrics=[rubric],
        output=out,
        judge=judge,
        mode=mode,  # type: ignore[arg-type]
        concurrency=concurrency,
        show_progress=False,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    result = await run_async(config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    judgments = load_judgments(result.run_dir)
    ok = sum(j.status == "ok" for j in judgments)
    return {
        "items": len(judgments),
        "ok": ok,
        "cpu": cpu,
        "wall": wall,
        "prompt_tokens": result.manifest.usage.prompt_tokens,
        "window": result.manifest.judging_s or wall,
        "calls": sum(j.usage.prompt_tokens > 0 for j in judgments),
    }


def command_wall(url: str, transcripts: Path, rubric: Path, out: Path, concurrency: int) -> float:
    """Wall seconds of `evaluator run` as a user starts it: a fresh process, imports, reading, judging,
    summary.md and report.html, with a fresh response cache (every call is sent)."""
    argv = [sys.executable, "-m", "evaluator", "run", str(transcripts), "--rubric", str(rubric), "--output", str(out)]
    argv += ["--base-url", url, "--model", "fake-judge", "--cache", str(out / "cache.sqlite"), "--no-progress"]
    argv += ["--concurrency", str(concurrency)]
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def request_bodies(transcripts: Path, rubric: Path, url: str) -> list[dict]:
    """The exact bodies the evaluator sends for these inputs, for the bare-client comparison."""
    judge = OpenAIJudge(JudgeSettings(kind="openai", model="fake-judge", base_url=url, cache_path=None))
    renderer = PromptRenderer()
    sessions, _ = read_all(discover([transcripts]))
    bodies = []
    for plan in plan_turns(sessions, load_rubrics([rubric])):
        for stage in plan.stages:
            for criterion in stage:
                bodies.append(judge.request_body(make_call(renderer, [plan.request(criterion)], "per-criterion")))
    return bodies


async def bare_call(client: openai.AsyncOpenAI, body: dict) -> None:
    """One call as the judge makes it (same serialiser and parser), without anything else the judge does."""
    payload = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    orjson.loads(await client.post("/chat/completions", content=payload, cast_to=str, options=JSON_HEADERS))


BARE_SCRIPT = """
import time
started = time.perf_counter()
import asyncio, sys
import httpx2, openai, orjson
imported = time.perf_counter()

async def main(url, bodies, concurrency):
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)
    client = openai.AsyncOpenAI(
        base_url=url, api_key="unused", max_retries=0, http_client=openai.DefaultAioHttpClient(limits=limits)
    )
    options = {"headers": {"Content-Type": "application/json"}}

    async def worker():
        while bodies:
            payload = orjson.dumps(bodies.pop(), option=orjson.OPT_NON_STR_KEYS)
            orjson.loads(await client.post("/chat/completions", content=payload, cast_to=str, options=options))

    calls = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(imported - started, time.perf_counter() - calls)
    await client.close()

asyncio.run(main(sys.argv[2], orjson.loads(open(sys.argv[1], "rb").read()), int(sys.argv[3])))
"""
"""The bare client as a script of its own (as bare_call and bare_client make the calls): it imports only
the openai client, so its wall clock is the floor for a whole command."""


def bare_script_wall(url: str, bodies: list[dict], concurrency: int, folder: Path) -> tuple[float, float, float]:
    """Wall seconds of a fresh process that imports the openai client and sends the same requests: the
    floor for the whole `evaluator run` command (interpreter start, imports, the calls; nothing else);
    and of that, the imports and the calls."""
    path = folder / "bodies.json"
    path.write_bytes(orjson.dumps(bodies, option=orjson.OPT_NON_STR_KEYS))
    start = time.perf_counter()
    argv = [sys.executable, "-c", BARE_SCRIPT, str(path), url, str(concurrency)]
    printed = subprocess.run(argv, cwd=REPO, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    imports, calls = map(float, printed.split())
    return wall, imports, calls


async def bare_client(url: str, bodies: list[dict], concurrency: int) -> tuple[float, float]:
    """CPU of the openai client alone for the same requests: the floor no judge can go below."""
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)
    client = openai.AsyncOpenAI(
        base_url=url, api_key="unused", max_retries=0, http_client=openai.DefaultAioHttpClient(limits=limits)
    )
    queue = list(bodies)

    async def worker() -> None:
        while queue:
            await bare_call(client, queue.pop())

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await client.close()
    return cpu, wall


CANNED = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-judge",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": json.dumps(
                        {"rationale": "The therapist does it partly.", "evidence": [], "applicable": True, "score": 3}
                    ),
                },
            }
        ],
        "usage": {"prompt_tokens": 600, "completion_tokens": 30, "total_tokens": 630},
    }
).encode()


def in_process_client() -> httpx2.AsyncClient:
    """A client whose transport answers in-process with a canned valid reply: no network, no server."""
    return httpx2.AsyncClient(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=CANNED)))


async def own_cpu(transcripts: Path, rubric: Path, out: Path, bodies: list[dict]) -> tuple[float, float]:
    """CPU per judgment of the evaluator and of the bare client, both on the in-process transport:
    the difference is what the judge itself costs (render, validate, store)."""
    judge = JudgeSettings(
        kind="openai",
        model="fake-judge",
        base_url="http://in-process/v1",
        cache_path=out / "cache.sqlite",
        http_client=in_process_client(),
    )
    config = RunConfig(
        transcripts=[transcripts], rubrics=[rubric], output=out, judge=judge, concurrency=128, show_progress=False
    )
    cpu = time.process_time()
    await run_async(config)
    evaluator_cpu = time.process_time() - cpu
    client = openai.AsyncOpenAI(
        base_url="http://in-process/v1", api_key="unused", max_retries=0, http_client=in_process_client()
    )
    cpu = time.process_time()
    for body in bodies:
        await bare_call(client, body)
    client_cpu = time.process_time() - cpu
    await client.close()
    return evaluator_cpu / len(bodies), client_cpu / len(bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--items",
        type=int,
        default=10240,
        help="judgments (default 10240, 80 waves of 128: long enough that a run's start weighs little)",
    )
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        transcripts, rubric = write_inputs(folder, args.items)
        server, url = start_server(args.latency)
        try:
            server_cpu = process_cpu(server.pid)
            figures = asyncio.run(
                evaluator_run(url, transcripts, rubric, folder / "results", "per-criterion", args.concurrency)
            )
            server_cpu = process_cpu(server.pid) - server_cpu
            command = command_wall(url, transcripts, rubric, folder / "command", args.concurrency)
            n = figures["items"]
            ideal = n * args.latency / args.concurrency
            print(f"throughput: {n} judgments, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
            waves = -(-n // args.concurrency) * args.latency
            print(
                f"  (each slot sends its calls one after another: no run ends before {waves:.2f} s, "
                f"{ideal / waves:.1%} of ideal, when the items are not a multiple of the concurrency)"
            )
            print(
                f"  ideal {ideal:.2f} s; run window (first call to last judgment) {figures['window']:.2f} s "
                f"-> {ideal / figures['window']:.1%} of ideal, {n / figures['window']:.0f} judgments/s"
            )
            print(
                f"  evaluator wall (reading inputs to writing the manifest, imports excluded) {figures['wall']:.2f} s "
                f"-> {ideal / figures['wall']:.1%} of ideal"
            )
            print(
                f"  `evaluator run` in a fresh process (imports, judging, summary.md, report.html) {command:.2f} s "
                f"-> {ideal / command:.1%} of ideal"
            )
            print(
                f"  CPU per judgment, whole evaluator: {figures['cpu'] / n * 1000:.2f} ms "
                f"(the local server meanwhile: {server_cpu / n * 1000:.2f} ms per reply)"
            )
            bodies = request_bodies(transcripts, rubric, url)
            client_cpu, client_wall = asyncio.run(bare_client(url, bodies, args.concurrency))
            print(f"  CPU per call, bare openai client over HTTP, same requests: {client_cpu / n * 1000:.2f} ms")
            print(f"  the bare client alone, same requests: {client_wall:.2f} s -> {ideal / client_wall:.1%} of ideal")
            script, imports, calls = bare_script_wall(url, bodies, args.concurrency, folder)
            print(
                f"  the bare client in a fresh process (start-up, openai import, the calls) {script:.2f} s "
                f"-> {ideal / script:.1%} of ideal: the floor for the whole command "
                f"(importing openai {imports:.2f} s, the calls {calls:.2f} s)"
            )
            evaluator_cpu, bare_cpu = asyncio.run(own_cpu(transcripts, rubric, folder / "in-process", bodies))
            print(
                f"  in-process transport, no network: evaluator {evaluator_cpu * 1000:.2f} ms, bare client "
                f"{bare_cpu * 1000:.2f} ms -> the judge's own CPU per judgment {(evaluator_cpu - bare_cpu) * 1000:.2f} ms"
            )
        finally:
            server.terminate()
            server.wait()

        fast, url = start_server(0.0)
        try:
            print("prompt tokens per judgment by mode (five-criterion rubric, 6 turns of context):")
            base = None
            for mode in ("per-criterion", "per-turn", "per-transcript"):
                f = asyncio.run(evaluator_run(url, transcripts, rubric, folder / f"tokens-{mode}", mode, 16, limit=8))
                per = f["prompt_tokens"] / f["items"]
                base = base or per
                print(
                    f"  {mode:15s} {per:8.0f} tokens/judgment over {f['calls']:.0f} calls "
                    f"({per / base:.0%} of per-criterion)"
                )
        finally:
            fast.terminate()
            fast.wait()


if __name__ == "__main__":
    main()
