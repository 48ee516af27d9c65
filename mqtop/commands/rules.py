"""``mqtop rules export --format prometheus``: the alert rules as a Prometheus rule file."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from alerts.promrules import render
from mqtop.config import Config, find_config_path, load_config_file
from mqtop.kernel.errors import EXIT_OK, UsageError
from mqtop.kernel.safe import safe_text


def _config(args: argparse.Namespace) -> Config:
    """The config by the lookup order; the shipped defaults when there is none (no detection:
    exporting rules never needs a broker)."""
    path = find_config_path(getattr(args, "config", None))
    return Config() if path is None else load_config_file(path)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so Prometheus never loads half a file."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Print (or write to ``--output``) the rule file."""
    config = _config(args)
    source = config.source or "the shipped default rules (no config file)"
    text = render(
        config.alerts,
        group=args.group,
        builtin=not args.no_builtin,
        source=safe_text(source),
    )
    if args.output:
        _write_atomically(Path(args.output), text)
        count = text.count("\n  - alert: ")
        print(f"wrote {safe_text(args.output)} ({count} rules)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
