"""aiokafka client settings, Kafka error codes, and a one-line diagnosis of a refused connection."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError, for_code
from aiokafka.helpers import create_ssl_context

from collectors.kafka.options import KafkaOptions

TP = tuple[str, int]
LATEST = -1
EARLIEST = -2
READ_COMMITTED = 1
COORDINATOR_ERRORS = frozenset({14, 15, 16})  # load in progress, not available, not coordinator
LEADER_ERRORS = frozenset({3, 5, 6})  # unknown topic/partition, leader not available, not leader
GROUP_ID_NOT_FOUND = 69


def ssl_context(options: KafkaOptions) -> ssl.SSLContext | None:
    """TLS context for SSL / SASL_SSL (verification on unless tls_verify is false)."""
    if not options.security_protocol.endswith("SSL"):
        return None
    password = (
        options.ssl_keyfile_password.get_secret_value() if options.ssl_keyfile_password else None
    )
    context: ssl.SSLContext = create_ssl_context(
        cafile=options.ssl_cafile,
        certfile=options.ssl_certfile,
        keyfile=options.ssl_keyfile,
        password=password,
    )
    if not options.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def client_kwargs(options: KafkaOptions, request_timeout: float = 10.0) -> dict[str, Any]:
    """Keyword arguments shared by aiokafka clients, consumers and producers."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(options.bootstrap_servers),
        "client_id": options.client_id,
        "request_timeout_ms": int(request_timeout * 1000),
        "security_protocol": options.security_protocol,
    }
    context = ssl_context(options)
    if context is not None:
        kwargs["ssl_context"] = context
    if options.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = options.sasl_mechanism
        kwargs["sasl_plain_username"] = options.sasl_username
        kwargs["sasl_plain_password"] = (
            options.sasl_password.get_secret_value() if options.sasl_password else None
        )
    return kwargs


def quiet_client_logs() -> None:
    """aiokafka logs every failed connection at ERROR; mqtop reports them itself (broker status,
    one-line errors), so its logger is silenced unless mqtop runs at debug level."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


class KafkaProtocolError(Exception):
    """A Kafka error code in a response (message names the error, never a secret)."""

    def __init__(self, code: int, what: str) -> None:
        self.code = code
        super().__init__(f"{what}: {error_name(code)}")


def error_name(code: int) -> str:
    """Readable name of a Kafka error code."""
    try:
        return str(for_code(code).__name__)
    except Exception:
        return f"error {code}"


def short(exc: BaseException) -> str:
    """The first line of an exception, with its type."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def diagnose(options: KafkaOptions, wait: float) -> str:
    """Why the first bootstrap server refuses us, in one line without secrets."""
    host, _, port = options.bootstrap_servers[0].rpartition(":")
    kwargs = client_kwargs(options, wait)
    del kwargs["bootstrap_servers"]
    try:
        conn = await asyncio.wait_for(create_conn(host, int(port), **kwargs), wait)
    except SaslAuthenticationFailed as exc:
        detail = str(exc).split(":", 1)[-1].strip() or "invalid credentials"
        return (
            f"authentication failed (SASL {options.sasl_mechanism} as "
            f"{options.sasl_username!r}): {detail}"
        )
    except UnsupportedSaslMechanismError:
        return f"the broker does not accept SASL mechanism {options.sasl_mechanism}"
    except TimeoutError:
        return f"no answer within {wait:g}s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except Exception as exc:
        return short(exc)
    conn.close()
    if options.security_protocol != "PLAINTEXT":
        return "connected, but the broker closed the connection (security settings?)"
    return "the broker closed the connection (is it a Kafka listener with this protocol?)"


async def quiet_close(client: Any) -> None:
    """Close an aiokafka client; never raises."""
    try:
        await asyncio.wait_for(client.close(), 10)
    except Exception:  # noqa: S110 - closing must never raise
        pass
