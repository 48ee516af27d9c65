"""Kafka lint rules: dead-letter topics that only grow; replication below what the cluster
allows."""

from __future__ import annotations

from collections.abc import Iterator

from collectors.base import is_dlq_name
from collectors.topology import Topology
from mqtop.lint.model import Finding, Rule

RETENTION_DOCS = "https://kafka.apache.org/documentation/#topicconfigs_retention.ms"
REPLICATION_DOCS = "https://kafka.apache.org/documentation/#replication"
MIN_ISR_DOCS = "https://kafka.apache.org/documentation/#topicconfigs_min.insync.replicas"
WANTED_REPLICAS = 3

DLT_UNBOUNDED = Rule(
    "kafka-dlt-unbounded",
    "warning",
    "kafka",
    "dead-letter topic with no consumer group and no retention bound: it grows forever "
    "and nobody looks at it",
    "set retention.ms (or retention.bytes) on the dead-letter topic, or consume it",
    RETENTION_DOCS,
)
REPLICATION = Rule(
    "kafka-replication",
    "warning",
    "kafka",
    "replication factor below what the cluster allows (3, or the number of brokers when "
    "fewer): losing one broker loses or blocks the partition",
    "raise the topic's replication factor (kafka-reassign-partitions) to min(3, number of brokers)",
    REPLICATION_DOCS,
)
MIN_INSYNC = Rule(
    "kafka-min-insync",
    "warning",
    "kafka",
    "min.insync.replicas not fitting the replication factor: below 2 with 3+ replicas "
    "(acks=all survives on one copy), or at least the replication factor (one broker down "
    "stops acks=all producers)",
    "set min.insync.replicas to 2 for replication factor 3 (in general 1 < value < "
    "replication factor)",
    MIN_ISR_DOCS,
)
RULES = (DLT_UNBOUNDED, REPLICATION, MIN_INSYNC)


def recommended_min_insync(replication: int) -> tuple[int, int]:
    """(lowest, highest) advisable min.insync.replicas for a replication factor."""
    if replication <= 1:
        return 1, 1
    if replication == 2:
        return 1, 1
    return 2, replication - 1


def check(topology: Topology) -> Iterator[Finding]:
    """Every Kafka rule over one topology (replication rules need the cluster size)."""
    broker = topology.broker
    for topic in topology.queues:
        if is_dlq_name(topic.name) and topic.unbounded_retention and topic.consumer_groups == ():
            yield DLT_UNBOUNDED.finding(
                broker,
                topic.name,
                "retention.ms and retention.bytes are -1 and no consumer group reads it",
            )
        rf = topic.replication_factor
        if rf is None or topology.cluster_size is None:
            continue
        wanted = min(WANTED_REPLICAS, topology.cluster_size)
        if rf < wanted:
            yield REPLICATION.finding(
                broker,
                topic.name,
                f"replication factor {rf} on a cluster of {topology.cluster_size} brokers "
                f"(wanted {wanted})",
            )
        isr = topic.min_insync_replicas
        low, high = recommended_min_insync(rf)
        if isr is not None and not low <= isr <= high:
            yield MIN_INSYNC.finding(
                broker,
                topic.name,
                f"min.insync.replicas {isr} with replication factor {rf} "
                f"(advisable: {low}" + (f" to {high})" if high != low else ")"),
            )
