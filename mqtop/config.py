"""Configuration: typed models, file lookup, ``${VAR}`` interpolation and validation that
reports *every* problem with file:line:column and the field path."""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from alerts.config import AlertingSettings, AlertRule, NotifierConfig, default_rules
from collectors.base import BrokerOptions
from mqtop.exposition import ExporterConfig, check_target_labels
from mqtop.kernel.durations import Duration, OptionalDuration, format_duration, is_duration_field
from mqtop.kernel.errors import ConfigError, UsageError
from mqtop.kernel.paths import default_state_dir
from mqtop.kernel.secrets import redact
from mqtop.lint.config import LintConfig
from mqtop.sources.config import SourceConfig
from mqtop.yamlpos import Located, Pos, YamlSyntaxError, load_located

ENV_CONFIG = "MQTOP_CONFIG"
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoryConfig(_Strict):
    """Embedded time-series store settings."""

    retention: Duration = Field(86400.0, description="How long history is kept (rollups).")
    recent: Duration = Field(
        900.0, description="Window kept at full poll resolution (older data is rolled up)."
    )
    path: str | None = Field(
        None, description="SQLite file for persistence; history survives restarts when set."
    )

    @field_validator("retention", "recent")
    @classmethod
    def _positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be greater than 0")
        return seconds

    def resolved_path(self) -> Path | None:
        """The persistence path with ``~`` expanded (None when persistence is off)."""
        return Path(os.path.expanduser(self.path)) if self.path else None


