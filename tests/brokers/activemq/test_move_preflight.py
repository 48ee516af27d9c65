"""The move's pre-flight (source, its count and size, destination in one bulk POST) against
real brokers: it finds what the one-by-one look-ups find, for plain names and others."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from collectors.activemq import ActiveMQCollector
from collectors.activemq.actions import ActiveMQActions
from collectors.activemq.ops import FlavorOps
from collectors.base import MoveRequest
from mqtop.kernel.errors import UsageError
from tests.brokers.activemq.test_collector import options
from tests.support.activemq import ActiveMQBroker, wait_count

pytestmark = pytest.mark.broker


async def flavor_ops(collector: ActiveMQCollector) -> FlavorOps:
    actions = collector.actions()
    assert isinstance(actions, ActiveMQActions)
    async with actions._ops_of_flavor() as ops:
        return ops


@pytest.mark.parametrize("odd", [False, True], ids=["plain", "odd-names"])
async def test_preflight_finds_what_the_lookups_find(
    amq: ActiveMQBroker, unique: Callable[[str], str], odd: bool
) -> None:
    # a space and "!" keep a Classic name off the by-MBean-name path (found by the scan)
    src = unique("pre src!" if odd else "pre-src")
    dst = unique("pre dst" if odd else "pre-dst")
    for queue in (src, dst):
        amq.create_queue(queue, dlq_per_queue=False)
    collector = ActiveMQCollector(options(amq))
    try:
        amq.send(src, ["x" * 1000] * 7)
        assert wait_count(amq, src, 7) == 7
        ops = await flavor_ops(collector)
        pre = await ops.preflight(src, dst)
        assert pre.source == await ops.resolve(src)
        assert pre.count == 7 == await ops.count(pre.source)
        assert pre.destination is not None and pre.destination == await ops.find(dst)
        assert pre.source.mbean == amq.queue_mbean(src)
        assert pre.destination.mbean == amq.queue_mbean(dst)
        if odd and amq.flavor == "classic":
            assert pre.average_bytes is None  # found by the scan, which reads no size
        else:
            assert pre.average_bytes is not None and pre.average_bytes >= 1000
        missing = unique("pre-missing")
        assert (await ops.preflight(src, missing)).destination is None
        assert (await ops.preflight(src, None)).destination is None
        with pytest.raises(UsageError, match="no queue"):
            await ops.preflight(missing, dst)

        actions = collector.actions()
        assert actions is not None
        result = await actions.move(MoveRequest(src, dst, "move"), lambda _: None)
        assert (result.moved, result.failed) == (7, 0)
        assert amq.count(src) == 0 and wait_count(amq, dst, 7) == 7
    finally:
        await collector.close()
        for queue in (src, dst):
            amq.delete_queue(queue)
