"""Queue health from the series each broker's collector really builds (SQS, ActiveMQ, the job
libraries): which inputs they carry and the statuses that follow (pure logic, no broker)."""

from __future__ import annotations

from typing import Any

from collectors.activemq.decode import Row
from collectors.activemq.series import samples
from collectors.group_status import GroupStatus
from collectors.jobs.series import JobQueueState, dead_set_sample, job_queue_sample
from collectors.queue_status import QueueHealth
from mqtop.kernel.model import SeriesKey, SeriesSample

W = 10.0


def statuses(polls: list[list[SeriesSample]], step: float = 1.0) -> list[dict[str, Any]]:
    """Feed polls one ``step`` apart; the (status, reason, inflow) per queue after each."""
    health = QueueHealth(window=W, inflow_span=5.0)
    out = []
    for i, series in enumerate(polls):
        annotated = health.annotate(series, i * step)
        out.append(
            {
                s.key.queue: (
                    s.values.get("group_status"),
                    s.info.get("status_reason"),
                    s.values.get("dlq_inflow_rate"),
                )
                for s in annotated
            }
        )
    return out


def name(value: float | None) -> str | None:
    return None if value is None else GroupStatus(int(value)).name


# -- job libraries: workers are the consumers, the processed counter the progress ------------


def job_poll(t: int, *, waiting: int, workers: int, processed: int, dead: int) -> list[Any]:
    state = JobQueueState(
        queue="emails",
        waiting=waiting,
        running=min(workers, waiting),
        workers=workers,
        processed_total=processed,
        failed_total=dead,
        dlq="emails:dead",
        dead=dead,
    )
    return [
        job_queue_sample("jobs", state, float(t)),
        dead_set_sample("jobs", "emails:dead", size=dead, oldest_death=0.0, now=float(t), info={}),
    ]


def test_job_queue_with_busy_workers_that_process_nothing_is_stall_and_its_dead_set_ok():
    polls = [job_poll(t, waiting=5 + t, workers=2, processed=100, dead=3) for t in range(12)]
    last = statuses(polls)[-1]
    assert name(last["emails"][0]) == "STALL" and "2 consumer(s)" in last["emails"][1]
    assert name(last["emails:dead"][0]) == "OK" and last["emails:dead"][1] == "dead letters parked"
    assert last["emails"][2] is None  # a dead set keeps no counter: no inflow, never guessed


def test_job_queue_without_workers_is_stop_and_processing_is_ok():
    stopped = [job_poll(t, waiting=40, workers=0, processed=7, dead=0) for t in range(12)]
    assert name(statuses(stopped)[-1]["emails"][0]) == "STOP"
    working = [job_poll(t, waiting=40, workers=3, processed=7 + 5 * t, dead=0) for t in range(12)]
    assert name(statuses(working)[-1]["emails"][0]) == "OK"


# -- ActiveMQ: consumer count and enqueue / dequeue counters from JMX --------------------------


def amq_poll(
    t: int, *, consumers: int, dequeued: int, dlq_enqueued: int, waiting: int | None = None
) -> list[SeriesSample]:
    orders = Row(
        queue="orders",
        name="orders",
        mbean="m1",
        waiting=10 + t if waiting is None else waiting,
        in_flight=0,
        consumers=consumers,
        published=100 + t,
        processed=dequeued,
        dlq="DLQ",
    )
    dlq = Row(queue="DLQ", name="DLQ", mbean="m2", waiting=0, in_flight=0, consumers=1,
              published=dlq_enqueued, processed=dlq_enqueued)  # fmt: skip
    sub = Row(queue="s", name="events", mbean="m3", group="audit", kind="subscription",
              waiting=0, in_flight=0, consumers=1, published=5, processed=5)  # fmt: skip
    return samples([orders, dlq, sub], [orders, dlq, sub], "amq")


def test_activemq_queue_stall_and_dlq_inflow_from_the_dlq_enqueue_counter():
    polls = [amq_poll(t, consumers=1, dequeued=50, dlq_enqueued=2 * t) for t in range(12)]
    last = statuses(polls)[-1]
    assert name(last["orders"][0]) == "STALL"
    assert last["orders"][2] == 2.0  # the DLQ's enqueue counter grew 2/s (the DLQ stays empty)
    assert name(last["DLQ"][0]) == "OK"
    assert name(last["events"][0]) == "OK"  # a durable subscription is a queue too


def test_activemq_consumer_dequeuing_is_ok():
    polls = [
        amq_poll(t, consumers=1, dequeued=50 + 3 * t, dlq_enqueued=0, waiting=10 + t % 3)
        for t in range(12)
    ]
    last = statuses(polls)[-1]
    assert name(last["orders"][0]) == "OK" and last["orders"][2] == 0.0
    # dequeuing, but the backlog grows at every poll of the window: falling behind
    behind = [amq_poll(t, consumers=1, dequeued=50 + t, dlq_enqueued=0) for t in range(12)]
    assert name(statuses(behind)[-1]["orders"][0]) == "WARN"


# -- SQS: no consumer registry and, without CloudWatch, no counters ------------------------------


def sqs(t: int, visible: int, not_visible: int, **more: float | None) -> SeriesSample:
    values: dict[str, float | None] = {
        "queue_length": float(visible),
        "consumer_lag_messages": float(visible),
        "in_flight": float(not_visible),
        "dlq_length": 0.0,
        "publish_rate": None,
        "processing_rate": None,
        "latency_seconds": None,
        "error_rate": None,
        "consumers": None,
        **more,
    }
    return SeriesSample(SeriesKey("aws", "orders"), "queue", values, dlq="orders-dlq")


def test_sqs_received_but_never_deleted_is_not_progress():
    # a consumer receives (visible -> in flight) but never deletes: the work does not shrink
    polls = [[sqs(t, 20 - t % 5, 5 + t % 5)] for t in range(12)]
    last = statuses(polls)[-1]["orders"]
    assert name(last[0]) == "STOP" and "does not tell consumers" in last[1]
    assert last[2] is None  # the DLQ is not collected: no inflow


def test_sqs_with_cloudwatch_deletes_is_ok_and_without_is_judged_from_the_work():
    # CloudWatch NumberOfMessagesDeleted > 0: consumed, though the depth does not fall
    deleting = [[sqs(t, 50 + t % 2, 2, processing_rate=0.5)] for t in range(12)]
    assert statuses(deleting)[-1]["orders"][:2] == (float(GroupStatus.OK), "consuming")
    # the same depth without CloudWatch, never falling: nothing seen consumed
    assert name(statuses([[sqs(t, 50 + t, 2)] for t in range(12)])[-1]["orders"][0]) == "STOP"
    draining = [[sqs(t, 60 - 3 * t, 2)] for t in range(12)]
    assert statuses(draining)[-1]["orders"][:2] == (float(GroupStatus.OK), "draining")
