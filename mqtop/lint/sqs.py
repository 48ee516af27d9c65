"""SQS lint rules: a redrive policy, a sensible maxReceiveCount, a DLQ that outlives its
source and is of the same type."""

from __future__ import annotations

from collections.abc import Iterator

from collectors.base import is_dlq_name
from collectors.topology import Topology
from mqtop.kernel.durations import format_duration
from mqtop.lint.model import Finding, Rule

DLQ_DOCS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
CONFIGURE_DOCS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue.html"

NO_REDRIVE = Rule(
    "sqs-no-redrive",
    "warning",
    "sqs",
    "queue without a redrive policy: a message that always fails is received until it expires",
    "create a dead-letter queue and set the queue's RedrivePolicy "
    "(deadLetterTargetArn, maxReceiveCount)",
    DLQ_DOCS,
)
MAX_RECEIVE_ONE = Rule(
    "sqs-max-receive-count-1",
    "warning",
    "sqs",
    "maxReceiveCount of 1: one failed or timed-out receive sends the message to the DLQ",
    "raise maxReceiveCount in the RedrivePolicy (e.g. 3 to 5) so transient failures are retried",
    CONFIGURE_DOCS,
)
DLQ_RETENTION = Rule(
    "sqs-dlq-retention",
    "warning",
    "sqs",
    "dead-letter queue retention not longer than its source's: dead letters can expire "
    "soon after arriving (a standard queue keeps the original enqueue time)",
    "set the DLQ's MessageRetentionPeriod longer than the source queue's (up to 14 days)",
    DLQ_DOCS,
)
DLQ_TYPE = Rule(
    "sqs-dlq-type-mismatch",
    "critical",
    "sqs",
    "dead-letter queue of a different type (FIFO vs standard): AWS refuses to move messages",
    "use a FIFO dead-letter queue for a FIFO queue and a standard one for a standard queue",
    DLQ_DOCS,
)
RULES = (NO_REDRIVE, MAX_RECEIVE_ONE, DLQ_RETENTION, DLQ_TYPE)


def check(topology: Topology) -> Iterator[Finding]:
    """Every SQS rule over one topology."""
    by_name = {q.name: q for q in topology.queues}
    dlqs = {q.dead_letter.target for q in topology.queues if q.dead_letter is not None}
    broker = topology.broker
    for queue in topology.queues:
        link = queue.dead_letter
        if link is None:
            if queue.name not in dlqs and not is_dlq_name(queue.name):
                yield NO_REDRIVE.finding(broker, queue.name, "no RedrivePolicy")
            continue
        if link.max_receive_count == 1:
            yield MAX_RECEIVE_ONE.finding(
                broker, queue.name, f"maxReceiveCount is 1 (DLQ {link.target!r})"
            )
        dlq = by_name.get(link.target)
        if dlq is None:
            continue
        if dlq.kind != queue.kind:
            yield DLQ_TYPE.finding(
                broker,
                queue.name,
                f"the queue is {queue.kind} but its DLQ {dlq.name!r} is {dlq.kind}",
            )
        mine, theirs = queue.retention_seconds, dlq.retention_seconds
        if mine is not None and theirs is not None and theirs <= mine:
            yield DLQ_RETENTION.finding(
                broker,
                queue.name,
                f"DLQ {dlq.name!r} keeps messages {format_duration(theirs)}, the queue "
                f"{format_duration(mine)}",
            )
