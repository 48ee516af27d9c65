"""ElasticMQ, an SQS-compatible server that implements StartMessageMoveTask (moto does not).

Its jars come from Maven Central into the cache once (``fetch_elasticmq``, also run by
``.ci/run``: ``python -m tests.support.elasticmq``); each test module starts a private server
in memory with strict SQS limits on a free port.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.harness import (
    CACHE,
    BrokerUnavailable,
    Managed,
    SqsBroker,
    _spawn,
    fetch_maven,
    free_port,
    java17,
    port_open,
    wait_for,
)

ELASTICMQ_VERSION = "1.6.11"
ELASTICMQ_ARTIFACT = f"org.elasticmq:elasticmq-server_2.13:{ELASTICMQ_VERSION}"
ELASTICMQ_LIBS = Path(
    os.environ.get("MQTOP_ELASTICMQ_LIBS", CACHE / f"elasticmq-{ELASTICMQ_VERSION}" / "libs")
)


def fetch_elasticmq(libs: Path = ELASTICMQ_LIBS) -> Path:
    """ElasticMQ's jars from Maven Central, cached (once)."""
    return fetch_maven(ELASTICMQ_ARTIFACT, libs, "elasticmq-server_2.13-*.jar", "ElasticMQ")


def start_elasticmq() -> SqsBroker:
    """Start ElasticMQ (in memory, strict SQS limits) on a free port."""
    libs = fetch_elasticmq()
    java = java17()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-elasticmq-"))
    conf = workdir / "elasticmq.conf"
    conf.write_text(
        'include classpath("application.conf")\n'
        f"node-address {{ protocol = http, host = 127.0.0.1, port = {port}, "
        'context-path = "" }\n'
        f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", '
        "sqs-limits = strict }\n"
        "rest-stats { enabled = false }\n"
        'aws { region = "us-east-1", accountId = "000000000000" }\n'
    )
    proc, log = _spawn(
        [
            java,
            "-Xms64m",
            "-Xmx384m",
            f"-Dconfig.file={conf}",
            "-cp",
            f"{libs}/*",
            "org.elasticmq.server.Main",
        ],
        workdir,
    )
    broker = SqsBroker(f"http://127.0.0.1:{port}", managed=Managed(proc, workdir))
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 90, "ElasticMQ", proc, log)
    except BrokerUnavailable:
        broker.stop()
        raise
    return broker


if __name__ == "__main__":
    print(fetch_elasticmq())
