"""Per-client limits and the global burst budget, on a clock the test controls."""

from __future__ import annotations

from forms_server.limits import PostLimits


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
    allowed = [limits.allow(f"10.0.0.{n}") for n in range(15)]
    assert allowed == [True] * 10 + [False] * 5
    clock.now += 1
    assert limits.allow("10.0.0.99")


def test_addresses_are_kept_only_as_keyed_hashes() -> None:
    limits = PostLimits()
    limits.allow("192.0.2.44")
    assert all("192.0.2.44" not in key for key in limits._clients)
    assert limits.client_key("192.0.2.44") != PostLimits().client_key("192.0.2.44")


def test_the_table_of_clients_stays_bounded() -> None:
    clock = Clock()
    limits = PostLimits(max_clients_tracked=100, global_burst=10_000, clock=clock)
    for n in range(1000):
        limits.allow(f"10.1.{n // 250}.{n % 250}")
    assert len(limits._clients) <= 100
