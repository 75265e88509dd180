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
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, wraps
from importlib import resources
from itertools import islice
from pathlib import Path, PurePath
from typing import Any, Callable, Sequence, cast

import jinja2
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, meta, nodes
from jinja2.bccache import Bucket, FileSystemBytecodeCache
from jinja2.environment import Environment, Template
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from evaluator.errors import EvaluatorError
from evaluator.files import MAX_CONFIG_BYTES, InputFileError, read_text
from evaluator.models import Criterion, JudgeMode, Message, Rubric, Speaker, Transcript, Turn
from evaluator.rubrics import RubricError, scale_summary

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


# --- limits of what a template may build -------------------------------------------------------------
# Rubric templates are untrusted (a shared rubric file), and Jinja's sandbox bounds only range(): without
# these, {{ 'x' * 1000000000 }} took 3.9 GB and two nested loops of 9,999 steps 920 MB in `validate`.
# A message may hold this many characters: about 2 million tokens, more than any model reads, and over 400
# times the largest per-transcript prompt of the bundled rubrics and seed sessions (18,696 characters).
MAX_MESSAGE_CHARS = 8_000_000
# Text and list items one render may build in all (strings, lists, macro and {% set %} blocks, the messages).
MAX_BUILT_CHARS = 8 * MAX_MESSAGE_CHARS
MAX_LOOP_STEPS = 1_000_000  # loop iterations in one render, all loops and nested renders together
MAX_INT_BITS = 100_000  # about 30,000 digits
_CHUNK = 1024  # pieces of template output measured at a time
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}:]*:([^{}]*)\}")


class _Budget:
    """What one render may still spend: loop steps and characters built."""

    __slots__ = ("steps", "chars")

    def __init__(self) -> None:
        self.steps = MAX_LOOP_STEPS
        self.chars = MAX_BUILT_CHARS


