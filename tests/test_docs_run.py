"""Every shell command and Python block in README.md, docs/ and benchmarks/README.md runs, in order
per page, in a fresh folder; console blocks print what the page shows (tests/docblocks.py)."""

from __future__ import annotations

from pathlib import Path

import docblocks
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def _blocks(page: Path) -> list[docblocks.Block]:
    return docblocks.parse(page.read_text(), str(page.relative_to(ROOT)))


def _run_page(blocks, tmp_path: Path, slow: bool) -> int:
    env, namespace, ran = docblocks.environment(docblocks.bin_dir()), {"__name__": "__docs__"}, 0
    for b in blocks:
        if b.get("skip") or (b.get("slow") and not slow) or docblocks.missing(b):
            continue
        docblocks.run_block(b, tmp_path, ROOT, namespace, env)
        ran += b.lang in docblocks.RUN
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_on_the_page_runs_in_order(page, tmp_path):
    _run_page(_blocks(page), tmp_path, slow=False)


def _has_slow(page: Path) -> bool:
    try:
        return any(b.get("slow") for b in _blocks(page))
    except docblocks.DocsError:
        return False  # the page's own test reports it


SLOW = [p for p in PAGES if _has_slow(p)]


@pytest.mark.docs_slow
@pytest.mark.parametrize("page", SLOW, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_slow_blocks_run_too(page, tmp_path):
    """Run once in .ci/run (pytest -m docs_slow): the pages again, with their slow blocks."""
    _run_page(_blocks(page), tmp_path, slow=True)


# ---- the runner itself can fail ---------------------------------------------------------------

def _page(tmp_path, text):
    return _run_page(docblocks.parse(text, "page.md"), tmp_path, slow=False)


def test_a_failing_command_fails_the_page_with_its_line(tmp_path):
    with pytest.raises(AssertionError, match=r"page.md:3: exit status 1"):
        _page(tmp_path, "text\n\n```bash\ntrue\nfalse\n```\n")


def test_a_console_block_must_print_what_it_shows(tmp_path):
    with pytest.raises(AssertionError, match="--- the page shows ---"):
        _page(tmp_path, "```console\n$ echo 1\n2\n```\n")
    assert _page(tmp_path, "```console\n$ echo 1\n1\n```\n") == 1


def test_a_python_block_that_raises_fails_and_blocks_share_a_namespace(tmp_path):
    assert _page(tmp_path, "```python\nx = 2\n```\n\n```python\nassert x == 2\n```\n") == 2
    with pytest.raises(AssertionError, match="page.md:1: ZeroDivisionError"):
        _page(tmp_path, "```python\n1 / 0\n```\n")


def test_an_unlabelled_block_and_an_unreasoned_skip_are_refused():
    with pytest.raises(docblocks.DocsError, match="page.md:1: a code block needs a language"):
        docblocks.parse("```\nsnn-lab run\n```\n", "page.md")
    with pytest.raises(docblocks.DocsError, match="needs its reason"):
        docblocks.parse("<!-- docs-test: skip: slow -->\n```bash\nsnn-lab run\n```\n", "page.md")
    with pytest.raises(docblocks.DocsError, match="page.md:3: an indented code block"):
        docblocks.parse("text\n\n    snn-lab run\n", "page.md")
    with pytest.raises(docblocks.DocsError, match="right above a code block"):
        docblocks.parse("<!-- docs-test: skip: not here -->\n\ntext\n```bash\ntrue\n```\n", "page.md")


def test_set_shrinks_every_run_and_installed_drops_the_pip_step(tmp_path):
    text = ("<!-- docs-test: set: depth=2 trials=1 -->\n<!-- docs-test: installed: the suite runs in it -->\n"
            "```bash\npip install -e . && snn-lab run --set depth=50 --out r --quiet\n```\n")
    _page(tmp_path, text)
    assert "depth: 2\n" in (tmp_path / "r" / "config.yaml").read_text()
