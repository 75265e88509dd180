"""therapist-evaluator: judge every therapist turn of therapy transcripts against YAML rubrics.

The functions a notebook needs are here; the `evaluator` command calls the same ones. They load on
first use (PEP 562), so `import evaluator.cli` and `evaluator --help` do not pay for pydantic, pandas,
numpy and scipy, which only some commands need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluator.analysis.contrast import contrast
    from evaluator.analysis.frames import export, load_results
    from evaluator.analysis.summary import summarize
    from evaluator.api import RunOutcome, run, run_async
    from evaluator.config import RunConfig
    from evaluator.models import Judgment, Rubric, RunManifest, Transcript, Turn
    from evaluator.rubrics import load_rubric, load_rubrics
    from evaluator.transcripts import ReadOptions, read_transcripts

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "contrast": "evaluator.analysis.contrast",
    "export": "evaluator.analysis.frames",
    "load_results": "evaluator.analysis.frames",
    "summarize": "evaluator.analysis.summary",
    "RunOutcome": "evaluator.api",
    "run": "evaluator.api",
    "run_async": "evaluator.api",
    "RunConfig": "evaluator.config",
    "Judgment": "evaluator.models",
    "Rubric": "evaluator.models",
    "RunManifest": "evaluator.models",
    "Transcript": "evaluator.models",
    "Turn": "evaluator.models",
    "load_rubric": "evaluator.rubrics",
    "load_rubrics": "evaluator.rubrics",
    "ReadOptions": "evaluator.transcripts",
    "read_transcripts": "evaluator.transcripts",
}

__all__ = [
    "Judgment",
    "ReadOptions",
    "Rubric",
    "RunConfig",
    "RunManifest",
    "RunOutcome",
    "Transcript",
    "Turn",
    "contrast",
    "export",
    "load_results",
    "load_rubric",
    "load_rubrics",
    "read_transcripts",
    "run",
    "run_async",
    "summarize",
]


def __getattr__(name: str) -> Any:
    """Import the public name's module on first access and keep the value for the next one."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evaluator' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
