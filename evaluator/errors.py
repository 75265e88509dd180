"""One base class for every error a user can fix, so the command line reports all of them the same
way (the message, no traceback, exit 2) and a notebook can catch them in one clause."""

from __future__ import annotations


class EvaluatorError(Exception):
    """A problem with the input, the configuration or the endpoint; the message says what to fix."""


class UnknownCriterion(EvaluatorError, LookupError):
    """A criterion id that a rubric does not have; the message lists the ones it has."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
