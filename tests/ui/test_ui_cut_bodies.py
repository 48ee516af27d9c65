"""Bodies a broker showed only the start of (an ActiveMQ preview without ``browse_url``): the DLQ
browser says so in the list, the viewer and the export, and refuses to edit them."""

from __future__ import annotations

import pytest

from collectors.base import PeekedMessage
from mqtop.dlq.export import message_json
from mqtop.ui.dlq_edit import edit_document
from mqtop.ui.dlq_rows import message_row
from mqtop.ui.dlq_viewer import message_text

PREVIEW = b'{"order": 1, "lines": ["aaaa'


def cut(size: int | None) -> PeekedMessage:
    return PeekedMessage(id="ID:1", body=PREVIEW, body_complete=False, body_size=size)


def test_list_shows_the_whole_size_or_at_least_the_preview() -> None:
    assert message_row(cut(5000), 0.0).size == "4.9 KiB"
    assert message_row(cut(None), 0.0).size == f"≥{len(PREVIEW)} B"
    assert message_row(PeekedMessage(id="ID:2", body=PREVIEW), 0.0).size == f"{len(PREVIEW)} B"


def test_viewer_says_the_body_is_only_its_start() -> None:
    text = message_text(cut(5000), 0.0).plain
    assert f"5000 bytes, of which the broker showed the first {len(PREVIEW)}" in text
    assert "only the start the broker showed" in text
    unknown = message_text(cut(None), 0.0).plain
    assert f"?, of which the broker showed the first {len(PREVIEW)}" in unknown
    whole = message_text(PeekedMessage(id="ID:2", body=PREVIEW), 0.0).plain
    assert "only the start" not in whole and f"({len(PREVIEW)} bytes)" in whole


def test_export_marks_a_cut_body_like_dlq_peek() -> None:
    record = message_json(cut(5000))
    assert record["truncated"] is True and record["size"] == 5000
    assert record["body"] == PREVIEW.decode()
    assert message_json(cut(None))["size"] is None
    whole = message_json(PeekedMessage(id="ID:2", body=PREVIEW))
    assert "truncated" not in whole and whole["size"] == len(PREVIEW)


def test_a_cut_body_cannot_be_edited() -> None:
    # an edited copy of a preview would replace the rest of the body with nothing
    with pytest.raises(ValueError, match="only the start of this body"):
        edit_document(cut(5000))
    assert PREVIEW.decode() in edit_document(PeekedMessage(id="ID:2", body=PREVIEW))
