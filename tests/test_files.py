"""The one reader of user-named files: regular files only, never blocking, bounded in size and in YAML."""

from __future__ import annotations

import os
import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evaluator import files
from evaluator.files import InputFileError, check_text, load_yaml, read_bytes, read_text


class TookTooLong(Exception):
    """Raised by `bounded` when the code under test hangs."""


@contextmanager
def bounded(seconds: float = 20.0) -> Iterator[None]:
    """Fail instead of hanging: a hostile input must be refused, never waited on."""

    def expire(signum: int, frame: object) -> None:
        raise TookTooLong(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with bounded(), pytest.raises(InputFileError, match=r"pipe.txt: is a named pipe \(FIFO\), not a regular file"):
        read_bytes(fifo)


def test_a_character_device_is_refused_also_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    with bounded(), pytest.raises(InputFileError, match="is a character device, not a regular file"):
        read_bytes(link)


def test_a_socket_and_a_folder_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(InputFileError, match="is a socket"):
            read_bytes(path)
    with pytest.raises(InputFileError, match="is a folder"):
        read_bytes(tmp_path)


def test_a_missing_file_and_a_link_loop_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file; check the path"):
        read_bytes(tmp_path / "nope.txt")
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    with pytest.raises(InputFileError, match="cannot read the file: Too many levels of symbolic links"):
        read_bytes(loop)


def test_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * (3 * files.MiB))
    assert len(read_bytes(path, limit=4 * files.MiB)) == 3 * files.MiB
    with pytest.raises(InputFileError, match="big.txt: is larger than 1 MiB \\(3 MiB or more\\); split it"):
        read_bytes(path, limit=files.MiB)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"ok\nstill ok\nbad \xff here\n")
    with pytest.raises(InputFileError) as caught:
        read_text(path)
    assert caught.value.line == 3 and "byte 0xff is not valid UTF-8" in caught.value.problem


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("a\nb\x00c", 2, 2, "a NUL byte (U+0000)"),
        ("abc\x1b[31m", 1, 4, "the control character U+001B"),
        ("x\n\n\x85", 3, 1, "the control character U+0085"),
        ("lone \ud800", 1, 6, "a lone surrogate (U+D800)"),
    ],
)
def test_bad_characters_are_located(text: str, line: int, column: int, what: str) -> None:
    with pytest.raises(InputFileError) as caught:
        check_text("f.txt", text)
    assert caught.value.line == line
    assert caught.value.problem.startswith(f"column {column}: {what}")


def test_harmless_control_characters_are_kept() -> None:
    check_text("f.txt", "tab\there\r\nform\x0cfeed\x0bvertical tab, emoji \U0001f600 and é")


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + f"\ntop: *a{levels}\n"


def test_a_yaml_alias_bomb_is_refused() -> None:
    with bounded(5), pytest.raises(InputFileError) as caught:
        load_yaml("bomb.yaml", _alias_bomb())
    assert "YAML refused: expands to more than 100,000 values once its aliases" in caught.value.problem
    assert caught.value.line is not None


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = "base: &base {a: 1, b: [x, y]}\nother: {<<: *base, c: 2}\ncopy: *base\n"
    assert load_yaml("ok.yaml", text) == {
        "base": {"a": 1, "b": ["x", "y"]},
        "other": {"a": 1, "b": ["x", "y"], "c": 2},
        "copy": {"a": 1, "b": ["x", "y"]},
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x: " + "[" * 100_000 + "]" * 100_000, "YAML refused: nested more than 64 levels deep"),
        ("".join(" " * n + f"k{n}:\n" for n in range(200)) + " " * 200 + "v\n", "nested more than 64 levels deep"),
        ("a: &a [1, *a]\n", "YAML refused: alias *a refers to a node that contains it"),
        ("a: [1, 2\n", "YAML syntax error"),
        ("a: *nothing\n", "YAML syntax error: found undefined alias"),
    ],
)
def test_deep_recursive_and_broken_yaml_are_clear_errors(text: str, problem: str) -> None:
    with bounded(5), pytest.raises(InputFileError, match=re.escape(problem)):
        load_yaml("r.yaml", text)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path: Path, encoding: str) -> None:
    """Notepad's "Unicode" and Excel's "Unicode text" are UTF-16 with a BOM: no guess is needed to read them."""
    path = tmp_path / "t.txt"
    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    path.write_bytes(bom + "Patient: It’s a lot.\r\nTherapist: Let’s pause.\n".encode(encoding))
    assert read_text(path) == "Patient: It’s a lot.\r\nTherapist: Let’s pause.\n"


def test_damaged_utf16_names_the_line_in_utf16(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("a\nb\nc".encode("utf-16") + b"\x00")  # an odd byte at the end
    with pytest.raises(InputFileError) as caught:
        read_text(path)
    assert caught.value.line == 3 and "is not valid UTF-16 (truncated data)" in caught.value.problem


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x1f\x8b\x08\x00rest", "is a gzip archive, not a text file; decompress it (gunzip)"),
        (b"PK\x03\x04rest", "is a ZIP archive (an Excel .xlsx or Word .docx file is one), not a text file; export"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a PNG image, not a text file"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "is a PDF document, not a text file; export its text first"),
    ],
)
def test_a_binary_file_is_named_for_what_it_is(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as caught:
        read_text(path)
    assert caught.value.problem.startswith(kind) and caught.value.line is None


def test_windows_1252_bytes_are_located_and_the_encoding_named(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"Patient: ok\r\nTherapist: it\x92s fine\r\n")
    with pytest.raises(InputFileError) as caught:
        read_text(path)
    assert caught.value.line == 2 and caught.value.problem == (
        'column 14: byte 0x92 is not valid UTF-8 (invalid start byte); it reads as "’" in Windows-1252 '
        "(Latin-1), so the file is probably saved in that encoding; re-save the file as UTF-8"
    )
    path.write_bytes(b"Patient: caf\xc3\xa9\nTherapist: it\x92s\n")
    with pytest.raises(InputFileError) as caught:  # real UTF-8 with one bad byte: damaged, not Windows-1252
        read_text(path)
    assert caught.value.problem.endswith("(invalid start byte); re-save the file as UTF-8")


def test_old_mac_line_ends_count_as_lines() -> None:
    with pytest.raises(InputFileError) as caught:
        check_text("f.txt", "one\rtwo\r\nthree\rfo\x00ur")
    assert caught.value.line == 4 and caught.value.problem.startswith("column 3: a NUL byte")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "'a' appears twice in this mapping (first on line 1)"),
        ("c:\n  - question: x\n    name: y\n    question: z\n", 4, "'question' appears twice"),
        ("{x: 1, 'x': 2}", 1, "'x' appears twice"),
    ],
)
def test_a_key_written_twice_in_yaml_is_refused(text: str, line: int, key: str) -> None:
    with pytest.raises(InputFileError) as caught:
        load_yaml("r.yaml", text)
    assert caught.value.line == line and key in caught.value.problem


def test_a_merged_key_may_be_overridden() -> None:
    assert load_yaml("ok.yaml", "base: &b {a: 1, c: 1}\nother: {<<: *b, a: 2}\n")["other"] == {"a": 2, "c": 1}
