"""Jinja's sandbox with bounds on what a template may build or run.

Rubric templates are untrusted (a shared rubric file), and Jinja's sandbox bounds only range(): without
these bounds, {{ 'x' * 1000000000 }} took 3.9 GB and two nested loops of 9,999 steps 920 MB in `validate`.
A refusal is a SecurityError naming the limit; evaluator.prompts turns it into a PromptError naming the
template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import wraps
from itertools import islice
from typing import Any, Callable, cast

from jinja2 import nodes
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

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


class LimitedSandbox(SandboxedEnvironment):
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
            raise SecurityError(
                f"operator '{operator}' would make a number of {bits:,} bits; the limit is {MAX_INT_BITS:,}"
            )
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
    **dict.fromkeys(
        ("string", "tojson", "pprint", "e", "escape", "forceescape"), lambda value, *_, **__: _text_size(value)
    ),
}


def _checked_filter(env: LimitedSandbox, name: str, original: Callable[..., Any], size: Callable[..., int]) -> Any:
    """Jinja's filter `name`, refused before it runs when it would build more than a template may."""
    passed = 1 if hasattr(original, "jinja_pass_arg") else 0  # the context, eval context or environment

    @wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > passed and not isinstance(args[passed], list):
            args = (*args[:passed], list(args[passed]), *args[passed + 1 :])
        env.build(size(*args[passed:], **kwargs), f"filter '{name}'")
        return original(*args, **kwargs)

    return checked
