"""RabbitMQ options and what is derived from them: the AMQP target, the management API's
endpoint, TLS contexts, the poll's budget and mqtop's queue names (``vhost/name``)."""

from __future__ import annotations

import ssl
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from collectors.base import BrokerOptions, ClientCertificate, MoveOptions
from collectors.kit.options import batch_field
from collectors.rabbitmq.management import DEFAULT_MAX_RESPONSE_MB
from mqtop.kernel.durations import Duration
from mqtop.kernel.secrets import SecretUrl, strip_url_credentials

MAX_WINDOW = 65_535  # the largest prefetch count AMQP can carry (a short)
DEFAULT_POLL_TIMEOUT = 5.0  # the engine's default timeout of a poll (interval, at least 5 s)


class RabbitMQOptions(ClientCertificate, BrokerOptions):
    """A RabbitMQ node or cluster: metrics from the management API, actions over AMQP."""

    type: Literal["rabbitmq"] = "rabbitmq"
    url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("amqp://guest:guest@localhost:5672/"),
        description="amqp:// or amqps:// (TLS) URL used for message actions and the fallback.",
    )
    management_url: SecretUrl | None = Field(
        None,
        description=(
            "http(s):// URL of the management plugin; credentials default to the AMQP URL's. "
            "Without it only queues named literally in include are read, over AMQP."
        ),
    )
    vhosts: list[str] = Field(
        default_factory=list,
        description="Virtual hosts to read (all the user can see when empty).",
    )
    page_size: int = Field(500, ge=1, le=500, description="Queues per management API page.")
    tls_verify: bool = Field(True, description="Verify server certificates (amqps://, https://).")
    ca_file: str | None = Field(None, description="CA bundle (PEM) for TLS verification.")
    discover_every: Duration = Field(
        30.0, description="How often dead-letter exchanges and their bindings are re-read."
    )
    error_window: Duration = Field(
        60.0, description="Window over which error_rate and dead-letter inflow are computed."
    )
    move_window: int = Field(
        5000,
        ge=1,
        le=MAX_WINDOW,
        description=(
            "Messages in flight (received and not yet confirmed) during replay/move; also "
            "the most a killed move can leave in both queues."
        ),
    )
    move_window_bytes: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "Bytes of message bodies in flight during replay/move: with large messages the "
            "window shrinks to fit (at least one message)."
        ),
    )
    http_timeout: Duration = Field(
        30.0,
        description=(
            "Total time limit of one management API request (connect, headers and body); "
            "within a poll or before an action also bounded by the broker's timeout."
        ),
    )
    max_response_mb: int = Field(
        DEFAULT_MAX_RESPONSE_MB,
        ge=1,
        le=4096,
        description=(
            "Largest management API answer read (MB); a larger one is refused with an error "
            "instead of being parsed."
        ),
    )
    auth_mechanism: Literal["plain", "external"] = Field(
        "plain",
        description=(
            "SASL mechanism on AMQP: plain (the URL's user and password) or external (the "
            "client certificate is the identity; needs amqps://, cert_file and the broker's "
            "rabbitmq_auth_mechanism_ssl plugin). The management API always uses a password."
        ),
    )

    @model_validator(mode="after")
    def _external_needs_a_certificate(self) -> RabbitMQOptions:
        if self.auth_mechanism == "external":
            if not self.url.get_secret_value().lower().startswith("amqps://"):
                raise ValueError("auth_mechanism external needs an amqps:// url")
            if self.cert_file is None:
                raise ValueError("auth_mechanism external needs cert_file (and key_file)")
        return self

    @field_validator("url")
    @classmethod
    def _amqp_scheme(cls, value: SecretUrl) -> SecretUrl:
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("amqp", "amqps"):
            raise ValueError("url must start with amqp:// or amqps://")
        return value

    @field_validator("management_url")
    @classmethod
    def _http_scheme(cls, value: SecretUrl | None) -> SecretUrl | None:
        if value is None:
            return None
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ValueError("management_url must start with http:// or https://")
        return value

    def address(self) -> str:
        amqp = strip_url_credentials(self.url.get_secret_value())
        if self.management_url is None:
            return amqp
        return (
            f"{amqp} (management {strip_url_credentials(self.management_url.get_secret_value())})"
        )


