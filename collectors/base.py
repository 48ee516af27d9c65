"""The collector contract: options model, collector protocol, optional message actions.

A broker module exposes ``PLUGIN = CollectorPlugin(type=..., options_model=..., factory=...)``
and is registered under the ``mqtop.collectors`` entry-point group. The core validates the
broker's config section with ``options_model``, creates one long-lived collector per broker,
and calls ``connect`` once, ``collect`` every poll and ``close`` at shutdown. Heavy client
libraries are imported inside the collector, not at module import.
"""

from __future__ import annotations

import builtins
import fnmatch
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collectors.topology import TopologyReader
from mqtop.kernel.durations import Duration, OptionalDuration
from mqtop.kernel.model import SeriesSample
from mqtop.kernel.secrets import Password
from mqtop.kernel.tls import client_context

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class BrokerOptions(BaseModel):
    """Options every broker takes. Broker modules subclass this with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique name used on the command line.")
    type: str = Field(description="Broker type: rabbitmq, kafka, sqs, redis or a plugin's type.")
    readonly: bool = Field(False, description="Refuse every write action on this broker.")
    include: list[str] = Field(
        default_factory=list, description="Glob patterns of queue names to show (all if empty)."
    )
    exclude: list[str] = Field(default_factory=list, description="Glob patterns to hide.")
    dlq: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit dead-letter mapping: source queue -> DLQ (overrides discovery).",
    )
    interval: OptionalDuration = Field(
        None, description="Poll period for this broker (defaults to the top-level interval)."
    )
    timeout: OptionalDuration = Field(
        None, description="Timeout of one poll (defaults to the top-level timeout)."
    )
    group_status_window: Duration = Field(
        300.0,
        description=(
            "Sliding window of the health status (group_status): a queue is STALL or STOP "
            "only when nothing was consumed for this long."
        ),
    )

    def wants(self, queue: str) -> bool:
        """Apply include/exclude globs to a queue name."""
        return matches_globs(queue, self.include, self.exclude)

    def address(self) -> str:
        """Where the broker lives, for messages (never containing a secret)."""
        return self.name


class ClientCertificate(BaseModel):
    """Mutual TLS options a broker module mixes into its options: the client certificate."""

    cert_file: str | None = Field(
        None,
        description="Client certificate (PEM) for mutual TLS (the key may be in the same file).",
    )
    key_file: str | None = Field(None, description="Private key (PEM) of cert_file.")
    key_password: Password | None = Field(None, description="Password of an encrypted key_file.")

    @model_validator(mode="after")
    def _client_certificate(self) -> ClientCertificate:
        if self.cert_file is None and (self.key_file is not None or self.key_password is not None):
            raise ValueError("key_file and key_password need cert_file (the client certificate)")
        return self

    def key_password_value(self) -> str | None:
        """The key's password in clear, for the TLS library only."""
        return self.key_password.get_secret_value() if self.key_password is not None else None

    def tls_context(
        self, *, ca_file: str | None, verify: bool, owner: str | None = None
    ) -> ssl.SSLContext:
        """TLS client context (:func:`mqtop.kernel.tls.client_context`) with this client
        certificate: verification on unless ``verify`` is false, the CA bundle ``ca_file``
        (the system's when None). With ``owner`` (``broker 'x'``), a certificate that cannot
        be loaded is a config error naming the files."""
        return client_context(
            ca_file=ca_file,
            verify=verify,
            cert_file=self.cert_file,
            key_file=self.key_file,
            key_password=self.key_password_value(),
            owner=owner,
        )


def matches_globs(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """True when ``name`` matches one include glob (or there are none) and no exclude glob."""
    if include and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pat) for pat in exclude)


DLQ_SUFFIXES: tuple[str, ...] = (".dlq", "-dlq", "_dlq", ".DLT", "-dead-letter", ":dead", ".dead")


def dlq_candidates(queue: str) -> list[str]:
    """Names a DLQ of ``queue`` may have by naming convention."""
    return [queue + suffix for suffix in DLQ_SUFFIXES]


