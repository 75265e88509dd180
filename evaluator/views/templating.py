"""The one Jinja environment of every HTML page the package writes (report, transcript pages, contrast,
run index, compare pages), and their inline assets.

Autoescape on and StrictUndefined: run ids, folder names, transcript and judge text are data, escaped unless
they arrive as Markup, and a missing variable is a bug, never an empty cell. Built once per process with its
compiled templates kept across runs (evaluator.prompts.keep_compiled_templates), so a run does not pay for
compiling the report's templates again.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from evaluator.prompts import keep_compiled_templates


def templates_dir() -> Path:
    return Path(str(resources.files("evaluator"))) / "views" / "templates"


@cache
def page_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    keep_compiled_templates(env, templates_dir())
    return env


def asset(name: str) -> Markup:
    """A page's CSS or JS, kept as a real file and inlined at render so the page stays self-contained."""
    return Markup((templates_dir() / name).read_text(encoding="utf-8"))
