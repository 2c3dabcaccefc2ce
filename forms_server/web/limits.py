"""Limits on form posts, kept in memory: per network, and a global burst budget.

A client is known by its network (an IPv4 /24, an IPv6 /64: one household, one phone's
operator allocation, or one attacker's range), only as a keyed hash made with a key that lives
in this process's memory and is never written anywhere, so the table can be neither logged nor
reversed. Grouping by network means one machine with many addresses is still one client.
The per-network limit is checked first, so one flood runs into its own limit long before it can
use up the budget that everyone else shares; and forms that can carry a risk to someone
(a concern, a notice of leaving a session unsafe) never count against the shared budget at all.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
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

    def seconds_until_next(self) -> float:
        """How long until one more post is allowed (as of the last `take`)."""
        return max(0.0, (1 - self.tokens) / self.refill_per_second)


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

    def allow(self, address: str, protected: bool = False) -> bool:
        return self.wait_seconds(address, protected) is None

    def wait_seconds(self, address: str, protected: bool = False) -> float | None:
        """None if this post may go ahead; else how many seconds until it may. A `protected`
        post (a form that can carry a risk to someone) never counts against the shared budget:
        a flood from elsewhere cannot stop it."""
        now = self.clock()
        if len(self._clients) >= self.max_clients_tracked:
            self.forget_idle(now)
        key = self.client_key(network_of(address))
        bucket = self._clients.get(key)
        if bucket is None:
            bucket = TokenBucket(
                self.per_client_burst, self.per_client_per_minute / 60, self.per_client_burst, now
            )
            self._clients[key] = bucket
        if not bucket.take(now):
            return bucket.seconds_until_next()
        if protected:
            return None
        if self._global is None:
            self._global = TokenBucket(
                self.global_burst, self.global_per_minute / 60, self.global_burst, now
            )
        return None if self._global.take(now) else self._global.seconds_until_next()

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