def dlq_index(names: Iterable[str]) -> dict[str, str]:
    """Queue -> its DLQ by naming convention among ``names``, built once for many look-ups:
    ``index.get(q)`` is the first of ``dlq_candidates(q)`` that is in ``names``."""
    found: dict[str, tuple[int, str]] = {}
    for name in names:
        if not name.endswith(DLQ_SUFFIXES):
            continue
        for rank, suffix in enumerate(DLQ_SUFFIXES):
            if name.endswith(suffix):
                source = name[: -len(suffix)]
                best = found.get(source)
                if best is None or rank < best[0]:
                    found[source] = (rank, name)
    return {source: name for source, (_, name) in found.items()}


def original_of_dlq(dlq: str) -> str | None:
    """The source queue a DLQ name points back to by convention (``jobs:dead`` -> ``jobs``)."""
    for suffix in DLQ_SUFFIXES:
        if dlq.endswith(suffix) and len(dlq) > len(suffix):
            return dlq[: -len(suffix)]
    return None


def is_dlq_name(queue: str) -> bool:
    """True when the name follows a dead-letter naming convention."""
    return original_of_dlq(queue) is not None


@dataclass(frozen=True, slots=True)
class Collected:
    """What one ``collect`` call returns: the series, plus non-fatal warnings."""

    series: tuple[SeriesSample, ...]
    warnings: tuple[str, ...] = ()


@runtime_checkable
class Collector(Protocol):
    """A long-lived reader of one broker."""

    @property
    def options(self) -> BrokerOptions:
        """The validated options this collector was built from."""

    async def connect(self) -> None:
        """Open clients. May raise; the engine retries with backoff."""

    async def collect(self) -> Collected:
        """Read the broker once. Raise on failure; the engine marks the broker down."""

    async def close(self) -> None:
        """Release clients. Must not raise."""

    def actions(self) -> MessageActions | None:
        """Message actions for this broker, or None when it has none."""


# ---------------------------------------------------------------- message actions


@dataclass(frozen=True, slots=True)
class Death:
    """Why and how often a message was dead-lettered, and where it came from."""

    reason: str | None
    count: int | None
    original_queue: str | None


@dataclass(frozen=True, slots=True)
class PeekedMessage:
    """A message read without consuming it. ``body`` is raw bytes; rendering is the core's job."""

    id: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    death: Death | None = None
    timestamp: float | None = None  # epoch seconds when known (for "age")
    extra: Mapping[str, Any] = field(default_factory=dict)  # partition/offset, receive count...
    note: str | None = None  # what peeking had to do to this message, if anything
    # False when ``body`` is only the start of the message's body (a broker's management
    # preview); ``body_size`` is then the whole body's size in bytes if the broker reports it
    body_complete: bool = True
    body_size: int | None = None


class MessageFilter(Protocol):
    """A compiled ``--filter`` expression."""

    def matches(
        self, body: bytes, headers: Mapping[str, Any], timestamp: float | None = None
    ) -> bool:
        """True when the message should be acted on (``timestamp``: its epoch time, if known)."""


class MoveOptions(BaseModel):
    """Options of a replay/move that a broker declares (``CollectorPlugin.move_options``).

    A broker subclasses this with typed fields; ``mqtop dlq replay|move`` gets one flag per
    field (``batch`` -> ``--batch``; a field's ``json_schema_extra`` may give ``metavar``) and
    the dashboard's move dialog one input per field. Options a broker does not declare are
    refused in one place (:func:`collectors.kit.options.build_move_options`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class MoveRequest:
    """One replay or move: from ``source`` to ``destination`` on one broker."""

    source: str
    destination: str
    mode: Literal["replay", "move"]
    limit: int | None = None
    filter: MessageFilter | None = None
    dry_run: bool = False
    options: MoveOptions = field(default_factory=MoveOptions)  # the broker's declared options
    # Set when the operator interrupts (SIGINT/SIGTERM/SIGHUP in the CLI): a broker that
    # honours it stops at its next batch boundary and returns what it did so far.
    stop: threading.Event | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MoveProgress:
    """Progress of a running move, reported as it goes."""

    done: int
    total: int | None
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class MoveResult:
    """Outcome of a move; serialises to the contract's JSON shape."""

    source: str
    destination: str
    moved: int
    failed: int
    skipped: int
    dry_run: bool
    duplicates_possible: int = 0
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    republished: int = 0  # messages written back to the source so as not to lose them

    @property
    def complete(self) -> bool:
        """Nothing failed and nothing stopped the move part-way (exit 0, audit ``ok``)."""
        return self.failed == 0 and not self.errors

    def to_json(self) -> dict[str, Any]:
        """Exactly the contract's keys (``errors``/``notes`` are printed to stderr)."""
        return {
            "source": self.source,
            "destination": self.destination,
            "moved": self.moved,
            "failed": self.failed,
            "skipped": self.skipped,
            "dry_run": self.dry_run,
            "duplicates_possible": self.duplicates_possible,
        }


