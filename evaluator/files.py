"""Read the files a user names, boundedly: every input goes through here.

A path can name anything: a FIFO or a device (`/dev/zero`) would block or never end, a huge file would
fill memory, and a YAML alias bomb or deep nesting expands a small file into billions of nodes. So a
file is read only if it is a regular file, opened without blocking, and read up to a size cap; YAML is
composed with a cap on nesting and on the size of the document once aliases are expanded.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from collections.abc import Iterator, Set
from pathlib import Path
from typing import Any

import yaml

from evaluator.errors import EvaluatorError

MiB = 1024 * 1024
MAX_DATA_BYTES = 256 * MiB  # transcripts and labels: large corpora are fine, a runaway file is not
MAX_CONFIG_BYTES = 4 * MiB  # rubrics, templates, price tables: written by hand
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


class InputFileError(EvaluatorError, ValueError):
    """A file that cannot be read safely; callers turn it into their own error type with `problem`."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        super().__init__(f"{self.path}: {self.detail}")

    @property
    def detail(self) -> str:
        """The problem with its line, for errors that name the file themselves."""
        return located(self.line, self.problem)


def located(line: int | None, problem: str) -> str:
    """ "line 3: problem", or "line 3, column 5: problem" when the problem starts with its column."""
    if line is None:
        return problem
    return f"line {line}{', ' if problem.startswith('column ') else ': '}{problem}"


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _refuse_irregular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise InputFileError(path, f"is {_kind(mode)}, not a regular file; name a regular file instead")


