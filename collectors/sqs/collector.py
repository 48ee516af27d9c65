"""Amazon SQS collector: queue attributes, dead-letter mapping, optional CloudWatch rates.

What SQS exposes and how it maps (see docs/sqs.md):
* ``GetQueueAttributes`` (one call per queue per poll, run in parallel with a bound):
  ApproximateNumberOfMessages -> queue_length (and consumer_lag_messages),
  ApproximateNumberOfMessagesNotVisible -> in_flight, ApproximateNumberOfMessagesDelayed is
  kept as the ``delayed`` info field. ``Approximate*`` values can lag about a minute.
* the DLQ comes from ``RedrivePolicy`` (config ``dlq`` overrides it; the naming convention is
  the last resort); the reverse mapping from ``ListDeadLetterSourceQueues``. ``dlq_length`` is
  the DLQ's ApproximateNumberOfMessages, even when the DLQ itself is not listed.
* SQS keeps no sent/deleted counters and no message age: publish_rate, processing_rate,
  latency_seconds and error_rate are null unless ``cloudwatch: true`` (see
  :mod:`collectors.sqs.cloudwatch`). consumers is null (SQS has no attached consumers).

Discovery uses ``ListQueues`` with the queue name prefix and pagination; include/exclude
globs filter the names. boto3 is blocking: every call runs in the collector's own bounded pool
of daemon threads, with one long-lived client whose time limits follow the poll's budget
(:func:`collectors.sqs.client.poll_limits`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from collectors.base import Collected, MessageActions, dlq_candidates
from collectors.sqs import cloudwatch
from collectors.sqs.actions import SQSActions
from collectors.sqs.client import (
    NO_SUCH_QUEUE,
    ConfigProblem,
    describe_aws_error,
    error_code,
    make_client,
    poll_limits,
)
from collectors.sqs.codecs import arn_parts, int_attr, queue_name_of, redrive_target
from collectors.sqs.options import SQSOptions
from collectors.sqs.pool import DaemonPool
from mqtop.kernel.model import SeriesKey, SeriesSample

T = TypeVar("T")

MAX_QUEUES = 10_000
Attributes = dict[str, str]


@dataclass(slots=True)
class DlqMap:
    """The forward dead-letter mapping of one poll: queue -> its DLQ, and how it is known."""

    dlq_of: dict[str, str] = field(default_factory=dict)
    arn: dict[str, str] = field(default_factory=dict)  # from a RedrivePolicy
    max_receive: dict[str, int | None] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)  # config, redrive_policy or name

    def served_by(self, dlq: str, known: Iterable[str]) -> set[str]:
        """The queues ``dlq`` serves: ListDeadLetterSourceQueues plus this mapping."""
        return {*known, *(s for s, d in self.dlq_of.items() if d == dlq)}


class SQSCollector:
    """Reads queue attributes (and optionally CloudWatch) for the queues of one account."""

    def __init__(self, options: SQSOptions) -> None:
        self.options = options
        self._client: Any = None
        self._pool: DaemonPool | None = None
        self._queues: dict[str, str] = {}  # name -> url, in discovery order
        self._extra_urls: dict[str, str] = {}  # DLQs outside the listed queues: name -> url
        self._sources: dict[str, list[str]] = {}  # DLQ name -> source queue names
        self._last_discovery = -1e18
        self._cloudwatch = cloudwatch.CloudWatchReader(options, self._call)
        self._actions: SQSActions | None = None

    # -- plumbing --------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = DaemonPool(self.options.max_parallel, "mqtop-sqs")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def connect(self) -> None:
        if self._client is None:
            try:
                limits = poll_limits(self.options)
                self._client = await self._call(make_client, self.options, limits=limits)
            except ConfigProblem as exc:
                raise RuntimeError(str(exc)) from None
        # one cheap call proves the endpoint answers and the credentials work
        await self._call(self.client.list_queues, MaxResults=1)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: S110 - closing must not raise
                pass
        self._cloudwatch.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            # a call stuck on a silent endpoint ends on its own time limit; nobody waits
            pool.shutdown(wait=False, cancel_futures=True)
        if self._actions is not None:
            await self._actions.close()

    def actions(self) -> MessageActions | None:
        if self._actions is None:
            self._actions = SQSActions(self.options)
        return self._actions

    # -- discovery -------------------------------------------------------------------

    def _list_queues(self) -> tuple[dict[str, str], bool]:
        found: dict[str, str] = {}
        kwargs: dict[str, Any] = {"MaxResults": 1000}
        if self.options.queue_name_prefix:
            kwargs["QueueNamePrefix"] = self.options.queue_name_prefix
        truncated = False
        while True:
            page = self.client.list_queues(**kwargs)
            for url in page.get("QueueUrls", []):
                name = queue_name_of(url)
                if self.options.wants(name):
                    found[name] = url
            token = page.get("NextToken")
            if len(found) >= MAX_QUEUES:
                truncated = bool(token)
                break
            if not token:
                break
            kwargs["NextToken"] = token
        return found, truncated

    def _source_queues(self, url: str) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"QueueUrl": url, "MaxResults": 1000}
        while True:
            page = self.client.list_dead_letter_source_queues(**kwargs)
            names.extend(queue_name_of(u) for u in page.get("queueUrls", []))
            token = page.get("NextToken")
            if not token:
                return names
            kwargs["NextToken"] = token

    async def _discover(self) -> list[str]:
        warnings: list[str] = []
        queues, truncated = await self._call(self._list_queues)
        if truncated:
            warnings.append(f"more than {MAX_QUEUES} queues match: narrow the prefix or globs")
        self._queues = queues
        self._sources = {}
        self._last_discovery = time.monotonic()
        return warnings

    async def _refresh_sources(self, dlqs: Iterable[tuple[str, str]]) -> list[str]:
        """Reverse mapping (DLQ -> its sources) with ListDeadLetterSourceQueues."""
        warnings: list[str] = []
        items = list(dlqs)
        results = await asyncio.gather(
            *(self._call(self._source_queues, url) for _, url in items), return_exceptions=True
        )
        for (name, _), result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                warnings.append(f"{name}: ListDeadLetterSourceQueues: {describe_aws_error(result)}")
                self._sources[name] = []  # asked again at the next discovery
            else:
                self._sources[name] = sorted(result)
        return warnings

    async def _url_of(self, name: str, arn: str | None) -> str | None:
        """The URL of a queue outside the listed ones (by its ARN when known), None if unknown."""
        kwargs: dict[str, Any] = {"QueueName": name}
        if arn is not None:
            parts = arn_parts(arn)
            if parts is None:
                return None
            name = parts[2]
            kwargs = {"QueueName": name, "QueueOwnerAWSAccountId": parts[1]}
        if name in self._queues:
            return self._queues[name]
        if name in self._extra_urls:
            return self._extra_urls[name]
        try:
            response = await self._call(self.client.get_queue_url, **kwargs)
        except Exception:
            return None
        url = str(response["QueueUrl"])
        self._extra_urls[name] = url
        return url

    # -- fetch -----------------------------------------------------------------------

    async def _attributes(self, urls: dict[str, str]) -> dict[str, Attributes | Exception]:
        names = list(urls)
        results = await asyncio.gather(
            *(
                self._call(
                    self.client.get_queue_attributes,
                    QueueUrl=urls[name],
                    AttributeNames=["All"],
                )
                for name in names
            ),
            return_exceptions=True,
        )
        out: dict[str, Attributes | Exception] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Exception):
                out[name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                out[name] = {str(k): v for k, v in result.get("Attributes", {}).items()}
        return out

    async def _fetch_listed(self, warnings: list[str]) -> dict[str, Attributes]:
        """Attributes of the listed queues; raises when every queue failed."""
        attrs: dict[str, Attributes] = {}
        errors: list[Exception] = []
        for name, result in (await self._attributes(self._queues)).items():
            if not isinstance(result, Exception):
                attrs[name] = result
            elif error_code(result) in NO_SUCH_QUEUE:
                self._queues.pop(name, None)  # deleted since discovery
            else:
                errors.append(result)
                warnings.append(f"{name}: {describe_aws_error(result)}")
        if errors and not attrs:
            raise errors[0]
        return attrs

    async def _fetch_outside(
        self, mapping: DlqMap, attrs: dict[str, Attributes], warnings: list[str]
    ) -> dict[str, Attributes]:
        """Attributes of DLQs outside the listed queues (dlq_length must not be guessed)."""
        missing: dict[str, str] = {}
        for source, dlq in mapping.dlq_of.items():
            if dlq in attrs or dlq in missing:
                continue
            url = await self._url_of(dlq, mapping.arn.get(source))
            if url:
                missing[dlq] = url
        extra: dict[str, Attributes] = {}
        if missing:
            for name, result in (await self._attributes(missing)).items():
                if isinstance(result, Exception):
                    self._extra_urls.pop(name, None)
                    warnings.append(f"{name}: {describe_aws_error(result)}")
                else:
                    extra[name] = result
        return extra

    # -- decode and map ----------------------------------------------------------------

    def _map_dlqs(self, attrs: dict[str, Attributes]) -> DlqMap:
        """Forward mapping: explicit config > RedrivePolicy > naming convention."""
        mapping = DlqMap()
        for name, a in attrs.items():
            arn, count = redrive_target(a)
            mapping.max_receive[name] = count
            explicit = self.options.dlq.get(name)
            if explicit:
                mapping.dlq_of[name], mapping.how[name] = explicit, "config"
            elif arn:
                mapping.dlq_of[name], mapping.how[name] = queue_name_of(arn), "redrive_policy"
                mapping.arn[name] = arn
            else:
                for candidate in dlq_candidates(name):
                    if candidate in self._queues:
                        mapping.dlq_of[name], mapping.how[name] = candidate, "name"
                        break
        return mapping

    async def _reverse(self, mapping: DlqMap) -> list[str]:
        """Reverse mapping, refreshed with discovery, for every queue known to be a DLQ."""
        wanted = [
            (t, self._queues.get(t) or self._extra_urls.get(t, ""))
            for t in sorted(set(mapping.dlq_of.values()))
            if t not in self._sources
        ]
        if not any(url for _, url in wanted):
            return []
        return await self._refresh_sources([w for w in wanted if w[1]])

    def _sample(
        self, name: str, a: Attributes, mapping: DlqMap, dlq_attrs: Attributes | None
    ) -> SeriesSample:
        """One queue's series: attribute values, then what CloudWatch knows."""
        visible = int_attr(a, "ApproximateNumberOfMessages")
        dlq_name = mapping.dlq_of.get(name)
        dlq_len = int_attr(dlq_attrs, "ApproximateNumberOfMessages") if dlq_attrs else None
        values: dict[str, float | None] = {
            "queue_length": _float(visible),
            "consumer_lag_messages": _float(visible),
            "in_flight": _float(int_attr(a, "ApproximateNumberOfMessagesNotVisible")),
            "dlq_length": _float(dlq_len),
            "publish_rate": None,
            "processing_rate": None,
            "latency_seconds": None,
            "error_rate": None,
            "consumers": None,
        }
        info: dict[str, Any] = {
            "fifo": a.get("FifoQueue") == "true",
            "delayed": int_attr(a, "ApproximateNumberOfMessagesDelayed"),
            "url": self._queues.get(name),
            "arn": a.get("QueueArn"),
            "visibility_timeout": int_attr(a, "VisibilityTimeout"),
            "max_receive_count": mapping.max_receive.get(name),
            "dlq_source": mapping.how.get(name),
            "dlq_of": sorted(mapping.served_by(name, self._sources.get(name, []))),
        }
        cw = self._cloudwatch.values.get(name)
        if cw is not None:
            known, info["cloudwatch_time"] = cloudwatch.rates(cw)
            values.update(known)
            if dlq_name is not None and self._sole_source(mapping, dlq_name) == name:
                values["error_rate"] = cloudwatch.error_rate(
                    cw, self._cloudwatch.values.get(dlq_name, {})
                )
        return SeriesSample(
            key=SeriesKey(self.options.name, name, None),
            kind="fifo" if info["fifo"] else "standard",
            values=values,
            dlq=dlq_name,
            info=info,
        )

    def _sole_source(self, mapping: DlqMap, dlq: str) -> str | None:
        """The one queue a DLQ serves, None when it serves several (or none)."""
        sources = mapping.served_by(dlq, self._sources.get(dlq, []))
        return next(iter(sources)) if len(sources) == 1 else None

    # -- the poll ----------------------------------------------------------------------

    async def collect(self) -> Collected:
        warnings: list[str] = []
        if time.monotonic() - self._last_discovery >= self.options.discover_every:
            warnings.extend(await self._discover())
        attrs = await self._fetch_listed(warnings)
        mapping = self._map_dlqs(attrs)
        extra = await self._fetch_outside(mapping, attrs, warnings)
        warnings.extend(await self._reverse(mapping))
        if self.options.cloudwatch:
            # error_rate needs the depth of DLQs that serve exactly one source
            single = sorted({d for d in mapping.dlq_of.values() if self._sole_source(mapping, d)})
            names = [*attrs, *(d for d in single if d not in attrs)]
            warnings.extend(await self._cloudwatch.read(names, single))
        series = []
        for name, a in attrs.items():
            dlq = mapping.dlq_of.get(name)
            dlq_attrs = (attrs.get(dlq) or extra.get(dlq)) if dlq is not None else None
            series.append(self._sample(name, a, mapping, dlq_attrs))
        return Collected(series=tuple(series), warnings=tuple(warnings))


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


__all__ = ["DlqMap", "SQSCollector"]
