"""CloudWatch's per-minute SQS metrics: rates, oldest message age and the DLQ-derived error_rate.

SQS keeps no sent/deleted counters and no message age; CloudWatch publishes them per queue
and minute (``NumberOfMessagesSent``, ``NumberOfMessagesDeleted``,
``ApproximateAgeOfOldestMessage``), read with batched ``GetMetricData``. A metric without a
datapoint is null, never 0. An endpoint that answers ``GetMetricData`` with no datapoint for
any queue (an emulator, or an account whose queues have all been idle for hours) gets one
warning that says why the CloudWatch metrics are null.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from collectors.sqs.client import (
    ConfigProblem,
    describe_aws_error,
    make_client,
    poll_limits,
)
from collectors.sqs.options import SQSOptions

QUERIES_PER_CALL = 500  # GetMetricData limit
PERIOD = 60
LOOKBACK = 15 * 60
RATE_METRICS = (
    ("sent", "NumberOfMessagesSent", "Sum"),
    ("deleted", "NumberOfMessagesDeleted", "Sum"),
    ("age", "ApproximateAgeOfOldestMessage", "Maximum"),
)
DEPTH_METRICS = (
    ("visible", "ApproximateNumberOfMessagesVisible", "Average"),
    ("invisible", "ApproximateNumberOfMessagesNotVisible", "Average"),
    ("delayed", "ApproximateNumberOfMessagesDelayed", "Average"),
)
Points = dict[float, float]  # time -> value
QueueData = dict[str, Points]  # metric key -> points
CloudWatchData = dict[str, QueueData]  # queue -> metric key -> points
Call = Callable[..., Awaitable[Any]]


def no_data_warning(queues: int) -> str:
    """Why every CloudWatch metric is null although GetMetricData answered."""
    return (
        f"cloudwatch: no datapoint for any of the {queues} queue(s) in the last "
        f"{LOOKBACK // 60} minutes, so publish_rate, processing_rate, latency_seconds and "
        "error_rate are null: the endpoint keeps no CloudWatch SQS metrics (emulators such "
        "as moto or LocalStack), or every queue has been idle for hours"
    )


def queries(names: list[str], dlqs: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """GetMetricData queries and their ids -> (queue, metric key).

    Every queue: sent, deleted (Sum) and the oldest message's age (Maximum); DLQs in ``dlqs``
    also their depth (visible, not visible, delayed: Average) for error_rate.
    """
    out: list[dict[str, Any]] = []
    index: dict[str, Any] = {}
    wanted = [(name, RATE_METRICS) for name in names]
    wanted += [(name, DEPTH_METRICS) for name in dlqs]
    for i, (name, metrics) in enumerate(wanted):
        for key, metric, stat in metrics:
            qid = f"q{i}_{key}"
            index[qid] = (name, key)
            dimensions = [{"Name": "QueueName", "Value": name}]
            out.append(
                {
                    "Id": qid,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SQS",
                            "MetricName": metric,
                            "Dimensions": dimensions,
                        },
                        "Period": PERIOD,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    return out, index


def metric_data(client: Any, names: list[str], dlqs: list[str]) -> CloudWatchData:
    """Per-minute datapoints of the last minutes per queue (blocking; batched by 500)."""
    wanted, index = queries(names, dlqs)
    end = dt.datetime.now(tz=dt.UTC).replace(second=0, microsecond=0)  # whole minutes only
    start = end - dt.timedelta(seconds=LOOKBACK)
    out: CloudWatchData = {}
    for at in range(0, len(wanted), QUERIES_PER_CALL):
        kwargs: dict[str, Any] = {
            "MetricDataQueries": wanted[at : at + QUERIES_PER_CALL],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }
        while True:
            page = client.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                ident = index.get(result.get("Id", ""))
                if ident is None:
                    continue
                points = out.setdefault(ident[0], {}).setdefault(ident[1], {})
                for stamp, value in zip(
                    result.get("Timestamps", []), result.get("Values", []), strict=False
                ):
                    points[stamp.timestamp()] = float(value)
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return out


def has_datapoint(data: CloudWatchData) -> bool:
    """True when at least one metric of one queue has a datapoint."""
    return any(points for metrics in data.values() for points in metrics.values())


class CloudWatchReader:
    """Reads CloudWatch every ``cloudwatch_every`` and keeps the newest values in between."""

    def __init__(self, options: SQSOptions, call: Call) -> None:
        self.options = options
        self._call = call  # runs a blocking function in the collector's worker threads
        self._client: Any = None
        self._last = -1e18
        self.values: CloudWatchData = {}
        self.no_data: str | None = None  # the warning while no queue has any datapoint

    async def read(self, names: list[str], dlqs: list[str]) -> list[str]:
        """Read when due; the poll's warnings (a failed read, or no datapoint anywhere)."""
        if time.monotonic() - self._last >= self.options.cloudwatch_every:
            if self._client is None:
                try:
                    limits = poll_limits(self.options)
                    self._client = await self._call(
                        make_client, self.options, "cloudwatch", limits=limits
                    )
                except ConfigProblem as exc:
                    return [f"cloudwatch: {exc}"]
            try:
                values = await self._call(metric_data, self._client, names, dlqs)
            except Exception as exc:
                return [f"cloudwatch: {describe_aws_error(exc)}"]
            self.values = values
            self._last = time.monotonic()
            self.no_data = (
                None if has_datapoint(values) or not names else no_data_warning(len(names))
            )
        # a poll's warnings are the broker's status until the next poll: said while it holds
        return [self.no_data] if self.no_data else []

    def close(self) -> None:
        """Drop the client (closing must not raise)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: S110 - closing is best effort
                pass


def latest(points: Points | None) -> tuple[float, float] | None:
    """(time, value) of the newest datapoint; None when there is none (unknown, not zero)."""
    if not points:
        return None
    stamp = max(points)
    return stamp, points[stamp]


def rates(data: QueueData) -> tuple[dict[str, float], float | None]:
    """publish_rate, processing_rate, latency_seconds known from a queue's data; newest time."""
    sent, deleted, age = (latest(data.get(key)) for key in ("sent", "deleted", "age"))
    values: dict[str, float] = {}
    if sent is not None:
        values["publish_rate"] = sent[1] / PERIOD
    if deleted is not None:
        values["processing_rate"] = deleted[1] / PERIOD
    if age is not None:
        values["latency_seconds"] = age[1]
    stamps = [p[0] for p in (sent, deleted, age) if p is not None]
    return values, (max(stamps) if stamps else None)


def error_rate(source: QueueData, dlq: QueueData) -> float | None:
    """Dead-lettered share of the newest minute where it can be known, from CloudWatch.

    Redrive inflow is counted by no SQS or CloudWatch metric, but it is the DLQ's depth
    change plus what was deleted from the DLQ in that minute (for a DLQ with one source):
    inflow = depth(t) - depth(t - 1 min) + deleted_dlq(t); error_rate = inflow / (inflow +
    deleted_source(t)). Every term must have a datapoint, else the minute is skipped.
    """
    deleted = source.get("deleted", {})
    for minute in sorted(deleted, reverse=True):
        before = minute - PERIOD
        terms = [dlq.get(key, {}) for key, _, _ in DEPTH_METRICS]
        if not all(minute in t and before in t for t in terms):
            continue
        dlq_deleted = dlq.get("deleted", {}).get(minute)
        if dlq_deleted is None:
            continue
        change = sum(t[minute] for t in terms) - sum(t[before] for t in terms)
        inflow = max(0.0, change + dlq_deleted)
        total = inflow + deleted[minute]
        return inflow / total if total > 0 else None
    return None
