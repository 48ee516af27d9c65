"""TLS client contexts and certificate failures, the same for every HTTPS or TLS connection.

A broker (or a metrics source) passes its own options in: where the CA file is, whether to
verify, and the client certificate for mutual TLS.
"""

from __future__ import annotations

import ssl


def client_context(
    *,
    ca_file: str | None = None,
    verify: bool = True,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A client context: verification on unless ``verify`` is false; a client certificate
    (mutual TLS) when ``cert_file`` is given (its key may be in the same file)."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file, key_password)
    return context


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
