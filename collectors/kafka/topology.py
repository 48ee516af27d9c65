"""Kafka topology for ``mqtop lint``: topics with replication factor, ``min.insync.replicas``
and retention (DescribeConfigs), the consumer groups with committed offsets on each, and the
number of brokers in the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from collectors.kafka.client import client_kwargs, quiet_client_logs, quiet_close, short
from collectors.kafka.options import KafkaOptions
from collectors.topology import QueueTopology, Topology
from mqtop.kernel.errors import BrokerUnreachable

MAX_GROUPS = 1000
CONFIGS_PER_REQUEST = 50


def _config_entries(responses: Iterable[Any]) -> dict[tuple[int, str], dict[str, str]]:
    """(resource type, name) -> {config name: value} from DescribeConfigs responses."""
    out: dict[tuple[int, str], dict[str, str]] = {}
    for response in responses:
        data = response.to_object() if hasattr(response, "to_object") else response
        for resource in data.get("resources", []) if isinstance(data, Mapping) else []:
            if resource.get("error_code"):
                continue
            entries = {
                str(e.get("config_names")): str(e.get("config_value"))
                for e in resource.get("config_entries", [])
                if e.get("config_value") is not None
            }
            out[(int(resource.get("resource_type", 0)), str(resource.get("resource_name")))] = (
                entries
            )
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def decode_topic(
    name: str,
    description: Mapping[str, Any] | None,
    configs: Mapping[str, str],
    groups: tuple[str, ...] | None,
) -> QueueTopology:
    """A topic as a :class:`QueueTopology`."""
    replication = None
    if description is not None:
        sizes = [len(p.get("replicas") or []) for p in description.get("partitions") or []]
        replication = min(sizes) if sizes else None
    retention_ms = _int(configs.get("retention.ms"))
    retention_bytes = _int(configs.get("retention.bytes"))
    return QueueTopology(
        name=name,
        kind="topic",
        local_name=name,
        durable=True,
        retention_seconds=retention_ms / 1000.0 if retention_ms and retention_ms > 0 else None,
        retention_bytes=retention_bytes if retention_bytes and retention_bytes > 0 else None,
        unbounded_retention=(
            retention_ms is not None
            and retention_ms < 0
            and (retention_bytes is None or retention_bytes < 0)
            and "compact" not in configs.get("cleanup.policy", "delete")
        ),
        replication_factor=replication,
        min_insync_replicas=_int(configs.get("min.insync.replicas")),
        consumer_groups=groups,
    )


class KafkaTopologyReader:
    """One admin client: cluster, topics, configs, groups and their committed offsets."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._admin: Any = None

    async def _client(self) -> Any:
        if self._admin is None:
            from aiokafka.admin import AIOKafkaAdminClient

            quiet_client_logs()
            admin = AIOKafkaAdminClient(**client_kwargs(self.options, 10.0))
            await asyncio.wait_for(admin.start(), 20)
            self._admin = admin
        return self._admin

    async def _groups_by_topic(
        self, admin: Any, warnings: list[str]
    ) -> tuple[dict[str, list[str]], bool]:
        """Groups with committed offsets per topic, and whether every group was read (when
        not, a topic without a known group may still have one: unknown, not "none")."""
        listed = await admin.list_consumer_groups()
        names = sorted({str(g[0]) for g in listed})
        complete = True
        if len(names) > MAX_GROUPS:
            warnings.append(f"{len(names)} consumer groups: only the first {MAX_GROUPS} read")
            names = names[:MAX_GROUPS]
            complete = False
        by_topic: dict[str, list[str]] = {}
        for group in names:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except Exception as exc:
                warnings.append(f"group {group!r}: {short(exc)}")
                complete = False
                continue
            for tp in offsets:
                by_topic.setdefault(tp.topic, []).append(group)
        return by_topic, complete

    async def _read(self) -> Topology:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        admin = await self._client()
        warnings: list[str] = []
        cluster = await admin.describe_cluster()
        brokers = cluster.get("brokers") if isinstance(cluster, Mapping) else None
        topics = [
            t
            for t in await admin.list_topics()
            if (self.options.internal_topics or not t.startswith("__"))
            and self.options.wants(t)
            and self.options.wants_topic(t)
        ]
        descriptions = {d.get("topic"): d for d in await admin.describe_topics(topics)}
        configs: dict[tuple[int, str], dict[str, str]] = {}
        for start in range(0, len(topics), CONFIGS_PER_REQUEST):
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, t)
                for t in topics[start : start + CONFIGS_PER_REQUEST]
            ]
            configs.update(_config_entries(await admin.describe_configs(resources)))
        groups, complete = await self._groups_by_topic(admin, warnings)
        queues = tuple(
            decode_topic(
                t,
                descriptions.get(t),
                configs.get((int(ConfigResourceType.TOPIC), t), {}),
                tuple(sorted(groups[t])) if t in groups else (() if complete else None),
            )
            for t in sorted(topics)
        )
        return Topology(
            broker=self.options.name,
            type="kafka",
            queues=queues,
            cluster_size=len(brokers) if isinstance(brokers, list) else None,
            warnings=tuple(warnings),
        )

    async def read(self) -> Topology:
        try:
            return await asyncio.wait_for(self._read(), 120)
        except Exception as exc:
            raise BrokerUnreachable(f"Kafka {self.options.name!r}: {short(exc)}") from None

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await quiet_close(admin)


def create_reader(options: KafkaOptions) -> KafkaTopologyReader:
    """The plugin's ``topology`` factory."""
    return KafkaTopologyReader(options)
