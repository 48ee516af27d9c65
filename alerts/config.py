"""Config models for alert rules and notifiers (validated as part of the main config)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from mqtop.kernel.durations import Duration, OptionalDuration
from mqtop.kernel.model import METRICS, PUBLIC_METRIC_NAMES
from mqtop.kernel.secrets import SecretHeaders, SecretUrl

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertRule(_Strict):
    """One threshold rule over a metric, evaluated per series."""

    name: str = Field(min_length=1, description="Rule name, shown in every notification.")
    metric: str = Field(description="Metric name (see the metrics reference).")
    op: Op = Field(">", description="Comparison against the threshold.")
    threshold: float = Field(description="Value the metric is compared with.")
    for_: Duration = Field(
        0.0, alias="for", description="How long the condition must hold before firing."
    )
    severity: Severity = Field("warning", description="info, warning or critical.")
    match: dict[str, str] = Field(
        default_factory=dict, description="Glob per label (broker, queue, group, kind)."
    )
    function: Literal["rate", "increase", "avg", "max"] | None = Field(
        None, description="Apply a function over `window` before comparing."
    )
    window: OptionalDuration = Field(None, description="Window for `function`.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels to attach.")
    summary: str | None = Field(
        None,
        description="Template with {broker}, {queue}, {group}, {value}, {threshold}.",
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS or not METRICS[value].public:
            known = ", ".join(PUBLIC_METRIC_NAMES)
            raise ValueError(f"unknown metric {value!r} (known: {known})")
        return value

    @field_validator("match")
    @classmethod
    def _match(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"broker", "queue", "group", "kind"}
        bad = sorted(set(value) - allowed)
        if bad:
            raise ValueError(f"match keys must be among {sorted(allowed)}, got {bad}")
        return value

    @model_validator(mode="after")
    def _window_needs_function(self) -> AlertRule:
        if self.function is not None and self.window is None:
            raise ValueError("`function` needs a `window` (e.g. window: 5m)")
        if self.window is not None and self.function is None:
            raise ValueError("`window` needs a `function` (rate, increase, avg or max)")
        return self


DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "QueueBacklog",
        "metric": "queue_length",
        "op": ">",
        "threshold": 1000,
        "for": "1m",
        "severity": "warning",
    },
    {
        "name": "HighErrorRate",
        "metric": "error_rate",
        "op": ">",
        "threshold": 0.05,
        "severity": "critical",
    },
    {
        "name": "ConsumerLag",
        "metric": "consumer_lag_seconds",
        "op": ">",
        "threshold": 60,
        "severity": "warning",
    },
    {
        # a job library's dead set grew: jobs ran out of retries (docs/jobs.md)
        "name": "DeadJobsGrowing",
        "metric": "dlq_length",
        "op": ">",
        "threshold": 0,
        "function": "increase",
        "window": "10m",
        "match": {"kind": "jobs"},
        "severity": "warning",
    },
    {
        # dead letters entered a queue's DLQ, even when a consumer keeps the DLQ empty
        # (docs/alerts.md); warning only: some dead-lettering may be part of normal operation
        "name": "DeadLettersArriving",
        "metric": "dlq_inflow_rate",
        "op": ">",
        "threshold": 0,
        "function": "max",
        "window": "5m",
        "severity": "warning",
    },
)


def default_rules() -> list[AlertRule]:
    """The shipped rules used when a config has no ``alerts:`` section."""
    return [AlertRule.model_validate(rule) for rule in DEFAULT_RULES]


class _NotifierBase(_Strict):
    min_severity: Severity = Field(
        "info", description="Only alerts at or above this severity are sent."
    )


def _hidden_url(url: SecretUrl) -> str:
    """``scheme://host:port/****``: webhook paths are often the secret itself."""
    from urllib.parse import urlsplit

    from mqtop.kernel.secrets import MASK

    try:
        parts = urlsplit(url.get_secret_value())
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return MASK
    if parts.path in ("", "/") and not parts.query:
        return url.masked
    return f"{parts.scheme}://{host}/{MASK}"


def _register_url(url: SecretUrl) -> SecretUrl:
    """Remember the whole URL (and a long path) so no output or log can show it."""
    from urllib.parse import urlsplit

    from mqtop.kernel.secrets import REDACTOR

    raw = url.get_secret_value()
    REDACTOR.register(raw)
    try:
        path = urlsplit(raw).path
    except ValueError:
        path = ""
    if len(path) >= 12:
        REDACTOR.register(path)
    return url


HookUrl = Annotated[
    SecretUrl, AfterValidator(_register_url), PlainSerializer(_hidden_url, return_type=str)
]
"""A webhook URL: all of it a secret (paths often are), shown as ``scheme://host/****``."""


class StdoutNotifier(_NotifierBase):
    """Print alert events as JSON lines on standard output."""

    type: Literal["stdout"]


class WebhookNotifier(_NotifierBase):
    """POST alert events as JSON to a URL."""

    type: Literal["webhook"]
    url: HookUrl = Field(description="Endpoint (the whole URL is treated as a secret).")
    timeout: Duration = Field(5.0, description="Request timeout.")
    retries: int = Field(3, ge=0, le=20, description="Retries with exponential backoff.")
    headers: SecretHeaders = Field(default_factory=dict, description="Extra headers (masked).")


class SlackNotifier(_NotifierBase):
    """Send to a Slack incoming webhook."""

    type: Literal["slack"]
    url: HookUrl = Field(description="Incoming-webhook URL (a secret).")
    channel: str | None = Field(None, description="Override the webhook's default channel.")
    timeout: Duration = 5.0
    retries: int = Field(3, ge=0, le=20)


class AlertmanagerNotifier(_NotifierBase):
    """POST alerts to Alertmanager's ``/api/v2/alerts``."""

    type: Literal["alertmanager"]
    url: SecretUrl = Field(description="Alertmanager base URL, e.g. http://localhost:9093.")
    timeout: Duration = 5.0
    retries: int = Field(3, ge=0, le=20)
    resend_interval: Duration = Field(
        60.0,
        description="Firing alerts are re-sent this often (Alertmanager expires alerts that "
        "are not refreshed; endsAt is set to four intervals ahead).",
    )


NotifierConfig = Annotated[
    StdoutNotifier | WebhookNotifier | SlackNotifier | AlertmanagerNotifier,
    Field(discriminator="type"),
]


class AlertingSettings(_Strict):
    """How alerts behave over time."""

    repeat_interval: Duration = Field(
        4 * 3600.0, description="Re-notify a still-firing alert after this long."
    )
    resolve_after: Duration = Field(
        0.0, description="Condition must stay false this long before resolving (damps flapping)."
    )
    stale_after: OptionalDuration = Field(
        None,
        description="A broker that is up but whose polls stored no data for this long fires "
        "SeriesStale (default: 3 poll intervals, or one interval plus the poll timeout if longer).",
    )
    silences_path: str | None = Field(
        None, description="Where silences are persisted (default: next to the history file)."
    )
    flap_threshold: int = Field(
        3,
        ge=0,
        le=1000,
        description="An alert that fired this many times within `flap_window` is flapping: "
        "it is held firing until its condition stays false for `flap_window` (0 disables).",
    )
    flap_window: Duration = Field(
        600.0, description="Window over which firings are counted to detect flapping."
    )
