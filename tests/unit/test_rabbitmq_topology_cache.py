"""Dead-letter resolutions are kept while the exchanges they went through are as they were
(pure logic over the topology cache)."""

from __future__ import annotations

from collectors.base import dlq_candidates, dlq_index
from collectors.rabbitmq.deadletters import DeadLetterTarget, ExchangeInfo, Topology


def _direct(*bindings: tuple[str, str]) -> ExchangeInfo:
    return ExchangeInfo(
        type="direct",
        bindings=[("queue", dest, key, {}) for dest, key in bindings],
        fetched=0.0,
    )


def test_resolutions_survive_a_refresh_that_changed_nothing_and_only_that():
    topology = Topology()
    target = DeadLetterTarget("dlx", None)
    topology.store("/", "dlx", _direct(("orders.dlq", "orders")))
    first = topology.resolve("/", "orders", target)
    assert first == ["orders.dlq"]
    # the same exchange fetched again: the resolution is kept (the very list)
    topology.store("/", "dlx", _direct(("orders.dlq", "orders")))
    assert topology.resolve("/", "orders", target) is first
    # a binding changed: resolved again
    topology.store("/", "dlx", _direct(("orders.parking", "orders")))
    assert topology.resolve("/", "orders", target) == ["orders.parking"]
    # the exchange went away: nothing receives the dead letters
    topology.store("/", "dlx", ExchangeInfo(type=None, bindings=[], fetched=0.0))
    assert topology.resolve("/", "orders", target) == []


def test_the_conventional_index_finds_the_first_candidate_listed():
    names = ["/:orders", "/:orders-dlq", "/:orders.dlq", "/:jobs", "/:jobs:dead", "/:x.DLT.dlq"]
    index = dlq_index(names)
    for name in names:
        first = next((c for c in dlq_candidates(name) if c in names), None)
        assert index.get(name) == first, name
    assert index["/:orders"] == "/:orders.dlq"  # the first suffix wins over a later one
