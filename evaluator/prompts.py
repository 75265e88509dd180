"""Render the messages a judge receives, from sandboxed Jinja templates.

A template is one file with a `system` and a `user` block. Transcript text only ever enters as a
variable's value, never as template source, so `{{ ... }}` or `{% ... %}` written by a patient reaches
the judge verbatim and cannot change the template. The sandbox and StrictUndefined turn a template
typo into an error before any call is made, instead of a silently empty prompt.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePath
from typing import Any, Callable, Sequence

import jinja2
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, meta, nodes
from jinja2.bccache import Bucket, FileSystemBytecodeCache
from jinja2.environment import Environment, Template
from jinja2.loaders import split_template_path

from evaluator.errors import EvaluatorError
from evaluator.files import MAX_CONFIG_BYTES, InputFileError, read_text
from evaluator.models import Criterion, JudgeMode, Message, Rubric, Speaker, Transcript, Turn
from evaluator.rubrics import RubricError, scale_summary
from evaluator.template_sandbox import LimitedSandbox

BLOCKS = ("system", "user")
SESSION_VARIABLES = frozenset(
    {"transcript", "turns", "context_before", "turn", "rated_turns", "conversation", "context_after"}
)
TURNS_TEMPLATE = "_conversation.j2"
TURNS_CACHE_SIZE = 4096
DUMPS_CACHE_SIZE = 1024
MODE_TEMPLATES: dict[JudgeMode, str] = {
    "per-criterion": "per_criterion.j2",
    "per-turn": "per_turn.j2",
    "per-transcript": "per_transcript.j2",
}


class PromptError(EvaluatorError, ValueError):
    """A template that cannot be rendered; names the template and what to fix."""


# What a template's own expressions can raise while rendering ({{ 1 / 0 }}, {{ "a" + 1 }}), besides Jinja's errors.
_RENDER_ERRORS = (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, RecursionError)


class _BoundedLoader(FileSystemLoader):
    """Templates read through evaluator.files: a FIFO or device named like a template is refused (Jinja's
    own loader would call it "not found"), and a template is capped in size like any hand-written file."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        pieces = split_template_path(template)
        for folder in self.searchpath:
            filename = posixpath.join(folder, *pieces)
            if os.path.lexists(filename) and not os.path.isdir(filename):
                break
        else:
            raise TemplateNotFound(template, f"{template!r} not found in {', '.join(map(str, self.searchpath))}")
        try:
            source = read_text(filename, MAX_CONFIG_BYTES)
        except InputFileError as exc:
            raise TemplateError(str(exc)) from None
        mtime = os.path.getmtime(filename)
        return source, os.path.normpath(filename), lambda: _mtime(filename) == mtime


def _mtime(filename: str) -> float | None:
    try:
        return os.path.getmtime(filename)
    except OSError:
        return None


# What an Environment's compiled code depends on besides the template source (Jinja's own cache keys
# only the template's name, file and source): a sandboxed environment compiles different code.
_COMPILE_OPTIONS = (
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "line_statement_prefix",
    "line_comment_prefix",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "keep_trailing_newline",
    "optimized",
    "is_async",
    "autoescape",
    "finalize",
    "intercepted_binops",
    "intercepted_unops",
    "compile_revision",
)


