"""Amazon SQS collector: queue attributes, dead-letter mapping, optional CloudWatch rates.

What SQS exposes and how it maps (see docs/sqs.md):
* ``GetQueueAttributes`` (one call per queue per poll, run in parallel with a bound):
  ApproximateNumberOfMessages -> queue_length (and consumer_lag_messages),
  ApproximateNumberOfMessagesNotVisible -> in_flight, ApproximateNumberOfMessagesDelayed is
  kept as the ``delayed`` info field. ``Approximate*`` values can lag about a minute.
* the DLQ comes from ``RedrivePolicy`` (config ``dlq`` overrides it; the naming convention is
  the last resort); the reverse mapping from ``ListDeadLetterSourceQueues``. ``dlq_length`` is
  the DLQ's ApproximateNumberOfMessages, even when the DLQ itself is not listed.
* SQS keeps no sent/deleted counters and no message age: publish_rate, processing_rate and
  latency_seconds are null unless ``cloudwatch: true`` (NumberOfMessagesSent,
  NumberOfMessagesDeleted, ApproximateAgeOfOldestMessage via batched ``GetMetricData``).
  No metric counts messages moved by a redrive policy (a DLQ's NumberOfMessagesSent excludes
  them): error_rate is known only with CloudWatch, for a DLQ that serves one source, from the
  DLQ's depth change plus its deletions in a minute (see :func:`cloudwatch_error_rate`);
  otherwise null. consumers is null (SQS has no notion of attached consumers).

Discovery uses ``ListQueues`` with the queue name prefix and pagination; include/exclude
globs filter the names. boto3 is blocking: every call runs in the collector's own bounded
thread pool, with one long-lived client whose connection pool fits the parallel calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from collectors.base import (
    BrokerOptions,
    Collected,
    CollectorPlugin,
    MessageActions,
    MoveOptions,
    dlq_candidates,
)
from mqtop.kernel.durations import Duration, OptionalDuration
from mqtop.kernel.model import SeriesKey, SeriesSample
from mqtop.kernel.secrets import Password, redact, strip_url_credentials

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")

MAX_QUEUES = 10_000
CLOUDWATCH_QUERIES_PER_CALL = 500  # GetMetricData limit
CLOUDWATCH_PERIOD = 60
CLOUDWATCH_LOOKBACK = 15 * 60
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
CloudWatchData = dict[str, dict[str, dict[float, float]]]  # queue -> metric -> time -> value
LOCAL_TEST_CREDENTIALS = ("test", "test")  # what local emulators (moto, LocalStack) accept


class SQSOptions(BrokerOptions):
    """Amazon SQS (or an SQS-compatible endpoint such as LocalStack or moto)."""

    type: Literal["sqs"] = "sqs"
    region: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$",
        description="AWS region (default: the profile's or AWS_REGION; us-east-1 for a local "
        "endpoint_url).",
    )
    endpoint_url: str | None = Field(
        None, description="SQS endpoint for local or private endpoints (http:// or https://)."
    )
    queue_name_prefix: str = Field(
        "", description="Only list queues whose name starts with this (ListQueues prefix)."
    )
    profile: str | None = Field(None, description="Named profile of the AWS config files.")
    access_key_id: str | None = Field(
        None, description="Access key id (default: the standard AWS credential chain)."
    )
    secret_access_key: Password | None = Field(
        None, description="Secret access key (with access_key_id); never printed."
    )
    session_token: Password | None = Field(
        None, description="Session token for temporary credentials; never printed."
    )
    cloudwatch: bool = Field(
        False,
        description="Read NumberOfMessagesSent/Deleted and ApproximateAgeOfOldestMessage from "
        "CloudWatch for publish_rate, processing_rate and latency_seconds.",
    )
    cloudwatch_endpoint_url: str | None = Field(
        None, description="CloudWatch endpoint (default: endpoint_url when set, else AWS)."
    )
    cloudwatch_every: Duration = Field(
        60.0, description="How often CloudWatch is read (its SQS metrics are per minute)."
    )
    max_parallel: int = Field(
        10, ge=1, le=64, description="Concurrent API calls (GetQueueAttributes per poll)."
    )
    tls_verify: bool = Field(True, description="Verify the endpoint's TLS certificate.")
    ca_file: str | None = Field(None, description="CA bundle for TLS verification.")
    discover_every: Duration = Field(60.0, description="How often ListQueues is re-run.")
    move_workers: int = Field(
        4, ge=1, le=16, description="Parallel batch loops of a fallback move (standard queues)."
    )
    move_visibility_timeout: OptionalDuration = Field(
        None,
        description="Visibility timeout of messages being moved (default: sized for one batch "
        "with retries, 90s). After a crash they reappear in the source after this.",
    )
    native_move: bool = Field(
        True,
        description="Use StartMessageMoveTask for plain replays where the endpoint supports it.",
    )

    @field_validator("endpoint_url", "cloudwatch_endpoint_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("move_visibility_timeout")
    @classmethod
    def _visibility(cls, value: float | None) -> float | None:
        if value is not None and not 1 <= value <= 43200:
            raise ValueError("must be between 1s and 12h (SQS limits)")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SQSOptions:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("use either profile or access_key_id/secret_access_key")
        return self

    def address(self) -> str:
        if self.endpoint_url:
            return strip_url_credentials(self.endpoint_url)
        return f"sqs.{self.region}.amazonaws.com" if self.region else "sqs (default region)"


# ---------------------------------------------------------------- clients


def is_local_endpoint(url: str | None) -> bool:
    """True for a loopback endpoint (moto, LocalStack on this machine)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigProblem(Exception):
    """Region or credentials missing: a config problem, not an unreachable broker."""


