"""Secret handling: masked URL and string types, and a process-wide redactor.

Every secret loaded from config is registered with :data:`REDACTOR`; output writers,
log handlers and error formatting pass text through :func:`redact` so a secret cannot
reach the terminal, a log, the audit log or an exported label even by accident.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "****"
# scheme://user:password@host  or  scheme://token@host  (the userinfo part is masked)
_URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>(?:password|passwd|pwd|token|secret|access_key|secret_key|api_key|apikey|"
    r"signature|sig|x-amz-security-token|x-amz-signature)=)(?P<value>[^&\s]+)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """Mask the password (or lone token) in a URL's userinfo and secret query parameters."""

    def _userinfo(match: re.Match[str]) -> str:
        userinfo = match.group("userinfo")
        if ":" in userinfo:
            user, _, _ = userinfo.partition(":")
            return f"{match.group('scheme')}{user}:{MASK}@"
        return f"{match.group('scheme')}{MASK}@"

    masked = _URL_CREDS.sub(_userinfo, url)
    return _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, masked)


def url_password(url: str) -> str | None:
    """Return the password (or lone token) embedded in a URL, if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return parts.password
    if parts.username and "@" in (parts.netloc or "") and parts.password is None:
        # "redis://token@host": a lone userinfo is a credential for several brokers
        return parts.username if parts.scheme.startswith("redis") else None
    return None


def check_url_port(url: str) -> None:
    """Raise ValueError (never naming the credentials) when the URL's port is not a number
    from 1 to 65535 (``redis://:pw@host:notaport/0``) or its address cannot be parsed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(
            "not a valid URL (check the host and the brackets of an IPv6 address)"
        ) from None
    hostport = (parts.netloc or "").rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        raw = hostport.rpartition("]")[2].rpartition(":")[2] if ":" in hostport else ""
        shown = raw if raw.isascii() and raw.isprintable() and len(raw) <= 20 else "?"
        raise ValueError(f"port {shown!r} is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("port 0 is not a port a broker listens on (1 to 65535)")


def strip_url_credentials(url: str) -> str:
    """Return the URL without any userinfo (for display as an address)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class Redactor:
    """Replaces registered secret values (and URL credentials) in any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: str | None) -> None:
        """Remember a secret value so it is masked wherever it would be printed."""
        # Very short values would mask ordinary words; they are still masked in URLs.
        if not secret or len(secret) < 3:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def clear(self) -> None:
        """Forget every registered secret (tests)."""
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def __call__(self, text: str) -> str:
        """Return ``text`` with secrets and URL credentials masked."""
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "://" in text or "=" in text:
            text = mask_url(text)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    """Mask every known secret and URL credential in ``text``."""
    return REDACTOR(text)


def redact_obj(obj: Any) -> Any:
    """Recursively redact strings inside JSON-like data."""
    if isinstance(obj, str):
        return REDACTOR(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = REDACTOR(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # the handler's formatter would render the traceback after this filter, unmasked
            # (an exception's text may hold a URL with its password): render it here, masked
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = REDACTOR(record.exc_text)
        if record.stack_info:
            record.stack_info = REDACTOR(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redacting filter to every handler of ``logger`` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# ---------------------------------------------------------------- pydantic types


class SecretUrl:
    """A URL that may carry credentials. ``str()``/``repr()`` are masked; use
    :meth:`get_secret_value` only where the client library needs the real URL."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        secret = url_password(value)
        if secret:
            REDACTOR.register(secret)

    def get_secret_value(self) -> str:
        """The real URL, credentials included."""
        return self._value

    @property
    def masked(self) -> str:
        """The URL with credentials masked."""
        return mask_url(self._value)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"SecretUrl({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretUrl) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(value: Any) -> SecretUrl:
            if isinstance(value, SecretUrl):
                return value
            if not isinstance(value, str):
                raise ValueError("expected a URL string")
            if not value.strip():
                raise ValueError("URL must not be empty")
            if "://" not in value:
                raise ValueError("expected a URL like scheme://host:port")
            secret = cls(value)  # the password is known to the redactor before any error
            check_url_port(value)
            return secret

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.masked if isinstance(v, SecretUrl) else MASK
            ),
            json_schema_input_schema=core_schema.str_schema(),
        )


def _register_secret_str(value: Any) -> Any:
    getter = getattr(value, "get_secret_value", None)
    if getter is not None:
        REDACTOR.register(getter())
    return value


def secret_field_validator(value: Any) -> Any:
    """AfterValidator for SecretStr fields: remember the value for redaction."""
    return _register_secret_str(value)


def _password_type() -> Any:
    from typing import Annotated

    from pydantic import AfterValidator, SecretStr

    return Annotated[SecretStr, AfterValidator(secret_field_validator)]


Password = _password_type()
"""A secret string (pydantic SecretStr) whose value is registered for redaction."""


def _register_values(value: dict[str, str]) -> dict[str, str]:
    for secret in value.values():
        REDACTOR.register(secret)
    return value


def _secret_headers_type() -> Any:
    from typing import Annotated

    from pydantic import AfterValidator, PlainSerializer

    return Annotated[
        dict[str, str],
        AfterValidator(_register_values),
        PlainSerializer(lambda value: dict.fromkeys(value, MASK), return_type=dict[str, str]),
    ]


SecretHeaders = _secret_headers_type()
"""HTTP headers whose values are secrets: registered for redaction, shown as ``****``."""
