"""The job libraries' bookkeeping keys the Redis collector's wildcards leave out (pure)."""

from __future__ import annotations

from collectors.redis.library_keys import is_library_internal


def test_internals_are_recognised_by_type_and_shape():
    assert is_library_internal("rq:results:4a45-77", "stream")
    assert not is_library_internal("rq:results:4a45-77", "list")
    assert is_library_internal("rq:queue:default:intermediate", "list")
    assert not is_library_internal("rq:queue:default", "list")
    assert is_library_internal("bull:mail:events", "stream")
    assert is_library_internal("bull:mail:active", "list")
    assert not is_library_internal("bull:mail:wait", "list")
    assert is_library_internal("0f6e.reply.celery.pidbox", "list")
    assert is_library_internal("vm:11903:e217dfb9b44c-signals", "list")
    assert not is_library_internal("orders:events", "stream")
