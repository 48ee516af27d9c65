"""Typed move options: declared once by each plugin, turned into CLI flags and dashboard inputs.

A broker declares ``move_options`` on its :class:`collectors.base.CollectorPlugin` (a
:class:`collectors.base.MoveOptions` subclass). The CLI asks :func:`option_specs` for the flags
of every installed broker; what the operator gave is checked by :func:`build_move_options`,
the one place where an option a broker does not support is refused (exit 2).
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError

from collectors.base import MoveOptions
from mqtop.kernel.errors import UsageError

Kind = Literal["bool", "int", "float", "str", "datetime"]
_KINDS: dict[Any, Kind] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    dt.datetime: "datetime",
}
OptionsT = TypeVar("OptionsT", bound=MoveOptions)


BATCH_HELP = "messages per batch / confirm window"  # the one help text of --batch


def batch_field(le: int | None = None) -> Any:
    """The shared ``batch`` move option (``--batch N``); ``le`` is the broker's own limit.

    Every broker declares it with this one wording, so ``--batch`` means the same for all.
    """
    return Field(None, ge=1, le=le, description=BATCH_HELP, json_schema_extra={"metavar": "N"})


class BatchMoveOptions(MoveOptions):
    """Move options that are just the shared ``--batch N`` (no limit of the broker's own)."""

    batch: int | None = batch_field()


DEST_PREFIX = "move_option_"  # argparse destination of an option's flag: DEST_PREFIX + name


def flag_of(name: str) -> str:
    """The command-line flag of an option field (``keep_partition`` -> ``--keep-partition``)."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One move option as the CLI and the dashboard show it."""

    name: str
    flag: str
    kind: Kind
    help: str
    metavar: str | None
    owners: tuple[str, ...]  # broker types that declare it


def _kind(annotation: Any) -> Kind:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    base = args[0] if origin in (typing.Union, types.UnionType) and len(args) == 1 else annotation
    kind = _KINDS.get(base)
    if kind is None:
        raise TypeError(f"move option type {annotation!r}: use bool, int, float, str or datetime")
    return kind


def option_specs(declared: Mapping[str, type[MoveOptions]]) -> list[OptionSpec]:
    """The union of the options of every broker type (``type -> model``), by flag.

    One name means one thing: a name declared by two brokers with different types is a
    plugin error (TypeError).
    """
    found: dict[str, OptionSpec] = {}
    for broker_type, model in sorted(declared.items()):
        for name, info in model.model_fields.items():
            kind = _kind(info.annotation)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            metavar = extra.get("metavar")
            known = found.get(name)
            if known is None:
                found[name] = OptionSpec(
                    name=name,
                    flag=flag_of(name),
                    kind=kind,
                    help=info.description or "",
                    metavar=str(metavar) if metavar is not None else None,
                    owners=(broker_type,),
                )
            elif known.kind != kind:
                raise TypeError(
                    f"move option {name!r}: {known.owners[0]} declares {known.kind}, "
                    f"{broker_type} declares {kind}"
                )
            else:
                found[name] = OptionSpec(
                    name, known.flag, kind, known.help, known.metavar, (*known.owners, broker_type)
                )
    return sorted(found.values(), key=lambda spec: spec.flag)


def _flags(names: Iterable[str]) -> str:
    return ", ".join(flag_of(name) for name in sorted(names))


def not_supported(what: str, broker_type: str, why: str) -> UsageError:
    """The one wording of a refused option or flag (exit 2): ``--x: not supported by ...``."""
    return UsageError(f"{what}: not supported by {broker_type} brokers ({why})")


def build_move_options(
    model: type[MoveOptions], given: Mapping[str, Any], broker_type: str
) -> MoveOptions:
    """The options given (only those set) as ``model``; UsageError for anything it refuses."""
    unknown = [name for name in given if name not in model.model_fields]
    if unknown:
        own = _flags(model.model_fields)
        supported = f"its move options: {own}" if own else "it has no move options"
        raise not_supported(_flags(unknown), broker_type, supported)
    try:
        return model.model_validate(dict(given))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first["loc"][0] if first["loc"] else ""
        flag = flag_of(str(where)) if where else "move options"
        raise UsageError(f"{flag}: {first['msg']}") from None


def options_as(options: MoveOptions, model: type[OptionsT], broker_type: str) -> OptionsT:
    """A request's options as the broker's own model (defaults when none were given)."""
    if isinstance(options, model):
        return options
    if type(options) is MoveOptions:
        return model()
    raise UsageError(f"move options of another broker type given to a {broker_type} broker")
