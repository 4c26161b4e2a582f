"""Imports point one way: the theory and the config load neither the simulation nor matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> list[str]:
    """Module names in sys.modules after `statement`, run in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("statement", ["import snn_lab.theory", "import snn_lab.theory.phase",
                                       "import snn_lab.config"])
def test_theory_and_config_load_neither_the_simulation_nor_matplotlib(statement):
    modules = loaded_after(statement)
    assert statement.split()[-1] in modules  # the import ran
    assert [m for m in modules if m == "snn_lab.simulate" or m.startswith("snn_lab.simulate.")] == []
    assert [m for m in modules if m == "matplotlib" or m.startswith("matplotlib.")] == []


def test_only_the_plot_package_imports_matplotlib():
    """Numerics return data: matplotlib appears in snn_lab/plot/ and nowhere else."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "snn_lab"
    importing = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if re.search(r"^\s*(from|import) matplotlib", p.read_text(), re.M))
    assert importing and all(p.startswith("plot/") for p in importing), importing
