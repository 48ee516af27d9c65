"""ActiveMQ brokers on loopback for the tests and for .ci/run: Artemis and Classic.

* Artemis: the full distribution from Maven Central (``apache-artemis`` ``bin`` zip), an
  instance made with ``artemis create --port-offset N`` (its default AMQP port would take
  RabbitMQ's 5672); the console's Jolokia is at ``http://127.0.0.1:8161+N/console/jolokia``.
* Classic: an embedded broker (``tests/java/ClassicBroker.java``, ``activemq-broker`` jars from
  Maven Central) with the Jolokia JVM agent attached by ``-javaagent``, STOMP enabled and a
  dead-letter setup (shared ``ActiveMQ.DLQ``; ``DLQ.<queue>`` for queues named ``ind.*``).

Both check the ``Origin`` header like Artemis' default ``jolokia-access.xml``. Each is found
as the other brokers are (tests/harness.py): an environment variable, then the shared broker
on its fixed port (started by ``python tests/harness.py start``), then a private broker.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import (
    CACHE,
    BrokerUnavailable,
    Managed,
    _spawn,
    free_port,
    java17,
    port_open,
    wait_for,
)

ARTEMIS_VERSION = "2.40.0"
CLASSIC_VERSION = "6.3.1"
JOLOKIA_VERSION = "2.1.1"
ARTEMIS_HOME = CACHE / f"apache-artemis-{ARTEMIS_VERSION}"
CLASSIC_LIBS = CACHE / f"activemq-classic-{CLASSIC_VERSION}" / "libs"
JOLOKIA_AGENT = (
    CACHE / f"jolokia-{JOLOKIA_VERSION}" / f"jolokia-agent-jvm-{JOLOKIA_VERSION}-javaagent.jar"
)
USER = "admin"
PASSWORD = "admin"  # a loopback test broker
# the shared brokers' fixed ports (CI and `harness.py start`)
ARTEMIS_OFFSET = 1000
ARTEMIS_CONSOLE = 8161 + ARTEMIS_OFFSET
ARTEMIS_STOMP = 61613 + ARTEMIS_OFFSET
ARTEMIS_AMQP = 5672 + ARTEMIS_OFFSET
CLASSIC_JOLOKIA = 9171
CLASSIC_OPENWIRE = 61716
CLASSIC_STOMP = 61713
CLASSIC_NAME = "mqtop"
ACCESS_POLICY = """<?xml version="1.0" encoding="utf-8"?>
<restrict>
  <cors>
    <allow-origin>*://127.0.0.1*</allow-origin>
    <strict-checking/>
  </cors>
