"""``mqtop init`` detection finds the job libraries from their own keys."""

from __future__ import annotations

import pytest

from mqtop.detect import detect_job_libraries

pytestmark = pytest.mark.broker


def test_libraries_detected_from_their_keys(rq_installed, sidekiq, bullmq, job_url, rc, unique):
    from rq import Queue

    assert detect_job_libraries(job_url) == []
    tag = unique("det")
    Queue(tag, connection=rc).enqueue("tests.support.jobs.rq_flaky", tag, 1)
    sidekiq.push(tag, "FlakyJob", [[tag, 1]])
    bullmq.add(tag, [{"name": "job", "data": {"n": 1}}])
    found = detect_job_libraries(job_url)
    assert sorted(e["type"] for e in found) == ["bullmq", "rq", "sidekiq"]
    assert all(e["url"] == job_url for e in found)


def test_plain_redis_entry_leaves_the_libraries_queues_out(job_url, rc, unique):
    """Next to a job library's own entry, init's catch-all ``redis`` entry excludes its lists."""
    import kombu

    from collectors.base import matches_globs
    from mqtop.detect import celery_queue_lists, library_excludes

    tag = unique("kq")
    with kombu.Connection(job_url) as conn:
        queue = conn.SimpleQueue(tag)  # kombu binds it: _kombu.binding.<exchange>
        queue.put({"n": 1}, priority=3)
        queue.close()
    try:
        globs = celery_queue_lists(job_url)
        assert tag in globs and f"{tag}\x06\x16*" in globs
        excludes = library_excludes(
            [{"type": t, "url": job_url} for t in ("sidekiq", "rq", "bullmq", "celery")]
        )
        for name in ("queue:default", f"rq:queue:{tag}", f"bull:{tag}:wait", tag,
                     f"{tag}\x06\x163"):  # fmt: skip
            assert not matches_globs(name, [], excludes), name
        assert matches_globs(f"orders-{tag}", [], excludes)  # the application's own lists stay
    finally:
        keys = [k for k in rc.scan_iter(match=f"*{tag}*")]
        binding = [k for k in rc.scan_iter(match="_kombu.binding.*")]
        for key in binding:
            for member in rc.smembers(key):
                if member.decode().endswith(tag):
                    rc.srem(key, member)
        if keys:
            rc.delete(*keys)
