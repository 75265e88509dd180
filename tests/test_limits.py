"""Rate limits: no limit costs nothing; a request larger than the bucket still goes."""

from __future__ import annotations

import asyncio

from evaluator.judges.limits import RateLimiter


async def test_no_limit_never_waits_and_a_full_bucket_serves_at_once() -> None:
    unlimited = RateLimiter(None)
    limited = RateLimiter(6000)
    await asyncio.wait_for(asyncio.gather(*(unlimited.acquire(10**9) for _ in range(100))), timeout=5)
    await asyncio.wait_for(asyncio.gather(*(limited.acquire(1) for _ in range(100))), timeout=5)
    assert limited.level <= 6000 - 100 + 1


async def test_a_request_larger_than_the_bucket_is_clamped_not_stuck() -> None:
    limiter = RateLimiter(60)
    await asyncio.wait_for(limiter.acquire(10**6), timeout=5)
    limiter.refund(30)
    assert 29 <= limiter.level <= 31
