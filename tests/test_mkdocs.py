"""The docs site (mkdocs.yml) builds with --strict and no warning: every link, image and anchor of
docs/ resolves on the site as on GitHub. Skipped without mkdocs (the `docs` extra) unless
SNN_LAB_REQUIRE_DOCS=1, when a missing mkdocs fails."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mkdocs():
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("SNN_LAB_REQUIRE_DOCS") == "1":
            pytest.fail("SNN_LAB_REQUIRE_DOCS=1 but mkdocs is not installed: pip install -e '.[docs]'")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")

    def build(root: Path, site: Path) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                              cwd=root, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        return done.returncode, done.stdout

    return build


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if "WARNING" in line]


def test_the_docs_site_builds_strict_with_no_warning(mkdocs, tmp_path):
    status, output = mkdocs(ROOT, tmp_path / "site")
    assert status == 0 and not _warnings(output), output
    # the files that pages link outside docs/ are published where the links point
    assert (tmp_path / "site" / "benchmarks" / "index.html").is_file()
    assert (tmp_path / "site" / "results" / "figures" / "selu-vs-relu-convergence.png").is_file()


def test_a_broken_link_a_missing_outside_file_or_a_bad_anchor_fails_the_build(mkdocs, tmp_path):
    """The same config on a copy of the docs, with three planted faults: each is reported."""
    shutil.copy2(ROOT / "mkdocs.yml", tmp_path)
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    for outside in ("benchmarks/README.md", "results/figures"):
        (tmp_path / outside).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / outside).is_dir() else shutil.copy2
        copy(ROOT / outside, tmp_path / outside)
    page = tmp_path / "docs" / "plots.md"
    page.write_text(page.read_text() + "\n[a](no-such-page.md), [b](../benchmarks/NO-SUCH.md), "
                    "[c](theory.md#no-such-section)\n")
    status, output = mkdocs(tmp_path, tmp_path / "site")
    assert status != 0, output
    warned = "\n".join(_warnings(output))
    for planted in ("no-such-page.md", "../benchmarks/NO-SUCH.md", "#no-such-section"):
        assert planted in warned, output
