"""The `evaluator` command."""

from evaluator.cli.main import main

__all__ = ["main"]
