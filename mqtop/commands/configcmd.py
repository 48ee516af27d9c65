"""``mqtop config validate`` and ``mqtop config show``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from mqtop.config import find_config_path, load_config, parse_text, read_config_file
from mqtop.kernel.errors import EXIT_OK, EXIT_USAGE, ConfigError, UsageError
from mqtop.kernel.safe import safe_text


def run(args: argparse.Namespace) -> int:
    """Dispatch ``config validate|show``."""
    if args.config_command == "validate":
        return validate(args)
    return show(args)


def validate(args: argparse.Namespace) -> int:
    """Report every problem with file:line:column and the field path; exit 2 when invalid."""
    path = Path(args.path) if args.path else find_config_path(getattr(args, "config", None))
    if path is None:
        raise UsageError("no config file to validate (give a PATH or use --config)")
    try:
        text = read_config_file(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(safe_text(problem), file=sys.stderr)
        return EXIT_USAGE
    config, problems = parse_text(text, str(path))
    if config is None:
        for problem in problems:
            print(safe_text(problem), file=sys.stderr)
        count = len(problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_USAGE
    rules = "default rules" if config.alerts_from_defaults else _count(len(config.alerts), "rule")
    print(
        f"{safe_text(str(path))}: ok ({_count(len(config.brokers), 'broker')}, {rules}, "
        f"{_count(len(config.notify), 'notifier')})"
    )
    return EXIT_OK


def _count(count: int, word: str) -> str:
    """``1 broker``, ``2 brokers``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def show(args: argparse.Namespace) -> int:
    """Print the effective config as YAML with every secret masked."""
    config = load_config(getattr(args, "config", None))
    source = config.source or "detected local brokers (no config file)"
    print(f"# effective config from {safe_text(source)}")
    print(yaml.safe_dump(config.to_display(), sort_keys=False, allow_unicode=False), end="")
    return EXIT_OK
