"""SASL (PLAIN, SCRAM-SHA-256) and TLS against a private Apache Kafka with SASL_PLAINTEXT and SSL
listeners: metrics, peek and replay authenticate; a wrong password or an unverifiable
certificate is a one-line error without secrets; TLS verification is on unless disabled."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.conftest import _obtain

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ALICE = "Alice-Canary-8812"  # PLAIN
BOB = "Bob-Canary-5521"  # SCRAM-SHA-256
ADMIN = "Admin-Canary-3107"


def _certificates(workdir: Path) -> None:
    """The shared test CA and server certificate, plus the PKCS#8 keystore Kafka reads."""
    harness.make_certificates(workdir)
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.pk8"],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    keystore = (workdir / "server.pk8").read_text() + (workdir / "server.pem").read_text()
    (workdir / "keystore.pem").write_text(keystore)


def _start_sasl_kafka() -> harness.KafkaBroker:
    libs = harness.fetch_kafka()
    java = harness.java17()
    port, controller, tls = harness.free_port(), harness.free_port(), harness.free_port()
    workdir = Path(harness.tempfile.mkdtemp(prefix="mqtop-kafka-sasl-"))
    _certificates(workdir)
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{ADMIN}" user_admin="{ADMIN}" user_alice="{ALICE}";'
    )
    props = workdir / "server.properties"
    props.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
        f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls},"
        f"CONTROLLER://127.0.0.1:{controller}\n"
        f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls}\n"
        "controller.listener.names=CONTROLLER\n"
        "inter.broker.listener.name=SASL_PLAINTEXT\n"
        "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
        "CONTROLLER:PLAINTEXT\n"
        f"ssl.keystore.type=PEM\nssl.keystore.location={workdir / 'keystore.pem'}\n"
        "ssl.client.auth=none\n"
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n"
        "sasl.mechanism.inter.broker.protocol=PLAIN\n"
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain}\n"
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
        f"log.dirs={workdir / 'data'}\n"
        "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n"
        "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\nnum.partitions=1\n"
    )
    jvm = ["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
    fmt = subprocess.run(
        [java, *jvm, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
         "-t", uuid.uuid4().hex[:22], "-c", str(props),
         "--add-scram", f"SCRAM-SHA-256=[name=bob,password={BOB}]"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise harness.BrokerUnavailable(f"kafka storage format failed: {fmt.stderr[-800:]}")
    proc, log = harness._spawn([java, *jvm, "-cp", f"{libs}/*", "kafka.Kafka", str(props)], workdir)
    broker = harness.KafkaBroker(f"127.0.0.1:{port}", "apache", harness.Managed(proc, workdir))
    try:
        harness.wait_for(lambda: harness.port_open("127.0.0.1", port), 120, "SASL Kafka", proc, log)
        harness.wait_for(lambda: asyncio.run(_ready(broker.bootstrap)), 120, "SASL Kafka", proc)
    except harness.BrokerUnavailable:
        broker.stop()
        raise
    return broker


def _client_args(mechanism: str = "PLAIN", user: str = "alice", password: str = ALICE) -> dict:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


async def _ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_client_args())
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            pass


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[harness.KafkaBroker]:
    broker = _obtain("Kafka with SASL", _start_sasl_kafka)
    assert isinstance(broker, harness.KafkaBroker)
    yield broker
    broker.stop()


def _config(write_config, bootstrap: str, mechanism: str, user: str, password: str) -> Path:
    return write_config(
        f"""
        interval: 500ms
        timeout: 10s
        brokers:
          - name: secure
            type: kafka
            bootstrap_servers: "{bootstrap}"
            security_protocol: SASL_PLAINTEXT
            sasl_mechanism: {mechanism}
            sasl_username: {user}
            sasl_password: "{password}"
        """,
        name=f"{user}-{mechanism}.yaml",
    )


async def _setup(bootstrap: str, topic: str, dlt: str, group: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import OffsetAndMetadata

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_client_args())
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(dlt, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **_client_args())
    await producer.start()
    for _ in range(50):
        if await producer.partitions_for(dlt):
            break
        await asyncio.sleep(0.1)
    for i in range(12):
        await producer.send(topic, b"order-%d" % i, key=b"k%d" % i)
        await producer.send(
            dlt,
            b"dead-%d" % i,
            key=b"k%d" % i,
            headers=[("kafka_dlt-original-topic", topic.encode())],
        )
    await producer.flush()
    await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **_client_args()
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(5, "")})
    await consumer.stop()


