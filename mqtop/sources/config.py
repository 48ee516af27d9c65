"""Config models of ``sources:`` entries (validated as part of the main config)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mqtop.kernel.durations import Duration, OptionalDuration
from mqtop.kernel.secrets import Password, SecretHeaders, SecretUrl

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_SELECTOR = re.compile(r"^\{.*\}$", re.S)


class BasicAuth(BaseModel):
    """HTTP basic authentication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(description="User name.")
    password: Password = Field(description="Password (a secret).")


class PrometheusSource(BaseModel):
    """A Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics) holding
    series exported by ``mqtop serve``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["prometheus"]
    name: str = Field(
        "prometheus",
        pattern=NAME_PATTERN,
        description="Shown like a broker (up / down); unique among brokers and sources.",
    )
    url: SecretUrl = Field(
        description="Base URL, e.g. http://prometheus:9090 (credentials masked)."
    )
    selector: str = Field(
        "",
        description='Label matchers every query is limited to, e.g. `{cluster=~"eu-.*"}`.',
    )
    name_labels: list[str] = Field(
        default_factory=lambda: ["cluster"],
        description="Labels whose values prefix a remote broker's name (`eu-1/rabbit`), so "
        "brokers of the same name in different clusters stay apart.",
    )
    headers: SecretHeaders = Field(
        default_factory=dict, description="Extra request headers (values are secrets)."
    )
    basic_auth: BasicAuth | None = Field(None, description="`{username, password}`.")
    bearer_token: Password | None = Field(None, description="Sent as `Authorization: Bearer`.")
    tls_verify: bool = Field(True, description="Verify the server certificate (https://).")
    ca_file: str | None = Field(None, description="CA bundle (PEM) for TLS verification.")
    cert_file: str | None = Field(None, description="Client certificate (PEM), for mutual TLS.")
    key_file: str | None = Field(None, description="Key of the client certificate.")
    timeout: Duration = Field(5.0, description="Deadline of one query.")
    interval: OptionalDuration = Field(
        None, description="How often current values are read (default: the top-level interval)."
    )
    max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Largest answer accepted from the server."
    )

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        value = value.strip()
        if value and not _SELECTOR.match(value):
            raise ValueError('a selector is label matchers in braces, e.g. {cluster=~"eu-.*"}')
        return value

    @field_validator("name_labels")
    @classmethod
    def _name_labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", label):
                raise ValueError(f"{label!r} is not a label name")
        return value

    def matchers(self) -> str:
        """The selector's matchers without braces (empty when none)."""
        return self.selector[1:-1].strip().rstrip(",") if self.selector else ""


SourceConfig = PrometheusSource  # a union with a `type` tag once there is a second kind
