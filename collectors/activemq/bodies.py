"""Whole message bodies for what Jolokia only previews, read through a client protocol.

Jolokia shows a body cut at the broker's management limit. With ``browse_url`` set, the cut
bodies are read again by a queue *browser*, which has no side effect on either flavor:
* Classic, ``stomp://``: a ``browser: true`` subscription with a selector on the wanted
  JMSMessageIDs; each frame's ``message-id`` is the JMSMessageID (exact match).
* Artemis, ``amqp://``: a ``distribution-mode: copy`` link on ``address::queue``, from the
  head of the queue. An AMQP message does not carry Artemis' internal message id, so each cut
  message is matched to the browsed ones that agree with it: the dead letter's
  ``_AMQ_ORIG_MESSAGE_ID`` (unique per dead letter) or else timestamp and priority, and the
  body starting with the preview. It gets a body only when exactly one distinct body fits.
Without ``browse_url``, or when the browse fails, a cut body stays cut (``body_complete``
False, with a note saying why).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from collectors.activemq.ops import QueueRef
from collectors.activemq.options import ActiveMQOptions, Flavor
from collectors.activemq.stomp import StompFailed
from collectors.activemq.stomp import browse as stomp_browse
from collectors.base import PeekedMessage

if TYPE_CHECKING:
    from collectors.activemq.amqp import Whole

SLACK = 20  # messages browsed past the last cut one (the head may have moved meanwhile)
NO_URL = "the broker shows only the start of this body; set browse_url to read whole bodies"


def _noted(message: PeekedMessage, note: str) -> PeekedMessage:
    return dataclasses.replace(message, note=note)


def _whole(message: PeekedMessage, body: bytes) -> PeekedMessage:
    return dataclasses.replace(message, body=body, body_complete=True, body_size=None)


async def complete(
    options: ActiveMQOptions, flavor: Flavor, ref: QueueRef, messages: Sequence[PeekedMessage]
) -> list[PeekedMessage]:
    """The messages, each cut body replaced by the whole body where it can be read."""
    out = list(messages)
    cut = [i for i, m in enumerate(out) if not m.body_complete]
    if not cut:
        return out
    if options.browse_url is None:
        return [_noted(m, NO_URL) if not m.body_complete else m for m in out]
    scheme = options.browse_url.get_secret_value().partition("://")[0].lower()
    try:
        if flavor == "classic" and scheme.startswith("stomp"):
            bodies = await stomp_browse(options, ref.queue, [out[i].id for i in cut])
            for i in cut:
                if out[i].id in bodies:
                    out[i] = _whole(out[i], bodies[out[i].id])
        elif flavor == "artemis" and scheme.startswith("amqp"):
            wholes = await _artemis(options, ref, cut[-1] + 1 + SLACK)
            for i in cut:
                body = match(out[i], wholes)
                if body is not None:
                    out[i] = _whole(out[i], body)
        else:
            need = "an AMQP acceptor (amqp://)" if flavor == "artemis" else "STOMP (stomp://)"
            return _note_cut(out, f"browse_url: {flavor} browses whole bodies over {need}")
    except (StompFailed, BrowseUnavailable) as exc:
        return _note_cut(out, f"whole body not read through browse_url: {exc}")
    return _note_cut(out, "the message changed or left the queue while it was browsed")


def _note_cut(messages: list[PeekedMessage], note: str) -> list[PeekedMessage]:
    return [_noted(m, f"only the start of the body: {note}") if not m.body_complete else m
            for m in messages]  # fmt: skip


class BrowseUnavailable(Exception):
    """The AMQP browse could not be done (library missing, connection, refusal...)."""


async def _artemis(options: ActiveMQOptions, ref: QueueRef, limit: int) -> list[Whole | None]:
    try:
        from collectors.activemq import amqp
    except ImportError:
        raise BrowseUnavailable(
            "python-qpid-proton is not installed (pip install 'mqtop[activemq]')"
        ) from None
    try:
        return await asyncio.to_thread(amqp.browse, options, ref.address, ref.queue, limit)
    except amqp.BrowseFailed as exc:
        raise BrowseUnavailable(str(exc)) from None


def match(message: PeekedMessage, wholes: Sequence[Whole | None]) -> bytes | None:
    """The one whole body that fits a cut Artemis message, None when none or several do."""
    props = message.properties
    internal = props.get("broker_properties") or {}
    original = internal.get("_AMQ_ORIG_MESSAGE_ID") if isinstance(internal, dict) else None
    stamp, priority = props.get("timestamp") or None, props.get("priority")
    fits: set[bytes] = set()
    for whole in wholes:
        if whole is None or not whole.body.startswith(message.body):
            continue
        if isinstance(original, int):
            if whole.original_id != original:
                continue
        elif whole.timestamp_ms != stamp or whole.priority != priority:
            continue
        fits.add(whole.body)
    return fits.pop() if len(fits) == 1 else None