ProgressCallback = Callable[[MoveProgress], None]


@runtime_checkable
class MessageActions(Protocol):
    """Peek / replay / move / purge for one broker. Every method is safe to await.

    Implementations built on blocking SDKs run them in threads (``asyncio.to_thread``),
    never on the event loop.
    """

    async def peek_warning(self, queue: str) -> str | None:
        """A side effect of peeking this queue the operator must be told first, if any."""

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        """Return up to ``count`` messages from the head without consuming them."""

    async def replay_target(self, dlq: str) -> str | None:
        """The queue dead letters of ``dlq`` came from, when it can be known."""

    async def count(self, queue: str) -> int | None:
        """Messages currently in ``queue`` (for confirmations), None when unknown."""

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        """Move messages losslessly: confirm each publish before removing the source."""

    async def purge(self, queue: str) -> int | None:
        """Delete every message of ``queue``; return how many when known."""

    async def close(self) -> None:
        """Release connections opened for actions. Must not raise."""


@dataclass(frozen=True, slots=True)
class RepublishRequest:
    """Publish one reviewed message (as given, or edited) to ``destination``, then remove
    the original from ``source``: the one the operator saw, found by its id."""

    source: str
    destination: str
    original: PeekedMessage  # as peeked: its id (and body) identify it in the source
    body: bytes  # what to publish (the original body, or the edited one)
    headers: Mapping[str, Any]  # the headers to publish (the original ones, or edited)
    mode: Literal["replay", "move"] = "replay"


@dataclass(frozen=True, slots=True)
class RepublishResult:
    """What happened to one reviewed message."""

    published: bool  # the copy was published and confirmed by the broker
    removed: bool  # the original was removed from the source (after the confirmation)
    note: str | None = None  # why not, in the operator's words


@runtime_checkable
class MessageRepublish(Protocol):
    """Optional capability: act on one given message by its id (edit before replay, and
    replaying exactly the reviewed messages of a selection)."""

    async def republish(self, request: RepublishRequest) -> RepublishResult:
        """Find the original by id; publish the given copy with confirmation; only then
        remove the original. Not found: nothing published, ``note`` says so."""


@dataclass(frozen=True, slots=True)
class ReclaimRequest:
    """Redis streams: pending entries of ``group`` idle longer than ``idle`` seconds."""

    stream: str
    group: str
    idle: float
    to_stream: str | None = None
    consumer: str | None = None
    limit: int | None = None
    dry_run: bool = False


@runtime_checkable
class StreamReclaim(Protocol):
    """Optional capability: move or hand over stuck pending stream entries."""

    async def reclaim(self, request: ReclaimRequest) -> dict[str, Any]:
        """Do the reclaim; return a JSON-able report (entries with delivery counts, totals)."""


OptionsT = TypeVar("OptionsT", bound=BrokerOptions)


@dataclass(frozen=True)
class CollectorPlugin(Generic[OptionsT]):
    """What a broker module registers: its type name, options model and factory."""

    type: str
    options_model: builtins.type[OptionsT]
    factory: Callable[[OptionsT], Collector]
    description: str = ""
    move_options: builtins.type[MoveOptions] = MoveOptions
    # "move": published, confirmed, then removed from the source; "copy": the source keeps
    # the messages (a Kafka topic is a log: a replay copies records, retention deletes them)
    move_semantics: Literal["move", "copy"] = "move"
    # ``mqtop lint``: builds a reader of the broker's topology (queues, dead-letter links,
    # bounds); None when the broker has none (collectors/topology.py)
    topology: Callable[[Any], TopologyReader] | None = None

    def create(self, options: BrokerOptions) -> Collector:
        """Build a collector for validated options."""
        if not isinstance(options, self.options_model):
            name = builtins.type(options).__name__
            raise TypeError(f"{self.type}: options of the wrong model {name}")
        return self.factory(options)


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for several globs (None when there are none)."""
    pats = list(patterns)
    if not pats:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats))
