"""Detect brokers listening on their default local ports (used when there is no config)."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

DEFAULT_PORTS: tuple[tuple[str, str, int], ...] = (
    ("redis", "127.0.0.1", 6379),
    ("rabbitmq", "127.0.0.1", 5672),
    ("rabbitmq-management", "127.0.0.1", 15672),
    ("kafka", "127.0.0.1", 9092),
    ("sqs", "127.0.0.1", 4566),
    ("activemq", "127.0.0.1", 8161),
)
ACTIVEMQ_USER = ("admin", "admin")  # both distributions' example user; init reads it from env
JOLOKIA_PATHS = ("/console/jolokia", "/api/jolokia")  # Artemis console, Classic web console


SCAN_LIMIT = 50_000  # keys looked at for BullMQ and Celery (init must stay quick)
# the lists each job library keeps its waiting jobs in: the plain ``redis`` entry leaves them
# out when the library's own entry is written (one backlog, one row)
LIBRARY_LISTS = {"sidekiq": ["queue:*"], "rq": ["rq:*"], "bullmq": ["bull:*"]}
KOMBU_SEP = "\x06\x16"


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when a TCP connection to host:port succeeds within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def detect_job_libraries(url: str = "redis://127.0.0.1:6379/0") -> list[dict[str, Any]]:
    """Job-library broker entries for the libraries whose own keys are on a local Redis."""
    try:
        import redis
    except ImportError:
        return []
    found: list[dict[str, Any]] = []
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=0.5)
    try:
        if client.exists("queues", "processes", "stat:processed"):
            found.append({"name": "sidekiq", "type": "sidekiq", "url": url})
        seen: set[str] = set()
        # one bounded SCAN pass: BullMQ's queue meta hashes, kombu's binding sets
        for scanned, key in enumerate(client.scan_iter(match="*", count=1000)):
            if len(seen) == 2 or scanned >= SCAN_LIMIT:
                break
            name = key.decode("utf-8", "replace")
            if name.startswith("bull:") and name.endswith(":meta"):
                seen.add("bullmq")
            elif name.startswith("_kombu.binding."):
                seen.add("celery")
        if client.exists("rq:queues"):
            found.append({"name": "rq", "type": "rq", "url": url})
        for kind in sorted(seen):
            found.append({"name": kind, "type": kind, "url": url})
    except (redis.RedisError, OSError):
        return []
    finally:
        client.close()
    return found


def celery_queue_lists(url: str = "redis://127.0.0.1:6379/0") -> list[str]:
    """Globs for the lists of every queue kombu has bound on a local Redis (priority lists too).

    kombu keeps each exchange's bindings in the set ``_kombu.binding.<exchange>``, whose members
    are ``<routing key>\\x06\\x16<pattern>\\x06\\x16<queue>``.
    """
    try:
        import redis
    except ImportError:
        return []
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=0.5)
    queues: set[str] = set()
    try:
        for scanned, key in enumerate(client.scan_iter(match="_kombu.binding.*", count=1000)):
            if scanned >= SCAN_LIMIT:
                break
            for member in client.smembers(key):
                raw = member.decode("utf-8", "replace") if isinstance(member, bytes) else member
                queue = str(raw).rsplit(KOMBU_SEP, 1)[-1]
                if queue and not any(c in queue for c in "*?[]\\"):
                    queues.add(queue)
    except (redis.RedisError, OSError):
        return []
    finally:
        client.close()
    return [glob for q in sorted(queues) for glob in (q, q + KOMBU_SEP + "*")]


def library_excludes(libraries: Iterable[dict[str, Any]]) -> list[str]:
    """Exclude globs for a plain ``redis`` entry next to these job-library entries."""
    out: list[str] = []
    for entry in libraries:
        kind = str(entry.get("type"))
        if kind == "celery":
            out += celery_queue_lists(str(entry.get("url")))
        else:
            out += LIBRARY_LISTS.get(kind, [])
    return out


def detect_brokers(probes: Iterable[tuple[str, str, int]] = DEFAULT_PORTS) -> list[dict[str, Any]]:
    """Broker config entries for every default port that answers."""
    probes = list(probes)
    with ThreadPoolExecutor(max_workers=len(probes) or 1) as pool:
        found = dict(
            zip(
                (name for name, _, _ in probes),
                pool.map(lambda p: port_open(p[1], p[2]), probes),
                strict=True,
            )
        )
    brokers: list[dict[str, Any]] = []
    if found.get("redis"):
        redis_entry: dict[str, Any] = {
            "name": "redis",
            "type": "redis",
            "url": "redis://127.0.0.1:6379/0",
            "lists": ["*"],
            "streams": ["*"],
        }
        libraries = detect_job_libraries()
        excludes = library_excludes(libraries)
        if excludes:
            redis_entry["exclude"] = excludes
        brokers.append(redis_entry)
        brokers.extend(libraries)
    if found.get("rabbitmq") or found.get("rabbitmq-management"):
        entry: dict[str, Any] = {
            "name": "rabbitmq",
            "type": "rabbitmq",
            "url": "amqp://guest:guest@127.0.0.1:5672/",
        }
        if found.get("rabbitmq-management"):
            entry["management_url"] = "http://127.0.0.1:15672"
        brokers.append(entry)
    if found.get("kafka"):
        brokers.append({"name": "kafka", "type": "kafka", "bootstrap_servers": "127.0.0.1:9092"})
    if found.get("sqs"):
        brokers.append(
            {
                "name": "sqs",
                "type": "sqs",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:4566",
            }
        )
    if found.get("activemq"):
        path = jolokia_path("127.0.0.1", 8161)
        if path is not None:
            user, password = ACTIVEMQ_USER
            brokers.append(
                {
                    "name": "activemq",
                    "type": "activemq",
                    "jolokia_url": f"http://127.0.0.1:8161{path}",
                    "user": user,
                    "password": password,
                }
            )
    return brokers


def jolokia_path(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Where an ActiveMQ web console serves Jolokia (any answer but 404 counts), or None."""
    import urllib.error
    import urllib.request

    for path in JOLOKIA_PATHS:
        url = f"http://{host}:{port}{path}/version"
        try:
            with urllib.request.urlopen(url, timeout=timeout):
                return path
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                return path  # 401/403: it is there, and wants credentials
        except (OSError, ValueError):
            return None
    return None
