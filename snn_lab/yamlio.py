"""Safe YAML reading that keeps line numbers and refuses YAML's traps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from snn_lab.errors import SnnLabError

Path = tuple  # a key path: ("series", 0, "activation")

MAX_NODES = 100_000  # an alias bomb ("billion laughs") expands past this


@dataclass(frozen=True)
class Problem:
    """One located config problem: where (file:line or --set ...), key path, message."""

    where: str
    key: str
    message: str

    def __str__(self) -> str:
        text = f"{self.where}: {self.key}: {self.message}" if self.key else f"{self.where}: {self.message}"
        return printable(text)  # a hostile key or --set text never reaches the terminal raw


# Control characters (C0, DEL, C1: Unicode category Cc) and the bidirectional overrides, which
# rewrite how a terminal shows the rest of a line: refused in config text, escaped in messages.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def control(text: str) -> re.Match | None:
    """The first control character of a text, if any."""
    return _CONTROL.search(text)


def printable(text: str) -> str:
    """The text with control characters shown as escapes (\\x1b, \\u202e)."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


class ConfigError(SnnLabError):
    """Every problem found in a config, each located; the CLI exits 2 with them."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = list(problems)


def dotted(path: Path) -> str:
    """('series', 0, 'init') -> 'series.0.init', the same syntax --set takes."""
    return ".".join(str(p) for p in path)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float, as YAML 1.2 and every user expects."""


_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))

# safe_dump must quote what _Loader reads as a float ('1e3'), or a label or name written to a
# results folder's config.yaml would read back as a number (yaml.safe_dump uses SafeDumper).
yaml.SafeDumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))

_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


def parse(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """YAML text -> (plain Python tree, line of every key path); ConfigError if unreadable."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError([Problem(line, "", f"not valid YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(source, "", f"not valid YAML: {' '.join(str(exc).split())}")]) from None
    except RecursionError:
        raise ConfigError([Problem(source, "", "not valid YAML: nesting too deep")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None, {}
    walker = _Walker(loader, source)
    try:
        tree = walker.build(node, ())
    except RecursionError:
        raise ConfigError([Problem(source, "", "nesting too deep")]) from None
    if walker.problems:
        raise ConfigError(walker.problems)
    return tree, walker.lines


class _Walker:
    """Builds plain values from composed nodes, recording lines and refusing traps."""

    def __init__(self, loader: yaml.SafeLoader, source: str):
        self.loader, self.source = loader, source
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.active: set[int] = set()

    def fail(self, node, path: Path, message: str) -> None:
        problem = Problem(f"{self.source}:{node.start_mark.line + 1}", dotted(path), message)
        if problem not in self.problems:  # a mapping's keys are read twice (duplicates, then values)
            self.problems.append(problem)

    def build(self, node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.fail(node, path, f"document expands to more than {MAX_NODES} values (alias bomb?)")
            return None
        self.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in _PLAIN_TAGS:
            self.fail(node, path, f"tag {node.tag!r} is not allowed (plain YAML values only)")
            return None
        if id(node) in self.active:
            self.fail(node, path, "recursive alias")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            value = self.loader.construct_object(node, deep=True)
            if isinstance(value, str) and (bad := control(value)):
                self.fail(node, path, f"text contains a control character ({printable(bad[0])} at "
                          f"position {bad.start()}); config text must be printable")
                return None
            return value
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.fail(node, path, f"cannot read value: {exc}")
            return None
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        explicit: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node, path)
            if key in explicit:
                self.fail(key_node, path + (key,),
                          f"duplicate key (first given at line {explicit[key]}); each key may appear once")
            explicit.setdefault(key, key_node.start_mark.line + 1)
        self.loader.flatten_mapping(node)  # '<<' merges: explicit keys override merged ones
        out: dict = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            out[key] = self.build(value_node, path + (key,))
        return out

    def _key(self, key_node, path: Path):
        if not isinstance(key_node, ScalarNode) or key_node.tag not in _PLAIN_TAGS:
            self.fail(key_node, path, "keys must be plain scalars")
            return f"<line {key_node.start_mark.line + 1}>"
        key = self.loader.construct_object(key_node)
        if isinstance(key, str) and control(key):
            self.fail(key_node, path, f"key '{printable(key)}' contains a control character; keys must be printable")
            return printable(key)
        return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)
