"""Command-line entry point. Imports stay light: each command loads what it needs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mqtop import __version__

EPILOG = """\
exit codes: 0 ok; 1 alerts firing; 2 usage or config error; 3 broker unreachable or action failed
docs: https://github.com/mqtop/mqtop/tree/main/docs"""


def _config_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="config file (default: $MQTOP_CONFIG, ./mqtop.yaml, ~/.config/mqtop/config.yaml; "
        "none: detect local brokers)",
    )


def _prometheus_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        default=None if top else argparse.SUPPRESS,
        help="also read the series of every `mqtop serve` from this Prometheus-compatible API "
        "(read-only; adds a source to the config's `sources:`)",
    )


def _broker_move_options(p: argparse.ArgumentParser) -> None:
    """One flag per move option an installed broker declares (``CollectorPlugin.move_options``)."""
    from collectors.kit.options import DEST_PREFIX
    from mqtop.registry import move_option_specs

    group = p.add_argument_group("broker options (refused by brokers that do not declare them)")
    for spec in move_option_specs():
        owners = ", ".join(spec.owners)
        text = f"{spec.help} [{owners}]" if spec.help else f"[{owners}]"
        dest = DEST_PREFIX + spec.name
        if spec.kind == "bool":
            group.add_argument(spec.flag, dest=dest, action="store_true", default=None, help=text)
            continue
        value_type = {"int": int, "float": float}.get(spec.kind, str)
        group.add_argument(
            spec.flag, dest=dest, type=value_type, metavar=spec.metavar or "VALUE", help=text
        )


