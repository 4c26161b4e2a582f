"""--set KEY=VALUE: overrides applied to a config's raw tree before it is validated."""

from __future__ import annotations

from snn_lab.yamlio import ConfigError, Problem, dotted, parse

SHARED_KEYS = ("width", "depth", "batch", "dtype", "input")  # top-level defaults a series may override


def apply(tree: dict, lines: dict, overrides, problems, source: str = "the config") -> tuple[dict, dict]:
    """Apply --set KEY=VALUE overrides (VALUE read as YAML) to the raw tree (from file `source`)."""
    for text in overrides:
        where = f"--set {text}"
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(where, "", "expected KEY=VALUE, e.g. depth=200 or series.0.activation=tanh"))
            continue
        try:
            parsed, _ = parse(value, where)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        path = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
        node, ok = tree, True
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list) and isinstance(part, int):
                if part >= len(node):
                    problems.append(Problem(where, dotted(path[:i + 1]),
                                            f"no such series: the config has {len(node)} (indices 0..{len(node) - 1})"))
                    ok = False
                    break
                node = node[part]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
            else:
                problems.append(Problem(where, dotted(path[:i + 1]), "cannot set a key inside a plain value"))
                ok = False
                break
        if not ok:
            continue
        last = path[-1]
        if isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = parsed
        elif isinstance(node, dict):
            node[last] = parsed
        else:
            problems.append(Problem(where, dotted(path), "cannot set this key"))
            continue
        for p in [p for p in lines if p[:len(path)] == path]:
            del lines[p]
        for n in range(1, len(path) + 1):
            lines.setdefault(path[:n], where)
        lines[path] = where
        if path[0] in SHARED_KEYS:
            shadowed(tree, lines, path, parsed, where, problems, source)
    return tree, lines


def shadowed(tree: dict, lines: dict, path: tuple, value, where: str, problems, source: str) -> None:
    """A --set of a top-level default that every series overrides with its own value changes
    nothing: refused, naming a series that sets it, rather than run as if it had applied."""
    series = tree.get("series")
    if not isinstance(series, list) or not series:
        return
    if all(isinstance(s, dict) and _covers(s, path, value) for s in series):
        key = dotted(path)
        line = lines.get(("series", 0, *path), lines.get(("series", 0)))
        at = f"{source}:{line}" if isinstance(line, int) else source
        problems.append(Problem(where, key, f"changes no series: each series sets its own {key} (series 0 at "
                                f"{at}), which wins over the top-level value; set series.0.{key} and so on "
                                f"for each series, or remove the series' own {key} from the file"))


def _covers(node: dict, path: tuple, value) -> bool:
    """Whether node sets path itself (every key of a mapping value), hiding a top-level value."""
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(value, dict):
        return all(_covers(node, (k,), v) for k, v in value.items())
    return True


def relabel(tree: dict, overrides) -> None:
    """A series whose activation or init --set changed, and not its label, drops the label its
    file gave it (it named the old series: 'SELU' on a ReLU); it gets the default 'relu-he_normal'."""
    changed, named = set(), set()
    for text in overrides:
        path = text.partition("=")[0].strip().split(".")
        if len(path) >= 3 and path[0] == "series" and path[1].isdigit():
            (named if path[2] == "label" else changed if path[2] in ("activation", "init") else set()).add(int(path[1]))
    series = tree.get("series")
    for i in changed - named:
        if isinstance(series, list) and i < len(series) and isinstance(series[i], dict):
            series[i].pop("label", None)
