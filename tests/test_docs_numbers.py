"""Numbers the docs quote from runs are written by docs/quoted_numbers.py and cannot go stale: the
cheap ones are rerun and compared exactly, measurements re-rendered from their committed JSON, and
the costly Monte Carlo ones checked for their format and their regenerating command."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import quoted_numbers as qn  # docs/ is not a package: on the path above

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
# (page, name, text) of each block whose generator exists (the marker test reports the others)
FOUND = [(p, name, text) for p in PAGES for name, text in qn.blocks(p.read_text()) if name in qn.GENERATORS]


def _id(item) -> str:
    return f"{item[0].relative_to(ROOT)}:{item[1]}"


def test_every_marker_is_closed_and_names_a_generator_of_its_page():
    for page in PAGES:
        text = page.read_text()
        opened, closed = text.count("<!-- numbers:"), text.count("<!-- /numbers -->")
        assert opened == closed == len(qn.blocks(text)), page.name
        for name, _ in qn.blocks(text):
            assert name in qn.GENERATORS, f"{page.name}: no generator {name!r} in docs/quoted_numbers.py"
            assert ROOT / qn.GENERATORS[name].page == page, f"{name} belongs to {qn.GENERATORS[name].page}"


def test_every_generator_has_its_block():
    found = {name for p in PAGES for name, _ in qn.blocks(p.read_text())}
    assert set(qn.GENERATORS) <= found, set(qn.GENERATORS) - found


def _rerun(item):
    _, name, text = item
    try:
        made = qn.GENERATORS[name].make()
    except qn.Unavailable as why:
        pytest.skip(str(why))
    assert text == made, f"stale: python docs/quoted_numbers.py {name}"


@pytest.mark.parametrize("item", [f for f in FOUND if qn.GENERATORS[f[1]].kind != "costly"
                                  and not qn.GENERATORS[f[1]].slow], ids=_id)
def test_a_quoted_number_equals_a_rerun_of_its_command(item):
    _rerun(item)


@pytest.mark.docs_slow
@pytest.mark.parametrize("item", [f for f in FOUND if qn.GENERATORS[f[1]].slow], ids=_id)
def test_a_quoted_number_of_seconds_equals_a_rerun_too(item):
    """Once in .ci/run (pytest -m docs_slow): seeded runs of seconds, compared exactly."""
    _rerun(item)


@pytest.mark.parametrize("item", [f for f in FOUND if qn.GENERATORS[f[1]].kind == "costly"], ids=_id)
def test_a_costly_block_has_the_generators_format_and_names_its_command(item):
    page, name, text = item
    gen = qn.GENERATORS[name]
    assert re.fullmatch(gen.form, text), f"{page.name}: {name} is not what docs/quoted_numbers.py writes"
    assert f"python docs/quoted_numbers.py {name}" in page.read_text()


def test_a_changed_number_is_caught(tmp_path, monkeypatch):
    """The comparison can fail: a page with one digit changed is stale, and rewrite() mends it."""
    page = tmp_path / "docs" / "theory.md"
    page.parent.mkdir()
    page.write_text("chi_1 = <!-- numbers: selu-chi1 -->1.0717<!-- /numbers -->.\n")
    monkeypatch.setattr(qn, "ROOT", tmp_path)
    assert dict(qn.blocks(page.read_text()))["selu-chi1"] == "1.0717" != qn.selu_chi1()
    assert qn.rewrite("selu-chi1")
    assert dict(qn.blocks(page.read_text()))["selu-chi1"] == qn.selu_chi1()


def test_a_generator_that_cannot_run_here_leaves_its_block_and_says_so(tmp_path, monkeypatch, capsys):
    """Unavailable (the compiled backend not built): the page is kept, the command says why, exit 0."""
    page = tmp_path / "docs" / "engine.md"
    page.parent.mkdir()
    page.write_text("| <!-- numbers: backend-diff-float64 -->1.2e-15, 4.2e-15<!-- /numbers --> |\n")
    monkeypatch.setattr(qn, "ROOT", tmp_path)

    def missing():
        raise qn.Unavailable("needs the compiled backend: not built")
    monkeypatch.setitem(qn.GENERATORS, "backend-diff-float64",
                        dataclasses.replace(qn.GENERATORS["backend-diff-float64"], make=missing))
    before = page.read_text()
    assert qn.main(["backend-diff-float64"]) == 0
    assert page.read_text() == before
    assert "skipped: docs/engine.md: backend-diff-float64: needs the compiled backend" in capsys.readouterr().out
