"""Queue health (group_status / JSON status) of job queues with the libraries' real workers,
driven by the real Engine: RQ jobs waiting with no worker are STOP; a real ``rq worker`` that
takes them brings OK (its processed jobs are the consumption), and the emptied queue stays OK;
the same with Sidekiq and its real worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.health import watch
from tests.support.jobs import rq_worker, running, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]


def test_rq_backlog_without_worker_stops_and_a_worker_brings_ok(
    rq_installed, job_url, rc, write_config, unique
) -> None:
    from rq import Queue

    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    tag = unique("rqhealth")
    queue = Queue(tag, connection=rc)
    for _ in range(6):
        queue.enqueue("tests.support.jobs.rq_slow", tag, 0.2)
    path = write_config(
        f"""
        interval: 0.5s
        brokers:
          - name: jobs
            type: rq
            url: "{job_url}"
            group_status_window: 2s
        """
    )
    engine = Engine(load_config_file(path))
    reasons: dict[str, str] = {}
    phases: dict[str, list[str | None]] = {}

    def status_is(wanted: str, empty: bool = False) -> Callable[[str | None, Any], bool]:
        def check(status: str | None, view: Any) -> bool:
            ok = status == wanted and (not empty or view.metrics["queue_length"] == 0)
            if ok:
                reasons[wanted] = view.info["status_reason"]
            return ok

        return check

    try:

        async def no_worker() -> None:
            phases["no worker"] = await watch(engine, "jobs", tag, status_is("STOP"), 12)

        asyncio.run(no_worker())
        with running(rq_worker(job_url, [tag], burst=False)) as worker:

            async def working() -> None:
                phases["worker"] = await watch(engine, "jobs", tag, status_is("OK"), 20)
                phases["done"] = await watch(engine, "jobs", tag, status_is("OK", True), 20)

            asyncio.run(working())
            wait_until(lambda: rc.llen(f"{tag}:done") == 6, 20, "six jobs done")
            assert worker.alive(), worker.tail()
    finally:
        asyncio.run(engine.close())
    assert phases["no worker"][0] is None, phases
    assert len(phases["no worker"]) >= 4, phases
    assert "STALL" not in phases["no worker"] and "ERROR" not in phases["no worker"], phases
    assert "no consumer" in reasons["STOP"], reasons
    assert "ERROR" not in phases["worker"] + phases["done"], phases
    assert phases["done"][-1] == "OK", phases


def test_sidekiq_backlog_without_worker_stops_and_a_worker_brings_ok(
    sidekiq, job_url, rc, write_config, unique
) -> None:
    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    tag = unique("skhealth")
    sidekiq.push(tag, "FlakyJob", [[tag, i] for i in range(6)])
    path = write_config(
        f"""
        interval: 0.5s
        brokers:
          - name: jobs
            type: sidekiq
            url: "{job_url}"
            group_status_window: 2s
        """
    )
    engine = Engine(load_config_file(path))
    phases: dict[str, list[str | None]] = {}
    try:

        async def no_worker() -> None:
            phases["no worker"] = await watch(engine, "jobs", tag, lambda s, v: s == "STOP", 12)

        asyncio.run(no_worker())
        with running(sidekiq.worker([tag])):

            async def working() -> None:
                phases["done"] = await watch(
                    engine, "jobs", tag,
                    lambda s, v: s == "OK" and v.metrics["queue_length"] == 0, 20,
                )  # fmt: skip

            asyncio.run(working())
            wait_until(lambda: rc.llen(f"{tag}:done") == 6, 20, "six jobs done")
    finally:
        asyncio.run(engine.close())
    assert phases["no worker"][0] is None and len(phases["no worker"]) >= 4, phases
    assert "STALL" not in phases["no worker"] and "ERROR" not in phases["no worker"], phases
    assert "ERROR" not in phases["done"] and phases["done"][-1] == "OK", phases


def test_rq_worker_stuck_on_a_long_job_is_stall(
    rq_installed, job_url, rc, write_config, unique
) -> None:
    from rq import Queue

    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    tag = unique("rqstall")
    queue = Queue(tag, connection=rc)
    queue.enqueue("tests.support.jobs.rq_slow", tag, 8, job_timeout=60)
    for _ in range(3):
        queue.enqueue("tests.support.jobs.rq_slow", tag, 0.1)
    path = write_config(
        f"""
        interval: 0.5s
        brokers:
          - name: jobs
            type: rq
            url: "{job_url}"
            group_status_window: 2s
        """
    )
    engine = Engine(load_config_file(path))
    phases: dict[str, list[str | None]] = {}
    try:
        with running(rq_worker(job_url, [tag], burst=False)):
            wait_until(lambda: queue.count == 3, 20, "the long job started")

            async def stuck() -> None:
                phases["stuck"] = await watch(engine, "jobs", tag, lambda s, v: s == "STALL", 12)

            asyncio.run(stuck())
    finally:
        asyncio.run(engine.close())
    assert len(phases["stuck"]) >= 4, phases
    assert "STOP" not in phases["stuck"] and "ERROR" not in phases["stuck"], phases
