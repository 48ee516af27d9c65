"""Celery on RabbitMQ, the pure parts: the options given to the rabbitmq collector (which
queues are hidden) and the task name of protocol 1 and 2 messages."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from collectors.base import matches_globs
from collectors.jobs.celery.options import CeleryOptions
from collectors.jobs.celery.rabbitmq import TaskNamedFilter, rabbitmq_options, task_name
from mqtop.kernel.filters import parse_filters

AMQP = "amqp://guest:guest@localhost:5672/"


def test_transient_queues_hidden_unless_asked():
    options = rabbitmq_options(CeleryOptions(name="tasks", url=AMQP, exclude=["tmp.*"]))
    assert options.type == "rabbitmq" and options.name == "tasks"
    hidden = [
        "celeryev.4f9c2a51-5c1e-4e8a-9a57-1c2b3d4e5f60",
        "w1@host.celery.pidbox",
        "0b6c2a51-5c1e-4e8a-9a57-1c2b3d4e5f60.reply.celery.pidbox",
        "0b6c2a51-5c1e-4e8a-9a57-1c2b3d4e5f60",  # the rpc:// result backend's reply queue
        "vh/celeryev.abc",
        "tmp.x",
    ]
    for name in hidden:
        assert not options.wants(name), name
    for name in ("celery", "emails", "emails.dlq", "celeryevents"):
        assert options.wants(name), name
    shown = rabbitmq_options(CeleryOptions(name="tasks", url=AMQP, show_internal=True))
    assert all(shown.wants(name) for name in hidden)
    assert matches_globs("celery", [], shown.exclude)


def test_url_schemes_and_credentials():
    assert CeleryOptions(name="c", url=AMQP).on_rabbitmq
    assert not CeleryOptions(name="c", url="redis://localhost:6379/0").on_rabbitmq
    with pytest.raises(ValidationError, match="amqp://"):
        CeleryOptions(name="c", url="http://localhost")
    with pytest.raises(ValidationError, match="go in the amqp:// URL"):
        CeleryOptions(name="c", url=AMQP, password="secret")


def test_task_name_from_protocol_2_header_or_protocol_1_body():
    assert task_name({"task": "app.tasks.send", "id": "1"}, b"[[], {}, {}]") == "app.tasks.send"
    assert task_name({"task": b"app.tasks.send"}, b"") == "app.tasks.send"
    v1 = json.dumps({"task": "app.tasks.old", "id": "2", "args": [], "kwargs": {}}).encode()
    assert task_name({}, v1) == "app.tasks.old"
    assert task_name({}, b"[1, 2]") is None
    assert task_name({}, b"{not json") is None
    flt = TaskNamedFilter(parse_filters(["header.class=app.tasks.old"]))
    assert flt.matches(v1, {}) and not flt.matches(b"{}", {"task": "other"})
    assert str(flt) == "header.class=app.tasks.old"
