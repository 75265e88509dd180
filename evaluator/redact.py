"""Keep credentials out of everything the evaluator writes or prints.

A key can reach us three ways: from the environment variable named by `--api-key-env`, inside a base
URL (`https://user:password@host/v1`, `?api-key=...`), or pasted by mistake where a name was asked
for (`--api-key-env sk-...`). Manifests, judgments, reports, error messages and the recorded command
line all pass through here. Secrets are replaced as whole tokens, never as substrings, so a short
dummy key (`x`) cannot garble a message by masking every `x` in it.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Sequence
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

MASK = "***"
# Query parameters that configure an endpoint rather than authenticate to it (Azure's api-version).
PUBLIC_QUERY = frozenset({"api-version", "api_version"})
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
API_KEY_ENV_OPTION = "--api-key-env"


def redact_url(url: str) -> str:
    """The URL as it may be written: no user or password, no query values but public ones, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={value if name.lower() in PUBLIC_QUERY else MASK}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, MASK if parts.fragment else ""))


def url_secrets(url: str | None) -> list[str]:
    """The parts of a URL that may be credentials: user, password, private query values, fragment."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    found = [piece for piece in re.split(r"[:]", userinfo) if piece] if userinfo else []
    found += [value for name, value in parse_qsl(parts.query) if name.lower() not in PUBLIC_QUERY and value]
    if parts.fragment:
        found.append(parts.fragment)
    return found


def api_key_env_problem(name: str) -> str | None:
    """Why `name` cannot be the name of the variable holding the key: most often, it is the key itself.
    The message never repeats the value."""
    if not _ENV_NAME.fullmatch(name):
        return (
            f"{API_KEY_ENV_OPTION} takes the NAME of an environment variable (e.g. OPENAI_API_KEY), and what was "
            "given is not a variable name (it looks like a key; it was not recorded). Put the key in the "
            f"environment, e.g. `export OPENAI_API_KEY=...`, and pass {API_KEY_ENV_OPTION} OPENAI_API_KEY"
        )
    looks_like_key = len(name) >= 16 and any(c.islower() for c in name) and any(c.isdigit() for c in name)
    if looks_like_key and name not in os.environ:
        return (
            f"{API_KEY_ENV_OPTION}: no environment variable of that name is set, and the value looks like a key "
            "(it was not recorded); pass the NAME of the variable that holds the key, e.g. OPENAI_API_KEY"
        )
    return None


class Redactor:
    """Masks known secret values wherever they appear as a whole token, plus credentials in any URL."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = {s for secret in secrets if secret for s in (secret, quote(secret, safe=""), unquote(secret))}
        alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])") if alternatives else None

    @classmethod
    def for_endpoint(cls, api_key: str | None, base_url: str | None) -> Redactor:
        return cls([api_key, *url_secrets(base_url)])

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda match: redact_url(match.group(0)), text)
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def argv(self, argv: Sequence[str]) -> list[str]:
        """A command line as it may be recorded: URLs without credentials, known secrets masked, and a
        key pasted where the variable's name belongs replaced by the mask."""
        cleaned = []
        for index, arg in enumerate(argv):
            option, eq, value = arg.partition("=")
            if option == API_KEY_ENV_OPTION and eq and api_key_env_problem(value):
                arg = f"{option}={MASK}"
            elif index > 0 and argv[index - 1] == API_KEY_ENV_OPTION and api_key_env_problem(arg):
                arg = MASK
            cleaned.append(self(arg))
        return cleaned
