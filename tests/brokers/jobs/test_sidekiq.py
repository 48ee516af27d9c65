"""Sidekiq with its real worker (Debian's ruby-sidekiq): mqtop's numbers equal Sidekiq's API."""

from __future__ import annotations

import asyncio

import pytest

from collectors.jobs.sidekiq.collector import SidekiqCollector
from collectors.jobs.sidekiq.options import SidekiqOptions
from tests.support.jobs import running, series_by_queue, wait_until

pytestmark = pytest.mark.broker


def _collect(url: str) -> dict:
    async def go() -> dict:
        collector = SidekiqCollector(SidekiqOptions(name="sk", url=url))
        await collector.connect()
        try:
            got = await collector.collect()
        finally:
            await collector.close()
        return {s.key.queue: s for s in got.series}

    return asyncio.run(go())


def test_queues_busy_workers_and_dead_set_match_sidekiq(sidekiq, job_url, rc, jobs_cli, unique):
    tag = unique("sk")
    work, idle = tag + "-work", tag + "-idle"
    rc.set(f"{tag}:fail", 1)
    sidekiq.push(work, "FlakyJob", [[tag, i] for i in range(5)])
    sidekiq.push(work, "SlowJob", [[tag, 8]])
    with running(sidekiq.worker([work])):
        # Sidekiq flushes its counters and busy threads at its 5-second heartbeat
        wait_until(
            lambda: (s := sidekiq.stats([work]))["dead"] == s["failed"] == 5 and s["busy"] == 1,
            30,
            "5 dead jobs and 1 busy thread in Sidekiq's stats",
        )
        sidekiq.push(idle, "FlakyJob", [[tag, 10 + i] for i in range(3)])
        own = sidekiq.stats([work, idle])
        got = _collect(job_url)
        assert got[work].values["in_flight"] == own["busy"] == 1
        assert got[work].values["consumers"] == 1
        assert got[idle].values["consumers"] == 0
        assert got[idle].values["queue_length"] == own["queues"][idle] == 3
        assert got[work].values["queue_length"] == own["queues"][work] == 0
        assert got[idle].values["latency_seconds"] == pytest.approx(own["latency"][idle], abs=3)
        assert got[work].values["latency_seconds"] == 0
        for queue in (work, idle):
            assert got[queue].dlq == "dead"
            assert got[queue].values["dlq_length"] == own["dead"] == 5
            # two queues share Sidekiq's instance-wide counters: no per-queue rate is made up
            assert got[queue].values["processed_total"] is None
            assert got[queue].info["failed (all queues)"] == own["failed"] == 5
            assert got[queue].info["retry (all queues)"] == own["retry"] == 0
        dead = got["dead"]
        assert dead.values["queue_length"] == 5
        assert dead.info["cap (dead_max_jobs - 1)"] == 9_999  # the default, as DeadSet#kill trims
    # after a clean stop Sidekiq removes its process: no consumers; the drained queue shows 0
    rc.delete(f"{tag}:fail")
    series = series_by_queue(jobs_cli("sidekiq", job_url, "metrics", "--format", "json"))
    own = sidekiq.stats([work, idle])
    assert series[work]["kind"] == "jobs"
    assert series[work]["metrics"]["queue_length"] == own["queues"][work] == 0
    assert series[idle]["metrics"]["queue_length"] == 3
    assert series[work]["metrics"]["consumers"] == own["processes"] == 0
    assert series["dead"]["metrics"]["queue_length"] == own["dead"] == 5


def test_single_queue_rates_from_sidekiq_counters(sidekiq, job_url, rc, unique):
    tag = unique("sk1")
    rc.set(f"{tag}:fail", 1)
    sidekiq.push(tag, "FlakyJob", [[tag, i] for i in range(4)])
    with running(sidekiq.worker([tag])):
        wait_until(lambda: sidekiq.stats([tag])["failed"] == 4, 30, "4 failures counted")
        rc.delete(f"{tag}:fail")
        sidekiq.push(tag, "FlakyJob", [[tag, 10 + i] for i in range(6)])
        wait_until(lambda: sidekiq.stats([tag])["processed"] == 10, 30, "10 processed")
    own = sidekiq.stats([tag])
    got = _collect(job_url)[tag]
    # one queue: Sidekiq's instance counters are this queue's (successes, failures)
    assert got.values["processed_total"] == own["processed"] - own["failed"] == 6
    assert got.values["dead_lettered_total"] == own["failed"] == 4
    assert sorted(int(x) for x in rc.lrange(f"{tag}:done", 0, -1)) == list(range(10, 16))


def test_dead_set_cap_is_one_below_dead_max_jobs(sidekiq, job_url, unique):
    # Sidekiq's own failure path with dead_max_jobs 40: DeadSet#kill trims to 39, not 40
    sidekiq.fail_into_dead(unique("cap"), "cap", 45, dead_max_jobs=40)
    own = sidekiq.stats([])
    assert own["dead"] == 39

    async def go() -> dict:
        collector = SidekiqCollector(SidekiqOptions(name="sk", url=job_url, dead_max_jobs=40))
        await collector.connect()
        try:
            return {s.key.queue: s for s in (await collector.collect()).series}
        finally:
            await collector.close()

    dead = asyncio.run(go())["dead"]
    assert dead.values["queue_length"] == own["dead"] == 39
    assert dead.info["cap (dead_max_jobs - 1)"] == 39
    assert dead.info["fill"] == 1.0  # full: the next death silently evicts the oldest
