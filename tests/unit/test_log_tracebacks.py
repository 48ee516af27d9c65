"""With -v/-vv, a traceback logged by a client library (``exc_info``) is masked like the
message: before, the filter ran before the formatter rendered the traceback, so an exception
whose text held a registered secret (a URL with its password) was printed in clear."""

from __future__ import annotations

import io
import logging

from mqtop.kernel.secrets import REDACTOR, install_log_redaction

SECRET = "Tr4ceback-pw-9"


def test_a_logged_traceback_never_prints_a_secret() -> None:
    REDACTOR.register(SECRET)
    stream = io.StringIO()
    logger = logging.getLogger("mqtop.test.tracebacks")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    install_log_redaction(logger)
    try:
        try:
            raise ConnectionError(f"cannot reach http://alice:{SECRET}@127.0.0.1:1/")
        except ConnectionError:
            logger.error("request failed", exc_info=True)
        logger.warning("where", stack_info=True, extra={"x": SECRET})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "ConnectionError: cannot reach http://alice:" in text
    assert SECRET not in text
