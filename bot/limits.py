"""Limits that keep one person from flooding the bot and one bug from flooding the admins."""

from __future__ import annotations

import collections
import time

# One admin alert per error type per window: a bug hit by every request must not become a message per request.
ALERT_WINDOW_S = 600.0


class UserRateLimiter:
    """A token bucket per user: `burst` requests at once, refilled at `per_minute`.

    A bucket that has refilled to full is the same as a new one, so such buckets are dropped: the memory follows
    the users active in the last refill period, not every user ever seen.
    """

    def __init__(self, burst: int, per_minute: float) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.refill_s = burst / self.rate  # from empty to full
        self._buckets: dict[int, tuple[float, float]] = {}  # user_id -> (tokens, last refill time)
        self._warned: set[int] = set()
        self._last_sweep: float | None = None

    def __len__(self) -> int:
        """Users with a bucket in memory."""
        return len(self._buckets)

    def allow(self, user_id: int, now: float | None = None) -> bool:
        """Take one token if the user has one."""
        now = time.monotonic() if now is None else now
        self._sweep(now)
        tokens, last = self._buckets.get(user_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[user_id] = (tokens - 1.0, now)
            self._warned.discard(user_id)
            return True
        self._buckets[user_id] = (tokens, now)
        return False

    def _sweep(self, now: float) -> None:
        """Drop full buckets, at most once per refill period.

        A bucket that survives a sweep was used within the last refill period, so after the previous sweep: each
        entry a sweep reads stands for at least one call since, which keeps the cost O(1) per call amortised.
        """
        if self._last_sweep is None:
            self._last_sweep = now
        if now - self._last_sweep < self.refill_s:
            return
        self._last_sweep = now
        for user_id in [
            u for u, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst
        ]:
            del self._buckets[user_id]
            self._warned.discard(user_id)

    def first_refusal(self, user_id: int) -> bool:
        """True once per streak of refusals, so the polite reply is not itself spam."""
        if user_id in self._warned:
            return False
        self._warned.add(user_id)
        return True


class AlertThrottle:
    """At most one alert per key per window; the next one learns how many were held back."""

    def __init__(self, window_s: float = ALERT_WINDOW_S) -> None:
        self.window_s = window_s
        self._last: dict[str, float] = {}  # key -> when its last alert went out
        self._held: collections.Counter[str] = collections.Counter()

    def admit(self, key: str, now: float | None = None) -> int | None:
        """None: hold this one back; otherwise send it, mentioning the returned number held back before it."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            self._held[key] += 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
