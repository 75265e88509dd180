"""The progress bar of a run: judgments, rate, tokens and cost so far, redrawn a few times a second."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evaluator.judges.pricing import Price
from evaluator.models import Judgment


class Ledger:
    """Running totals: judgments this session, tokens, and cost so far, and when the last one came."""

    def __init__(self, price: Price | None) -> None:
        self.price = price
        self.judged = 0
        self.tokens = 0
        self.cost = 0.0
        self.last = 0.0

    def add(self, judgment: Judgment) -> None:
        self.judged += 1
        self.last = time.monotonic()
        self.tokens += judgment.usage.prompt_tokens + judgment.usage.completion_tokens
        if self.price is not None:
            self.cost += self.price.cost(judgment.usage)


class RunProgress:
    """A bar told at most every `show_every` seconds: it redraws only a few times a second anyway, and
    telling it about every judgment would cost more than storing the judgment."""

    def __init__(
        self, console: Console, enabled: bool, planned: int, resumed: int, ledger: Ledger, show_every: float = 0.1
    ) -> None:
        self.ledger, self.resumed, self.show_every = ledger, resumed, show_every
        self.started = time.monotonic()
        self.shown = 0.0
        self._bar = Progress(
            TextColumn("[bold]judging"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TextColumn("{task.fields[tokens]:,} tok"),
            TextColumn("{task.fields[cost]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            refresh_per_second=4,
            transient=False,
        )
        self._task = self._bar.add_task("judging", total=planned, completed=resumed, rate=0.0, tokens=0, cost="")

    def add(self, judgment: Judgment) -> None:
        self.ledger.add(judgment)
        if self.ledger.last - self.shown >= self.show_every:
            self.shown = self.ledger.last
            self.show()

    def show(self) -> None:
        ledger = self.ledger
        self._bar.update(
            self._task,
            completed=self.resumed + ledger.judged,
            rate=ledger.judged / max(time.monotonic() - self.started, 1e-9),
            tokens=ledger.tokens,
            cost=f"${ledger.cost:.4f}" if ledger.price is not None else "",
        )

    def __enter__(self) -> RunProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.show()
        self._bar.__exit__(kind, exc, tb)
