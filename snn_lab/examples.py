"""The shipped example configs (package data in snn_lab/configs/): listed, found by name, copied."""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

DEFAULT = "selu_vs_relu"  # `snn-lab run` with no CONFIG


def _folder():
    return resources.files("snn_lab").joinpath("configs")


def names() -> list[str]:
    """Every example's name (its file name without .yaml), sorted."""
    return sorted(f.name[:-5] for f in _folder().iterdir() if f.name.endswith(".yaml"))


def text(name: str) -> str:
    """An example's YAML."""
    return _folder().joinpath(f"{name}.yaml").read_text("utf-8")


def summary(name: str) -> str:
    """An example's one-line description: the first line of its leading comment."""
    for line in text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def path(name: str) -> Path:
    """An example's file, for reading in place (an installed package keeps it on disk)."""
    return Path(str(_folder().joinpath(f"{name}.yaml")))


def resolve(config: str) -> tuple[str, str] | None:
    """(source name, YAML) of an example named by `config` ('selu_recovers' or
    'selu_recovers.yaml'), when no file of that name exists; None otherwise."""
    if os.path.lexists(config) or os.sep in config or (os.altsep and os.altsep in config):
        return None
    name = config[:-5] if config.endswith(".yaml") else config
    return (f"<example: {name}>", text(name)) if name in names() else None


def nearest(config: str) -> str | None:
    """The example whose name is closest to what the user typed (a path's stem counts)."""
    stem = Path(config).name
    stem = stem[:-5] if stem.endswith(".yaml") else stem
    match = difflib.get_close_matches(stem, names(), n=1, cutoff=0.6)
    return match[0] if match else None
