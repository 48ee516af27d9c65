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
