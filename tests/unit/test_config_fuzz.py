"""Config fuzzing: any byte string as a config file gives exit 0 or 2 with a message, never a
traceback (in-process, so hypothesis can try many inputs quickly)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqtop.cli import main

YAMLISH = st.lists(
    st.sampled_from(
        [
            "interval: ",
            "brokers:",
            "  - ",
            "name: ",
            "type: ",
            "redis",
            "rabbitmq",
            "kafka",
            "sqs",
            "url: ",
            "redis://:pw@h:1/0",
            "${X}",
            "${X:-1}",
            "&a ",
            "*a",
            "[",
            "]",
            "{",
            "}",
            ":",
            "-",
            "\n",
            "  ",
            "\t",
            "5s",
            "-1",
            "1e999",
            "null",
            "~",
            "!!binary",
            "? ",
            "alerts:",
            "metric: ",
            "for: ",
            "notify:",
            "history:",
            "retention: ",
            "\x00",
            "\xff",
            "é",
            "'",
            '"',
            "#",
            "<<: *a",
            "threshold: ",
            "op: ",
        ]
    ),
    max_size=60,
).map("".join)


def _validate(tmp: Path, data: bytes) -> tuple[int, str]:
    path = tmp / "fuzz.yaml"
    path.write_bytes(data)
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["config", "validate", str(path)])
    return code, err.getvalue()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_any_bytes(tmp_path, data):
    code, err = _validate(tmp_path, data)
    assert code in (0, 2)
    assert "Traceback" not in err
    assert "internal error" not in err
    if code == 2:
        assert err.strip()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=YAMLISH)
def test_yaml_like_text(tmp_path, text):
    code, err = _validate(tmp_path, text.encode("utf-8", "surrogatepass"))
    assert code in (0, 2)
    assert "Traceback" not in err
    assert "internal error" not in err
    if code == 2:
        assert "fuzz.yaml" in err
