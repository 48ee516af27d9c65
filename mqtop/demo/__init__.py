"""``mqtop demo``: local protocol servers, an order-processing workload, and the normal pipeline.

The demo needs nothing beyond ``pip install '.[demo]'`` in the mqtop checkout. A backend process
(:mod:`mqtop.demo.backend`) starts an SQS endpoint (moto), a Redis-protocol server (fakeredis)
and a Kafka-compatible broker (tansu) on free loopback ports and runs the workload against them.
The ``mqtop demo`` process (:mod:`mqtop.demo.runner`) writes an ordinary config naming those
servers (plus, with ``--with-local-brokers``, brokers already listening on default local
ports) and runs the ordinary engine,
alert evaluator and dashboard on it: the collectors read the demo servers like any broker.
"""

from __future__ import annotations

DEMO_BROKERS: tuple[str, ...] = ("demo-sqs", "demo-redis", "demo-kafka")
