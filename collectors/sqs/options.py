"""The options of an SQS broker and of its replays and moves."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from collectors.base import BrokerOptions, MoveOptions
from collectors.kit.options import batch_field
from mqtop.kernel.durations import Duration, OptionalDuration
from mqtop.kernel.secrets import (
    REDACTOR,
    Password,
    check_url_port,
    strip_url_credentials,
    url_password,
)


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
        # a password in the URL is masked wherever it could be printed, before anything can
        # fail on it (the client is only ever given the URL without it)
        REDACTOR.register(url_password(value))
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        check_url_port(value)
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


class SQSMoveOptions(MoveOptions):
    """Options of an SQS replay / move."""

    batch: int | None = batch_field(le=10)
    rate: int | None = Field(
        None,
        ge=1,
        description="SQS native task: max messages/s",
        json_schema_extra={"metavar": "N"},
    )
