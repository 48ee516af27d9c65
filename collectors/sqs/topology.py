"""SQS topology for ``mqtop lint``: every listed queue's attributes (redrive policy,
retention, FIFO), and the attributes of the dead-letter queues they name."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from collectors.sqs.client import ConfigProblem, describe_aws_error, make_client
from collectors.sqs.codecs import int_attr, queue_name_of, redrive_target
from collectors.sqs.options import SQSOptions
from collectors.topology import DeadLetter, QueueTopology, Topology
from mqtop.kernel.errors import BrokerUnreachable, UsageError

MAX_QUEUES = 10_000


def decode_queue(name: str, attributes: Mapping[str, str]) -> QueueTopology:
    """A queue's attributes as a :class:`QueueTopology`."""
    arn, max_receive = redrive_target(attributes)
    dead_letter = (
        DeadLetter(queue_name_of(arn), None, "redrive", max_receive) if arn is not None else None
    )
    retention = int_attr(attributes, "MessageRetentionPeriod")
    fifo = attributes.get("FifoQueue", "").lower() == "true" or name.endswith(".fifo")
    return QueueTopology(
        name=name,
        kind="fifo" if fifo else "standard",
        local_name=name,
        durable=True,
        messages=int_attr(attributes, "ApproximateNumberOfMessages"),
        dead_letter=dead_letter,
        retention_seconds=float(retention) if retention is not None else None,
    )


class SQSTopologyReader:
    """Lists the queues and reads their attributes (boto3, in a thread)."""

    def __init__(self, options: SQSOptions) -> None:
        self.options = options
        self._client: Any = None

    def _sqs(self) -> Any:
        if self._client is None:
            try:
                self._client = make_client(self.options)
            except ConfigProblem as exc:
                raise UsageError(f"broker {self.options.name!r}: {exc}") from None
        return self._client

    def _list(self) -> dict[str, str]:
        client = self._sqs()
        found: dict[str, str] = {}
        kwargs: dict[str, Any] = {"MaxResults": 1000}
        if self.options.queue_name_prefix:
            kwargs["QueueNamePrefix"] = self.options.queue_name_prefix
        while len(found) < MAX_QUEUES:
            page = client.list_queues(**kwargs)
            for url in page.get("QueueUrls", []):
                found[queue_name_of(url)] = url
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return found

    def _attributes(self, url: str) -> dict[str, str]:
        answer = self._sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        attributes = answer.get("Attributes", {})
        return {str(k): str(v) for k, v in attributes.items()}

    def _locate(self, name: str, urls: dict[str, str], warnings: list[str]) -> bool:
        """Find a DLQ that was not listed (outside queue_name_prefix)."""
        try:
            urls[name] = str(self._sqs().get_queue_url(QueueName=name)["QueueUrl"])
        except Exception as exc:
            warnings.append(f"dead-letter queue {name!r}: {describe_aws_error(exc)}")
            return False
        return True

    def _read(self) -> Topology:
        urls = self._list()
        wanted = [name for name in urls if self.options.wants(name)]
        queues: dict[str, QueueTopology] = {}
        warnings: list[str] = []
        pending = list(wanted)
        while pending:
            name = pending.pop(0)
            if name in queues:
                continue
            if name not in urls and not self._locate(name, urls, warnings):
                continue
            try:
                attributes = self._attributes(urls[name])
            except Exception as exc:  # a queue deleted meanwhile, or refused: skip it
                warnings.append(f"queue {name!r}: {describe_aws_error(exc)}")
                continue
            queue = decode_queue(name, attributes)
            queues[name] = queue
            if queue.dead_letter is not None:
                pending.append(queue.dead_letter.target)  # its DLQ, even outside include
        return Topology(
            broker=self.options.name,
            type="sqs",
            queues=tuple(queues.values()),
            warnings=tuple(warnings),
        )

    async def read(self) -> Topology:
        try:
            return await asyncio.to_thread(self._read)
        except (UsageError, BrokerUnreachable):
            raise
        except Exception as exc:
            raise BrokerUnreachable(
                f"SQS endpoint of {self.options.name!r}: {describe_aws_error(exc)}"
            ) from None

    async def close(self) -> None:
        self._client = None


def create_reader(options: SQSOptions) -> SQSTopologyReader:
    """The plugin's ``topology`` factory."""
    return SQSTopologyReader(options)
