"""Edit before replay: a message as a text document for ``$EDITOR``, and back (no Textual)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from collectors.base import PeekedMessage
from mqtop.kernel.safe import dumps, is_binary, json_safe

SEPARATOR = "--- body: everything below this line, as it is ---"
HELP = (
    "# Edit the headers (a JSON object) and the body, save and quit: mqtop then asks before it\n"
    "# replays the edited copy and removes the original. Empty the file to cancel.\n"
)
Editor = Callable[[str], "str | None"]


def edit_document(message: PeekedMessage) -> str:
    """The text an operator edits: a comment, the headers as JSON, the separator, the body."""
    if not message.body_complete:
        # the rest of the body was never read: an edited copy would replace it with nothing
        raise ValueError(
            "the broker showed only the start of this body: it cannot be edited "
            "(set browse_url to read whole bodies, or replay it as it is)"
        )
    if is_binary(message.body):
        raise ValueError(
            "this body is binary or not UTF-8: it cannot be edited as text (replay it as it is)"
        )
    headers = dumps(json_safe(dict(message.headers)), indent=2)
    return f"{HELP}{headers}\n{SEPARATOR}\n{message.body.decode('utf-8')}"


def parse_document(text: str, original: PeekedMessage) -> tuple[bytes, Mapping[str, Any]] | None:
    """The edited body and headers (None: the operator emptied the file to cancel)."""
    if not text.strip():
        return None
    head, sep, body = text.partition(f"\n{SEPARATOR}\n")
    if not sep:
        if text.rstrip("\n").endswith(SEPARATOR):  # the body was emptied
            head, body = text.rstrip("\n")[: -len(SEPARATOR)], ""
        else:
            raise ValueError(f"the line {SEPARATOR!r} is missing: cannot tell headers from body")
    lines = [line for line in head.splitlines() if not line.lstrip().startswith("#")]
    try:
        parsed = json.loads("\n".join(lines) or "{}")
    except ValueError as exc:
        raise ValueError(f"the headers are not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError("the headers must be a JSON object ({...})")
    original_body = original.body.decode("utf-8", "replace")
    if body == original_body + "\n" and not original_body.endswith("\n"):
        body = original_body  # the newline an editor adds at the end of the file
    # unchanged headers keep their exact original values (timestamps, bytes...)
    headers: Mapping[str, Any] = (
        original.headers if parsed == json_safe(dict(original.headers)) else parsed
    )
    return body.encode("utf-8"), headers


def run_editor(text: str) -> str | None:
    """Open ``text`` in ``$VISUAL`` / ``$EDITOR`` (else vi); the saved text, None on failure."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(prefix="mqtop-edit-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        done = subprocess.run([*shlex.split(command), path], check=False)
        if done.returncode != 0:
            return None
        with open(path, encoding="utf-8") as back:
            return back.read()
    finally:
        os.unlink(path)
