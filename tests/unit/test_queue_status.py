"""Health of plain queues (group_status for every queue kind) and the dead-letter inflow:
the rule table of collectors/queue_status.py driven by fake windows (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.group_status import GroupStatus
from collectors.queue_status import QueueHealth, QueuePoint, QueueWindow, progressed
from mqtop.kernel.model import SeriesKey, SeriesSample

W = 30.0
OK, WARN, STALL, STOP = GroupStatus.OK, GroupStatus.WARN, GroupStatus.STALL, GroupStatus.STOP


def run(points: list[QueuePoint], window: float = W) -> QueueWindow:
    w = QueueWindow(window)
    for p in points:
        w.observe(p)
    return w


def status(points: list[QueuePoint], dlq: bool = False) -> GroupStatus | None:
    w = run(points)
    assert w.last is not None
    return w.evaluate(w.last.time, dlq).status


def rabbit(
    t: float, ready: float, acked: float, consumers: float, unacked: float = 0
) -> QueuePoint:
    """A RabbitMQ-like poll: ready, unacked, ack counter, consumers."""
    return QueuePoint(t, ready, unacked, processed=acked, consumers=consumers)


def llen(t: float, length: float, head: str | None = None) -> QueuePoint:
    """A Redis-list-like poll: only the length (and the head's fingerprint)."""
    return QueuePoint(t, length, head=head)


# -- the rule table -------------------------------------------------------------------------


def test_unknown_backlog_is_null_never_guessed():
    assert status([QueuePoint(t, None, processed=t) for t in range(0, 61, 5)]) is None


def test_idle_empty_queue_without_any_traffic_is_ok_not_stop():
    points = [rabbit(t, 0, 0, 0) for t in range(0, 121, 5)]
    w = run(points)
    assert w.evaluate(120).status is OK and w.evaluate(120).reason == "empty"
    assert status([llen(t, 0) for t in range(0, 121, 5)]) is OK


def test_no_consumer_and_a_backlog_for_a_window_is_stop():
    points = [rabbit(t, 10 + t, 0, 0) for t in range(0, 41, 5)]
    verdict = run(points).evaluate(40)
    assert verdict.status is STOP and "no consumer" in verdict.reason


def test_stop_needs_the_whole_window():
    points = [rabbit(t, 10 + t, 0, 0) for t in range(0, 26, 5)]
    assert status(points) is None  # 25 s < W: too early, not guessed


def test_consumers_attached_nothing_acked_and_backlog_growing_is_stall():
    points = [rabbit(t, 10 + t, 0, 1, unacked=1) for t in range(0, 41, 5)]
    verdict = run(points).evaluate(40)
    assert verdict.status is STALL and "1 consumer" in verdict.reason


def test_consumers_holding_unacked_messages_with_empty_ready_is_stall():
    # ready 0 but 5 delivered and never acked: the work is not zero
    points = [rabbit(t, 0, 3, 2, unacked=5) for t in range(0, 41, 5)]
    assert status(points) is STALL


def test_draining_backlog_is_ok():
    points = [rabbit(t, 500 - 10 * t, 10 * t, 1) for t in range(0, 41, 5)]
    verdict = run(points).evaluate(40)
    assert verdict == (OK, "draining")


def test_steady_consumption_is_ok_and_falling_behind_is_warn():
    steady = [rabbit(t, 50 + (t % 10), 100 * t, 3) for t in range(0, 61, 5)]
    assert status(steady) is OK
    behind = [rabbit(t, 50 + 4 * t, 10 * t, 3) for t in range(0, 61, 5)]
    verdict = run(behind).evaluate(60)
    assert verdict.status is WARN and "falling behind" in verdict.reason


def test_caught_up_inside_the_window_is_ok():
    points = [rabbit(0, 0, 0, 1)] + [rabbit(t, 40, 0, 1) for t in range(5, 31, 5)]
    assert status(points) is OK  # empty 30 s ago: still inside the window


def test_catch_up_after_a_restart_is_not_stall():
    """Stopped long enough to be STOP; a consumer attaches and needs a while before its
    first ack shows (RabbitMQ refreshes stats every 5 s): not STALL for one sample."""
    w = QueueWindow(W)
    for t in range(0, 61, 5):
        w.observe(rabbit(t, 100 + t, 0, 0))
    assert w.evaluate(60).status is STOP
    w.observe(rabbit(65, 170, 0, 1))  # attached, nothing acked yet
    w.observe(rabbit(70, 175, 0, 1))
    verdict = w.evaluate(70)
    assert verdict.status is None and "attached" in verdict.reason
    w.observe(rabbit(75, 120, 60, 1))  # the first acks
    assert w.evaluate(75) == (OK, "draining")


def test_stall_then_consumer_killed_is_stop_and_resume_is_ok():
    w = QueueWindow(W)
    for t in range(0, 41, 5):
        w.observe(rabbit(t, 10 + t, 0, 1, unacked=1))
    assert w.evaluate(40).status is STALL
    w.observe(rabbit(45, 60, 0, 0))
    assert w.evaluate(45).status is STOP
    w.observe(rabbit(50, 30, 30, 1))
    assert w.evaluate(50).status is OK


def test_redis_list_without_consumer_information():
    """Lists tell only LLEN (and the head): a stuck list is STOP, a moving head is progress."""
    stuck = [llen(t, 20 + t, head="a") for t in range(0, 41, 5)]
    verdict = run(stuck).evaluate(40)
    assert verdict.status is STOP and "does not tell consumers" in verdict.reason
    # producer faster than the consumer: LLEN only grows, but the head moves -> WARN
    slow = [llen(t, 20 + t, head=f"h{t}") for t in range(0, 41, 5)]
    assert status(slow) is WARN
    # without a head fingerprint a shrinking list is the evidence
    assert status([llen(t, 200 - 4 * t) for t in range(0, 41, 5)]) is OK


def test_dead_letter_queues_parked_are_ok_but_a_stuck_consumer_is_stall():
    parked = [rabbit(t, 30, 0, 0) for t in range(0, 61, 5)]
    assert status(parked, dlq=True) is OK
    assert status(parked) is STOP
    stuck = [rabbit(t, 30, 0, 1, unacked=1) for t in range(0, 61, 5)]
    assert status(stuck, dlq=True) is STALL


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        (rabbit(0, 5, 10, 1), rabbit(5, 6, 11, 1), True),  # acked one
        (rabbit(0, 5, 10, 1), rabbit(5, 4, 10, 1), False),  # counter known: not a consume
        (rabbit(0, 5, 10, 1), rabbit(5, 4, 0, 1), True),  # counter reset: backlog fell
        (llen(0, 5, "a"), llen(5, 6, "b"), True),
        (llen(0, 5, "a"), llen(5, 6, "a"), False),
        (QueuePoint(0, 5, age=30), QueuePoint(5, 5, age=3), True),  # the head moved
        (QueuePoint(0, 5, age=30), QueuePoint(5, 5, age=35), False),
        (QueuePoint(0, 5), QueuePoint(5, 9, processing_rate=2.0), True),  # SQS CloudWatch
    ],
)
def test_progress_evidence(before: QueuePoint, after: QueuePoint, moved: bool):
    assert progressed(before, after) is moved


