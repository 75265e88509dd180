"""Request and token rate limits, so a batch stays under a provider's tier instead of hitting 429s."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """A token bucket refilled continuously at `per_minute / 60` units a second, holding one minute's worth.

    `acquire(n)` waits until n units are available. A request larger than the whole bucket waits for
    a full bucket and then goes, rather than blocking forever.
    """

    def __init__(self, per_minute: float | None) -> None:
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = float(per_minute or 0)
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        if self.rate is None:
            return
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
                self.updated = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        """Give back what an estimate over-charged once the real usage is known."""
        if self.rate is not None and amount > 0:
            self.level = min(self.capacity, self.level + amount)
