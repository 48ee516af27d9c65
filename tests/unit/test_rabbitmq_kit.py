"""RabbitMQ on the shared move kit and TLS contexts: the same flag, wording and contexts as
every other broker (no broker needed)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from collectors.kit.options import BATCH_HELP, build_move_options
from collectors.rabbitmq.options import RabbitMQMoveOptions, RabbitMQOptions, ssl_context
from mqtop.kernel.errors import ConfigError, UsageError


def test_batch_is_the_shared_field_with_amqps_largest_prefetch():
    field = RabbitMQMoveOptions.model_fields["batch"]
    assert field.description == BATCH_HELP and field.default is None
    assert build_move_options(RabbitMQMoveOptions, {"batch": 65_535}, "rabbitmq").batch == 65_535  # type: ignore[attr-defined]
    for bad in (0, 65_536):
        with pytest.raises(UsageError, match=r"^--batch: Input should be"):
            build_move_options(RabbitMQMoveOptions, {"batch": bad}, "rabbitmq")


def test_context_verifies_by_default_and_not_when_told():
    verified = ssl_context(RabbitMQOptions(name="r", url="amqps://h/"))
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    loose = ssl_context(RabbitMQOptions(name="r", url="amqps://h/", tls_verify=False))
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname


def test_a_client_certificate_that_cannot_be_read_names_the_broker_and_files(tmp_path: Path):
    cert = tmp_path / "missing.pem"
    options = RabbitMQOptions(name="r", url="amqps://h/", cert_file=str(cert))
    with pytest.raises(ConfigError) as caught:
        ssl_context(options)
    assert str(caught.value).startswith(
        f"broker 'r': cannot load the client certificate {cert} with key {cert}: "
        "cannot read the file ("
    )


def test_a_key_that_is_not_a_key_says_what_to_check(tmp_path: Path):
    cert = tmp_path / "client.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    plain = RabbitMQOptions(name="r", url="amqps://h/", cert_file=str(cert))
    with pytest.raises(ConfigError, match="an encrypted key needs key_password"):
        ssl_context(plain)
    protected = RabbitMQOptions(
        name="r", url="amqps://h/", cert_file=str(cert), key_password="not-it"
    )
    with pytest.raises(ConfigError, match="wrong key_password") as caught:
        ssl_context(protected)
    assert "not-it" not in str(caught.value)
