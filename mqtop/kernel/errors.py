"""Errors that map to the exit codes of the command-line contract."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FIRING = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class MqtopError(Exception):
    """An error with a one-line message for the operator and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(MqtopError):
    """Bad command-line usage (exit 2)."""

    exit_code = EXIT_USAGE


SAME_QUEUE = "source and destination are the same queue"  # a move's UsageError, worded once


class ConfigError(MqtopError):
    """One or more problems in a config file (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        head = problems[0] if problems else "invalid config"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(head + more)


class BrokerUnreachable(MqtopError):
    """A broker could not be reached (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class ActionFailed(MqtopError):
    """A message action failed part-way (exit 3); the report says what was done."""

    exit_code = EXIT_UNREACHABLE


class ReadOnlyBroker(MqtopError):
    """A write was asked of a broker configured ``readonly: true`` (exit 2)."""

    exit_code = EXIT_USAGE


class UnsupportedAction(MqtopError):
    """The broker or queue kind cannot do what was asked (exit 2)."""

    exit_code = EXIT_USAGE