def _move_options(p: argparse.ArgumentParser, brokers: bool) -> None:
    p.add_argument("--limit", type=int, metavar="N", help="move at most N messages")
    p.add_argument(
        "--filter",
        action="append",
        metavar="EXPR",
        dest="filters",
        help="only messages matching EXPR (repeatable, all must match): body:TEXT, "
        "body~REGEX, header.NAME=VALUE, json.PATH=VALUE, age>DURATION, age<DURATION",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would move; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--format", choices=["text", "json"], default="text")
    if brokers:
        _broker_move_options(p)


def build_parser(move_options: bool = True) -> argparse.ArgumentParser:
    """The full argument parser (cheap: no command module is imported).

    ``move_options`` adds the brokers' declared move flags to ``dlq replay|move``, which loads
    every broker plugin: only done when the command line is a ``dlq`` one.
    """
    parser = argparse.ArgumentParser(
        prog="mqtop",
        description="htop for message queues: RabbitMQ, Kafka, SQS and Redis in one console.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mqtop {__version__}")
    _config_option(parser, top=True)
    _prometheus_option(parser, top=True)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="run a self-contained demo: its own SQS, Redis and Kafka servers and workload",
        description="Start embedded SQS, Redis and Kafka servers and an order-processing "
        "workload, and watch them. Self-contained: no other config is read and no other broker "
        "is monitored unless --with-local-brokers is given.",
    )
    p.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="write the demo's generated config to PATH (a new file or an earlier demo config), "
        "to use it from other mqtop commands while the demo runs; default: a temporary file "
        "removed at exit. The demo never reads a config.",
    )
    p.add_argument("--headless", action="store_true", help="no UI: print JSON snapshots")
    p.add_argument("--duration", metavar="D", help="stop after D (e.g. 30s)")
    p.add_argument(
        "--with-local-brokers",
        action="store_true",
        help="also monitor brokers found on default local ports (Redis 6379, RabbitMQ "
        "5672/15672, Kafka 9092, SQS 4566), read-only, polled every 5s",
    )

    p = sub.add_parser(
        "metrics",
        help="one snapshot of every metric",
        description="One snapshot of every metric: polls twice, an interval apart, so rates "
        "exist. Ends within interval + 2 x timeout + 1s (the longest broker timeout; 1s to close "
        "connections): a broker that does not answer by its timeout is reported unreachable "
        "(exit 3) and the others are still shown.",
    )
    _config_option(p)
    _prometheus_option(p)
    p.add_argument("--format", choices=["table", "json", "prometheus"], default="table")
    p.add_argument("--broker", action="append", metavar="NAME", help="only this broker")

    p = sub.add_parser(
        "queues",
        help="discovered queues with kind and DLQ mapping",
        description="Discovered queues with their kind and DLQ mapping (one poll). Ends within "
        "timeout + 1s (the longest broker timeout; 1s to close connections): a broker that does "
        "not answer by its timeout is reported unreachable (exit 3).",
    )
    _config_option(p)
    p.add_argument("--broker", metavar="NAME", help="only this broker")
    p.add_argument("--format", choices=["table", "json"], default="table")

    p = sub.add_parser(
        "check",
        help="evaluate alert rules headless (for CI)",
        description="Evaluate the alert rules headless (for CI). --once ends within interval + "
        "2 x timeout + 1s after loading history (the longest broker timeout; 1s to close "
        "connections); --for D within D + 1s. A broker that does not answer by its timeout is "
        "reported in errors (exit 3 unless an alert fires).",
    )
    _config_option(p)
    _prometheus_option(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="poll twice, evaluate, exit (default)")
    mode.add_argument("--for", dest="for_", metavar="D", help="keep watching up to D")
    p.add_argument("--format", choices=["text", "json", "junit", "github"], default="text")
    p.add_argument("--fail-on", choices=["info", "warning", "critical"], default="warning")
    p.add_argument("--output", metavar="FILE", help="also write the report to FILE")

    p = sub.add_parser("lint", help="check the brokers' topology against best practices")
    _config_option(p)
    p.add_argument("--broker", metavar="NAME", help="only this broker")
    p.add_argument("--format", choices=["text", "json", "junit", "github", "sarif"], default="text")
    p.add_argument(
        "--fail-on",
        choices=["warning", "critical"],
        default="warning",
        help="exit 1 when a finding at or above this severity is reported (default warning)",
    )

    p = sub.add_parser("serve", help="daemon: poll, alert, serve Prometheus /metrics")
    _config_option(p)
    p.add_argument("--metrics-port", type=int, default=9321, metavar="N")
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1). /metrics has no authentication: bind "
        "another address only on a trusted network (docs/alerts.md)",
    )

    dlq = sub.add_parser("dlq", help="peek, replay, move, purge or reclaim dead letters")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION")
    dsub.required = True

    p = dsub.add_parser("peek", help="show messages without consuming them")
    _config_option(p)
    p.add_argument("broker")
    p.add_argument("queue")
    p.add_argument("-n", type=int, default=10, metavar="N", help="how many (default 10)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--max-body",
        type=int,
        default=65536,
        metavar="BYTES",
        help="truncate bodies longer than this in the output (size is kept)",
    )

    p = dsub.add_parser("replay", help="move dead letters back to their original queue")
    _config_option(p)
    p.add_argument("broker")
    p.add_argument("dlq")
    p.add_argument("--to", metavar="QUEUE", help="destination (default: the original queue)")
    _move_options(p, move_options)

    p = dsub.add_parser("move", help="move messages between two queues of one broker")
    _config_option(p)
    p.add_argument("broker")
    p.add_argument("src")
    p.add_argument("dst")
    _move_options(p, move_options)

    p = dsub.add_parser("purge", help="delete every message of a queue")
    _config_option(p)
    p.add_argument("broker")
    p.add_argument("queue")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--format", choices=["text", "json"], default="text")

    p = dsub.add_parser("reclaim", help="Redis streams: move or hand over stuck pending entries")
    _config_option(p)
    p.add_argument("broker")
    p.add_argument("stream")
    p.add_argument("--group", required=True, metavar="G")
    p.add_argument("--idle", required=True, metavar="D", help="pending longer than D (e.g. 5m)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--to", metavar="STREAM", help="move them to this dead-letter stream")
    target.add_argument("--consumer", metavar="C", help="hand them to this consumer")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--yes", "-y", action="store_true")
    p.add_argument("--format", choices=["text", "json"], default="text")

    rules = sub.add_parser("rules", help="export the alert rules for other systems")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("export", help="the configured alert rules as a Prometheus rule file")
    _config_option(p)
    p.add_argument("--format", choices=["prometheus"], default="prometheus")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (atomically)")
    p.add_argument("--group", default="mqtop", metavar="NAME", help="rule group name")
    p.add_argument(
        "--no-builtin", action="store_true", help="leave out BrokerDown and GroupStalled"
    )

    cfg = sub.add_parser("config", help="validate or show the config")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    p = csub.add_parser("validate", help="report every problem with file:line:column")
    _config_option(p)
    p.add_argument("path", nargs="?", help="config file (default: the lookup order)")
    p = csub.add_parser("show", help="print the effective config, secrets masked")
    _config_option(p)

    p = sub.add_parser("init", help="write a starter config from detected local brokers")
    p.add_argument("path", nargs="?", default="mqtop.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    return parser


# command name -> "module:function" (function takes the parsed args, returns an exit code)
COMMANDS: dict[str, str] = {
    "dashboard": "mqtop.commands.dashboard:run",
    "demo": "mqtop.commands.demo:run",
    "metrics": "mqtop.commands.metrics:run_metrics",
    "queues": "mqtop.commands.metrics:run_queues",
    "check": "mqtop.commands.check:run",
    "serve": "mqtop.commands.serve:run",
    "lint": "mqtop.commands.lint:run",
    "dlq": "mqtop.commands.dlq:run",
    "config": "mqtop.commands.configcmd:run",
    "rules": "mqtop.commands.rules:run",
    "init": "mqtop.commands.init:run",
}


def _setup_logging(verbose: int) -> None:
    import logging

    from mqtop.kernel.secrets import install_log_redaction

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(move_options="dlq" in words)
    args = parser.parse_args(words)
    command = args.command or "dashboard"
    try:
        _setup_logging(args.verbose)
        module_name, _, func_name = COMMANDS[command].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("mqtop.commands"):
                from mqtop.kernel.errors import UsageError

                raise UsageError(
                    f"the {command!r} command is not available in this build"
                ) from None
            raise
        code: int = getattr(module, func_name)(args)
        return code
    except KeyboardInterrupt:
        print("mqtop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `mqtop metrics | head`): not an error worth a traceback
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except Exception as exc:
        return _report(exc)


def _report(exc: BaseException) -> int:
    from mqtop.kernel.errors import ConfigError, MqtopError
    from mqtop.kernel.safe import safe_text
    from mqtop.kernel.secrets import redact

    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            print(safe_text(redact(problem)), file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, MqtopError):
        print(f"mqtop: {safe_text(redact(exc.message))}", file=sys.stderr)
        return exc.exit_code
    if os.environ.get("MQTOP_DEBUG"):
        raise exc
    text = safe_text(redact(f"{type(exc).__name__}: {exc}"), max_len=500)
    print(f"mqtop: internal error: {text} (set MQTOP_DEBUG=1 for a traceback)", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