class _RawConfig(_Strict):
    interval: Duration = Field(5.0, description="Poll period of every broker.")
    timeout: OptionalDuration = Field(
        None, description="Timeout of one poll (default: the interval, at least 5s)."
    )
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    brokers: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[dict[str, Any]] | None = None
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    notify: list[NotifierConfig] = Field(default_factory=list)
    audit_log: str | None = Field(
        None,
        description="JSON-lines audit log of writes (default ~/.local/state/mqtop/audit.jsonl).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Target labels added to every series `mqtop serve` exports and to every "
        "notification it sends (webhook, Slack, stdout, Alertmanager), e.g. "
        "`{cluster: eu-1, env: prod}`.",
    )
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Read-only fleet data (Prometheus, Thanos, Mimir): see docs/scale.md.",
    )
    lint: LintConfig = Field(
        default_factory=LintConfig,
        description="`mqtop lint` settings: suppressed findings (see docs/lint.md).",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_target_labels(value)

    @field_validator("interval")
    @classmethod
    def _interval(cls, seconds: float) -> float:
        if seconds < 0.05:
            raise ValueError("interval must be at least 50ms")
        return seconds


class Config(BaseModel):
    """The effective, validated configuration."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    interval: float = 5.0
    timeout: float | None = None
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    brokers: list[SerializeAsAny[BrokerOptions]] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=default_rules)
    alerts_from_defaults: bool = True
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    notify: list[NotifierConfig] = Field(default_factory=list)
    audit_log: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    lint: LintConfig = Field(default_factory=LintConfig)
    source: str | None = None  # file it came from (None when detected/defaulted)

    def broker(self, name: str) -> BrokerOptions:
        """Find a broker by name or raise a UsageError listing the configured names."""
        for broker in self.brokers:
            if broker.name == name:
                return broker
        names = ", ".join(b.name for b in self.brokers) or "none"
        message = f"no broker named {name!r} in the config (configured: {names})"
        if self.sources:
            message += (
                "; brokers read from a Prometheus source are read-only: add one to `brokers:` "
                "(with its credentials) to act on it"
            )
        raise UsageError(message)

    def poll_interval(self, broker: BrokerOptions) -> float:
        """Effective poll period for a broker."""
        return broker.interval or self.interval

    def poll_timeout(self, broker: BrokerOptions) -> float:
        """Effective timeout of one poll for a broker."""
        return broker.timeout or self.timeout or max(self.poll_interval(broker), 5.0)

    def audit_path(self) -> Path:
        """Where write actions are recorded."""
        if self.audit_log:
            return Path(os.path.expanduser(self.audit_log))
        return default_state_dir() / "audit.jsonl"

    def to_display(self) -> dict[str, Any]:
        """The effective config as plain data with every secret masked."""
        out: dict[str, Any] = {
            "interval": format_duration(self.interval),
            "history": {
                "retention": format_duration(self.history.retention),
                "recent": format_duration(self.history.recent),
            },
        }
        if self.timeout is not None:
            out["timeout"] = format_duration(self.timeout)
        if self.history.path:
            out["history"]["path"] = self.history.path
        out["brokers"] = [
            _display_model(b, durations={"interval", "timeout"}) for b in self.brokers
        ]
        out["alerts"] = [_display_rule(r) for r in self.alerts]
        out["alerting"] = _display_model(
            self.alerting, durations={"repeat_interval", "resolve_after", "stale_after"}
        )
        out["notify"] = [_display_model(n, durations={"timeout"}) for n in self.notify]
        if self.audit_log:
            out["audit_log"] = self.audit_log
        if self.labels:
            out["labels"] = _redact_data(dict(self.labels))
        if self.exporter != ExporterConfig():
            out["exporter"] = _display_model(self.exporter)
        if self.sources:
            out["sources"] = [
                _display_model(s, durations={"timeout", "interval"}) for s in self.sources
            ]
        if self.lint.ignore:
            out["lint"] = _display_model(self.lint)
        return out


def _display_model(model: BaseModel, durations: set[str] | None = None) -> dict[str, Any]:
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    names = set(durations or ())
    for name, info in type(model).model_fields.items():
        if is_duration_field(info.metadata):
            names.add(info.alias or name)
    for key in names:
        if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
            data[key] = format_duration(float(data[key]))
    redacted: dict[str, Any] = _redact_data(data)
    return redacted


def _display_rule(rule: AlertRule) -> dict[str, Any]:
    data = rule.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    data.setdefault("op", rule.op)
    data.setdefault("severity", rule.severity)
    if rule.for_:
        data["for"] = format_duration(rule.for_)
    if rule.window is not None:
        data["window"] = format_duration(rule.window)
    return data


def _redact_data(obj: Any) -> Any:
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: _redact_data(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_data(v) for v in obj]
    return obj


# ---------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(
    value: Any,
    env: Mapping[str, str],
    path: tuple[str | int, ...],
    problems: list[Problem],
    located: Located,
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string (``$$`` is a literal ``$``)."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group("name")
            default = match.group("default")
            if name in env and (env[name] != "" or default is None):
                return env[name]
            if default is not None:
                return default
            problems.append(
                Problem(
                    located.position(path), path, f"environment variable ${{{name}}} is not set"
                )
            )
            return ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, (*path, k), problems, located) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, (*path, i), problems, located) for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class Problem:
    """One config problem at a position."""

    pos: Pos | None
    path: tuple[str | int, ...]
    message: str

    def format(self, source: str) -> str:
        """``file:line:column: field.path: message``."""
        where = f"{source}:{self.pos.line}:{self.pos.column}" if self.pos else source
        field_path = format_path(self.path)
        text = (
            f"{where}: {field_path}: {self.message}" if field_path else f"{where}: {self.message}"
        )
        return redact(text)


def format_path(path: tuple[str | int, ...]) -> str:
    """``brokers[0].url`` style field path."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _keys_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> set[str]:
    """The keys a mapping at ``loc`` inside ``model`` may have (for "did you mean")."""
    models = [model] if model is not None else []
    for part in loc:
        if not isinstance(part, str):
            continue  # a list index: the same models
        fields = [
            f for m in models for name, f in m.model_fields.items() if part in (name, f.alias)
        ]
        if fields:
            models = [m for f in fields for m in _models_in(f.annotation)]
        # else a union's tag in the path: the models stay
    return {f.alias or name for m in models for name, f in m.model_fields.items()}


def _did_you_mean(key: object, known: set[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _pydantic_problems(
    exc: ValidationError,
    base: tuple[str | int, ...],
    located: Located,
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(
            part
            for part in err["loc"]
            if not (isinstance(part, str) and part.startswith("function-"))
        )
        # tagged unions put the tag in the path ("notify[0].webhook.url"): drop it
        path = tuple(base) + tuple(loc)
        cleaned: list[str | int] = []
        data: Any = located.data
        for part in path:
            if isinstance(data, dict) and part in data:
                cleaned.append(part)
                data = data[part]
            elif isinstance(data, list) and isinstance(part, int) and part < len(data):
                cleaned.append(part)
                data = data[part]
            elif (
                isinstance(data, dict)
                and isinstance(part, str)
                and (err["type"] not in ("extra_forbidden", "missing") or part != path[-1])
            ):
                continue  # a union tag, not a key
            else:
                cleaned.append(part)
                data = None
        kind = err["type"]
        message = _FRIENDLY.get(kind, err["msg"])
        if kind == "extra_forbidden":
            message = f"unknown key {cleaned[-1]!r}" if cleaned else "unknown key"
            if cleaned:
                message += _did_you_mean(cleaned[-1], _keys_at(model, loc[:-1]))
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        pos = located.position(tuple(cleaned), prefer_key=kind == "extra_forbidden")
        problems.append(Problem(pos, tuple(cleaned), message))
    return problems


def _validate_broker(
    entry: object, path: tuple[str | int, ...], located: Located, problems: list[Problem]
) -> BrokerOptions | None:
    """One entry of ``brokers:`` checked by its type's plugin (None, and problems, when bad)."""
    from mqtop.registry import get_plugin

    if not isinstance(entry, dict):
        problems.append(Problem(located.position(path), path, "a broker must be a mapping"))
        return None
    broker_type = entry.get("type")
    if not isinstance(broker_type, str):
        problems.append(
            Problem(located.position(path), (*path, "type"), "required key `type` is missing")
        )
        return None
    try:
        plugin = get_plugin(broker_type)
    except UsageError as exc:
        problems.append(Problem(located.position((*path, "type")), (*path, "type"), exc.message))
        return None
    try:
        options: BrokerOptions = plugin.options_model.model_validate(entry)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, path, located, plugin.options_model))
        return None
    return options


def _validate_brokers(
    entries: object, located: Located, problems: list[Problem]
) -> list[BrokerOptions]:
    """The valid entries of ``brokers:``, each name once."""
    brokers: list[BrokerOptions] = []
    names: set[str] = set()
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        path: tuple[str | int, ...] = ("brokers", index)
        options = _validate_broker(entry, path, located, problems)
        if options is None:
            continue
        if options.name in names:
            problems.append(
                Problem(
                    located.position((*path, "name")),
                    (*path, "name"),
                    f"duplicate broker name {options.name!r}",
                )
            )
            continue
        names.add(options.name)
        brokers.append(options)
    return brokers


def _validate_rules(
    alerts_data: object, located: Located, problems: list[Problem]
) -> list[AlertRule]:
    """The valid rules of ``alerts:`` (a duplicate name is a problem)."""
    rules: list[AlertRule] = []
    rule_names: set[str] = set()
    for index, entry in enumerate(alerts_data if isinstance(alerts_data, list) else []):
        path = ("alerts", index)
        try:
            rule = AlertRule.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, path, located, AlertRule))
            continue
        if rule.name in rule_names:
            problems.append(
                Problem(
                    located.position((*path, "name")),
                    (*path, "name"),
                    f"duplicate rule name {rule.name!r}",
                )
            )
        rule_names.add(rule.name)
        rules.append(rule)
    return rules


