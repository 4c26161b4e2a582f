"""The registry and helpers of docs/quoted_numbers.py: a block's generator, seeded runs, formats."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- numbers: ([\w-]+) -->(.*?)<!-- /numbers -->", re.DOTALL)


@dataclass(frozen=True)
class Numbers:
    """One block: its page, its kind, the function writing its text, and (costly) its format."""

    page: str
    kind: str
    make: Callable[[], str]
    form: str | None = None  # costly: a regex the block's text must match
    slow: bool = False  # a rerun of seconds: compared in the slow docs test (once in .ci/run)


GENERATORS: dict[str, Numbers] = {}


class Unavailable(Exception):
    """A generator cannot run here (the compiled backend was not built): its block is left as it is."""


def numbers(name: str, page: str, kind: str = "rerun", form: str | None = None, slow: bool = False):
    def register(fn):
        GENERATORS[name] = Numbers(page, kind, fn, form, slow)
        return fn
    return register


def summary(**config) -> dict:
    """The summary table of a seeded run of this config (snn_lab.api, as `snn-lab run` runs it)."""
    from snn_lab import api

    return api.run({"name": "numbers", "seed": 0, **config}).summary


def at(table: dict, column: str, layer: int) -> float:
    return float(table[column][table["layer"] == layer][0])


@functools.cache
def theory_json(*args: str) -> dict:
    """`snn-lab theory ARGS --json`, the command the page quotes (in this process)."""
    from click.testing import CliRunner

    from snn_lab.cli import main

    done = CliRunner().invoke(main, ["theory", *args, "--json"], catch_exceptions=False)
    if done.exit_code != 0:
        raise SystemExit(f"snn-lab theory {' '.join(args)} --json: exit {done.exit_code}: {done.output}")
    return json.loads(done.stdout)["series"][0]


def g(x: float, digits: int = 4) -> str:
    """A quoted number: `digits` significant digits, trailing zeros dropped, rounding noise as 0."""
    return "0" if abs(x) < 1e-12 else f"{x:.{digits}g}"



def _s(x: float) -> str:
    """A time or a spread as the tables show it: 3 significant digits below 1, else 2 or 1 decimals."""
    return f"{x:.3g}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def e(x: float, digits: int = 4) -> str:
    """g() with a short exponent: 8.172e9, not 8.172e+09."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", g(x, digits))


def f4(x: float) -> str:
    """Four decimals, trailing zeros dropped, rounding noise as 0."""
    return "0" if abs(x) < 1e-12 else f"{x:.4f}".rstrip("0").rstrip(".")


