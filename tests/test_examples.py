"""The example configs ship with the package: listed, run and copied by name, from a wheel too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_runner

from snn_lab import config, examples
from snn_lab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--set", "width=8", "--set", "batch=8", "--set", "depth=3", "--set", "trials=2", "-q"]


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_examples_lists_every_shipped_config_with_what_it_shows():
    files = sorted(p.stem for p in (ROOT / "snn_lab" / "configs").glob("*.yaml"))
    done = invoke("examples")
    assert done.exit_code == 0
    lines = done.output.splitlines()
    assert [line.split()[0] for line in lines] == files == examples.names()
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # a name, then its one line
    # Each one line is a whole sentence that fits a terminal beside the name, not a cut paragraph.
    for name in files:
        summary = examples.summary(name)
        assert summary.endswith((".", "?")) and len(summary) <= 100, (name, summary)


def test_an_example_runs_and_copies_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    file = ROOT / "snn_lab" / "configs" / "selu_recovers.yaml"
    assert config.load("selu_recovers").to_dict() == config.load("selu_recovers.yaml").to_dict() == config.load(str(file)).to_dict()
    copied = invoke("examples", "selu_recovers")
    assert copied.exit_code == 0 and copied.output == file.read_text()
    assert invoke("run", "selu_recovers", "--out", "r", *SMALL).exit_code == 0
    assert (tmp_path / "r" / "meta.json").is_file()


def test_a_file_named_like_an_example_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relu_he").write_text("name: mine\nseries: [{activation: tanh}]\n")
    assert config.load("relu_he").name == "mine"


def test_an_unknown_name_suggests_the_nearest_example():
    done = invoke("examples", "selu_recover")
    assert done.exit_code == 2 and "did you mean 'selu_recovers'?" in done.stderr
    done = invoke("run", "configs/selu_recovers.yaml")  # where the examples were before they shipped
    assert done.exit_code == 2
    assert "No such file or directory; or the shipped example 'selu_recovers'" in done.stderr, done.stderr


def test_a_wheel_runs_an_example_by_name_and_plots_it_outside_the_repo(tmp_path):
    """Built and installed apart from the checkout: the examples are in the wheel."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0 and "Could not find a version" in built.stderr + built.stdout:
        pytest.skip("no package index to fetch the build requirements from")
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("snn_lab-*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}  # numpy & co. from this environment, snn-lab from the wheel
    where = subprocess.run([sys.executable, "-c", "import snn_lab; print(snn_lab.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target)), where.stdout
    ran = subprocess.run([sys.executable, "-m", "snn_lab", "run", "init_pitfalls", "--out", "r", *SMALL],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    drawn = subprocess.run([sys.executable, "-m", "snn_lab", "plot", "r"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr
    assert sorted(p.suffix for p in (work / "r" / "plots").iterdir()) and (work / "r" / "config.yaml").is_file()
