"""Hostile URLs in the config: a port that is not a number. Before, `redis://:pw@host:notaport/0`
passed `config validate` and every command later failed with "internal error" (exit 3). Now
the config is refused with exit 2 (SPEC §4), file:line:column, the field and the bad port,
never the password and never a traceback; the same for every broker's URL field.
"""

from __future__ import annotations

import pytest

PASSWORD = "Pw-n0t-pr1nted"


@pytest.mark.parametrize(
    ("broker", "field", "url"),
    [
        ("redis", "url", f"redis://:{PASSWORD}@127.0.0.1:notaport/0"),
        ("rq", "url", f"redis://:{PASSWORD}@127.0.0.1:99999/0"),
        ("rabbitmq", "url", f"amqp://guest:{PASSWORD}@127.0.0.1:56x72/"),
        ("sqs", "endpoint_url", f"http://alice:{PASSWORD}@127.0.0.1:port"),
    ],
)
@pytest.mark.parametrize("command", [("config", "validate"), ("metrics",), ("queues",)])
def test_a_port_that_is_not_a_number_is_a_config_error(
    write_config, run_cli, broker, field, url, command
):
    path = write_config(
        f"""
        brokers:
          - name: b
            type: {broker}
            {field}: "{url}"
        """
    )
    if command == ("config", "validate"):
        result = run_cli(*command, str(path), timeout=60)
    else:
        result = run_cli(*command, "--config", str(path), timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{path}:4:" in result.stderr, result.stderr
    assert f"brokers[0].{field}: port " in result.stderr
    assert "is not a number from 1 to 65535" in result.stderr
    assert PASSWORD not in output
    assert "Traceback" not in output and "internal error" not in output
