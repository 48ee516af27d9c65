"""Fixtures of the job-library tests: a private Redis (a fresh database per test) and each
library's real worker."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests import harness
from tests.conftest import _obtain
from tests.support import jobs as support_jobs

_DATABASES = itertools.cycle(range(1, 16))


@pytest.fixture(scope="session")
def jobs_redis() -> Iterator[harness.RedisBroker]:
    """A redis-server of the job tests' own (the libraries' global keys stay apart)."""
    broker = _obtain("Redis for job libraries", support_jobs.find_jobs_redis)
    assert isinstance(broker, harness.RedisBroker)
    yield broker
    broker.stop()


@pytest.fixture
def job_url(jobs_redis: harness.RedisBroker) -> Iterator[str]:
    """A Redis URL with a database of this test's own (emptied first on the private server)."""
    db = next(_DATABASES)
    url = f"redis://{jobs_redis.host}:{jobs_redis.port}/{db}"
    client = redis.Redis.from_url(url)
    if jobs_redis.managed is not None:
        client.flushdb()
    elif client.dbsize():
        pytest.fail(f"database {db} of MQTOP_TEST_JOBS_REDIS_URL is not empty", pytrace=False)
    client.close()
    yield url


@pytest.fixture
def rc(job_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test's database."""
    client = redis.Redis.from_url(job_url)
    yield client
    client.close()


@pytest.fixture
def sidekiq(job_url: str) -> Iterator[support_jobs.Sidekiq]:
    """Debian's Sidekiq 6 against the test's database."""
    lib = _obtain("Sidekiq (ruby-sidekiq)", lambda: support_jobs.Sidekiq(job_url))
    assert isinstance(lib, support_jobs.Sidekiq)
    yield lib
    lib.close()


@pytest.fixture
def bullmq(job_url: str) -> support_jobs.BullMQ:
    """BullMQ 6 on Node (installed from npm into the cache on first use)."""
    lib = _obtain("BullMQ (node + npm bullmq)", lambda: support_jobs.BullMQ(job_url))
    assert isinstance(lib, support_jobs.BullMQ)
    return lib


@pytest.fixture
def rq_installed() -> None:
    """The rq package (its worker runs as ``rq worker``)."""
    _obtain("RQ (pip rq)", support_jobs.rq_available)


@pytest.fixture
def celery_installed() -> None:
    """The celery package (its worker runs as ``celery worker``)."""
    _obtain("Celery (pip celery)", support_jobs.celery_available)


@pytest.fixture
def jobs_cli(
    write_config: Callable[[str], Path],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run mqtop against one job-library broker named ``jobs``."""

    def run(
        broker_type: str, url: str, *args: str, extra: str = ""
    ) -> subprocess.CompletedProcess[str]:
        config = write_config(
            f"""
            interval: 1s
            brokers:
              - {{name: jobs, type: {broker_type}, url: "{url}"{extra}}}
            """
        )
        return run_cli("--config", str(config), *args)

    return run
