"""The README and docs/ cannot drift from the program: links resolve, commands and example names
exist, the README's config is valid, and the README stays a front page (<= 150 lines)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from snn_lab import config, examples
from snn_lab.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    for target, _ in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name}: {target}"


def _commands(text: str):
    """Every `snn-lab ...` invocation in a shell block, split into words (pipes and && cut)."""
    for lang, body in BLOCK.findall(text):
        if lang not in ("bash", "sh", "console", ""):
            continue
        for line in body.splitlines():
            if lang == "console" and not line.startswith("$ "):
                continue  # a console block's output lines
            for part in re.split(r"&&|\||;", line.removeprefix("$ ").split(" #")[0]):
                if part.strip().startswith("snn-lab"):
                    yield shlex.split(part.strip(), comments=True)[1:]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_exists_with_its_options_and_examples(page):
    for words in _commands(page.read_text()):
        if not words or words[0].startswith("-"):
            continue
        command = main.commands.get(words[0])
        assert command is not None, f"{page.name}: snn-lab {words[0]}"
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for w in words[1:]:
            if w.startswith("--"):
                assert w.split("=")[0] in options, f"{page.name}: snn-lab {words[0]} {w}"
        if words[0] in ("run", "theory") and len(words) > 1 and not words[1].startswith("-"):
            name = words[1]
            if "/" not in name and not name.endswith((".yaml", ".json")) and name != "-":
                assert name in examples.names(), f"{page.name}: no example {name!r}"


def test_the_readmes_config_is_valid():
    text = (ROOT / "README.md").read_text()
    yaml_blocks = [body for lang, body in BLOCK.findall(text) if lang == "yaml"]
    assert yaml_blocks
    for body in yaml_blocks:
        config.load("README.md", text=body)