def _check_source_names(
    raw: _RawConfig, names: set[str], located: Located, problems: list[Problem]
) -> None:
    """Sources share the brokers' names: each name once across both."""
    for index, src in enumerate(raw.sources):
        if src.name in names or src.name in {s.name for s in raw.sources[:index]}:
            path = ("sources", index, "name")
            problems.append(
                Problem(
                    located.position(path),
                    path,
                    f"duplicate name {src.name!r} (brokers and sources share names)",
                )
            )


def validate_data(
    located: Located, env: Mapping[str, str] | None = None
) -> tuple[Config | None, list[Problem]]:
    """Validate parsed YAML; return the config (None when invalid) and every problem."""
    problems: list[Problem] = [Problem(pos, path, msg) for pos, path, msg in located.problems]
    env = os.environ if env is None else env
    raw_data = located.data
    if raw_data is None:
        raw_data = {}
    if not isinstance(raw_data, dict):
        problems.append(Problem(located.position(()), (), "the config must be a mapping of keys"))
        return None, problems
    data = interpolate(raw_data, env, (), problems, located)
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, (), located, _RawConfig))
        raw = None

    brokers = _validate_brokers(data.get("brokers"), located, problems)
    names = {b.name for b in brokers}
    alerts_data = data.get("alerts")
    rules = _validate_rules(alerts_data, located, problems)
    if raw is not None:
        _check_source_names(raw, names, located, problems)

    problems.sort(key=lambda p: (p.pos.line, p.pos.column) if p.pos else (0, 0))
    if problems or raw is None:
        return None, problems
    config = Config(
        interval=raw.interval,
        timeout=raw.timeout,
        history=raw.history,
        brokers=brokers,
        alerts=rules if alerts_data is not None else default_rules(),
        alerts_from_defaults=alerts_data is None,
        alerting=raw.alerting,
        notify=raw.notify,
        audit_log=raw.audit_log,
        labels=raw.labels,
        exporter=raw.exporter,
        sources=raw.sources,
        lint=raw.lint,
    )
    return config, []


