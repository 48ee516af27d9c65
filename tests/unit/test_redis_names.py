"""Redis key names typed back as mqtop prints them (pure: no Redis needed)."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from collectors.redis.codecs import MAX_AMBIGUOUS, key_candidates, text
from mqtop.kernel.safe import safe_text


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_every_printed_key_is_among_what_its_printed_form_means(raw):
    # safe_text leaves a backslash as it is: a name with its own "\r" text is ambiguous
    assume(b"\\" not in raw)
    printed = safe_text(text(raw))  # what `mqtop queues` shows (invalid bytes as \xNN)
    # \x80-\x9f is a C1 character or a raw byte: beyond a few, only uniform readings are tried
    assume(len(re.findall(r"\\x[89][0-9a-f]", printed)) <= MAX_AMBIGUOUS)
    assert raw in key_candidates(printed)
    assert raw in key_candidates(text(raw))  # what the dashboard passes on


def test_candidates_most_literal_first():
    assert key_candidates("jobs") == [b"jobs"]
    assert key_candidates("celery\\x06\\x163") == [b"celery\\x06\\x163", b"celery\x06\x163"]
    assert key_candidates("bin:\\xff") == [b"bin:\\xff", b"bin:\xff"]
    # \x80-\x9f: a C1 control character as text, or a raw byte
    assert key_candidates("c\\x85") == [b"c\\x85", "c\x85".encode(), b"c\x85"]
    # mixed: a raw byte, then a C1 character
    assert b"\x80\xc2\x80" in key_candidates("\\x80\\x80")
    # a command-line argument carrying raw bytes (PEP 383 surrogates)
    assert key_candidates(b"q\xff".decode("utf-8", "surrogateescape")) == [b"q\xff"]