class _Guard(NodeTransformer):
    """Rewrites a parsed template so every loop counts its steps (environment.steps) and every `~` builds
    its string through environment.joined, which counts its characters."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def _call(self, name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
        return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno, environment=self.env)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("steps", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("joined", list(node.nodes), node.lineno)


class _LimitedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with bounds on what a template can build or run (see MAX_MESSAGE_CHARS): a string,
    list or number too large to build, a message too long or a loop that runs too long is refused with a
    SecurityError naming the limit. Bounds count per render: call `new_budget()` before each."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    # Part of the compiled code's cache key: change it when _Guard changes what templates compile to.
    compile_revision = 1

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self.printed, **options)
        self.budget = _Budget()
        self.globals.pop("lipsum", None)  # lipsum(n=10**8) writes 10**8 paragraphs; no prompt needs filler
        for name, size in _FILTER_SIZES.items():
            self.filters[name] = _checked_filter(self, name, self.filters[name], size)

    def new_budget(self) -> None:
        self.budget.steps, self.budget.chars = MAX_LOOP_STEPS, MAX_BUILT_CHARS

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Guard(self).visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        return tree

    def build(self, size: int, what: str) -> None:
        """Account for `size` characters (or list items) that `what` is about to build, or refuse it."""
        if size > MAX_MESSAGE_CHARS:
            raise SecurityError(
                f"{what} would build at least {size:,} characters or list items; a template may build at most"
                f" {MAX_MESSAGE_CHARS:,} at once (about 2 million tokens, more than any model reads)"
            )
        self.budget.chars -= size
        if self.budget.chars < 0:
            raise SecurityError(
                f"the template built more than {MAX_BUILT_CHARS:,} characters for one prompt (at {what});"
                " look for a loop that builds text or lists over and over"
            )

    def read(self, size: int, what: str) -> None:
        """Account for `size` characters a str method goes through: in a loop, text.count(x) or text.upper()
        on a long text builds nothing lasting yet can run for hours, so that work counts as building."""
        self.budget.chars -= size
        if self.budget.chars < 0:
            raise SecurityError(
                f"the template went through more than {MAX_BUILT_CHARS:,} characters for one prompt (at {what});"
                " look for a loop that works on long text over and over"
            )

    def steps(self, iterable: Any) -> Iterator[Any]:
        """A loop's items, each counted against the render's MAX_LOOP_STEPS."""
        budget = self.budget
        for item in iterable:
            budget.steps -= 1
            if budget.steps < 0:
                raise SecurityError(
                    f"loops ran more than {MAX_LOOP_STEPS:,} steps for one prompt; look for nested loops over"
                    " large ranges"
                )
            yield item

    def printed(self, value: Any) -> Any:
        """`{{ value }}`: a list or mapping is measured before it is written out, since a template can make
        one cheaply ([s] * 1000 holds s once) that str() would write out a thousand times."""
        if isinstance(value, _CONTAINERS):
            self.build(_text_size(value), "printing a list or mapping")
        return value

    def joined(self, *values: Any) -> str:
        """`a ~ b`: the values as text, joined, counted."""
        self.build(sum(_text_size(v) for v in values), "'~'")
        return "".join(map(str, values))

    def concat(self, pieces: Iterable[str], what: str = "the rendered text") -> str:
        """Jinja's join of a block, macro, {% set %} block or template output, stopped as soon as it passes
        MAX_MESSAGE_CHARS (str.join would first hold every piece)."""
        if isinstance(pieces, list):  # a macro's or {% set %} block's buffer, already held
            parts = pieces
        else:  # a template's output: taken a chunk at a time, measured at C speed
            parts = chunk = list(islice(pieces, _CHUNK))
            size = sum(map(len, chunk))
            while len(chunk) == _CHUNK and size <= MAX_MESSAGE_CHARS:
                chunk = list(islice(pieces, _CHUNK))
                size += sum(map(len, chunk))
                parts += chunk
        self.build(sum(map(len, parts)), what)
        return "".join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        size = _binop_size(operator, left, right)
        if size:
            self.build(size, f"operator '{operator}'")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (__self.steps(args[0]), *args[1:])
        else:
            method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            text = getattr(method, "__self__", None)
            if isinstance(text, str):
                if getattr(method, "__name__", "") == "join" and args:
                    args = (list(args[0]), *args[1:])
                size = _str_method_size(text, getattr(method, "__name__", ""), args, kwargs)
                if size:
                    __self.build(size, f"str.{method.__name__}()")
                __self.read(len(text), f"str.{method.__name__}()")
        return super().call(__context, __obj, *args, **kwargs)


def _binop_size(operator: str, left: Any, right: Any) -> int:
    """What `left operator right` would build, in characters or items (0: nothing worth counting); raises
    for an integer too large to compute."""
    if operator in ("*", "**") and type(left) is int and type(right) is int:
        bits = left.bit_length() * right if operator == "**" else left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS and abs(left) > 1:
            raise SecurityError(f"operator '{operator}' would make a number of {bits:,} bits; the limit is {MAX_INT_BITS:,}")
        return 0
    sequences = (str, list, tuple)
    if operator == "*":
        if isinstance(left, sequences) and type(right) is int:
            return _text_size(left) * max(right, 0)
        if isinstance(right, sequences) and type(left) is int:
            return _text_size(right) * max(left, 0)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        return _text_size(left) + _text_size(right)
    elif operator == "%" and isinstance(left, str):
        return _percent_size(left, right)
    return 0


def _percent_size(text: str, values: Any) -> int:
    """What `text % values` builds at most: the text and every field's width and precision."""
    size = len(text) + _text_size(values)
    for width, precision in _FORMAT_SPEC.findall(text):
        if "*" in (width, precision):
            raise SecurityError("a % format may not take its width or precision from an argument ('*')")
        size += int(width or 0) + int(precision or 0)
    return size