def make_client(
    options: SQSOptions,
    service: Literal["sqs", "cloudwatch"] = "sqs",
    *,
    pool: int | None = None,
    max_attempts: int = 3,
    read_timeout: float = 20.0,
    validate: bool = True,
) -> Any:
    """A boto3 client for the options (blocking: call it in a thread). Secrets never logged."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session(profile_name=options.profile)
    except BotoCoreError as exc:  # ProfileNotFound and friends
        raise ConfigProblem(redact(str(exc))) from None
    endpoint = options.endpoint_url
    if service == "cloudwatch":
        endpoint = options.cloudwatch_endpoint_url or options.endpoint_url
    region: str | None = options.region or getattr(session, "region_name", None)
    if region is None:
        if not is_local_endpoint(endpoint):
            raise ConfigProblem("no AWS region: set region in the config or AWS_REGION")
        region = "us-east-1"
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint}
    if options.access_key_id is not None and options.secret_access_key is not None:
        kwargs["aws_access_key_id"] = options.access_key_id
        kwargs["aws_secret_access_key"] = options.secret_access_key.get_secret_value()
        if options.session_token is not None:
            kwargs["aws_session_token"] = options.session_token.get_secret_value()
    elif is_local_endpoint(endpoint) and session.get_credentials() is None:
        # local emulators accept any key; real AWS endpoints never get here
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = LOCAL_TEST_CREDENTIALS
    if options.ca_file:
        kwargs["verify"] = options.ca_file if options.tls_verify else False
    elif not options.tls_verify:
        kwargs["verify"] = False
    kwargs["config"] = BotoConfig(
        max_pool_connections=pool or options.max_parallel + 4,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=read_timeout,
        user_agent_extra="mqtop",
        parameter_validation=validate,
    )
    return session.client(service, **kwargs)


def queue_name_of(url_or_arn: str) -> str:
    """The queue name of a queue URL or ARN."""
    if url_or_arn.startswith("arn:"):
        return url_or_arn.rsplit(":", 1)[-1]
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1]


def arn_parts(arn: str) -> tuple[str, str, str] | None:
    """(region, account, name) of an SQS queue ARN, None when it is not one."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        return None
    return parts[3], parts[4], parts[5]


def redrive_target(attributes: dict[str, str]) -> tuple[str | None, int | None]:
    """(DLQ ARN, maxReceiveCount) from a RedrivePolicy attribute."""
    raw = attributes.get("RedrivePolicy")
    if not raw:
        return None, None
    try:
        policy = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(policy, dict):
        return None, None
    arn = policy.get("deadLetterTargetArn")
    count = policy.get("maxReceiveCount")
    try:
        max_receive = int(count) if count is not None else None
    except (TypeError, ValueError):
        max_receive = None
    return (arn if isinstance(arn, str) else None), max_receive


