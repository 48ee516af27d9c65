"""Queue health (group_status / JSON status) of ActiveMQ queues, Artemis and Classic, driven by
the real Engine and real STOMP clients: a backlog nobody consumes is STOP, a consumer that is
subscribed but takes nothing is STALL, a consumer that drains it brings OK, and an empty idle
queue stays OK. The consumer count and the enqueue/dequeue counters come from JMX (Jolokia)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, wait_count
from tests.support.health import watcher

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


watch = watcher("amq")


def test_queue_stops_stalls_drains_and_idles(amq: ActiveMQBroker, write_config, unique) -> None:
    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    queue = unique("health")
    broker = {
        "name": "amq",
        "type": "activemq",
        "jolokia_url": amq.jolokia_url,
        "user": amq.user,
        "password": amq.password,
        "include": [queue],
        "group_status_window": "2s",
    }
    path = write_config("interval: 0.5s\nbrokers:\n  - " + json.dumps(broker) + "\n")
    amq.create_queue(queue, dlq_per_queue=False)  # the held message returns to the queue
    reasons: dict[str, str] = {}

    def status_is(wanted: str, empty: bool = False) -> Callable[[str | None, Any], bool]:
        def check(status: str | None, view: Any) -> bool:
            ok = status == wanted and (not empty or view.metrics["queue_length"] == 0)
            if ok:
                reasons[wanted] = view.info["status_reason"]
            return ok

        return check

    engine = Engine(load_config_file(path))
    holder: Any = None
    phases: dict[str, list[str | None]] = {}
    try:
        amq.send(queue, [f"job-{i}" for i in range(5)])
        assert wait_count(amq, queue, 5) == 5

        async def unconsumed() -> None:
            phases["no consumer"] = await watch(engine, queue, status_is("STOP"), 12)

        asyncio.run(unconsumed())
        holder = amq.hold(queue, 1)  # subscribed, takes one message and never acknowledges it

        async def stalled() -> None:
            phases["stuck consumer"] = await watch(engine, queue, status_is("STALL"), 12)

        asyncio.run(stalled())
        holder.disconnect()
        holder = None
        drained_bodies: list[str] = []
        deadline = time.monotonic() + 25  # the held message comes back once the holder left
        while len(drained_bodies) < 5 and time.monotonic() < deadline:
            drained_bodies += [f.body for f in amq.drain(queue, 5 - len(drained_bodies), 5)]
        assert sorted(drained_bodies) == [f"job-{i}" for i in range(5)]

        async def drained() -> None:
            phases["drained"] = await watch(engine, queue, status_is("OK", empty=True), 10)
            # idle and empty for more than a window: still OK
            phases["idle"] = [None]
            for _ in range(6):
                phases["idle"] = await watch(engine, queue, lambda s, v: True, 2)

        asyncio.run(drained())
    finally:
        if holder is not None:
            with contextlib.suppress(Exception):
                holder.disconnect()
        asyncio.run(engine.close())
        amq.cleanup(queue)
    # judged over a window, never from one sample: the first polls have no verdict yet
    assert phases["no consumer"][0] is None, phases
    assert len(phases["no consumer"]) >= 4 and len(phases["stuck consumer"]) >= 4, phases
    assert "STALL" not in phases["no consumer"] and "ERROR" not in phases["no consumer"], phases
    assert "no consumer" in reasons["STOP"], reasons
    assert "consumer(s) attached" in reasons["STALL"], reasons
    assert "OK" not in phases["stuck consumer"] and "ERROR" not in phases["stuck consumer"], phases
    assert phases["drained"][-1] == "OK", phases
    assert phases["idle"] == ["OK"], phases
