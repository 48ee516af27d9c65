"""boto3 clients for SQS and CloudWatch, their time limits, and AWS errors as one line."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError

from collectors.sqs.options import SQSOptions
from mqtop.kernel.secrets import redact

LOCAL_TEST_CREDENTIALS = ("test", "test")  # what local emulators (moto, LocalStack) accept
DEFAULT_POLL_TIMEOUT = 5.0  # the engine's default: the poll interval, at least 5s
CONNECT_TIMEOUT = 5.0
NO_SUCH_QUEUE = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
THROTTLED = frozenset({"RequestThrottled", "ThrottlingException", "Throttling"})


class ConfigProblem(Exception):
    """Region or credentials missing: a config problem, not an unreachable broker."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How long one API call may take: per connect, per read, and how many attempts."""

    connect: float
    read: float
    attempts: int

    @property
    def unanswered(self) -> float:
        """Longest a call takes on an endpoint that accepts connections and never answers."""
        # botocore's standard mode sleeps up to 2**(n-1) seconds before retry n
        backoff = sum(min(2.0 ** (n - 1), 20.0) for n in range(1, self.attempts))
        return self.attempts * self.read + backoff


# replays, moves and peeks are not bound to a poll: a slow send must not fail a move (the
# first try and 3 retries, as botocore's retries={"max_attempts": 3} always gave them)
ACTION_LIMITS = Limits(connect=CONNECT_TIMEOUT, read=20.0, attempts=4)


def poll_budget(options: SQSOptions) -> float:
    """Seconds one poll may take: the broker's ``timeout``, else the engine's default for it.

    The engine's default is the poll interval, at least 5 s; a top-level ``timeout`` or
    ``interval`` is not visible to a broker, whose own keys then decide (see docs/sqs.md).
    """
    if options.timeout:
        return float(options.timeout)
    return max(float(options.interval or DEFAULT_POLL_TIMEOUT), DEFAULT_POLL_TIMEOUT)


def poll_limits(options: SQSOptions) -> Limits:
    """Limits that let a call, retry included, end within about one poll's budget.

    Two attempts of half the budget each: a throttled or failed call is retried once, and a
    call on an endpoint that never answers gives up after about the budget (plus botocore's
    backoff of at most a second) instead of 20 s x 4 attempts.
    """
    half = poll_budget(options) / 2
    return Limits(connect=min(CONNECT_TIMEOUT, half), read=half, attempts=2)


def is_local_endpoint(url: str | None) -> bool:
    """True for a loopback endpoint (moto, LocalStack on this machine)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def without_userinfo(url: str | None) -> str | None:
    """The URL without ``user:password@``: SQS requests are signed, a URL password is unused.

    botocore puts the endpoint URL in its errors and debug logs; a password it never gets
    cannot leak from there.
    """
    if url is None:
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def make_client(
    options: SQSOptions,
    service: Literal["sqs", "cloudwatch"] = "sqs",
    *,
    limits: Limits = ACTION_LIMITS,
    pool: int | None = None,
    validate: bool = True,
) -> Any:
    """A boto3 client for the options (blocking: call it in a thread). Secrets never logged."""
    try:
        session = boto3.Session(profile_name=options.profile)
    except BotoCoreError as exc:  # ProfileNotFound and friends
        raise ConfigProblem(redact(str(exc))) from None
    endpoint = options.endpoint_url
    if service == "cloudwatch":
        endpoint = options.cloudwatch_endpoint_url or options.endpoint_url
    region: str | None = options.region or getattr(session, "region_name", None)
    if region is None:
        if not is_local_endpoint(endpoint):
            raise ConfigProblem("no AWS region: set region in the config or AWS_REGION")
        region = "us-east-1"
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": without_userinfo(endpoint)}
    if options.access_key_id is not None and options.secret_access_key is not None:
        kwargs["aws_access_key_id"] = options.access_key_id
        kwargs["aws_secret_access_key"] = options.secret_access_key.get_secret_value()
        if options.session_token is not None:
            kwargs["aws_session_token"] = options.session_token.get_secret_value()
    elif is_local_endpoint(endpoint) and session.get_credentials() is None:
        # local emulators accept any key; real AWS endpoints never get here
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = LOCAL_TEST_CREDENTIALS
    if options.ca_file:
        kwargs["verify"] = options.ca_file if options.tls_verify else False
    elif not options.tls_verify:
        kwargs["verify"] = False
    kwargs["config"] = BotoConfig(
        max_pool_connections=pool or options.max_parallel + 4,
        retries={"mode": "standard", "total_max_attempts": limits.attempts},
        connect_timeout=limits.connect,
        read_timeout=limits.read,
        user_agent_extra="mqtop",
        parameter_validation=validate,
    )
    return session.client(service, **kwargs)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for other errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else ""
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if isinstance(status, int) else None
    return None


def describe_aws_error(exc: BaseException) -> str:
    """One line for the operator: the AWS code and message, secrets masked, no HTML pages."""
    code = error_code(exc)
    message = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = str(response.get("Error", {}).get("Message") or "")
    if message.lstrip().startswith("<"):  # an HTML error page (e.g. an emulator's 500)
        message = f"HTTP {http_status(exc)} from the endpoint"
    if code:
        text = f"{code}: {message}" if message and message != code else code
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)[:500]
