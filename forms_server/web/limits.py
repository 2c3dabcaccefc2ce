"""The in-memory limits, all one kind: token buckets under keyed hashes, with a cap on how many
keys are tracked (a flood from many addresses cannot grow the table without end).

- Form posts, per network (an IPv4 /24, an IPv6 /64: one household, one phone's operator
  allocation, or one attacker's range), and a global burst budget. The per-network limit is
  checked first, so one flood runs into its own limit long before it can use up the budget
  everyone else shares; forms that can carry a risk to someone (a concern, a notice of leaving
  a session unsafe) never count against the shared budget at all.
- How often one link-only link may show its form (a leaked link is limited, a recipient coming
  back to it is not).

Keys are hashed with a key that lives in this process's memory and is never written anywhere,
so the table can be neither logged nor reversed. A restart forgives everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


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

    def seconds_until_next(self) -> float:
        """How long until one more is allowed (as of the last `take`)."""
        return max(0.0, (1 - self.tokens) / self.refill_per_second)

    def full_at(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.refill_per_second >= self.capacity


@dataclass
class RateLimiter:
    """`burst` at once per key, then `per_minute`; at most `max_keys` keys remembered."""

    burst: float
    per_minute: float
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    buckets: dict[str, TokenBucket] = field(default_factory=dict, repr=False)

    def key_of(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def wait_seconds(self, value: str) -> float | None:
        """None if this one may go ahead (and it is counted); else how long until it may."""
        now = self.clock()
        if len(self.buckets) >= self.max_keys:
            self.forget_idle(now)
        key = self.key_of(value)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.burst, self.per_minute / 60, self.burst, now)
            self.buckets[key] = bucket
        return None if bucket.take(now) else bucket.seconds_until_next()

    def forget_idle(self, now: float) -> None:
        """Drop keys whose bucket has refilled: they are no different from new ones. If the
        table is still full (a flood from many keys), drop the longest-quiet half."""
        for key, bucket in list(self.buckets.items()):
            if bucket.full_at(now):
                del self.buckets[key]
        if len(self.buckets) >= self.max_keys:
            by_quiet = sorted(self.buckets, key=lambda key: self.buckets[key].updated)
            for key in by_quiet[: len(by_quiet) // 2]:
                del self.buckets[key]


def network_of(address: str) -> str:
    """The client's network: IPv4 /24, IPv6 /64; anything else (a test client) as it is."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    prefix = 24 if parsed.version == 4 else 64
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


RISK_BUDGET = 3


class PostLimits:
    def __init__(
        self,
        per_client_burst: int = 20,
        per_client_per_minute: float = 6,
        global_burst: int = 200,
        global_per_minute: float = 120,
        max_clients_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_network = RateLimiter(
            per_client_burst, per_client_per_minute, max_clients_tracked, clock
        )
        # Forms that can carry a risk to someone: a budget of their own, three times as large,
        # so a busy shared network (other people's posts) never uses it up.
        self.risky = RateLimiter(
            per_client_burst * RISK_BUDGET,
            per_client_per_minute * RISK_BUDGET,
            max_clients_tracked,
            clock,
        )
        self.everyone = RateLimiter(global_burst, global_per_minute, 1, clock)

    def allow(self, address: str, protected: bool = False) -> bool:
        return self.wait_seconds(address, protected) is None

    def wait_seconds(self, address: str, protected: bool = False) -> float | None:
        """None if this post may go ahead; else how many seconds until it may. A `protected`
        post counts against its network's risk budget alone, never the shared one: a flood
        from elsewhere cannot stop it, nor ordinary posts from its own network."""
        if protected:
            return self.risky.wait_seconds(network_of(address))
        wait = self.per_network.wait_seconds(network_of(address))
        if wait is not None:
            return wait
        return self.everyone.wait_seconds("everyone")


class ReadLimit:
    """How often one link may show its form: 20 an hour by default."""

    def __init__(self, per_hour: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = RateLimiter(per_hour, per_hour / 60, clock=clock)

    def wait_seconds(self, link: str, now: datetime | None = None) -> int | None:
        wait = self.limiter.wait_seconds(link)
        return None if wait is None else max(1, int(wait + 0.999))