def test_sasl_plain_and_scram_metrics_peek_replay(sasl_kafka, write_config, run_cli):
    topic, dlt, group = "orders", "orders.DLT", "billing"
    asyncio.run(_setup(sasl_kafka.bootstrap, topic, dlt, group))

    plain = _config(write_config, sasl_kafka.bootstrap, "PLAIN", "alice", ALICE)
    result = run_cli("metrics", "--config", str(plain), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is True
    series = {(s["queue"], s["group"]): s for s in doc["series"]}
    assert series[(topic, group)]["metrics"]["consumer_lag_messages"] == 12 - 5
    assert series[(topic, group)]["dlq"] == dlt
    assert series[(topic, group)]["metrics"]["dlq_length"] == 12

    scram = _config(write_config, sasl_kafka.bootstrap, "SCRAM-SHA-256", "bob", BOB)
    peek = run_cli("dlq", "peek", "secure", dlt, "-n", "3", "--format", "json",
                   "--config", str(scram))  # fmt: skip
    assert peek.returncode == 0, peek.stderr
    assert [m["body"] for m in json.loads(peek.stdout)] == ["dead-0", "dead-1", "dead-2"]
    replay = run_cli("dlq", "replay", "secure", dlt, "--yes", "--format", "json",
                     "--config", str(scram))  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["moved"] == 12
    after = run_cli("metrics", "--config", str(scram), "--format", "json")
    doc = json.loads(after.stdout)
    lag = [s for s in doc["series"] if s["queue"] == topic and s["group"] == group]
    assert lag[0]["metrics"]["consumer_lag_messages"] == 24 - 5  # the replayed 12 arrived
    for output in (result, peek, replay, after):
        assert ALICE not in output.stdout + output.stderr
        assert BOB not in output.stdout + output.stderr


def test_sasl_wrong_password_is_one_line_without_secret(sasl_kafka, write_config, run_cli):
    wrong = "Wrong-Canary-4040"
    path = _config(write_config, sasl_kafka.bootstrap, "SCRAM-SHA-256", "bob", wrong)
    result = run_cli("metrics", "--config", str(path), "--format", "json", timeout=90)
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is False and doc["brokers"][0]["error"]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "authentication failed (SASL SCRAM-SHA-256 as 'bob')" in lines[0]
    assert "Traceback" not in result.stderr
    assert wrong not in result.stdout + result.stderr
    peek = run_cli("dlq", "peek", "secure", "orders.DLT", "--config", str(path), timeout=90)
    assert peek.returncode == 3, peek.stderr
    assert wrong not in peek.stdout + peek.stderr and "Traceback" not in peek.stderr


def _tls_config(write_config, bootstrap: str, extra: str, name: str) -> Path:
    return write_config(
        f"""
        timeout: 10s
        brokers:
          - name: tls
            type: kafka
            bootstrap_servers: "{bootstrap}"
            security_protocol: SSL
            {extra}
        """,
        name=name,
    )


def test_tls_verified_with_ca_refused_without_unless_disabled(sasl_kafka, write_config, run_cli):
    assert sasl_kafka.managed is not None and sasl_kafka.managed.workdir is not None
    ca = sasl_kafka.managed.workdir / "ca.pem"
    tls = _tls_bootstrap(sasl_kafka)

    trusted = _tls_config(write_config, tls, f"ssl_cafile: {ca}", "trusted.yaml")
    result = run_cli("metrics", "--config", str(trusted), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["brokers"][0]["up"] is True

    # the system CAs do not know the test CA: verification fails, clearly, on one line
    unknown = _tls_config(write_config, tls, "", "unknown.yaml")
    result = run_cli("metrics", "--config", str(unknown), "--format", "json", timeout=90)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "CERTIFICATE_VERIFY_FAILED" in lines[0], result.stderr

    unverified = _tls_config(write_config, tls, "tls_verify: false", "unverified.yaml")
    result = run_cli("metrics", "--config", str(unverified), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["brokers"][0]["up"] is True


def _tls_bootstrap(broker: harness.KafkaBroker) -> str:
    assert broker.managed is not None and broker.managed.workdir is not None
    props = (broker.managed.workdir / "server.properties").read_text()
    line = next(x for x in props.splitlines() if x.startswith("advertised.listeners="))
    return line.split("SSL://", 2)[-1].split(",")[0]