def read_bytes(path: str | Path, limit: int = MAX_DATA_BYTES) -> bytes:
    """The file's bytes, refusing what is not a regular file or is larger than `limit`.

    The type is checked before opening (a FIFO would block the open) and again on the open descriptor
    (the path may have been swapped in between); O_NONBLOCK keeps even that race from blocking.
    """
    path = Path(path)
    try:
        _refuse_irregular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(path, "no such file; check the path") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _refuse_irregular(path, info.st_mode)
        _refuse_size(path, info.st_size, limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    _refuse_size(path, len(data), limit)
    return data


def _refuse_size(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise InputFileError(
            path, f"is larger than {limit // MiB} MiB ({size / MiB:.0f} MiB or more); split it into smaller files"
        )


# Files that are not text at all, told apart by their first bytes, so the message says what the file is.
_SIGNATURES = (
    (b"\x1f\x8b", "a gzip archive", "decompress it (gunzip) and name the file inside"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or Word .docx file is one)", "export it as plain text, CSV or JSON"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls or Word .doc file", "export it as plain text or CSV"),
    (b"%PDF-", "a PDF document", "export its text first"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "name the transcript itself"),
    (b"\xff\xd8\xff", "a JPEG image", "name the transcript itself"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
)
# Byte order marks, longest first: a UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def read_text(path: str | Path, limit: int = MAX_DATA_BYTES) -> str:
    """UTF-8 text, or UTF-16/32 when a byte order mark says so (Windows Notepad's "Unicode", Excel's
    "Unicode text"); the mark is dropped. An encoding is never guessed: undecodable bytes are an error
    naming the line and column, and the file's likely encoding when it reads as Windows-1252."""
    data = read_bytes(path, limit)
    for signature, kind, fix in _SIGNATURES:
        if data.startswith(signature):
            raise InputFileError(path, f"is {kind}, not a text file; {fix}")
    encoding, name = next(((enc, name) for bom, enc, name in _BOMS if data.startswith(bom)), ("utf-8", "UTF-8"))
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = exc.object[: exc.start].decode(encoding, errors="replace").removeprefix("\ufeff")
        line, column = line_and_column(before, len(before))
        byte = exc.object[exc.start : exc.start + 1]
        problem = f"column {column}: byte 0x{byte.hex()} is not valid {name} ({exc.reason}); "
        raise InputFileError(path, problem + _resave_hint(data, byte, name), line) from None


# A well-formed multi-byte UTF-8 character: a file holding one is UTF-8 with a damaged byte, not Windows-1252.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _resave_hint(data: bytes, byte: bytes, name: str) -> str:
    """The fix: re-save as UTF-8, naming Windows-1252 when the whole file reads as such (smart quotes 0x92)
    and holds no UTF-8 character at all."""
    if name == "UTF-8" and b"\x00" not in data and byte >= b"\x80" and not _UTF8_SEQUENCE.search(data):
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:
            return "re-save the file as UTF-8"
        return (
            f'it reads as "{byte.decode("cp1252")}" in Windows-1252 (Latin-1), so the file is probably saved in '
            "that encoding; re-save the file as UTF-8"
        )
    return "re-save the file as UTF-8"


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of `offset`, with CRLF, CR (old Mac) and LF each ending a line."""
    before = text[:offset]
    line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    return line, offset - max(before.rfind("\n"), before.rfind("\r"))


# C0 and C1 control characters other than tab, newline, vertical tab, form feed and carriage return,
# and lone surrogates (from JSON escapes such as "\ud800", which cannot be written back as UTF-8).
_BAD_CHARACTER = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def bad_character(text: str) -> tuple[int, str] | None:
    """The offset of the first character no input should hold, and what it is; None when all are fine."""
    match = _BAD_CHARACTER.search(text)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        what = "a NUL byte (U+0000), which text never holds (a binary or UTF-16 file?); remove it or re-save as UTF-8"
    elif "\ud800" <= char <= "\udfff":
        what = f"a lone surrogate (U+{ord(char):04X}), which is not a character and cannot be written as UTF-8"
    else:
        what = f"the control character U+{ord(char):04X}, which text never needs (binary data or a terminal escape?)"
    return match.start(), what if char == "\x00" else what + "; remove it"


def check_text(path: str | Path, text: str) -> None:
    """Refuse text holding a bad character, naming its line and column."""
    found = bad_character(text)
    if found is not None:
        offset, what = found
        line, column = line_and_column(text, offset)
        raise InputFileError(path, f"column {column}: {what}", line)


# --- CSV -----------------------------------------------------------------------------------------


def sniff_delimiter(text: str, wanted: Set[str]) -> str:
    """',' unless the first line splits on ';' or a tab into more of the wanted (casefolded) column names
    than on ',': Excel writes semicolons where the comma is the decimal mark, and "Unicode text" with tabs."""
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    counts = {d: len({name.strip().casefold() for name in first.split(d)} & wanted) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def csv_problem(exc: csv.Error) -> str:
    """csv's message, with the likely cause where it names one only vaguely."""
    if "field larger than field limit" in str(exc) or "unexpected end of data" in str(exc):
        return f'malformed CSV: {exc}; a quote (") opened on this row is probably never closed'
    return f"malformed CSV: {exc}; check the quoting on this row"


def csv_rows(path: Path, text: str, wanted: Set[str]) -> Iterator[tuple[int, list[str]]]:
    """A CSV's header (line 1), then each row that is not blank, with the line it starts on; the delimiter
    as sniff_delimiter finds it. A quote left open (which would swallow the rows after it) or another
    malformed row raises InputFileError at that row's line: refused, not guessed."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text, wanted), strict=True)
    start = 1
    try:
        for values in reader:
            if start == 1 or any(value.strip() for value in values):
                yield start, values
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputFileError(path, csv_problem(exc), start) from None


# --- YAML ----------------------------------------------------------------------------------------


class YamlBoundsError(yaml.composer.ComposerError):
    """A YAML document that is well formed but too deep or too large to load."""


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses deep nesting, recursive aliases and documents that aliases expand past
    MAX_YAML_NODES (a "billion laughs" file is a few hundred bytes). Sizes are counted as nodes are
    composed, before anything is constructed, so the refusal costs no more than reading the file."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise YamlBoundsError(
                    None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise YamlBoundsError(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark
            )
        node: yaml.Node = super().compose_node(parent, index)  # type: ignore[assignment]  # None only at stream end
        self._depth -= 1
        self._sizes[id(node)] = size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_YAML_NODES:
            raise YamlBoundsError(
                None,
                None,
                f"expands to more than {MAX_YAML_NODES:,} values once its aliases (*name) are resolved; "
                "use fewer or smaller aliases",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key written twice in one mapping is refused: YAML forbids it, and PyYAML would silently keep
        the last (a rubric's second `question:` replacing the first). Keys merged in with `<<` may be
        overridden, as YAML intends."""
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the constructor refuses it with its own message
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} appears twice in this mapping (first on line {first.start_mark.line + 1}); "
                    "keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_LIBYAML_LOADERS: dict[type[BoundedLoader], type[BoundedLoader]] = {}


def with_libyaml(loader: type[BoundedLoader]) -> type[BoundedLoader]:
    """The loader with libyaml scanning and parsing the text into events (about ten times faster than
    PyYAML's Python scanner), while the bounded composer above still builds every node from those
    events, so each limit holds as before; the loader itself where PyYAML was built without libyaml."""
    if loader in _LIBYAML_LOADERS:
        return _LIBYAML_LOADERS[loader]
    try:
        from yaml._yaml import CParser
    except ImportError:
        _LIBYAML_LOADERS[loader] = loader
        return loader

    def __init__(self: Any, stream: str) -> None:
        CParser.__init__(self, stream)
        loader.__init__(self, stream)  # the Python reader still refuses what YAML calls unprintable

    composer = yaml.composer.Composer  # CParser composes in C, without the bounds: its node methods are not used
    methods = {name: getattr(composer, name) for name in ("check_node", "get_node", "get_single_node")}
    _LIBYAML_LOADERS[loader] = type(f"LibYaml{loader.__name__}", (CParser, loader), {"__init__": __init__, **methods})
    return _LIBYAML_LOADERS[loader]


def load_yaml(path: str | Path, text: str, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """Parse YAML text read from `path`; a syntax or size problem is an InputFileError naming the line.
    libyaml reads a valid file as PyYAML does, but words some refusals its own way (or refuses what PyYAML
    reads): a file it refuses is read again by the Python loader alone, whose message or result stands."""
    try:
        try:
            return yaml.load(text, Loader=with_libyaml(loader))  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError:
            return yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        column = f"column {mark.column + 1}: " if mark else ""
        kind = "YAML refused" if isinstance(exc, YamlBoundsError) else "YAML syntax error"
        raise InputFileError(path, f"{column}{kind}: {problem}", mark.line + 1 if mark else None) from None
