"""YAML loading that remembers where every value came from (file:line:column).

Values are constructed by the safe loader; positions are kept in a side table keyed by the
path of keys and indexes (``("brokers", 0, "url")``), so validation errors can point at the
exact spot. Duplicate keys are errors, not silent overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]
_MAX_DEPTH = 64
_MAX_NODES = 200_000  # aliases can expand exponentially ("billion laughs")


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass
class Located:
    """Parsed YAML data plus positions of values and of mapping keys."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    problems: list[tuple[Pos | None, Path, str]] = field(default_factory=list)
    built: int = 0

    def position(self, path: Path, prefer_key: bool = False) -> Pos | None:
        """The best known position for ``path`` (walking up to the nearest known parent)."""
        probe = tuple(path)
        while True:
            if prefer_key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if probe in self.keys:
                return self.keys[probe]
            if not probe:
                return None
            probe = probe[:-1]


class YamlSyntaxError(Exception):
    """The text is not valid YAML; carries a position when the parser gave one."""

    def __init__(self, message: str, pos: Pos | None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def _offset_pos(text: str, offset: int) -> Pos:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Pos(line, column)


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str) -> Located:
    """Parse one YAML document; raise YamlSyntaxError on invalid YAML."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(
            f"invalid character: {exc.reason}", _offset_pos(text, exc.position)
        ) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            pos = Pos(mark.line + 1, mark.column + 1) if mark else None
            problem = exc.problem or exc.context or "invalid YAML"
            raise YamlSyntaxError(f"invalid YAML: {problem}", pos) from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(f"invalid YAML: {exc}", None) from None
        located = Located(data=None)
        if node is None:
            return located
        located.data = _build(loader, node, (), located, 0)
        return located
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, out: Located, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        out.problems.append((_mark(node), path, "nesting too deep"))
        return None
    out.built += 1
    if out.built > _MAX_NODES:
        if out.built == _MAX_NODES + 1:
            out.problems.append((_mark(node), path, "document too large (alias expansion?)"))
        return None
    out.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        try:
            loader.flatten_mapping(node)  # resolve "<<" merge keys
        except yaml.MarkedYAMLError as exc:
            out.problems.append((_mark(node), path, f"invalid merge: {exc.problem}"))
            return {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            try:
                key = loader.construct_object(key_node, deep=True)
            except yaml.YAMLError as exc:
                out.problems.append((_mark(key_node), path, f"invalid key: {exc}"))
                continue
            if not isinstance(key, str | int | float | bool) and key is not None:
                out.problems.append((_mark(key_node), path, "mapping keys must be scalars"))
                continue
            if isinstance(key, bool) or key is None or isinstance(key, float):
                key = str(key).lower() if key is not None else "null"
            if key in result:
                out.problems.append((_mark(key_node), (*path, key), f"duplicate key {key!r}"))
                continue
            out.keys[(*path, key)] = _mark(key_node)
            result[key] = _build(loader, value_node, (*path, key), out, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, index), out, depth + 1)
            for index, item in enumerate(node.value)
        ]
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        out.problems.append((_mark(node), path, f"invalid value: {exc}"))
        return None
