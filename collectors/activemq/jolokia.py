"""A small Jolokia client: one long-lived ``httpx.AsyncClient``, bulk POSTs, error mapping.

Jolokia answers HTTP 200 with a JSON object per request, each with its own ``status``; a bulk
POST (a JSON list) returns one answer per request in order. Refusals are told apart here:
* HTTP 401, or 403 with an empty body (Artemis' Hawtio): the credentials or the user's role;
* a 403 answer whose error says ``Origin ... is not allowed``: Jolokia's CORS policy
  (``jolokia-access.xml`` with ``<strict-checking/>``, Artemis' default) refused the ``Origin``
  header; the header sent is the URL's own ``scheme://host:port`` unless ``origin`` is set;
* other 403 answers: the access policy refused that MBean or operation.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from collectors.activemq.options import ActiveMQOptions
from collectors.activemq.transport import plain_transport
from mqtop.kernel.tls import certificate_failure

if TYPE_CHECKING:
    import httpx


class JolokiaError(Exception):
    """Jolokia could not be used."""


class JolokiaUnavailable(JolokiaError):
    """Jolokia cannot be reached or did not answer as Jolokia does."""


class JolokiaRefused(JolokiaError):
    """Jolokia refused us: credentials, role, Origin policy or TLS certificate."""


class MBeanError(JolokiaError):
    """One request failed (no such MBean, an operation's exception...)."""

    def __init__(self, status: int, error_type: str, error: str) -> None:
        super().__init__(error or error_type or f"status {status}")
        self.status = status
        self.error_type = error_type
        self.error = error

    @property
    def not_found(self) -> bool:
        """True when the MBean does not exist (the queue is gone or never was)."""
        return self.status == 404 or self.error_type.endswith("InstanceNotFoundException")


def quote(value: str) -> str:
    """An ObjectName quoted value (as ``javax.management.ObjectName.quote``)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("*", "\\*")
        .replace("?", "\\?")
        .replace("\n", "\\n")
    )
    return f'"{escaped}"'


def ssl_context(options: ActiveMQOptions) -> ssl.SSLContext:
    """TLS context: verification on unless ``tls_verify: false``; mutual TLS with cert_file."""
    return options.tls_context(ca_file=options.ca_file, verify=options.tls_verify)


class Jolokia:
    """POSTs requests to one Jolokia endpoint through a long-lived async HTTP client."""

    def __init__(self, options: ActiveMQOptions) -> None:
        self.options = options
        self.endpoint = options.endpoint()
        self.origin = options.origin_header()
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        """Create the HTTP client (idempotent)."""
        if self._http is not None:
            return
        import httpx

        # a plain-HTTP endpoint never uses TLS (and redirects are not followed): no CA bundle
        # to load, which costs 0.1-0.4 s of CPU per client on a busy machine
        # (and its connections run on asyncio's streams: transport.py)
        verify: ssl.SSLContext | bool = False
        transport = None
        if self.endpoint.lower().startswith("https://"):
            verify = ssl_context(self.options)
        else:
            transport = plain_transport()
        timeout = self.options.http_timeout
        self._http = httpx.AsyncClient(
            auth=self.options.credentials(),
            verify=verify,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Origin": self.origin,
            },
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the HTTP client. Never raises."""
        http, self._http = self._http, None
        if http is not None:
            try:
                await http.aclose()
            except Exception:  # noqa: S110 - close must not raise
                pass

    async def post(self, body: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
        """POST one request or a list; the decoded answer. Refusals raise JolokiaRefused."""
        await self.open()
        assert self._http is not None
        import httpx

        try:
            response = await self._http.post(self.endpoint, content=json.dumps(body))
        except httpx.TransportError as exc:
            failure = certificate_failure(exc)
            if failure is not None:
                raise JolokiaRefused(
                    f"TLS certificate of {self.endpoint} not verified: {failure} (ca_file: the "
                    "CA to trust; tls_verify: false turns verification off)"
                ) from None
            text = str(exc).strip() or type(exc).__name__
            raise JolokiaUnavailable(f"{self.endpoint}: {text}") from None
        return self._decode(response.status_code, response.content)

    def _decode(self, status: int, content: bytes) -> Any:
        if status == 401 or (status == 403 and not content.strip()):
            raise JolokiaRefused(
                f"Jolokia at {self.endpoint} refused the credentials (HTTP {status}): check "
                "user and password, and that the user has the console role (Artemis: a role "
                "listed in HAWTIO_ROLES of etc/artemis.profile)"
            )
        if status == 404:
            raise JolokiaUnavailable(
                f"no Jolokia at {self.endpoint} (HTTP 404): Artemis serves it at "
                "/console/jolokia, Classic's web console at /api/jolokia"
            )
        if status >= 400 and not content.lstrip().startswith((b"{", b"[")):
            raise JolokiaUnavailable(f"{self.endpoint} answered HTTP {status}")
        try:
            answer = json.loads(content)
        except ValueError:
            raise JolokiaUnavailable(
                f"{self.endpoint} did not answer JSON (HTTP {status}): is it a Jolokia endpoint?"
            ) from None
        for item in answer if isinstance(answer, list) else [answer]:
            if isinstance(item, dict):
                self._refused(item)
        return answer

    def _refused(self, item: Mapping[str, Any]) -> None:
        if item.get("status") != 403:
            return
        error = str(item.get("error", ""))
        if "origin" in error.lower() and "not allowed" in error.lower():
            raise JolokiaRefused(
                f"Jolokia at {self.endpoint} refused the Origin header {self.origin!r} "
                f"(403: {error.rsplit(' : ', maxsplit=1)[-1][:200]}): its access policy "
                "(jolokia-access.xml, <cors> with <strict-checking/>) allows other origins; "
                "set origin: in this broker's config to one it allows"
            )
        raise JolokiaRefused(
            f"Jolokia at {self.endpoint} refused the request (403: {error[:200]}): its access "
            "policy (jolokia-access.xml) or the user's role does not allow it"
        )

    async def bulk(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several requests in one POST; one answer per request (errors stay in the answers)."""
        if not requests:
            return []
        answer = await self.post(list(requests))
        if not isinstance(answer, list) or len(answer) != len(requests):
            raise JolokiaUnavailable(f"{self.endpoint}: a bulk request got a malformed answer")
        return [item if isinstance(item, dict) else {"status": 500} for item in answer]

    async def request(self, body: Mapping[str, Any]) -> Any:
        """One request; its value, or MBeanError."""
        answer = await self.post(body)
        if not isinstance(answer, dict):
            raise JolokiaUnavailable(f"{self.endpoint}: malformed answer")
        return value_of(answer)

    async def execute(self, mbean: str, operation: str, *arguments: Any) -> Any:
        """Run a JMX operation; its return value."""
        return await self.request(
            {"type": "exec", "mbean": mbean, "operation": operation, "arguments": list(arguments)}
        )

    async def search(self, pattern: str) -> list[str]:
        """MBean names matching a pattern."""
        found = await self.request({"type": "search", "mbean": pattern})
        return [str(name) for name in found] if isinstance(found, list) else []

    async def read(self, mbean: str, attributes: Sequence[str] | None = None) -> Any:
        """Attributes of one MBean or of every MBean matching a pattern."""
        body: dict[str, Any] = {"type": "read", "mbean": mbean, "config": {"ignoreErrors": True}}
        if attributes:
            body["attribute"] = list(attributes)
        return await self.request(body)


def value_of(answer: Mapping[str, Any]) -> Any:
    """The value of one answer of a bulk request, or MBeanError."""
    status = answer.get("status")
    if status != 200:
        raise MBeanError(
            int(status) if isinstance(status, int) else 500,
            str(answer.get("error_type", "")),
            str(answer.get("error", "")),
        )
    return answer.get("value")
