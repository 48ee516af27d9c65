"""TLS client contexts and certificate failures, the same for every HTTPS or TLS connection.

A broker (or a metrics source) passes its own options in: where the CA file is, whether to
verify, and the client certificate for mutual TLS. Given an ``owner`` (``broker 'x'``), a client
certificate or key that cannot be loaded is a :class:`ConfigError` naming both files and what
to check, instead of OpenSSL's bare ``PEM lib``.
"""

from __future__ import annotations

import ssl

from mqtop.kernel.errors import ConfigError


def client_context(
    *,
    ca_file: str | None = None,
    verify: bool = True,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
    owner: str | None = None,
) -> ssl.SSLContext:
    """A client context: verification on unless ``verify`` is false; a client certificate
    (mutual TLS) when ``cert_file`` is given (its key may be in the same file).

    A CA file that cannot be read raises as ``ssl`` does. With ``owner``, a client certificate
    that cannot be loaded raises :class:`ConfigError` (:func:`certificate_load_error`);
    without, the ``ssl.SSLError`` or ``OSError`` itself.
    """
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file, key_password)
        except (ssl.SSLError, OSError) as exc:
            if owner is None:
                raise
            problem = certificate_load_error(
                owner, cert_file, key_file, exc, password_given=key_password is not None
            )
            raise ConfigError([problem]) from None
    return context


def certificate_load_error(
    owner: str,
    cert_file: str,
    key_file: str | None,
    exc: BaseException,
    *,
    password_given: bool,
) -> str:
    """Why the client certificate or its key could not be loaded, naming the files."""
    key = key_file or cert_file
    detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    if isinstance(exc, ssl.SSLError) and password_given:
        hint = "wrong key_password, or the key does not match the certificate"
    elif isinstance(exc, ssl.SSLError):
        hint = "an encrypted key needs key_password; the key must match the certificate"
    else:
        hint = "cannot read the file"
    return (
        f"{owner}: cannot load the client certificate {cert_file} with key {key}: {hint} ({detail})"
    )


def certificate_failure(exc: BaseException) -> str | None:
    """The certificate verification error behind ``exc`` (httpx, urllib, asyncio), if any.

    Follows ``__cause__``, ``__context__`` and urllib's ``reason`` (each link once).
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current)
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return None