def int_attr(attributes: dict[str, str], name: str) -> int | None:
    """An integer queue attribute, None when absent or malformed."""
    value = attributes.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for other errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else ""
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if isinstance(status, int) else None
    return None


NO_SUCH_QUEUE = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)


def describe_aws_error(exc: BaseException) -> str:
    """One line for the operator: the AWS code and message, secrets masked, no HTML pages."""
    code = error_code(exc)
    message = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = str(response.get("Error", {}).get("Message") or "")
    if message.lstrip().startswith("<"):  # an HTML error page (e.g. an emulator's 500)
        message = f"HTTP {http_status(exc)} from the endpoint"
    if code:
        text = f"{code}: {message}" if message and message != code else code
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)[:500]


# ---------------------------------------------------------------- collector


class SQSCollector:
    """Reads queue attributes (and optionally CloudWatch) for the queues of one account."""

    def __init__(self, options: SQSOptions) -> None:
        self.options = options
        self._client: SQSClient | None = None
        self._cloudwatch: CloudWatchClient | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._queues: dict[str, str] = {}  # name -> url, in discovery order
        self._extra_urls: dict[str, str] = {}  # DLQs outside the listed queues: name -> url
        self._sources: dict[str, list[str]] = {}  # DLQ name -> source queue names
        self._last_discovery = -1e18
        self._cw_values: CloudWatchData = {}
        self._last_cloudwatch = -1e18
        self._actions: MessageActions | None = None

    # -- plumbing --------------------------------------------------------------------

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            raise RuntimeError("not connected")
        return self._client

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.options.max_parallel, thread_name_prefix="mqtop-sqs"
            )
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def connect(self) -> None:
        if self._client is None:
            try:
                self._client = await self._call(make_client, self.options)
            except ConfigProblem as exc:
                raise RuntimeError(str(exc)) from None
        # one cheap call proves the endpoint answers and the credentials work
        await self._call(self.client.list_queues, MaxResults=1)

    async def close(self) -> None:
        client, self._client = self._client, None
        cloudwatch, self._cloudwatch = self._cloudwatch, None
        for c in (client, cloudwatch):
            if c is not None:
                with contextlib.suppress(Exception):  # closing must not raise
                    c.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._actions is not None:
            await self._actions.close()

    def actions(self) -> MessageActions | None:
        try:
            from collectors.sqs.actions import SQSActions
        except ImportError:
            return None
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

    async def _url_of_arn(self, arn: str) -> str | None:
        parts = arn_parts(arn)
        if parts is None:
            return None
        _, account, name = parts
        if name in self._queues:
            return self._queues[name]
        if name in self._extra_urls:
            return self._extra_urls[name]
        try:
            response = await self._call(
                self.client.get_queue_url, QueueName=name, QueueOwnerAWSAccountId=account
            )
        except Exception:
            return None
        url = response["QueueUrl"]
        self._extra_urls[name] = url
        return url

    # -- collection ------------------------------------------------------------------

    async def _attributes(self, urls: dict[str, str]) -> dict[str, dict[str, str] | Exception]:
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
        out: dict[str, dict[str, str] | Exception] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Exception):
                out[name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                out[name] = {str(k): v for k, v in result.get("Attributes", {}).items()}
        return out

    async def collect(self) -> Collected:
        warnings: list[str] = []
        if time.monotonic() - self._last_discovery >= self.options.discover_every:
            warnings.extend(await self._discover())
        fetched = await self._attributes(self._queues)
        attrs: dict[str, dict[str, str]] = {}
        errors: list[Exception] = []
        for name, result in fetched.items():
            if isinstance(result, Exception):
                if error_code(result) in NO_SUCH_QUEUE:
                    self._queues.pop(name, None)  # deleted since discovery
                    continue
                errors.append(result)
                warnings.append(f"{name}: {describe_aws_error(result)}")
            else:
                attrs[name] = result
        if errors and not attrs:
            raise errors[0]

        # forward mapping: explicit config > RedrivePolicy > naming convention
        dlq_of: dict[str, str] = {}
        dlq_arn: dict[str, str] = {}
        max_receive: dict[str, int | None] = {}
        how: dict[str, str] = {}
        for name, a in attrs.items():
            arn, count = redrive_target(a)
            max_receive[name] = count
            explicit = self.options.dlq.get(name)
            if explicit:
                dlq_of[name], how[name] = explicit, "config"
            elif arn:
                dlq_of[name], how[name] = queue_name_of(arn), "redrive_policy"
                dlq_arn[name] = arn
            else:
                for candidate in dlq_candidates(name):
                    if candidate in self._queues:
                        dlq_of[name], how[name] = candidate, "name"
                        break

        # DLQs outside the listed queues: measure them too (dlq_length must not be guessed)
        missing: dict[str, str] = {}
        for source, dlq in dlq_of.items():
            if dlq in attrs or dlq in missing:
                continue
            url = None
            if source in dlq_arn:
                url = await self._url_of_arn(dlq_arn[source])
            elif dlq in self._extra_urls:
                url = self._extra_urls[dlq]
            else:
                try:
                    response = await self._call(self.client.get_queue_url, QueueName=dlq)
                    url = self._extra_urls[dlq] = response["QueueUrl"]
                except Exception:
                    url = None
            if url:
                missing[dlq] = url
        extra_attrs: dict[str, dict[str, str]] = {}
        if missing:
            for name, result in (await self._attributes(missing)).items():
                if isinstance(result, Exception):
                    self._extra_urls.pop(name, None)
                    warnings.append(f"{name}: {describe_aws_error(result)}")
                else:
                    extra_attrs[name] = result

        # reverse mapping: refreshed with discovery, for every queue known to be a DLQ
        wanted = [
            (t, self._queues.get(t) or self._extra_urls.get(t, ""))
            for t in sorted(set(dlq_of.values()))
            if t not in self._sources
        ]
        if any(url for _, url in wanted):
            warnings.extend(await self._refresh_sources([w for w in wanted if w[1]]))

        def sources_of(dlq: str) -> set[str]:
            return {*self._sources.get(dlq, []), *(s for s, d in dlq_of.items() if d == dlq)}

        if self.options.cloudwatch:
            # error_rate needs the depth of DLQs that serve exactly one source
            single = sorted({d for d in dlq_of.values() if len(sources_of(d)) == 1})
            names = [*attrs, *(d for d in single if d not in attrs)]
            warnings.extend(await self._read_cloudwatch(names, single))

        broker = self.options.name
        series: list[SeriesSample] = []
        for name, a in attrs.items():
            visible = int_attr(a, "ApproximateNumberOfMessages")
            dlq_name = dlq_of.get(name)
            dlq_attrs = (
                (attrs.get(dlq_name) or extra_attrs.get(dlq_name)) if dlq_name is not None else None
            )
            dlq_len = int_attr(dlq_attrs, "ApproximateNumberOfMessages") if dlq_attrs else None
            values: dict[str, float | None] = {
                "queue_length": None if visible is None else float(visible),
                "consumer_lag_messages": None if visible is None else float(visible),
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
                "max_receive_count": max_receive.get(name),
                "dlq_source": how.get(name),
                "dlq_of": sorted(
                    {*self._sources.get(name, []), *(s for s, d in dlq_of.items() if d == name)}
                ),
            }
            cw = self._cw_values.get(name)
            if cw is not None:
                sent, deleted, age = (latest(cw.get(k)) for k in ("sent", "deleted", "age"))
                if sent is not None:
                    values["publish_rate"] = sent[1] / CLOUDWATCH_PERIOD
                if deleted is not None:
                    values["processing_rate"] = deleted[1] / CLOUDWATCH_PERIOD
                if age is not None:
                    values["latency_seconds"] = age[1]
                stamps = [p[0] for p in (sent, deleted, age) if p is not None]
                info["cloudwatch_time"] = max(stamps) if stamps else None
                if dlq_name is not None and sources_of(dlq_name) == {name}:
                    values["error_rate"] = cloudwatch_error_rate(
                        cw, self._cw_values.get(dlq_name, {})
                    )
            series.append(
                SeriesSample(
                    key=SeriesKey(broker, name, None),
                    kind="fifo" if info["fifo"] else "standard",
                    values=values,
                    dlq=dlq_name,
                    info=info,
                )
            )
        return Collected(series=tuple(series), warnings=tuple(warnings))

    # -- CloudWatch --------------------------------------------------------------------

    async def _read_cloudwatch(self, names: list[str], dlqs: list[str]) -> list[str]:
        if time.monotonic() - self._last_cloudwatch < self.options.cloudwatch_every:
            return []
        if self._cloudwatch is None:
            try:
                self._cloudwatch = await self._call(make_client, self.options, "cloudwatch")
            except ConfigProblem as exc:
                return [f"cloudwatch: {exc}"]
        try:
            values = await self._call(self._metric_data, names, dlqs)
        except Exception as exc:
            return [f"cloudwatch: {describe_aws_error(exc)}"]
        self._cw_values = values
        self._last_cloudwatch = time.monotonic()
        return []

    def _metric_data(self, names: list[str], dlqs: list[str]) -> CloudWatchData:
        """Per-minute datapoints of the last minutes per queue (blocking; batched by 500).

        Every queue: sent, deleted (Sum) and the oldest message's age (Maximum); DLQs in
        ``dlqs`` also their depth (visible, not visible, delayed: Average) for error_rate.
        """
        assert self._cloudwatch is not None
        queries: list[dict[str, Any]] = []
        index: dict[str, tuple[str, str]] = {}
        wanted = [(name, RATE_METRICS) for name in names]
        wanted += [(name, DEPTH_METRICS) for name in dlqs]
        for i, (name, metrics) in enumerate(wanted):
            for key, metric, stat in metrics:
                qid = f"q{i}_{key}"
                index[qid] = (name, key)
                queries.append(
                    {
                        "Id": qid,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/SQS",
                                "MetricName": metric,
                                "Dimensions": [{"Name": "QueueName", "Value": name}],
                            },
                            "Period": CLOUDWATCH_PERIOD,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        end = dt.datetime.now(tz=dt.UTC).replace(second=0, microsecond=0)  # whole minutes only
        start = end - dt.timedelta(seconds=CLOUDWATCH_LOOKBACK)
        out: CloudWatchData = {}
        for at in range(0, len(queries), CLOUDWATCH_QUERIES_PER_CALL):
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries[at : at + CLOUDWATCH_QUERIES_PER_CALL],
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampDescending",
            }
            while True:
                page = self._cloudwatch.get_metric_data(**kwargs)
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


def latest(points: dict[float, float] | None) -> tuple[float, float] | None:
    """(time, value) of the newest datapoint; None when there is none (unknown, not zero)."""
    if not points:
        return None
    stamp = max(points)
    return stamp, points[stamp]


def cloudwatch_error_rate(
    source: dict[str, dict[float, float]], dlq: dict[str, dict[float, float]]
) -> float | None:
    """Dead-lettered share of the newest minute where it can be known, from CloudWatch.

    Redrive inflow is counted by no SQS or CloudWatch metric, but it is the DLQ's depth
    change plus what was deleted from the DLQ in that minute (for a DLQ with one source):
    inflow = depth(t) - depth(t - 1 min) + deleted_dlq(t); error_rate = inflow / (inflow +
    deleted_source(t)). Every term must have a datapoint, else the minute is skipped.
    """
    deleted = source.get("deleted", {})
    for minute in sorted(deleted, reverse=True):
        before = minute - CLOUDWATCH_PERIOD
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


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _create(options: SQSOptions) -> SQSCollector:
    return SQSCollector(options)


class SQSMoveOptions(MoveOptions):
    """Options of an SQS replay / move."""

    batch: int | None = Field(
        None,
        ge=1,
        le=10,
        description="messages per batch / confirm window",
        json_schema_extra={"metavar": "N"},
    )
    rate: int | None = Field(
        None,
        ge=1,
        description="SQS native task: max messages/s",
        json_schema_extra={"metavar": "N"},
    )


PLUGIN: CollectorPlugin[SQSOptions] = CollectorPlugin(
    type="sqs",
    options_model=SQSOptions,
    factory=_create,
    move_options=SQSMoveOptions,
    description="Amazon SQS queues (and SQS-compatible endpoints)",
)

__all__ = [
    "PLUGIN",
    "SQSCollector",
    "SQSOptions",
    "arn_parts",
    "describe_aws_error",
    "make_client",
    "queue_name_of",
]
