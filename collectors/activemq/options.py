"""Config options of an ActiveMQ broker (Artemis or Classic), read through Jolokia."""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator

from collectors.base import BrokerOptions, ClientCertificate, MoveOptions
from collectors.kit.options import batch_field
from mqtop.kernel.durations import Duration
from mqtop.kernel.secrets import Password, SecretUrl, strip_url_credentials

Flavor = Literal["artemis", "classic"]
BROWSE_SCHEMES = ("amqp", "amqps", "stomp", "stomp+ssl")


class ActiveMQOptions(ClientCertificate, BrokerOptions):
    """ActiveMQ Artemis or Classic: metrics and message actions through Jolokia (HTTP)."""

    type: Literal["activemq"] = "activemq"
    jolokia_url: SecretUrl = Field(
        default_factory=lambda: SecretUrl("http://localhost:8161/console/jolokia"),
        description=(
            "Jolokia endpoint: Artemis http(s)://HOST:8161/console/jolokia, Classic's web "
            "console http(s)://HOST:8161/api/jolokia, or a Jolokia JVM agent's /jolokia."
        ),
    )
    user: str | None = Field(
        None, description="User for HTTP basic authentication (default: the URL's user)."
    )
    password: Password | None = Field(
        None, description="Password of user (default: the URL's); never printed."
    )
    flavor: Flavor | None = Field(
        None, description="artemis or classic; detected from the broker's MBeans when omitted."
    )
    broker_name: str | None = Field(
        None,
        description="The broker's JMX name (Artemis broker=, Classic brokerName=) when one "
        "Jolokia serves several; default: the only one.",
    )
    origin: str | None = Field(
        None,
        description="Origin header sent to Jolokia (default: the scheme, host and port of "
        "jolokia_url, which Artemis' default jolokia-access.xml allows).",
    )
    show_internal: bool = Field(
        False,
        description="Also list internal queues ($sys.*, activemq.management*, "
        "activemq.notifications*, ActiveMQ.Advisory.*).",
    )
    tls_verify: bool = Field(True, description="Verify the server certificate (https://).")
    ca_file: str | None = Field(None, description="CA bundle (PEM) for TLS verification.")
    http_timeout: Duration = Field(30.0, description="Timeout of one Jolokia request.")
    browse_url: SecretUrl | None = Field(
        None,
        description=(
            "Client endpoint that reads whole message bodies when browsing (peek, body "
            "filters); Jolokia shows only a preview. Artemis: its AMQP acceptor "
            "amqp(s)://HOST:5672 (a browser link, needs python-qpid-proton); Classic: its STOMP "
            "connector stomp(+ssl)://HOST:61613 (a browser subscription). Credentials: the "
            "URL's, else user and password."
        ),
    )
    move_batch: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Messages per broker move operation during replay/move (progress and the "
        "point where an interrupted run stops); default: about 24 MiB of messages of the "
        "source's average size first (1,000 to 25,000; Classic: 128 MiB, 1,000 to 75,000), "
        "then about a second's worth per call (at most 100,000).",
    )

    @field_validator("jolokia_url")
    @classmethod
    def _http(cls, value: SecretUrl) -> SecretUrl:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("jolokia_url must be an http:// or https:// URL")
        return value

    @field_validator("browse_url")
    @classmethod
    def _browse(cls, value: SecretUrl | None) -> SecretUrl | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme.lower() not in BROWSE_SCHEMES or not parts.hostname or not parts.port:
            raise ValueError(
                "browse_url must look like amqp://host:port, amqps://host:port, "
                "stomp://host:port or stomp+ssl://host:port"
            )
        return value

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("origin must look like http://host:port")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials(self) -> ActiveMQOptions:
        parts = urlsplit(self.jolokia_url.get_secret_value())
        if parts.username and self.user is not None and parts.username != self.user:
            raise ValueError("user differs from the user in jolokia_url: give it once")
        return self

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) for basic authentication, None without a user."""
        parts = urlsplit(self.jolokia_url.get_secret_value())
        user = self.user or parts.username
        if not user:
            return None
        if self.password is not None:
            return user, self.password.get_secret_value()
        return user, parts.password or ""

    def browse_credentials(self) -> tuple[str, str] | None:
        """(user, password) for browse_url: the URL's own, else those of Jolokia."""
        if self.browse_url is None:
            return None
        parts = urlsplit(self.browse_url.get_secret_value())
        if parts.username:
            return unquote(parts.username), unquote(parts.password or "")
        return self.credentials()

    def endpoint(self) -> str:
        """The Jolokia URL without credentials, ending in a slash (POST target)."""
        return strip_url_credentials(self.jolokia_url.get_secret_value()).rstrip("/") + "/"

    def origin_header(self) -> str:
        """The Origin header value: the override, else the URL's own scheme://host:port."""
        if self.origin:
            return self.origin
        parts = urlsplit(self.jolokia_url.get_secret_value())
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme.lower()}://{host}{port}"

    def address(self) -> str:
        return strip_url_credentials(self.jolokia_url.get_secret_value())


class ActiveMQMoveOptions(MoveOptions):
    """Options of an ActiveMQ replay / move (the broker moves; mqtop sets the batch)."""

    batch: int | None = batch_field(le=100_000)