</restrict>
"""


# ---------------------------------------------------------------- fetching


def _mvn(args: list[str], cwd: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerUnavailable(f"Maven (mvn) is not installed: cannot fetch {what}")
    result = subprocess.run(
        [mvn, "-q", "-B", *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        tail = result.stdout[-2000:]
        raise BrokerUnavailable(f"fetching {what} from Maven Central failed:\n{tail}")


def fetch_artemis(home: Path = ARTEMIS_HOME) -> Path:
    """The Artemis distribution, unpacked in the cache (downloaded once)."""
    if (home / "bin" / "artemis").exists():
        return home
    with tempfile.TemporaryDirectory(prefix="mqtop-artemis-fetch-") as tmp:
        artifact = f"org.apache.activemq:apache-artemis:{ARTEMIS_VERSION}:zip:bin"
        _mvn(["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={tmp}"],
             Path(tmp), "Apache Artemis")  # fmt: skip
        archive = Path(tmp, f"apache-artemis-{ARTEMIS_VERSION}-bin.zip")
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)
        unpacked = partial / f"apache-artemis-{ARTEMIS_VERSION}"
        for script in (unpacked / "bin").iterdir():
            script.chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
        shutil.rmtree(partial, ignore_errors=True)
    return home


def fetch_classic() -> tuple[Path, Path]:
    """(jar directory, Jolokia agent jar) for the embedded Classic broker (downloaded once)."""
    if not (CLASSIC_LIBS.is_dir() and any(CLASSIC_LIBS.glob("activemq-broker-*.jar"))):
        deps = "".join(
            f"<dependency><groupId>org.apache.activemq</groupId><artifactId>{name}</artifactId>"
            f"<version>{CLASSIC_VERSION}</version></dependency>"
            for name in ("activemq-broker", "activemq-client", "activemq-stomp", "activemq-jaas")
        )
        with tempfile.TemporaryDirectory(prefix="mqtop-classic-fetch-") as tmp:
            Path(tmp, "pom.xml").write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>mqtop</groupId><artifactId>fetch</artifactId>"
                f"<version>1</version><dependencies>{deps}</dependencies></project>"
            )
            partial = CLASSIC_LIBS.with_name(CLASSIC_LIBS.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={partial}",
                  "-DincludeScope=runtime"], Path(tmp), "ActiveMQ Classic")  # fmt: skip
            shutil.rmtree(CLASSIC_LIBS, ignore_errors=True)
            partial.rename(CLASSIC_LIBS)
    if not JOLOKIA_AGENT.exists():
        JOLOKIA_AGENT.parent.mkdir(parents=True, exist_ok=True)
        artifact = f"org.jolokia:jolokia-agent-jvm:{JOLOKIA_VERSION}:jar:javaagent"
        _mvn(["dependency:copy", f"-Dartifact={artifact}",
              f"-DoutputDirectory={JOLOKIA_AGENT.parent}"], JOLOKIA_AGENT.parent,
             "the Jolokia JVM agent")  # fmt: skip
    return CLASSIC_LIBS, JOLOKIA_AGENT


# ---------------------------------------------------------------- a broker under test


@dataclass
class ActiveMQBroker:
    """An ActiveMQ broker reachable through Jolokia, plus STOMP for test clients."""

    flavor: str  # "artemis" | "classic"
    jolokia_url: str
    stomp_port: int
    user: str = USER
    password: str = PASSWORD
    managed: Managed | None = None
    amqp_port: int | None = None  # Artemis' AMQP acceptor (browse_url)

    @property
    def browse_url(self) -> str:
        """The client endpoint mqtop browses whole bodies through (config ``browse_url``)."""
        if self.flavor == "artemis":
            return f"amqp://127.0.0.1:{self.amqp_port}"
        return f"stomp://127.0.0.1:{self.stomp_port}"

    @property
    def origin(self) -> str:
        """The Origin the broker's access policy allows (its own address)."""
        scheme, _, rest = self.jolokia_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()

    # -- Jolokia, for setting up and cross-checking ----------------------------------

    def jolokia(self, body: Any, origin: str | None = None) -> Any:
        """POST one request (or a list) to Jolokia; the decoded JSON answer."""
        request = urllib.request.Request(
            self.jolokia_url.rstrip("/") + "/", data=json.dumps(body).encode(), method="POST"
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        request.add_header("Origin", origin or self.origin)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def call(self, mbean: str, operation: str, *args: Any) -> Any:
        """Run a JMX operation; its value (raises on a Jolokia error)."""
        answer = self.jolokia(
            {"type": "exec", "mbean": mbean, "operation": operation, "arguments": list(args)}
        )
        if answer.get("status") != 200:
            raise RuntimeError(f"{operation}: {answer.get('error')}")
        return answer.get("value")

    def read(self, mbean: str, attributes: list[str] | None = None) -> Any:
        """Read attributes of one MBean (or a pattern)."""
        body: dict[str, Any] = {"type": "read", "mbean": mbean}
        if attributes:
            body["attribute"] = attributes
        answer = self.jolokia(body)
        if answer.get("status") != 200:
            raise RuntimeError(f"read {mbean}: {answer.get('error')}")
        return answer.get("value")

    # -- names ------------------------------------------------------------------------

    def broker_mbean(self) -> str:
        if self.flavor == "artemis":
            found = self.jolokia(
                {"type": "search", "mbean": "org.apache.activemq.artemis:broker=*"}
            )["value"]
            return str(found[0])
        found = self.jolokia(
            {"type": "search", "mbean": "org.apache.activemq:type=Broker,brokerName=*"}
        )["value"]
        return str(found[0])

    def queue_mbean(self, queue: str) -> str:
        """The MBean of a queue (Artemis: found by its name whatever its address)."""
        if self.flavor == "artemis":
            pattern = (
                "org.apache.activemq.artemis:broker=*,component=addresses,address=*,"
                f'subcomponent=queues,routing-type=*,queue="{queue}"'
            )
        else:
            pattern = (
                "org.apache.activemq:type=Broker,brokerName=*,destinationType=Queue,"
                f"destinationName={queue}"
            )
        found = self.jolokia({"type": "search", "mbean": pattern})["value"]
        if not found:
            raise KeyError(queue)
        return str(found[0])

    def queue_attributes(self, queue: str) -> dict[str, Any]:
        """Every attribute of one queue, as the broker reports it."""
        return dict(self.read(self.queue_mbean(queue)))

    def count(self, queue: str) -> int:
        """Messages in a queue (Artemis MessageCount, Classic QueueSize)."""
        attrs = self.queue_attributes(queue)
        return int(attrs["MessageCount" if self.flavor == "artemis" else "QueueSize"])

    def browse(self, queue: str) -> list[dict[str, Any]]:
        """Every message of a queue, browsed by the broker (no delivery)."""
        mbean = self.queue_mbean(queue)
        if self.flavor == "artemis":
            out: list[dict[str, Any]] = []
            page = 1
            while True:
                batch = self.call(mbean, "browse(int,int,java.lang.String)", page, 1000, "")
                out += batch
                if len(batch) < 1000:
                    return out
                page += 1
        return list(self.call(mbean, "browse()"))

    # -- setting up -------------------------------------------------------------------

    def create_queue(self, name: str, dlq_per_queue: bool = True) -> None:
        """An anycast (Artemis) or plain (Classic) queue; on Artemis with auto-created
        ``DLQ.<name>`` dead-letter resources on the ``mqtop.DLA`` address."""
        broker = self.broker_mbean()
        if self.flavor == "artemis":
            if dlq_per_queue:
                settings = {
                    "deadLetterAddress": "mqtop.DLA",
                    "autoCreateDeadLetterResources": True,
                    "maxDeliveryAttempts": 1,
                }
                self.call(broker, "addAddressSettings(java.lang.String,java.lang.String)",
                          name, json.dumps(settings))  # fmt: skip
            config = {"name": name, "address": name, "routing-type": "ANYCAST", "durable": True}
            self.call(broker, "createQueue(java.lang.String,boolean)", json.dumps(config), True)
        else:
            self.call(broker, "addQueue(java.lang.String)", name)

    def delete_queue(self, name: str) -> None:
        """Remove a queue (and, on Artemis, its address and address settings)."""
        broker = self.broker_mbean()
        with contextlib.suppress(Exception):
            if self.flavor == "artemis":
                op = "destroyQueue(java.lang.String,boolean,boolean)"
                self.call(broker, op, name, True, True)
                self.call(broker, "removeAddressSettings(java.lang.String)", name)
            else:
                self.call(broker, "removeQueue(java.lang.String)", name)

    def stomp(self) -> Any:
        """A connected STOMP 1.2 client (stomp-py)."""
        import stomp

        conn = stomp.Connection12([("127.0.0.1", self.stomp_port)], heartbeats=(0, 0))
        conn.connect(self.user, self.password, wait=True)
        return conn

    def destination(self, queue: str) -> str:
        """The STOMP destination of an anycast queue."""
        return queue if self.flavor == "artemis" else f"/queue/{queue}"

    def send(self, queue: str, bodies: list[str], headers: dict[str, str] | None = None) -> None:
        """Send persistent messages over STOMP (callers wait for the count to see them all)."""
        conn = self.stomp()
        try:
            extra = {"persistent": "true", **(headers or {})}
            if self.flavor == "artemis":
                extra["destination-type"] = "ANYCAST"
            for body in bodies:
                conn.send(self.destination(queue), body, headers=dict(extra))
        finally:
            conn.disconnect()

    def dead_letter(self, queue: str, expected: int) -> None:
        """Let the broker dead-letter every message of ``queue`` (Artemis: the queue's own
        ``sendMessagesToDeadLetterAddress``; Classic: a STOMP consumer NACKs each message)."""
        if self.flavor == "artemis":
            moved = self.call(
                self.queue_mbean(queue), "sendMessagesToDeadLetterAddress(java.lang.String)", ""
            )
            assert moved == expected, (moved, expected)
            return
        import stomp

        conn = self.stomp()
        got: list[Any] = []

        class Listener(stomp.ConnectionListener):  # type: ignore[misc]
            def on_message(self, frame: Any) -> None:
                got.append(frame)

        conn.set_listener("l", Listener())
        conn.subscribe(self.destination(queue), id="dl", ack="client-individual")
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        for frame in got:
            conn.nack(frame.headers["ack"])
        conn.disconnect(receipt=f"d-{time.monotonic_ns()}")
        assert len(got) == expected, (len(got), expected)

    def hold(self, queue: str, count: int) -> Any:
        """A STOMP consumer that receives ``count`` messages and never acknowledges them
        (they are in flight until ``conn.disconnect()``)."""
        import stomp

        conn = self.stomp()
        got: list[Any] = []

        class Listener(stomp.ConnectionListener):  # type: ignore[misc]
            def on_message(self, frame: Any) -> None:
                got.append(frame)

        conn.set_listener("h", Listener())
        window = (
            {"consumer-window-size": "0", "subscription-type": "ANYCAST"}
            if self.flavor == "artemis"
            else {"activemq.prefetchSize": str(count)}
        )
        conn.subscribe(self.destination(queue), id="hold", ack="client-individual", headers=window)
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) >= count, (len(got), count)
        return conn

    def subscribe_durable(self, topic: str, client: str, name: str) -> None:
        """Create a durable subscription of ``topic`` and leave it offline."""
        conn = self.stomp_as(client)
        if self.flavor == "artemis":
            headers = {"durable-subscription-name": name, "subscription-type": "MULTICAST"}
            conn.subscribe(topic, id="d", ack="client-individual", headers=headers)
        else:
            headers = {"activemq.subscriptionName": name}
            conn.subscribe(f"/topic/{topic}", id="d", ack="client-individual", headers=headers)
        time.sleep(0.3)
        conn.disconnect()

    def publish(self, topic: str, bodies: list[str]) -> None:
        """Publish persistent messages to a topic (a multicast address on Artemis)."""
        conn = self.stomp()
        try:
            for body in bodies:
                if self.flavor == "artemis":
                    headers = {"persistent": "true", "destination-type": "MULTICAST"}
                    conn.send(topic, body, headers=headers)
                else:
                    conn.send(f"/topic/{topic}", body, headers={"persistent": "true"})
        finally:
            conn.disconnect()

    def stomp_as(self, client_id: str) -> Any:
        """A STOMP connection with a client id (for durable subscriptions)."""
        import stomp

        conn = stomp.Connection12([("127.0.0.1", self.stomp_port)], heartbeats=(0, 0))
        conn.connect(self.user, self.password, wait=True, headers={"client-id": client_id})
        return conn

    def drop_subscription(self, topic: str, client: str, name: str) -> None:
        """Remove a durable subscription made by subscribe_durable."""
        broker = self.broker_mbean()
        with contextlib.suppress(Exception):
            if self.flavor == "artemis":
                op = "destroyQueue(java.lang.String,boolean,boolean)"
                self.call(broker, op, f"{client}.{name}", True, True)
            else:
                op = "destroyDurableSubscriber(java.lang.String,java.lang.String)"
                self.call(broker, op, client, name)

    def drain(self, queue: str, expected: int, timeout: float = 60) -> list[Any]:
        """Consume (auto-ack) messages of a queue until ``expected`` arrived and the queue is
        quiet for a moment; the STOMP frames received."""
        import stomp

        conn = self.stomp()
        got: list[Any] = []

        class Listener(stomp.ConnectionListener):  # type: ignore[misc]
            def on_message(self, frame: Any) -> None:
                got.append(frame)

        conn.set_listener("drain", Listener())
        extra = {"subscription-type": "ANYCAST"} if self.flavor == "artemis" else {}
        conn.subscribe(self.destination(queue), id="drain", ack="auto", headers=extra)
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if len(got) >= expected and len(got) == seen:
                break
            seen = len(got)
        conn.disconnect()
        return got

    def dlq_of(self, queue: str) -> str:
        """The per-queue DLQ the test setup gives ``queue`` (Artemis: on mqtop.DLA)."""
        return f"DLQ.{queue}"

    def cleanup(self, *queues: str) -> None:
        """Delete test queues, their DLQs, and their messages in a shared Classic DLQ."""
        for queue in queues:
            self.delete_queue(queue)
            self.delete_queue(self.dlq_of(queue))
            if self.flavor == "classic":
                with contextlib.suppress(Exception):
                    shared = self.queue_mbean("ActiveMQ.DLQ")
                    selector = f"JMSDestination = 'queue://{queue}'"
                    self.call(shared, "removeMatchingMessages(java.lang.String)", selector)