def _str_method_size(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What a str method called from a template would build (0 for those that cannot grow the text)."""
    if name in ("ljust", "rjust", "center", "zfill") and args and type(args[0]) is int:
        return max(len(text), args[0])
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * max(size, 0) if type(size) is int else 0
    if name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        return _replaced_size(text, args[0], args[1])
    if name == "join" and args:
        items = args[0]
        return _text_size(items) + len(text) * max(len(items) - 1, 0)
    if name in ("format", "format_map"):
        size = len(text) + _text_size((args, kwargs))
        for spec in _BRACE_SPEC.findall(text):
            size += sum(int(n) for n in re.findall(r"\d+", spec))
        if re.search(r"\{[^{}]*:[^{}]*\{", text):
            raise SecurityError("a format field may not take its width from an argument ('{:{}}')")
        return size
    return 0


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _text_size(value: Any, limit: int = MAX_MESSAGE_CHARS) -> int:
    """About how many characters str(value) writes, counted without writing them: a list may hold the same
    long string many times. Counting stops a little past `limit`, so a huge value costs little to refuse."""
    if isinstance(value, str):
        return len(value)
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, _CONTAINERS):
            total += 2 + 2 * len(item)
            pending += item
        elif type(item) is int:
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _replaced_size(text: str, old: str, new: str) -> int:
    return len(text) + text.count(old) * (len(new) - len(old))


def _text_lines(s: Any) -> tuple[int, int]:
    text = str(s)
    return len(text), text.count("\n") + 1


def _join_size(value: list[Any], d: str = "", attribute: Any = None) -> int:
    return _text_size(value) + len(str(d)) * max(len(value) - 1, 0)  # by attribute: at most the whole items


def _indent_size(s: Any, width: int | str = 4, *_: Any, **__: Any) -> int:
    length, lines = _text_lines(s)
    return length + lines * (width if isinstance(width, int) else len(str(width)))


def _wordwrap_size(s: Any, width: int = 79, _long: bool = True, wrapstring: str | None = None, *_: Any) -> int:
    length, _lines = _text_lines(s)
    return length + (length // max(width, 1) + 1) * len(wrapstring or "\n")


# Filters that can build more than they are given, with what they would build (list items for batch/slice).
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: max(len(str(value)), width if type(width) is int else 0),
    "indent": _indent_size,
    "replace": lambda s, old, new, count=None: _replaced_size(str(s), str(old), str(new)),
    "format": lambda value, *args, **kwargs: _percent_size(str(value), args or kwargs),
    "wordwrap": _wordwrap_size,
    "join": _join_size,
    "batch": lambda value, linecount, fill_with=None: linecount if type(linecount) is int else 0,
    "slice": lambda value, slices, fill_with=None: slices if type(slices) is int else 0,
    **dict.fromkeys(("string", "tojson", "pprint", "e", "escape", "forceescape"), lambda value, *_, **__: _text_size(value)),
}


def _checked_filter(env: _LimitedSandbox, name: str, original: Callable[..., Any], size: Callable[..., int]) -> Any:
    """Jinja's filter `name`, refused before it runs when it would build more than a template may."""
    passed = 1 if hasattr(original, "jinja_pass_arg") else 0  # the context, eval context or environment

    @wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > passed and not isinstance(args[passed], list):
            args = (*args[:passed], list(args[passed]), *args[passed + 1 :])
        env.build(size(*args[passed:], **kwargs), f"filter '{name}'")
        return original(*args, **kwargs)

    return checked


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
        self._environments: dict[Path, _LimitedSandbox] = {}
        self._hashes: dict[tuple[Path, str], str] = {}
        self._shared_systems: dict[tuple[Path, str], bool] = {}
        self._trees: dict[tuple[Path, str], tuple[str, nodes.Template]] = {}

    def _environment(self, rubric_dir: Path) -> _LimitedSandbox:
        if rubric_dir not in self._environments:
            self._environments[rubric_dir] = self._new_environment(rubric_dir)
        return self._environments[rubric_dir]

    def _new_environment(self, rubric_dir: Path) -> _LimitedSandbox:
        env = _LimitedSandbox(
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

    def __init__(self, env: _LimitedSandbox) -> None:
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