def test_window_is_thinned_and_bounded():
    w = QueueWindow(W, slots=10)
    for t in range(3600):
        w.observe(rabbit(float(t), 5, float(t), 1))
    assert len(w.points) <= 2 * 10 + 2 and w.points[-1].time == 3599
    assert w.evaluate(3599).status is OK


# -- QueueHealth: the engine's pass over a poll ------------------------------------------------


def sample(queue: str, values: dict[str, Any], **kw: Any) -> SeriesSample:
    group = kw.pop("group", None)
    return SeriesSample(SeriesKey("b", queue, group), kw.pop("kind", "queue"), values, **kw)


def test_health_adds_status_and_reason_and_leaves_groups_alone():
    health = QueueHealth(window=10.0)
    out: tuple[SeriesSample, ...] = ()
    for t in range(0, 16, 5):
        out = health.annotate(
            [
                sample("orders", {"queue_length": 5.0 + t, "consumers": 0.0}),
                sample("t", {"queue_length": 3.0, "group_status": 0.0}, group="g", kind="topic"),
                sample("chan", {"consumers": 2.0}, kind="channel"),
            ],
            float(t),
        )
    orders, group, chan = out
    assert orders.values["group_status"] == float(STOP)
    assert "no consumer" in orders.info["status_reason"]
    assert group.values["group_status"] == 0.0 and "status_reason" not in group.info
    assert "group_status" not in chan.values
    assert len(health) == 3
    health.annotate([sample("orders", {"queue_length": 0.0})], 20.0)
    assert len(health) == 1  # the queues that went away are forgotten


