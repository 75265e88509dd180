"""The `evaluator` command: parse arguments, call the same functions a notebook would, report errors.

Exit codes: 0 everything judged; 1 finished but something needs attention (a skipped input file, an
errored judgment, an invalid file under `validate`); 2 nothing was done (bad rubric, bad option).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Sequence

from evaluator.cli.options import EXIT_FAILED
from evaluator.cli.parser import build_parser
from evaluator.errors import EvaluatorError
from evaluator.redact import Redactor, api_key_env_problem, url_secrets

DEBUG_ENV = "EVALUATOR_DEBUG"
GC_FIRST_GENERATION = 100_000
"""Allocations between two passes of the cycle collector over young objects, while a command runs. A run
creates some hundred thousand objects that live to its end (pydantic models, templates, rich, the plan):
at Python's default of 700, a rules run on the bundled inputs made about 190 collections over them, 7% of
its time; at this value its collections take a fifth of that, and cycles are still collected."""


def _error_redactor(args: argparse.Namespace) -> Redactor:
    """Masks the secrets this invocation could know of, before any message is printed: the key from the
    environment, credentials in the base URL, and a key pasted where a variable name belongs."""
    env = getattr(args, "api_key_env", "OPENAI_API_KEY")
    pasted = env if api_key_env_problem(env) else None
    base_url = getattr(args, "base_url", None) or os.environ.get("OPENAI_BASE_URL")
    return Redactor([os.environ.get(env) if not pasted else None, pasted, *url_secrets(base_url)])


def main(argv: Sequence[str] | None = None) -> int:
    threshold = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION, *threshold[1:])
    try:
        return _main(argv)
    finally:
        gc.set_threshold(*threshold)  # a notebook or test calling main() keeps its own


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    # After parsing, so `--help` and argument errors never load the commands, rich or what they import.
    from rich.console import Console
    from rich.markup import escape

    from evaluator.cli.commands import COMMANDS, cmd_run

    console = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    redact = _error_redactor(args)
    try:
        if args.command == "run":
            import asyncio

            return asyncio.run(cmd_run(args, console))
        return COMMANDS[args.command](args, console)
    except (EvaluatorError, OSError) as exc:
        errors.print(f"[red]error:[/red] {escape(redact(str(exc)))}", highlight=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        errors.print("interrupted; finished judgments are saved - continue with `evaluator run --resume RUN`")
        return 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        errors.print(
            f"[red]internal error:[/red] {escape(redact(f'{type(exc).__name__}: {exc}'))}\n"
            f"This is a bug in the evaluator, not in your input: please report it with the command you ran "
            f"(set {DEBUG_ENV}=1 to see the traceback).",
            highlight=False,
        )
        return EXIT_FAILED
