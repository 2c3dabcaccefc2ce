"""Limits on form posts, kept in memory: per client, and a global burst budget.

A client is known only by a keyed hash of its address, made with a key that lives in this
process's memory and is never written anywhere, so the table can be neither logged nor reversed.
The per-client limit is checked first, so one client flooding the server runs into its own
limit long before it can use up the budget that everyone else shares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    capacity: float
    refill_per_second: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(
            self.capacity, self.tokens + (now - self.updated) * self.refill_per_second
        )
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class PostLimits:
    per_client_burst: int = 20
    per_client_per_minute: float = 6
    global_burst: int = 200
    global_per_minute: float = 120
    max_clients_tracked: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _clients: dict[str, TokenBucket] = field(default_factory=dict, repr=False)
    _global: TokenBucket | None = field(default=None, repr=False)

    def client_key(self, address: str) -> str:
        return hmac.new(self._key, address.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def allow(self, address: str) -> bool:
        now = self.clock()
        if len(self._clients) >= self.max_clients_tracked:
            self.forget_idle(now)
        key = self.client_key(address)
        bucket = self._clients.get(key)
        if bucket is None:
            bucket = TokenBucket(
                self.per_client_burst, self.per_client_per_minute / 60, self.per_client_burst, now
            )
            self._clients[key] = bucket
        if not bucket.take(now):
            return False
        if self._global is None:
            self._global = TokenBucket(
                self.global_burst, self.global_per_minute / 60, self.global_burst, now
            )
        return self._global.take(now)

    def forget_idle(self, now: float) -> None:
        """Drop clients whose bucket has refilled: they are no different from new ones. If the
        table is still full (a flood from many addresses), drop the longest-quiet half."""
        for key, bucket in list(self._clients.items()):
            refilled = bucket.tokens + (now - bucket.updated) * bucket.refill_per_second
            if refilled >= bucket.capacity:
                del self._clients[key]
        if len(self._clients) >= self.max_clients_tracked:
            by_quiet = sorted(self._clients, key=lambda key: self._clients[key].updated)
            for key in by_quiet[: len(by_quiet) // 2]:
                del self._clients[key]
