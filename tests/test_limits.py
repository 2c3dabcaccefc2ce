"""Per-client limits and the global burst budget, on a clock the test controls."""

from __future__ import annotations

import pytest

from forms_server.web.limits import PostLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    limits = PostLimits(per_client_burst=3, per_client_per_minute=6, clock=clock)
    assert [limits.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    clock.now += 10  # 6 a minute: one more every 10 seconds
    assert limits.allow("10.0.0.1")
    assert not limits.allow("10.0.0.1")


def test_the_global_budget_caps_everyone_together() -> None:
    clock = Clock()
    limits = PostLimits(per_client_burst=5, global_burst=10, global_per_minute=60, clock=clock)
    allowed = [limits.allow(f"10.0.{n}.1") for n in range(15)]
    assert allowed == [True] * 10 + [False] * 5
    clock.now += 1
    assert limits.allow("10.0.99.1")


def test_addresses_are_kept_only_as_keyed_hashes() -> None:
    limits = PostLimits()
    limits.allow("192.0.2.44")
    assert all("192.0.2.44" not in key for key in limits.per_network.buckets)
    assert limits.per_network.key_of("192.0.2.44") != PostLimits().per_network.key_of("192.0.2.44")


def test_the_table_of_clients_stays_bounded() -> None:
    clock = Clock()
    limits = PostLimits(max_clients_tracked=100, global_burst=10_000, clock=clock)
    for n in range(1000):
        limits.allow(f"10.1.{n // 250}.{n % 250}")
    assert len(limits.per_network.buckets) <= 100


def test_one_network_with_many_addresses_is_one_client() -> None:
    clock = Clock()
    limits = PostLimits(per_client_burst=3, clock=clock)
    assert [limits.allow(f"198.51.100.{n}") for n in range(1, 5)] == [True, True, True, False]
    assert [limits.allow(f"2001:db8:1:2::{n:x}") for n in range(1, 5)] == [True] * 3 + [False]
    # IPv4 seen through IPv6 is the same network; the next network along is another client.
    assert not limits.allow("::ffff:198.51.100.200")
    assert limits.allow("198.51.101.1")
    assert limits.allow("2001:db8:1:3::1")


def test_a_flood_from_many_networks_never_stops_a_concern() -> None:
    """About 180 posts from rotating addresses used up the shared budget, then everyone got
    429: a concern, or a notice of leaving unsafe, must still get through."""
    clock = Clock()
    limits = PostLimits(per_client_burst=20, global_burst=200, global_per_minute=120, clock=clock)
    flood = [
        limits.allow(f"203.0.{n // 256}.{n % 256}", protected=False)
        for n in range(0, 256 * 300, 256)
    ]
    assert flood.count(False) > 0
    assert not limits.allow("192.0.2.1")  # an ordinary form from a fresh network waits...
    assert limits.allow("192.0.2.2", protected=True)  # ...a concern from there does not


def test_the_wait_is_the_real_time_until_the_next_post() -> None:
    clock = Clock()
    limits = PostLimits(per_client_burst=1, per_client_per_minute=6, clock=clock)
    assert limits.wait_seconds("10.0.0.1") is None
    assert limits.wait_seconds("10.0.0.1") == 10.0
    clock.now += 4
    assert limits.wait_seconds("10.0.0.1") == pytest.approx(6.0)