def test_dlq_inflow_from_the_dlq_counters_while_a_consumer_keeps_it_empty():
    health = QueueHealth(window=60.0, inflow_span=20.0)
    out: tuple[SeriesSample, ...] = ()
    for i, t in enumerate(range(0, 41, 5)):
        out = health.annotate(
            [
                sample("orders", {"queue_length": 0.0, "consumers": 1.0}, dlq="orders.dlq"),
                # 2 dead letters/s arrive and are acked at once: length stays 0
                sample(
                    "orders.dlq",
                    {"queue_length": 0.0, "in_flight": 0.0, "processed_total": 10.0 * i},
                ),
            ],
            float(t),
        )
    orders, dlq = out
    assert orders.values["dlq_inflow_rate"] == pytest.approx(2.0)
    assert "dlq_inflow_rate" not in dlq.values
    assert dlq.values["group_status"] == float(OK)  # a DLQ is never STOP


def test_dlq_inflow_prefers_the_rate_the_collector_measured_and_is_null_when_unknown():
    health = QueueHealth(window=60.0)
    out = health.annotate(
        [
            sample("a", {"queue_length": 1.0}, dlq="a.dlq"),
            sample(
                "a.dlq",
                {"queue_length": 4.0, "publish_rate": 0.5},
                info={"dead_letter_sources": ["a"]},
            ),
            sample("b", {"queue_length": 1.0}, dlq="b.dlq"),
            sample("b.dlq", {"queue_length": 4.0}),  # a Redis list: no counters
            sample("c", {"queue_length": 1.0}, dlq="not-collected"),
        ],
        0.0,
    )
    assert [s.values.get("dlq_inflow_rate") for s in out[::2]] == [0.5, None, None]
    for t in (5.0, 10.0):
        out = health.annotate(
            [
                sample("b", {"queue_length": 1.0}, dlq="b.dlq"),
                sample("b.dlq", {"queue_length": 4.0 + t}),
            ],
            t,
        )
    assert out[0].values["dlq_inflow_rate"] is None  # length alone says nothing of the outflow
    # SQS with CloudWatch: NumberOfMessagesSent misses redrives, so it is not the inflow
    out = health.annotate(
        [
            sample("s", {"queue_length": 1.0}, dlq="s-dlq"),
            sample("s-dlq", {"queue_length": 4.0, "publish_rate": 0.0, "processing_rate": 1.0}),
        ],
        20.0,
    )
    assert out[0].values["dlq_inflow_rate"] is None


def test_dlq_inflow_from_a_published_counter_handles_resets():
    health = QueueHealth(window=60.0, inflow_span=60.0)
    levels = [100.0, 110.0, 5.0, 15.0]  # the counter restarted after 110
    out: tuple[SeriesSample, ...] = ()
    for t, level in zip((0.0, 10.0, 20.0, 30.0), levels, strict=True):
        out = health.annotate(
            [
                sample("a", {"queue_length": 0.0}, dlq="a.DLT", group="g", kind="topic"),
                sample("a.DLT", {"queue_length": 0.0, "published_total": level}, kind="topic"),
            ],
            t,
        )
    assert out[0].values["dlq_inflow_rate"] == pytest.approx(20.0 / 30.0)


def test_with_values_adds_metrics_validated_and_keeps_the_sample_immutable():
    base = sample("q", {"queue_length": 3.0}, dlq="q.dlq", info={"state": "running"})
    out = base.with_values({"group_status": 0.0}, {"status_reason": "empty", "state": "x"})
    assert dict(out.values) == {"queue_length": 3.0, "group_status": 0.0}
    assert dict(out.info) == {"status_reason": "empty", "state": "running"}  # own info wins
    assert (out.key, out.kind, out.dlq) == (base.key, base.kind, base.dlq)
    assert "group_status" not in base.values
    with pytest.raises(TypeError):
        out.values["x"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown metric"):
        base.with_values({"nope": 1.0})
    with pytest.raises(ValueError, match="number or None"):
        base.with_values({"group_status": float("nan")})
