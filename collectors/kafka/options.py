"""Options of a Kafka broker (the config section) and of a Kafka replay / move."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collectors.base import BrokerOptions, MoveOptions, matches_globs
from collectors.kit.options import batch_field
from mqtop.kernel.durations import Duration
from mqtop.kernel.secrets import Password


class KafkaOptions(BrokerOptions):
    """An Apache Kafka (or Kafka-protocol) cluster."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: list[str] = Field(
        default_factory=lambda: ["localhost:9092"],
        description="host:port of one or more brokers (a list, or one comma-separated string).",
    )
    groups: list[str] = Field(
        default_factory=lambda: ["*"], description="Glob patterns of consumer groups to watch."
    )
    exclude_groups: list[str] = Field(
        default_factory=lambda: ["mqtop-replay*"],
        description="Glob patterns of consumer groups to ignore (mqtop's replay progress "
        "groups by default).",
    )
    topics: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Glob patterns of topics to watch; include/exclude apply on top.",
    )
    internal_topics: bool = Field(
        False, description="Also watch internal topics (__consumer_offsets, ...)."
    )
    client_id: str = Field("mqtop", description="Client id sent to the brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (with a SASL_* security_protocol)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: Password | None = Field(None, description="SASL password (masked).")
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certs.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client private key (mutual TLS).")
    ssl_keyfile_password: Password | None = Field(
        None, description="Password of the client private key (masked)."
    )
    tls_verify: bool = Field(
        True, description="Verify broker certificates and host names (SSL, SASL_SSL)."
    )
    lag_seconds_budget: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="Records read per poll to time lagging partitions; the rest are "
        "timed from the end-offset history (interpolated, or a flagged lower bound).",
    )
    lag_history: Duration = Field(
        3600.0, description="How much end-offset history is kept to time lag without reading."
    )
    group_status_window: Duration = Field(
        300.0, description="Sliding window of the group status evaluator."
    )
    discover_every: Duration = Field(
        30.0, description="How often topics and partition leaders are re-read."
    )
    dlq_groups: list[str] = Field(
        default_factory=list,
        description="Glob patterns of consumer groups that handle dead letters (re-drive or "
        "archive them): records before their committed offset on a DLT count as handled.",
    )
    error_window: Duration = Field(60.0, description="Window over which error_rate is computed.")
    failures_committed: bool = Field(
        True,
        description="The consuming groups commit past the records they dead-letter (Spring "
        "Kafka, Kafka Connect, most DLT set-ups): error_rate = dead letters / records "
        "consumed. false: dead letters / (records consumed + dead letters).",
    )
    replay_batch: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Records per replay batch: the bound on duplicates after a crash.",
    )

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one host:port is needed")
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r}: expected host:port")
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaOptions:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            if self.sasl_mechanism is None:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("SASL needs sasl_username and sasl_password")
        elif self.sasl_mechanism is not None:
            raise ValueError("sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        if not self.security_protocol.endswith("SSL"):
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key):
                    raise ValueError(f"{key} needs security_protocol SSL or SASL_SSL")
        return self

    def address(self) -> str:
        return ",".join(self.bootstrap_servers)

    def wants_group(self, group: str) -> bool:
        """Apply the group globs."""
        return matches_globs(group, self.groups, self.exclude_groups)

    def wants_topic(self, topic: str) -> bool:
        """Apply the topic globs and include/exclude."""
        return matches_globs(topic, self.topics, ()) and self.wants(topic)


class KafkaMoveOptions(MoveOptions):
    """Options of a Kafka replay / move (a copy: the source keeps its records)."""

    batch: int | None = batch_field()
    keep_partition: bool = Field(False, description="Kafka: same partition number")
    keep_timestamp: bool = Field(False, description="Kafka: keep record timestamps")
    from_offset: int | None = Field(
        None, ge=0, description="Kafka: start at this offset", json_schema_extra={"metavar": "N"}
    )
    from_time: dt.datetime | None = Field(
        None, description="Kafka: start at this time", json_schema_extra={"metavar": "ISO8601"}
    )

    @field_validator("from_time")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time without a zone is UTC."""
        return value.replace(tzinfo=dt.UTC) if value and value.tzinfo is None else value
