"""RabbitMQ over TLS against a private node with an AMQPS listener that requires a client
certificate (mutual TLS) and the management API on HTTPS, using a CA, a server and a client
certificate made here: metrics, peek and move work when the CA and the client certificate are
configured; without the CA verification fails on one line (exit 3), and so does AMQPS without
the client certificate; ``tls_verify: false`` turns verification off explicitly; with
``auth_mechanism: external`` the certificate is the identity (SASL EXTERNAL); the password in
the URLs never shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests import harness
from tests.conftest import _obtain
from tests.support.rabbit import Rabbit, q, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

USER = "mqtop-tls"
PASSWORD = "Rabbit-Canary-7731"  # must never appear in any output
CERT_USER = "mqtop-client"  # the CN of the client certificate (harness.make_certificates)


@dataclass
class TlsRabbit:
    broker: harness.RabbitBroker  # plain listeners: setup and cross-checks
    amqps_port: int
    https_port: int
    ca: Path


def _start() -> TlsRabbit:
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-rabbit-tls-"))
    try:
        harness.make_certificates(workdir, client=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise harness.BrokerUnavailable(f"openssl failed: {exc.stderr!r}") from None
    amqps, https = harness.free_port(), harness.free_port()
    files = (
        f"cacertfile = {workdir / 'ca.pem'}\n",
        f"certfile = {workdir / 'server.pem'}\n",
        f"keyfile = {workdir / 'server.key'}\n",
    )
    tls = (
        f"listeners.ssl.default = {amqps}\n"
        + "".join("ssl_options." + f for f in files)
        # AMQPS: mutual TLS, a client certificate signed by the CA is required
        + "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n"
        + f"management.ssl.port = {https}\nmanagement.ssl.ip = 127.0.0.1\n"
        + "".join("management.ssl." + f for f in files)
        # the client certificate may also be the identity (SASL EXTERNAL): its CN is the user
        + "auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = AMQPLAIN\n"
        + "auth_mechanisms.3 = EXTERNAL\nssl_cert_login_from = common_name\n"
    )
    broker = harness.start_rabbitmq(
        workdir=workdir, extra_config=tls, plugins=("rabbitmq_auth_mechanism_ssl",)
    )
    try:
        harness.wait_for(lambda: harness.port_open("127.0.0.1", amqps), 30, "AMQPS listener")
        harness.wait_for(lambda: harness.port_open("127.0.0.1", https), 30, "HTTPS management")
        broker.api("PUT", f"users/{USER}", {"password": PASSWORD, "tags": "administrator"})
        # the certificate's user has no password: only EXTERNAL can log it in
        broker.api("PUT", f"users/{CERT_USER}", {"password_hash": "", "tags": ""})
        for user in (USER, CERT_USER):
            broker.api(
                "PUT", f"permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
            )
    except Exception:
        broker.stop()
        raise
    return TlsRabbit(broker, amqps, https, workdir / "ca.pem")


@pytest.fixture(scope="module")
def tls_rabbit() -> Iterator[TlsRabbit]:
    node = _obtain("RabbitMQ with TLS listeners", _start)
    assert isinstance(node, TlsRabbit)
    yield node
    node.broker.stop()


def _config(
    write_config,
    node: TlsRabbit,
    prefix: str,
    extra: str,
    name: str,
    host: str = "127.0.0.1",
    client: bool = True,
) -> Path:
    # the password is in both URLs: neither may leak
    if client:  # the client certificate AMQPS requires (sent on HTTPS too, unused there)
        workdir = node.ca.parent
        extra += (
            f'\n            cert_file: "{workdir / "client.pem"}"'
            f'\n            key_file: "{workdir / "client.key"}"'
        )
    return write_config(
        f"""
        timeout: 10s
        brokers:
          - name: secure
            type: rabbitmq
            url: "amqps://{USER}:{PASSWORD}@{host}:{node.amqps_port}/"
            management_url: "https://{USER}:{PASSWORD}@{host}:{node.https_port}"
            include: ["{prefix}*"]
            {extra}
        """,
        name=name,
    )


def _fill(rabbit: Rabbit, queue: str, count: int) -> list[str]:
    conn = rabbit.connect()
    channel = conn.channel()
    channel.confirm_delivery()
    ids = [f"tls-{i}" for i in range(count)]
    for mid in ids:
        channel.basic_publish(
            "", queue, b"payload " + mid.encode(), pika.BasicProperties(message_id=mid)
        )
    conn.close()
    rabbit.connections.remove(conn)
    return ids


def _api_messages(rabbit: Rabbit, queue: str) -> int | None:
    """The management API's (5 s statistics) message count of a queue."""
    value = rabbit.api("GET", f"queues/%2F/{q(queue)}").get("messages")
    return value if isinstance(value, int) else None


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error: one line (peek's side-effect note comes before it connects)."""
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("note:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _no_secret(*results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        assert PASSWORD not in result.stdout + result.stderr


@pytest.fixture
def rabbit(tls_rabbit, unique):
    helper = Rabbit(tls_rabbit.broker, unique)
    try:
        yield helper
    finally:
        helper.cleanup()


def test_verified_with_ca_metrics_peek_move(tls_rabbit, rabbit, write_config, run_cli):
    prefix = rabbit.unique("tls")
    src, dst = rabbit.queue(prefix + ".parked"), rabbit.queue(prefix + ".work")
    ids = _fill(rabbit, src, 7)
    wait_until(
        lambda: _api_messages(rabbit, src) == 7 and _api_messages(rabbit, dst) == 0,
        30,
        "management counts of both queues",
    )
    config = _config(write_config, tls_rabbit, prefix, f'ca_file: "{tls_rabbit.ca}"', "ca.yaml")

    metrics = run_cli("metrics", "--config", str(config), "--format", "json")
    assert metrics.returncode == 0, metrics.stderr
    doc = json.loads(metrics.stdout)
    assert doc["brokers"][0]["up"] is True, doc["brokers"]
    series = {s["queue"]: s for s in doc["series"]}
    assert series[src]["metrics"]["queue_length"] == 7
    assert series[dst]["metrics"]["queue_length"] == 0

    peek = run_cli("dlq", "peek", "secure", src, "-n", "3", "--format", "json",
                   "--config", str(config))  # fmt: skip
    assert peek.returncode == 0, peek.stderr
    assert [m["id"] for m in json.loads(peek.stdout)] == ids[:3]
    assert rabbit.ready(src) == 7  # nothing consumed

    move = run_cli("dlq", "move", "secure", src, dst, "--yes", "--format", "json",
                   "--config", str(config))  # fmt: skip
    assert move.returncode == 0, move.stderr
    report = json.loads(move.stdout)
    assert (report["moved"], report["failed"]) == (7, 0)
    # nothing lost: the broker's own counts, then every id in the destination
    wait_until(
        lambda: _api_messages(rabbit, src) == 0 and _api_messages(rabbit, dst) == 7,
        30,
        "management counts after the move",
    )
    assert sorted(rabbit.snapshot_ids(dst)) == sorted(ids)
    _no_secret(metrics, peek, move)


def test_unknown_ca_fails_verification_unless_disabled(tls_rabbit, rabbit, write_config, run_cli):
    prefix = rabbit.unique("tlsv")
    src, dst = rabbit.queue(prefix + ".parked"), rabbit.queue(prefix + ".work")
    _fill(rabbit, src, 4)
    wait_until(lambda: _api_messages(rabbit, src) == 4, 30, "management count of the source")

    # the system CAs do not know the test CA: every path refuses, clearly, on one line
    unknown = _config(write_config, tls_rabbit, prefix, "", "unknown.yaml")
    metrics = run_cli("metrics", "--config", str(unknown), "--format", "json", timeout=90)
    assert metrics.returncode == 3, metrics.stdout + metrics.stderr
    assert json.loads(metrics.stdout)["brokers"][0]["up"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in _one_line(metrics)
    peek = run_cli("dlq", "peek", "secure", src, "--config", str(unknown), timeout=90)
    assert peek.returncode == 3, peek.stdout + peek.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in _one_line(peek)
    move = run_cli("dlq", "move", "secure", src, dst, "--yes", "--config", str(unknown),
                   timeout=90)  # fmt: skip
    assert move.returncode == 3, move.stdout + move.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in _one_line(move)

    # the right CA but a name the certificate does not cover: the host name is checked too
    ca = f'ca_file: "{tls_rabbit.ca}"'
    other = _config(write_config, tls_rabbit, prefix, ca, "other.yaml", host="localhost")
    metrics_name = run_cli("metrics", "--config", str(other), "--format", "json", timeout=90)
    assert metrics_name.returncode == 3, metrics_name.stdout + metrics_name.stderr
    assert "Hostname mismatch" in _one_line(metrics_name)
    peek_name = run_cli("dlq", "peek", "secure", src, "--config", str(other), timeout=90)
    assert peek_name.returncode == 3, peek_name.stdout + peek_name.stderr
    assert "Hostname mismatch" in _one_line(peek_name)
    assert (rabbit.ready(src), rabbit.ready(dst)) == (4, 0)  # nothing touched

    # verification explicitly off: works without the CA
    unverified = _config(write_config, tls_rabbit, prefix, "tls_verify: false", "off.yaml")
    metrics_off = run_cli("metrics", "--config", str(unverified), "--format", "json")
    assert metrics_off.returncode == 0, metrics_off.stderr
    doc = json.loads(metrics_off.stdout)
    assert doc["brokers"][0]["up"] is True
    assert {s["queue"]: s for s in doc["series"]}[src]["metrics"]["queue_length"] == 4
    peek_off = run_cli("dlq", "peek", "secure", src, "--format", "json",
                       "--config", str(unverified))  # fmt: skip
    assert peek_off.returncode == 0, peek_off.stderr
    assert len(json.loads(peek_off.stdout)) == 4
    _no_secret(metrics, peek, move, metrics_name, peek_name, metrics_off, peek_off)


def test_amqps_without_the_client_certificate_is_refused(tls_rabbit, rabbit, write_config, run_cli):
    """The listener requires a client certificate: without cert_file the message actions fail
    on one line (exit 3) and touch nothing; the management API (no client certificate
    required there) still gives the metrics."""
    prefix = rabbit.unique("tlsc")
    src, dst = rabbit.queue(prefix + ".parked"), rabbit.queue(prefix + ".work")
    _fill(rabbit, src, 3)
    wait_until(lambda: _api_messages(rabbit, src) == 3, 30, "management count of the source")
    ca = f'ca_file: "{tls_rabbit.ca}"'
    bare = _config(write_config, tls_rabbit, prefix, ca, "nocert.yaml", client=False)

    metrics = run_cli("metrics", "--config", str(bare), "--format", "json")
    assert metrics.returncode == 0, metrics.stderr
    assert {s["queue"]: s for s in json.loads(metrics.stdout)["series"]}[src]["metrics"][
        "queue_length"
    ] == 3
    for _ in range(3):  # the refusal shows as an alert or as EOF (TLS 1.3): both are named
        peek = run_cli("dlq", "peek", "secure", src, "--config", str(bare), timeout=90)
        assert peek.returncode == 3, peek.stdout + peek.stderr
        line = _one_line(peek)  # what the broker did, on one line
        assert f"127.0.0.1:{tls_rabbit.amqps_port} refused the TLS connection (" in line, line
        assert "CERTIFICATE_REQUIRED alert" in line or "closed during the handshake: EOF" in line
        assert "may require a client certificate (cert_file, key_file)" in line, line
    move = run_cli("dlq", "move", "secure", src, dst, "--yes", "--config", str(bare),
                   timeout=90)  # fmt: skip
    assert move.returncode == 3, move.stdout + move.stderr
    _one_line(move)
    assert (rabbit.ready(src), rabbit.ready(dst)) == (3, 0)  # nothing touched

    # a key without its certificate is a config error, found before anything connects
    broken = _config(write_config, tls_rabbit, prefix, f'{ca}\n            key_file: "x.key"',
                     "keyonly.yaml", client=False)  # fmt: skip
    invalid = run_cli("config", "validate", str(broken))
    assert invalid.returncode == 2 and "cert_file" in invalid.stderr + invalid.stdout
    _no_secret(metrics, peek, move, invalid)


def test_external_auth_uses_the_client_certificate_as_identity(
    tls_rabbit, rabbit, write_config, run_cli
):
    """SASL EXTERNAL: the certificate's user has no password, so only EXTERNAL logs it in.
    A message carrying that user as user_id keeps it (it is the publishing user)."""
    import ssl

    prefix = rabbit.unique("tlsx")
    src, dst = rabbit.queue(prefix + ".parked"), rabbit.queue(prefix + ".work")
    workdir = tls_rabbit.ca.parent
    context = ssl.create_default_context(cafile=str(tls_rabbit.ca))
    context.load_cert_chain(str(workdir / "client.pem"), str(workdir / "client.key"))
    conn = pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1",
            tls_rabbit.amqps_port,
            credentials=pika.credentials.ExternalCredentials(),
            ssl_options=pika.SSLOptions(context, "127.0.0.1"),
        )
    )
    channel = conn.channel()
    channel.confirm_delivery()
    for i in range(5):
        props = pika.BasicProperties(message_id=f"x{i}", user_id=CERT_USER if i == 0 else None)
        channel.basic_publish("", src, b"external %d" % i, props)
    conn.close()
    wait_until(lambda: _api_messages(rabbit, src) == 5, 30, "management count of the source")

    def config(mechanism: str, name: str) -> Path:
        return write_config(
            "timeout: 10s\n"
            "brokers:\n"
            "  - name: secure\n"
            "    type: rabbitmq\n"
            f'    url: "amqps://{CERT_USER}@127.0.0.1:{tls_rabbit.amqps_port}/"\n'
            f'    management_url: "https://{USER}:{PASSWORD}@127.0.0.1:{tls_rabbit.https_port}"\n'
            f'    include: ["{prefix}*"]\n'
            f'    ca_file: "{tls_rabbit.ca}"\n'
            f'    cert_file: "{workdir / "client.pem"}"\n'
            f'    key_file: "{workdir / "client.key"}"\n'
            f"    auth_mechanism: {mechanism}\n",
            name=name,
        )

    # PLAIN with the same (password-less) user is refused: one line, exit 3, nothing touched
    plain = run_cli("dlq", "move", "secure", src, dst, "--yes", "--config",
                    str(config("plain", "plain.yaml")), timeout=90)  # fmt: skip
    assert plain.returncode == 3, plain.stdout + plain.stderr
    assert "ACCESS_REFUSED" in _one_line(plain) or "uthentication" in _one_line(plain)
    assert (rabbit.ready(src), rabbit.ready(dst)) == (5, 0)

    external = config("external", "external.yaml")
    peek = run_cli("dlq", "peek", "secure", src, "-n", "5", "--format", "json",
                   "--config", str(external))  # fmt: skip
    assert peek.returncode == 0, peek.stderr
    assert [m["id"] for m in json.loads(peek.stdout)] == [f"x{i}" for i in range(5)]
    move = run_cli("dlq", "move", "secure", src, dst, "--yes", "--format", "json",
                   "--config", str(external))  # fmt: skip
    assert move.returncode == 0, move.stderr
    assert (json.loads(move.stdout)["moved"], json.loads(move.stdout)["failed"]) == (5, 0)
    assert "user_id" not in move.stderr  # the publishing user's own user_id stays
    wait_until(lambda: rabbit.ready(dst) == 5, 30, "moved")
    got = rabbit.connect().channel()
    method, props, body = got.basic_get(dst, auto_ack=False)
    assert method is not None and body == b"external 0" and props.user_id == CERT_USER

    # a key without a certificate, or EXTERNAL without TLS: config errors (exit 2)
    bad = write_config(
        f"""
        brokers:
          - name: secure
            type: rabbitmq
            url: "amqp://127.0.0.1:{tls_rabbit.broker.amqp_port}/"
            auth_mechanism: external
        """,
        name="bad.yaml",
    )
    invalid = run_cli("config", "validate", str(bad))
    assert invalid.returncode == 2 and "amqps" in invalid.stderr + invalid.stdout
    _no_secret(plain, peek, move, invalid)


def test_a_wrong_key_password_names_the_key_file(tls_rabbit, rabbit, write_config, run_cli):
    """An encrypted client key with the wrong key_password: the error names the key file and
    says what to check (not only OpenSSL's ``PEM lib (_ssl.c:...)``)."""
    prefix = rabbit.unique("tlsk")
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-tls-key-"))
    try:
        key = workdir / "encrypted.key"
        subprocess.run(
            ["openssl", "pkey", "-in", str(tls_rabbit.ca.parent / "client.key"), "-aes256",
             "-passout", "pass:the-right-one", "-out", str(key)],
            check=True, capture_output=True,
        )  # fmt: skip
        cert = tls_rabbit.ca.parent / "client.pem"
        extra = (
            f'ca_file: "{tls_rabbit.ca}"\n            cert_file: "{cert}"'
            f'\n            key_file: "{key}"\n            key_password: "not-the-password"'
        )
        path = _config(write_config, tls_rabbit, prefix, extra, "badkey.yaml", client=False)
        peek = run_cli("dlq", "peek", "secure", prefix + ".q", "--config", str(path), timeout=90)
        assert peek.returncode == 2, peek.stdout + peek.stderr
        line = _one_line(peek)
        assert f"cannot load the client certificate {cert}" in line
        assert f"with key {key}: wrong key_password" in line, line
        metrics = run_cli("metrics", "--config", str(path), "--format", "json")
        assert metrics.returncode == 3, metrics.stderr
        assert f"with key {key}: wrong key_password" in metrics.stdout + metrics.stderr
        assert "not-the-password" not in metrics.stdout + metrics.stderr + peek.stderr
        _no_secret(peek, metrics)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
