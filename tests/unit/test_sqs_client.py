"""SQS client plumbing without an endpoint: time limits from the poll budget, the daemon
worker pool, and endpoint URL passwords kept out of botocore and masked everywhere."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from collectors.sqs.client import (
    ACTION_LIMITS,
    Limits,
    make_client,
    poll_budget,
    poll_limits,
    without_userinfo,
)
from collectors.sqs.cloudwatch import has_datapoint, no_data_warning
from collectors.sqs.options import SQSOptions
from collectors.sqs.pool import DaemonPool
from mqtop.kernel.secrets import redact
from tests.conftest import ROOT


def _options(**extra: object) -> SQSOptions:
    return SQSOptions.model_validate({"name": "aws", "type": "sqs", **extra})


def test_poll_limits_follow_the_budget():
    assert poll_budget(_options()) == 5.0  # the engine's default for a 5 s interval
    assert poll_budget(_options(interval="30s")) == 30.0
    assert poll_budget(_options(interval="1s")) == 5.0
    assert poll_budget(_options(timeout="2s", interval="30s")) == 2.0
    limits = poll_limits(_options(timeout="8s"))
    assert limits == Limits(connect=4.0, read=4.0, attempts=2)
    # an endpoint that never answers costs about the budget (plus a second of backoff)
    assert limits.unanswered == 8.0 + 1.0
    # what a silent endpoint used to cost every poll (and still may cost a replay or a move)
    assert ACTION_LIMITS.unanswered == 4 * 20.0 + 1.0 + 2.0 + 4.0


def test_poll_limits_reach_the_botocore_client():
    options = _options(endpoint_url="http://127.0.0.1:9", timeout="3s")
    config = make_client(options, limits=poll_limits(options)).meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.5, 1.5)
    assert config.retries["total_max_attempts"] == 2


def test_endpoint_password_is_masked_and_never_given_to_botocore():
    secret = "n0t-for-botocore-Zq"
    options = _options(endpoint_url=f"http://bob:{secret}@127.0.0.1:4566/")
    assert redact(f"failed: {secret!r} in a repr") == "failed: '****' in a repr"
    assert secret not in options.address()
    assert without_userinfo(options.endpoint_url) == "http://127.0.0.1:4566"
    assert without_userinfo("https://[::1]:4566/x") == "https://[::1]:4566/x"
    client = make_client(options)
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    cloudwatch = _options(
        endpoint_url="http://127.0.0.1:4566",
        cloudwatch_endpoint_url=f"http://carol:{secret}x@127.0.0.1:4567",
    )
    assert make_client(cloudwatch, "cloudwatch").meta.endpoint_url == "http://127.0.0.1:4567"
    assert secret + "x" not in redact(f"x {secret}x y")


def test_daemon_pool_runs_calls_bounded_and_reuses_threads():
    pool = DaemonPool(2, "test-pool")
    running = threading.Semaphore(0)
    release = threading.Event()

    def blocked(n: int) -> int:
        running.release()
        release.wait(10)
        return n * 2

    futures = [pool.submit(blocked, n) for n in range(4)]
    assert running.acquire(timeout=5) and running.acquire(timeout=5)
    assert not running.acquire(timeout=0.2)  # at most 2 at a time
    release.set()
    assert [f.result(timeout=5) for f in futures] == [0, 2, 4, 6]
    assert pool.submit(lambda: 1).result(timeout=5) == 1
    assert pool.threads == 2
    failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)


def test_daemon_pool_cancels_queued_calls_on_shutdown():
    pool = DaemonPool(1, "test-pool")
    release = threading.Event()
    first = pool.submit(release.wait, 10)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    release.set()
    assert first.result(timeout=5) is True


def test_a_stuck_call_does_not_hold_the_process_at_exit():
    code = (
        "import threading, time\n"
        "from collectors.sqs.pool import DaemonPool\n"
        "DaemonPool(1, 'stuck').submit(time.sleep, 60)\n"
        "time.sleep(0.1)\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)
    assert time.monotonic() - started < 20  # a joined worker would take 60 s


def test_cloudwatch_without_any_datapoint_is_explained():
    assert not has_datapoint({})
    assert not has_datapoint({"q": {"sent": {}, "age": {}}})
    assert has_datapoint({"q": {"sent": {}}, "r": {"age": {60.0: 1.0}}})
    text = no_data_warning(3)
    assert "3 queue(s)" in text and "publish_rate" in text and "emulators" in text
