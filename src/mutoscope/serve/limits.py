"""Requests per minute: a sliding-window limiter kept in memory, per API process.

With several API replicas each enforces the limit on its own share of the traffic (a client can
reach at most replicas x limit). That is the usual trade for not paying a database write per
request; the concurrent-jobs limit, which protects the GPUs, is exact because it is checked in the
database, in the transaction that enqueues.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, clock=time.monotonic):
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def hit(self, key: str, per_minute: int) -> int | None:
        """Count one request; None if allowed, else the seconds to wait (for Retry-After)."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - WINDOW_S:
                hits.popleft()
            if len(hits) >= per_minute:
                return max(1, math.ceil(hits[0] + WINDOW_S - now))
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys rather than grow without bound
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - WINDOW_S}
            return None