def _compile_fingerprint(env: Environment) -> str:
    def stable(value: Any) -> str:
        if isinstance(value, (frozenset, set)):
            return repr(sorted(value))
        return str(getattr(value, "__qualname__", value))  # a function's repr holds its address

    parts = [jinja2.__version__, f"{type(env).__module__}.{type(env).__qualname__}"]
    parts += [f"{name}={stable(getattr(env, name, None))}" for name in _COMPILE_OPTIONS]
    parts += [",".join(sorted(env.extensions)), ",".join(sorted(env.filters)), ",".join(sorted(env.tests))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class _CompiledTemplates(FileSystemBytecodeCache):
    """Compiled code of the templates under one folder, kept across runs in Jinja's per-user temporary
    folder (created 0700 and refused if another user owns it), so a run does not compile the same
    templates again. Safe to reuse because a file is named by the environment's compile options and the
    template's path, and Jinja loads it only if the template's source still has the checksum it was compiled
    from: an edited template compiles afresh. Templates outside the folder (a rubric's own) are never kept,
    so temporary rubric folders leave nothing behind, and a cache that cannot be read or written is skipped."""

    def __init__(self, env: Environment, root: Path) -> None:
        super().__init__(pattern=f"__evaluator_{_compile_fingerprint(env)}_%s.cache")
        self.root = root.resolve()

    def get_bucket(self, environment: Environment, name: str, filename: str | None, source: str) -> Bucket:
        if filename is None or not Path(filename).resolve().is_relative_to(self.root):
            return Bucket(environment, "", "")  # an empty key: load_bytecode and dump_bytecode skip it
        return super().get_bucket(environment, name, filename, source)

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key:
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 (a damaged file: compile as if it were not there)
                bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.key:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass


def keep_compiled_templates(env: Environment, root: Path) -> None:
    """Reuse the compiled code of `env`'s templates under `root` across runs (see _CompiledTemplates); call
    once the environment has its filters. Without a safe per-user temporary folder, templates compile as before."""
    try:
        env.bytecode_cache = _CompiledTemplates(env, root)
    except (OSError, RuntimeError):
        env.bytecode_cache = None


def bundled_prompts_dir() -> Path:
    """prompts/ of a source checkout, or the copy packed into the wheel."""
    packed = Path(str(resources.files("evaluator"))) / "_bundled" / "prompts"
    return packed if packed.is_dir() else Path(__file__).resolve().parent.parent / "prompts"


@dataclass(frozen=True)
class Rendered:
    messages: tuple[Message, ...]
    template_hash: str
    prompt_hash: str


class PromptRenderer:
    """One Jinja environment per template folder; templates compile once and are reused for every item."""

    def __init__(self, prompts_dir: Path | None = None) -> None:
        self.prompts_dir = prompts_dir or bundled_prompts_dir()
        self._dumps: dict[int, tuple[Any, Any]] = {}
        self._systems: dict[tuple[Path, str, str, tuple[str, ...]], Message] = {}
        self._ready_templates: dict[tuple[Path, str], tuple[Template, bool]] = {}
        self._environments: dict[Path, LimitedSandbox] = {}
        self._hashes: dict[tuple[Path, str], str] = {}
        self._shared_systems: dict[tuple[Path, str], bool] = {}
        self._trees: dict[tuple[Path, str], tuple[str, nodes.Template]] = {}

    def _environment(self, rubric_dir: Path) -> LimitedSandbox:
        if rubric_dir not in self._environments:
            self._environments[rubric_dir] = self._new_environment(rubric_dir)
        return self._environments[rubric_dir]

    def _new_environment(self, rubric_dir: Path) -> LimitedSandbox:
        env = LimitedSandbox(
            loader=_BoundedLoader([str(rubric_dir), str(self.prompts_dir)]),
            undefined=StrictUndefined,
            autoescape=False,
            auto_reload=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["format_turns"] = _TurnFormatter(env)
        keep_compiled_templates(env, self.prompts_dir)
        return env

    def template_name(self, rubric: Rubric, mode: JudgeMode = "per-criterion") -> str:
        """A rubric's own template replaces the per-criterion one; grouped modes use the bundled ones."""
        if mode == "per-criterion" and rubric.template:
            return rubric.template
        return MODE_TEMPLATES[mode]

    def template_hash(self, rubric_dir: Path, name: str) -> str:
        """Hash of the template and every template it includes, so any edit to the prompt shows."""
        if (rubric_dir, name) not in self._hashes:
            self._hashes[rubric_dir, name] = self._hash_sources(rubric_dir, name)
        return self._hashes[rubric_dir, name]

    def _hash_sources(self, rubric_dir: Path, name: str) -> str:
        pending, seen, sources = [name, TURNS_TEMPLATE], set(), []
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source, tree = self._parsed(rubric_dir, current)
                included = [t for t in meta.find_referenced_templates(tree) if t]
            except TemplateNotFound as exc:
                raise PromptError(
                    f"template {current!r} not found in {rubric_dir} or {self.prompts_dir}: {exc}"
                ) from None
            except TemplateError as exc:
                where = f", line {getattr(exc, 'lineno')}" if getattr(exc, "lineno", None) else ""
                raise PromptError(f"template {current!r}{where}: {exc.message or exc}") from None
            sources.append(f"{current}\n{source}")
            pending += included
        return hashlib.sha256("\n\0".join(sorted(sources)).encode()).hexdigest()[:16]

    def _parsed(self, rubric_dir: Path, name: str) -> tuple[str, nodes.Template]:
        """A template's source and syntax tree, read once for its hash and the shared-system check."""
        if (rubric_dir, name) not in self._trees:
            env = self._environment(rubric_dir)
            source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            self._trees[rubric_dir, name] = source, env.parse(source)
        return self._trees[rubric_dir, name]

    def template_hash_for(self, rubric: Rubric, mode: JudgeMode = "per-criterion") -> str:
        return self.template_hash(self._rubric_dir(rubric), self.template_name(rubric, mode))

    def _rubric_dir(self, rubric: Rubric) -> Path:
        return _parent(rubric.source) if rubric.source else self.prompts_dir

    def render(
        self,
        rubric: Rubric,
        criteria: Criterion | Sequence[Criterion],
        transcript: Transcript,
        turns: Turn | Sequence[Turn],
        mode: JudgeMode = "per-criterion",
    ) -> Rendered:
        """The messages for one judge call: one criterion on one turn, or a group of either."""
        criteria = [criteria] if isinstance(criteria, Criterion) else list(criteria)
        turns = [turns] if isinstance(turns, Turn) else list(turns)
        rubric_dir = self._rubric_dir(rubric)
        name = self.template_name(rubric, mode)
        env = self._environment(rubric_dir)
        env.new_budget()
        try:
            template, shared = self._ready(rubric_dir, name)
            context = template.new_context(self._variables(rubric, criteria, transcript, turns))
            shared_key = (rubric_dir, name, rubric.hash, tuple(c.id for c in criteria))
            system = self._systems.get(shared_key) if shared else None
            if system is None:
                text = env.concat(template.blocks["system"](context), "the system message").strip()
                system = Message.model_construct(role="system", content=text)
                if shared:
                    self._systems[shared_key] = system
            text = env.concat(template.blocks["user"](context), "the user message").strip()
            user = Message.model_construct(role="user", content=text)
        except PromptError:
            raise
        except _RENDER_ERRORS as exc:
            where = f", line {getattr(exc, 'lineno')}" if getattr(exc, "lineno", None) else ""
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise PromptError(f"template {name!r}{where}: {detail}") from None
        prompt_hash = hashlib.sha256(f"{system.content}\0{user.content}".encode()).hexdigest()[:16]
        return Rendered((system, user), self.template_hash(rubric_dir, name), prompt_hash)

    def _ready(self, rubric_dir: Path, name: str) -> tuple[Template, bool]:
        """A template checked to have both blocks, and whether its system block is shared; once per template."""
        if (rubric_dir, name) not in self._ready_templates:
            template = self._environment(rubric_dir).get_template(name)
            missing = [b for b in BLOCKS if b not in template.blocks]
            if missing:
                raise PromptError(
                    f"template {name!r} must define {{% block system %}} and {{% block user %}}; missing: {missing}"
                )
            self._ready_templates[rubric_dir, name] = template, self._system_is_shared(rubric_dir, name)
        return self._ready_templates[rubric_dir, name]

    def _system_is_shared(self, rubric_dir: Path, name: str) -> bool:
        """Whether the system block reads nothing of the session (checked on the template's syntax tree,
        includes followed), so its text can be rendered once per criterion and reused for every turn."""
        if (rubric_dir, name) not in self._shared_systems:
            self._shared_systems[rubric_dir, name] = self._check_system_is_shared(rubric_dir, name)
        return self._shared_systems[rubric_dir, name]

    def _check_system_is_shared(self, rubric_dir: Path, name: str) -> bool:
        tree = self._parsed(rubric_dir, name)[1]
        block = next((b for b in tree.find_all(nodes.Block) if b.name == "system"), None)
        return block is not None and self._reads_no_session(rubric_dir, block, set())

    def _reads_no_session(self, rubric_dir: Path, node: nodes.Node, seen: set[str]) -> bool:
        if any(n.name in SESSION_VARIABLES for n in node.find_all(nodes.Name) if n.ctx == "load"):
            return False
        if any(True for _ in node.find_all((nodes.Import, nodes.FromImport, nodes.Extends))):
            return False
        for include in node.find_all(nodes.Include):
            if not isinstance(include.template, nodes.Const):
                return False
            target = str(include.template.value)
            if target not in seen:
                seen.add(target)
                if not self._reads_no_session(rubric_dir, self._parsed(rubric_dir, target)[1], seen):
                    return False
        return True

    def _dumped(self, obj: Any, dump: Callable[[Any], Any]) -> Any:
        """Each rubric, criterion and transcript is turned into template data once per run, not per item;
        the cache is emptied when full, so it holds a bounded number of transcripts however large the run."""
        entry = self._dumps.get(id(obj))
        if entry is None or entry[0] is not obj:
            if len(self._dumps) >= DUMPS_CACHE_SIZE:
                self._dumps.clear()
            entry = (obj, dump(obj))
            self._dumps[id(obj)] = entry
        return entry[1]

    def _variables(
        self, rubric: Rubric, criteria: list[Criterion], transcript: Transcript, turns: list[Turn]
    ) -> dict[str, Any]:
        """The variables every template may use (documented in the README)."""
        all_turns = self._dumped(transcript.turns, lambda turns: [turn.model_dump(mode="json") for turn in turns])
        criteria_vars = [self._dumped(c, _criterion_vars) for c in criteria]
        first, last = turns[0], turns[-1]
        before = rubric.context.before
        start = 0 if before is None or len(turns) > 1 else max(0, first.index - before)
        return {
            "rubric": self._dumped(rubric, lambda r: r.model_dump(mode="json", by_alias=True, exclude={"criteria"})),
            "criterion": criteria_vars[0],
            "criteria": criteria_vars,
            "scale": criteria_vars[0]["scale"],
            "examples": criteria_vars[0]["examples"],
            "transcript": self._dumped(transcript, _identity) if transcript.unblind else _BLINDED,
            "turns": all_turns,
            "context_before": all_turns[start : first.index],
            "turn": all_turns[first.index],
            "rated_turns": [all_turns[t.index] for t in turns],
            "conversation": all_turns[start : last.index + 1],
            "context_after": all_turns[last.index + 1 : last.index + 1 + rubric.context.after],
        }


class _TurnFormatter:
    """The `format_turns` filter: a list of turns as _conversation.j2 writes them. A turn's context is
    the same for every criterion of that turn, so each run of turns is rendered once and reused; the
    entry keeps the turn objects it was made from, so an id is never mistaken for another's."""

    def __init__(self, env: LimitedSandbox) -> None:
        self.env = env
        self._texts: dict[tuple[int, int, int], tuple[Any, Any, str]] = {}

    def __call__(self, turns: Sequence[Any]) -> str:
        if not turns:
            return ""
        first, last = turns[0], turns[-1]
        key = (id(first), id(last), len(turns))
        entry = self._texts.get(key)
        if entry is None or entry[0] is not first or entry[1] is not last:
            if len(self._texts) >= TURNS_CACHE_SIZE:
                self._texts.clear()
            entry = (first, last, self.env.get_template(TURNS_TEMPLATE).render(conversation=turns))
            self._texts[key] = entry
        return entry[2]


class _BlindMetadata(dict[str, Any]):
    """What a blinded judge gets for metadata: nothing, and any field a template reads is empty, so a
    template written for --unblind still renders (without the field) in a default run."""

    def __missing__(self, key: str) -> str:
        return ""


# By default the judge sees no transcript id, file name or metadata: ids and folders often encode the
# arm (model, condition), and a judge that can read the arm can rate it instead of the turn.
_BLINDED: dict[str, Any] = {"blinded": True, "id": "", "file": "", "metadata": _BlindMetadata()}


def _identity(transcript: Transcript) -> dict[str, Any]:
    """Who the session is, for a judge run with --unblind."""
    return {
        "blinded": False,
        "id": transcript.id,
        "file": PurePath(transcript.source).name,
        "metadata": transcript.metadata,
    }


class _AnyMetadata(dict[str, Any]):
    """Metadata of the sample session: any field a template reads exists, since real sessions carry
    fields (condition, model) that a sample cannot guess."""

    def __missing__(self, key: str) -> str:
        return f"({key})"


def _sample_transcript() -> Transcript:
    """A small made-up session for checking templates: three exchanges, the last a slow-down request."""
    texts: list[tuple[Speaker, str, str]] = [
        ("patient", "Patient", "I have been feeling on edge all week."),
        ("therapist", "Therapist", "That sounds exhausting. What has been the hardest part?"),
        ("patient", "Patient", "Work, mostly. Everything piles up."),
        ("therapist", "Therapist", "Let's try a short breathing exercise, then plan your week."),
        ("patient", "Patient", "Can we slow down a bit? This is a lot."),
        ("therapist", "Therapist", "Of course. We can pause here; what would help right now?"),
    ]
    turns = [Turn(index=n, speaker=s, label=label, text=text, line=n + 1) for n, (s, label, text) in enumerate(texts)]
    return Transcript.model_construct(id="sample", source="(sample session)", turns=turns, metadata=_AnyMetadata())


def check_templates(
    rubrics: Sequence[Rubric], renderer: PromptRenderer, modes: Sequence[JudgeMode] = tuple(MODE_TEMPLATES)
) -> None:
    """Render every template each rubric uses in `modes` (its own `template:` included) on a sample
    session, so a syntax error, an undefined variable or a missing include stops `validate` and `run`
    before any call and before a run folder exists, instead of failing mid-run. Raises RubricError."""
    blinded = _sample_transcript()
    samples = (blinded, blinded.model_copy(update={"unblind": True}))
    for rubric in rubrics:
        problems = []
        for mode in modes:
            try:
                for sample in samples:
                    _render_sample(renderer, rubric, mode, sample)
            except PromptError as exc:
                problems.append(f"template for {mode} mode: {exc}")
        if problems:
            raise RubricError(rubric.source or rubric.id, problems)


def _render_sample(renderer: PromptRenderer, rubric: Rubric, mode: JudgeMode, sample: Transcript) -> None:
    therapist = sample.therapist_turns()
    if mode == "per-criterion":
        for criterion in rubric.criteria:
            renderer.render(rubric, criterion, sample, therapist[-1], mode)
    else:
        renderer.render(rubric, rubric.criteria, sample, therapist if mode == "per-transcript" else therapist[-1], mode)


@lru_cache(maxsize=256)
def _parent(source: str) -> Path:
    return Path(source).parent


def _criterion_vars(criterion: Criterion) -> dict[str, Any]:
    data = criterion.model_dump(mode="json", by_alias=True)
    data["scale_summary"] = scale_summary(criterion)
    return data
