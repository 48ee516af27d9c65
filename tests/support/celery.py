"""A Celery app for the job tests (its worker runs with ``celery -A tests.support.celery``)."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("mqtop_test", broker=os.environ.get("MQTOP_CELERY_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,  # a running task stays in kombu's ``unacked`` hash
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    broker_transport_options={"priority_steps": [0, 3, 6, 9]},
)


@app.task(name="mqtop.flaky")
def flaky(tag: str, n: int, sleep: float = 0.0) -> int:
    """Records ``n`` in ``<tag>:done`` after ``sleep`` seconds."""
    import redis

    time.sleep(sleep)
    client = redis.Redis.from_url(app.conf.broker_url)
    client.rpush(f"{tag}:done", str(n))
    client.close()
    return n