# ---------------------------------------------------------------- Artemis


def _artemis_offset() -> int:
    """A port offset whose console, acceptor and protocol ports are all free."""
    for _ in range(200):
        offset = random.randrange(2000, 3000)
        ports = [p + offset for p in (8161, 61616, 5672, 61613, 5445, 1883)]
        if all(p < 65000 and not port_open("127.0.0.1", p) for p in ports):
            return offset
    raise BrokerUnavailable("no free port offset for a private Artemis")


def start_artemis(offset: int | None = None, workdir: Path | None = None,
                  timeout: float = 90) -> ActiveMQBroker:  # fmt: skip
    """Create and run an Artemis instance on ports 8161/61613/... + offset."""
    home = fetch_artemis()
    java = java17()
    offset = _artemis_offset() if offset is None else offset
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mqtop-artemis-"))
    instance = workdir / "instance"
    env = {"JAVA_HOME": str(Path(java).resolve().parent.parent)}
    created = subprocess.run(
        [str(home / "bin" / "artemis"), "create", "--user", USER, "--password", PASSWORD,
         "--require-login", "--silent", "--host", "127.0.0.1", "--http-host", "127.0.0.1",
         "--port-offset", str(offset), "--no-autotune", "--no-fsync", "--java-memory", "512M",
         str(instance)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False,
    )  # fmt: skip
    if created.returncode != 0:
        tail = created.stdout[-1500:] + created.stderr[-500:]
        raise BrokerUnavailable(f"artemis create failed: {tail}")
    proc, log = _spawn([str(instance / "bin" / "artemis"), "run"], workdir, env)
    console = 8161 + offset
    broker = ActiveMQBroker(
        "artemis",
        f"http://127.0.0.1:{console}/console/jolokia",
        61613 + offset,
        managed=Managed(proc, workdir),
        amqp_port=5672 + offset,
    )
    try:
        wait_for(lambda: _jolokia_ready(broker), timeout, "Apache Artemis", proc, log)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def _jolokia_ready(broker: ActiveMQBroker) -> bool:
    try:
        answer = broker.jolokia({"type": "version"})
    except (urllib.error.URLError, OSError, ValueError):
        return False
    if answer.get("status") != 200 or not port_open("127.0.0.1", broker.stomp_port):
        return False
    try:
        broker.broker_mbean()
    except (IndexError, KeyError, urllib.error.URLError, OSError, ValueError):
        return False
    return True


def find_artemis() -> ActiveMQBroker:
    """Artemis from MQTOP_TEST_ARTEMIS_JOLOKIA_URL (+ _STOMP_PORT, _USER, _PASSWORD), the
    shared broker on 127.0.0.1:9161, or a private one."""
    return _find("artemis", ARTEMIS_CONSOLE, "/console/jolokia", ARTEMIS_STOMP, start_artemis)


# ---------------------------------------------------------------- Classic


def start_classic(
    jolokia_port: int | None = None,
    openwire_port: int | None = None,
    stomp_port: int | None = None,
    workdir: Path | None = None,
    timeout: float = 90,
) -> ActiveMQBroker:
    """Run the embedded Classic broker with the Jolokia JVM agent."""
    libs, agent = fetch_classic()
    java = java17()
    jolokia_port = jolokia_port or free_port()
    openwire_port = openwire_port or free_port()
    stomp_port = stomp_port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mqtop-classic-"))
    policy = workdir / "jolokia-access.xml"
    policy.write_text(ACCESS_POLICY)
    agent_options = (
        f"host=127.0.0.1,port={jolokia_port},user={USER},password={PASSWORD},"
        f"policyLocation={policy.as_uri()}"
    )
    source = Path(__file__).resolve().parent.parent / "java" / "ClassicBroker.java"
    proc, log = _spawn(
        [java, "-Xms64m", "-Xmx512m", "-Dsun.net.httpserver.nodelay=true",
         f"-javaagent:{agent}={agent_options}", "-cp", f"{libs}/*",
         str(source), CLASSIC_NAME, str(openwire_port), str(stomp_port), USER, PASSWORD],
        workdir,
    )  # fmt: skip
    broker = ActiveMQBroker(
        "classic",
        f"http://127.0.0.1:{jolokia_port}/jolokia",
        stomp_port,
        managed=Managed(proc, workdir),
    )
    try:
        wait_for(lambda: _jolokia_ready(broker), timeout, "ActiveMQ Classic", proc, log)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def find_classic() -> ActiveMQBroker:
    """Classic from MQTOP_TEST_CLASSIC_JOLOKIA_URL (+ _STOMP_PORT, _USER, _PASSWORD), the
    shared broker on 127.0.0.1:9171, or a private one."""
    return _find("classic", CLASSIC_JOLOKIA, "/jolokia", CLASSIC_STOMP, start_classic)


def _find(flavor: str, port: int, path: str, stomp: int, start: Any) -> ActiveMQBroker:
    env = "ARTEMIS" if flavor == "artemis" else "CLASSIC"
    url = os.environ.get(f"MQTOP_TEST_{env}_JOLOKIA_URL")
    if url:
        broker = ActiveMQBroker(
            flavor,
            url,
            int(os.environ.get(f"MQTOP_TEST_{env}_STOMP_PORT", str(stomp))),
            os.environ.get(f"MQTOP_TEST_{env}_USER", USER),
            os.environ.get(f"MQTOP_TEST_{env}_PASSWORD", PASSWORD),
            amqp_port=int(os.environ.get(f"MQTOP_TEST_{env}_AMQP_PORT", str(ARTEMIS_AMQP))),
        )
        if not _jolokia_ready(broker):
            raise BrokerUnavailable(f"MQTOP_TEST_{env}_JOLOKIA_URL={url} does not answer")
        return broker
    if port_open("127.0.0.1", port):
        broker = ActiveMQBroker(flavor, f"http://127.0.0.1:{port}{path}", stomp,
                                amqp_port=ARTEMIS_AMQP)  # fmt: skip
        if _jolokia_ready(broker):
            return broker
        raise BrokerUnavailable(f"something answers on 127.0.0.1:{port} but not as {flavor}")
    result: ActiveMQBroker = start()
    return result


# ---------------------------------------------------------------- shared brokers for CI


def start_shared(state: Path) -> int:
    """Start the shared Artemis and Classic brokers unless running; the number of failures."""
    failures = 0
    for flavor, port in (("artemis", ARTEMIS_CONSOLE), ("classic", CLASSIC_JOLOKIA)):
        if port_open("127.0.0.1", port):
            print(f"activemq-{flavor}: already running on 127.0.0.1:{port}")
            continue
        workdir = state / f"activemq-{flavor}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            if flavor == "artemis":
                broker = start_artemis(ARTEMIS_OFFSET, workdir, timeout=180)
            else:
                broker = start_classic(CLASSIC_JOLOKIA, CLASSIC_OPENWIRE, CLASSIC_STOMP,
                                       workdir, timeout=180)  # fmt: skip
        except BrokerUnavailable as exc:
            print(f"activemq-{flavor}: FAILED: {exc}")
            failures += 1
            continue
        assert broker.managed and broker.managed.proc
        broker.managed.keep = True
        (state / f"activemq-{flavor}.pid").write_text(str(broker.managed.proc.pid))
        print(f"activemq-{flavor}: started, Jolokia at {broker.jolokia_url}")
    return failures


def shared_names() -> tuple[str, ...]:
    """Names of the pid files start_shared writes (for `harness.py stop`)."""
    return ("activemq-artemis", "activemq-classic")


def shared_ports() -> tuple[tuple[str, int], ...]:
    """(name, port) of the shared brokers, for `harness.py status`."""
    return (("activemq-artemis", ARTEMIS_CONSOLE), ("activemq-classic", CLASSIC_JOLOKIA))


def fetch_all() -> None:
    """Download both distributions into the cache (CI does it before starting brokers)."""
    print(fetch_artemis())
    print(*fetch_classic())


def broker_config(write_config: Callable[..., Path], amq: ActiveMQBroker, **extra: Any) -> Path:
    """A config with one ActiveMQ broker named amq (a file of its own per variant)."""
    broker = {
        "name": "amq",
        "type": "activemq",
        "jolokia_url": amq.jolokia_url,
        "user": amq.user,
        "password": amq.password,
        **extra,
    }
    name = "mqtop-" + "-".join(sorted(extra)) + ".yaml"
    return write_config("brokers:\n  - " + json.dumps(broker) + "\n", name=name)


def wait_count(broker: ActiveMQBroker, queue: str, expected: int, timeout: float = 20) -> int:
    """Wait until a queue holds ``expected`` messages; the last count seen."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = broker.count(queue)
        if seen == expected:
            return seen
        time.sleep(0.1)
    return seen
