"""Hostile payloads: nothing raw reaches a terminal (pure rendering functions + peek JSON)."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.base import Death, PeekedMessage
from mqtop.commands.dlq import peek_json
from mqtop.kernel.safe import body_preview, dumps, hexdump, pretty_body, safe_text

# Anything that can move the cursor, recolour, retitle, or reorder text on a terminal.
DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

ESCAPES = [
    b"\x1b[2J\x1b[H",  # clear screen
    b"\x1b]0;pwned\x07",  # set window title
    b"\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",  # hyperlink
    b"\x9b31m",  # 8-bit CSI
    "\u202egnp.exe".encode(),  # right-to-left override
    b"\r\x08\x08\x08ok",  # overwrite what was printed
]


def _clean(text: str, allow_newline: bool = False) -> bool:
    if allow_newline:
        text = text.replace("\n", "")
    return DANGEROUS.search(text) is None


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=2000))
def test_random_bytes_render_inert(body):
    assert _clean(body_preview(body))
    assert _clean(pretty_body(body), allow_newline=True)
    assert _clean(hexdump(body), allow_newline=True)
    doc = dumps(peek_json(PeekedMessage(id="1", body=body), 65536))
    assert doc.isascii()  # JSON output escapes every non-ASCII and control character
    back = json.loads(doc)
    assert back["size"] == len(body)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=500))
def test_random_text_render_inert(text):
    assert _clean(safe_text(text))
    assert _clean(safe_text(text, multiline=True), allow_newline=True)


def test_known_escape_sequences_are_escaped():
    for body in ESCAPES:
        preview = body_preview(body)
        assert "\x1b" not in preview and "\x9b" not in preview and "\u202e" not in preview
        assert _clean(preview)
        assert _clean(pretty_body(body), allow_newline=True)
    assert safe_text("a\x1b[31mred") == "a\\x1b[31mred"


def test_invalid_utf8_is_base64_in_json_and_hex_in_viewer():
    body = b"\xff\xfe\x00\x1b[2J"
    out = peek_json(PeekedMessage(id="x", body=body), 1024)
    assert out["body_encoding"] == "base64"
    assert pretty_body(body).startswith("00000000  ff fe 00 1b")


def test_huge_body_truncated_with_size():
    body = b"A" * (10 * 1024 * 1024)
    out = peek_json(PeekedMessage(id="big", body=body), 65536)
    assert out["size"] == len(body)
    assert out["truncated"] is True
    assert len(out["body"]) == 65536
    preview = body_preview(body, 80)
    assert len(preview) < 120 and str(len(body) - 80) in preview
    assert len(pretty_body(body)) < 70_000


def test_truncation_inside_utf8_sequence_stays_utf8():
    body = ("é" * 100).encode()
    out = peek_json(PeekedMessage(id="u", body=body), 51)  # cuts a 2-byte character
    assert out["body_encoding"] == "utf8"
    assert out["body"] == "é" * 25


def test_headers_and_death_are_json_safe():
    message = PeekedMessage(
        id="h",
        body=b"{}",
        headers={"x-bin": b"\xff\x00", "x-text": b"hello", "nested": {"k": [b"\x1b"]}},
        properties={"timestamp": 123},
        death=Death(reason="rejected", count=3, original_queue="orders"),
    )
    out = peek_json(message, 1024)
    assert out["headers"]["x-bin"] == {"base64": "/wA="}
    assert out["headers"]["x-text"] == "hello"
    assert out["death"] == {"reason": "rejected", "count": 3, "original_queue": "orders"}
    assert dumps(out).isascii()


@settings(max_examples=300)
@given(st.text())
def test_a_name_printed_escaped_reads_back_as_itself(text):
    from mqtop.kernel.safe import unescape_text

    if "\\" not in text:  # safe_text leaves backslashes alone: only those names round-trip
        assert unescape_text(safe_text(text)) == text


def test_unescape_reads_back_only_what_safe_text_escapes():
    from mqtop.kernel.safe import unescape_text

    assert unescape_text("celery\\x06\\x163") == "celery\x06\x163"
    assert unescape_text("a\\tb\\u202ec\\x9b") == "a\tb\u202ec\x9b"
    # text safe_text never writes as an escape stays as typed
    assert unescape_text("C:\\x41\\xff\\u00e9\\q") == "C:\\x41\\xff\\u00e9\\q"
    assert unescape_text("plain") == "plain"


def test_every_json_writer_is_strict():
    """NaN and Infinity become null in the terminal JSON and the demo's JSON lines."""
    import io
    import json
    import math
    from types import MappingProxyType

    from mqtop.demo.runner import json_line
    from mqtop.kernel.safe import dumps

    data = {
        "a": math.inf,
        "b": [-math.inf, math.nan, 1.5],
        "c": MappingProxyType({"d": (math.nan,)}),
    }

    def refuse(token):
        raise AssertionError(token)

    assert json.loads(dumps(data), parse_constant=refuse) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": {"d": [None]},
    }
    out = io.StringIO()
    json_line(out)(data)
    assert json.loads(out.getvalue(), parse_constant=refuse)["b"] == [None, None, 1.5]