def parse_text(
    text: str, source: str = "<config>", env: Mapping[str, str] | None = None
) -> tuple[Config | None, list[str]]:
    """Parse and validate YAML text; return the config and formatted problems."""
    try:
        located = load_located(text)
    except YamlSyntaxError as exc:
        return None, [Problem(exc.pos, (), exc.message).format(source)]
    except RecursionError:
        return None, [Problem(None, (), "nesting too deep").format(source)]
    try:
        config, problems = validate_data(located, env)
    except RecursionError:
        return None, [Problem(None, (), "nesting too deep").format(source)]
    if config is not None:
        config = config.model_copy(update={"source": source})
    return config, [p.format(source) for p in problems]


def read_config_file(path: Path) -> str:
    """Read a config file as text or raise a ConfigError that names it."""
    try:
        if path.is_dir():
            raise ConfigError([f"{path}: is a directory, not a config file"])
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: too large for a config file ({size} bytes)"])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([f"{path}:{line}:{col}: the file is not valid UTF-8"]) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError([f"{path}:{line}:1: the file contains a NUL byte"])
    return text


def load_config_file(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file; raise ConfigError with every problem."""
    text = read_config_file(path)
    config, problems = parse_text(text, str(path), env)
    if config is None:
        raise ConfigError(problems or [f"{path}: invalid config"], str(path))
    return config


def find_config_path(explicit: str | None) -> Path | None:
    """Config lookup order: ``--config``, ``$MQTOP_CONFIG``, ``./mqtop.yaml``,
    ``~/.config/mqtop/config.yaml``; None when there is none."""
    if explicit:
        return Path(os.path.expanduser(explicit))
    env_path = os.environ.get(ENV_CONFIG)
    if env_path:
        return Path(os.path.expanduser(env_path))
    local = Path("mqtop.yaml")
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    user = Path(xdg) / "mqtop" / "config.yaml"
    if user.is_file():
        return user
    return None


def load_config(explicit: str | None = None, detect: bool = True) -> Config:
    """Load the config by the lookup order, or detect local brokers when there is none."""
    path = find_config_path(explicit)
    if path is not None:
        return load_config_file(path)
    if not detect:
        raise UsageError("no config found (use --config, $MQTOP_CONFIG or ./mqtop.yaml)")
    return detected_config()


def detected_config() -> Config:
    """A config made of the detected brokers (only types whose collector is installed)."""
    from mqtop.detect import detect_brokers
    from mqtop.registry import get_plugin

    usable = []
    for entry in detect_brokers():
        try:
            get_plugin(entry["type"])
        except UsageError:
            continue
        usable.append(entry)
    config, _problems = validate_data(Located(data={"brokers": usable}))
    if config is None:  # a detected entry the installed collector rejects: keep the rest
        config, _ = validate_data(Located(data={}))
        assert config is not None
    return config
