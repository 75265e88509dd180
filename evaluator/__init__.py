"""therapist-evaluator: judge every therapist turn of therapy transcripts against YAML rubrics.

The functions a notebook needs are here; the `evaluator` command calls the same ones.
"""

from evaluator.analysis.frames import export, load_results
from evaluator.analysis.summary import summarize
from evaluator.api import RunOutcome, run, run_async
from evaluator.config import RunConfig
from evaluator.models import Judgment, Rubric, RunManifest, Transcript, Turn
from evaluator.rubrics import load_rubric, load_rubrics
from evaluator.transcripts import ReadOptions, read_transcripts

__all__ = [
    "Judgment",
    "ReadOptions",
    "Rubric",
    "RunConfig",
    "RunManifest",
    "RunOutcome",
    "Transcript",
    "Turn",
    "export",
    "load_results",
    "load_rubric",
    "load_rubrics",
    "read_transcripts",
    "run",
    "run_async",
    "summarize",
]
