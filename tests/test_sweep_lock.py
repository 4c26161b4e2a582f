"""One writer at a time in a sweep folder; a full disk leaves no temporary behind."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_runner

from snn_lab import results, safefs
from snn_lab import sweep as sw
from snn_lab.cli import main

BASE = """name: lock
seed: 3
width: 4
batch: 4
depth: 2
trials: 2
series:
  - {label: A, activation: selu}
"""
SWEEP = ("run", "-", "--sweep", "depth=2,3", "-q")


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args], input=BASE, catch_exceptions=False)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.parent.rglob("*") if ".tmp-" in p.name]


def test_a_second_writer_is_refused_at_once_and_writes_nothing(tmp_path):
    out = tmp_path / "s"
    with sw.hold(out):  # another sweep at work (flock conflicts between descriptors, even in one process)
        t0 = time.monotonic()
        second = invoke(*SWEEP, "--out", out)
        assert second.exit_code == 2, second.output
        assert time.monotonic() - t0 < 5
        assert second.stderr.startswith(f"error: {out} is being written by another snn-lab sweep"), second.stderr
        assert list(out.iterdir()) == []
        forced = invoke(*SWEEP, "--out", out, "--force")
        assert forced.exit_code == 2 and "another snn-lab sweep" in forced.stderr
    done = invoke(*SWEEP, "--out", out)
    assert done.exit_code == 0, done.output
    assert json.loads((out / sw.MANIFEST).read_text())["complete"] is True
    assert sorted(p.name for p in (out / sw.POINTS).iterdir()) == ["depth=2", "depth=3"]


def _holder(out: Path, ready: Path) -> subprocess.Popen:
    """A process that takes the sweep lock, says so in `ready`, and then waits on its stdin."""
    code = ("import sys; from pathlib import Path; from snn_lab import sweep as sw\n"
            f"held = sw.hold(Path({str(out)!r})); Path({str(ready)!r}).write_text('held')\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ready.exists():  # an event (the file), not a sleep of a guessed length
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.02)
    return proc


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    out = tmp_path / "s"
    proc = _holder(out, tmp_path / "ready")
    try:
        assert invoke(*SWEEP, "--out", out).exit_code == 2  # held by a live process: refused
    finally:
        proc.kill()
        proc.wait(timeout=30)
    done = invoke(*SWEEP, "--out", out)  # the kernel dropped the dead process's lock
    assert done.exit_code == 0, done.output
    assert (out / sw.TABLE).is_file()


def _fail_on(monkeypatch, name: str):
    """Make writing a file whose name contains `name` fail as a full disk does (ENOSPC)."""
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            def write(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            f.write = write
        return f

    monkeypatch.setattr(safefs.os, "fdopen", fdopen)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names the file being written via /proc")
@pytest.mark.parametrize("name", ["sweep.csv", "sweep.json"])
def test_a_full_disk_at_the_end_of_a_sweep_leaves_no_temporary_and_resumes(tmp_path, monkeypatch, name):
    out = tmp_path / "s"
    with monkeypatch.context() as m:
        _fail_on(m, f".{name}.tmp-")
        failed = invoke(*SWEEP, "--out", out)
    assert failed.exit_code == 2, failed.output
    assert failed.stderr.startswith("error: cannot ") and "No space left on device" in failed.stderr, failed.stderr
    assert _temporaries(out) == []
    if name == "sweep.json":  # the first file a sweep writes: nothing else followed
        assert not (out / sw.MANIFEST).exists() and not (out / sw.TABLE).exists()
        return
    assert "complete" not in json.loads((out / sw.MANIFEST).read_text())
    again = invoke("run", "-", "--sweep", "depth=2,3", "--out", out)  # the points are kept: only the table
    assert again.exit_code == 0 and "2 resumed" in again.output, again.output
    assert json.loads((out / sw.MANIFEST).read_text())["complete"] is True


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names the file being written via /proc")
def test_a_full_disk_while_writing_a_run_or_its_figures_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "r"
    with monkeypatch.context() as m:
        _fail_on(m, "layers.csv")
        failed = invoke("run", "-", "--out", out, "-q")
    assert failed.exit_code == 2 and "No space left on device" in failed.stderr, failed.stderr
    assert not out.exists() and _temporaries(out) == []
    with monkeypatch.context() as m:
        _fail_on(m, ".png")
        failed = invoke("run", "-", "--out", out, "-q", "--plot")
    assert failed.exit_code == 2 and "not its figures" in failed.stderr, failed.stderr
    assert results.read(out).meta["complete"] and _temporaries(out) == []