@dataclass(frozen=True, slots=True)
class AmqpTarget:
    """Where and as whom to connect over AMQP (parsed from the URL)."""

    host: str
    port: int
    vhost: str
    username: str
    password: str
    tls: bool


def amqp_target(url: str) -> AmqpTarget:
    """Parse an amqp(s) URL the way RabbitMQ clients do (empty path = vhost ``/``)."""
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "amqps"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) if path else "/"
    return AmqpTarget(
        host=parts.hostname or "localhost",
        port=parts.port or (5671 if tls else 5672),
        vhost=vhost,
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        tls=tls,
    )


def management_endpoint(options: RabbitMQOptions) -> tuple[str, tuple[str, str]] | None:
    """Base URL (without credentials) and basic-auth pair of the management API."""
    if options.management_url is None:
        return None
    parts = urlsplit(options.management_url.get_secret_value())
    amqp = amqp_target(options.url.get_secret_value())
    user = unquote(parts.username) if parts.username is not None else amqp.username
    password = unquote(parts.password) if parts.password is not None else amqp.password
    netloc = parts.hostname or "localhost"
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return base, (user, password)


def ssl_context(options: RabbitMQOptions) -> ssl.SSLContext:
    """TLS context (:func:`mqtop.kernel.tls.client_context`): verification on unless
    ``tls_verify: false``; a client certificate when ``cert_file`` is set (mutual TLS), one
    that cannot be loaded a config error naming the broker and the files."""
    return options.tls_context(
        ca_file=options.ca_file, verify=options.tls_verify, owner=f"broker {options.name!r}"
    )


def poll_budget(options: BrokerOptions) -> float:
    """Seconds one poll may take: the broker's ``timeout``, else the engine's default for it
    (its ``interval``, at least 5 s; a top-level ``timeout`` is not visible to a broker)."""
    if options.timeout:
        return float(options.timeout)
    return max(float(options.interval or DEFAULT_POLL_TIMEOUT), DEFAULT_POLL_TIMEOUT)


def failure_text(exc: BaseException, depth: int = 0) -> str:
    """``Type: message`` of an error, looking inside wrappers whose own message is empty
    (pika's AMQPConnectionError holds the connector error that holds the OSError)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if text or depth >= 4:
        return f"{name}: {text}" if text else name
    inner = [a for a in exc.args if isinstance(a, BaseException)]
    wrapped = getattr(exc, "exception", None)
    if isinstance(wrapped, BaseException):
        inner.append(wrapped)
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        inner.append(cause)
    return next((failure_text(e, depth + 1) for e in inner), name)


def qualify(vhost: str, name: str) -> str:
    """mqtop's queue name: ``name`` in vhost ``/``, ``vhost/name`` elsewhere."""
    return name if vhost == "/" else f"{vhost}/{name}"


def split_name(qualified: str, vhosts: Collection[str]) -> tuple[str, str]:
    """(vhost, queue) of a mqtop queue name; a known vhost prefix wins over ``/``."""
    for vhost in sorted((v for v in vhosts if v != "/"), key=len, reverse=True):
        prefix = vhost + "/"
        if qualified.startswith(prefix) and len(qualified) > len(prefix):
            return vhost, qualified[len(prefix) :]
    return "/", qualified


class RabbitMQMoveOptions(MoveOptions):
    """Options of a RabbitMQ replay / move: the shared ``--batch`` is the confirm window
    (``move_window`` by default; at most 65,535, AMQP's largest prefetch)."""

    batch: int | None = batch_field(le=MAX_WINDOW)
