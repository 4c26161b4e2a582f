"""Ctrl-C and SIGTERM at random moments of a run and of a `-j 2` sweep: exit 130 (or 0 if it had
finished) with one line, no traceback, no process left behind, nothing outside the folder touched,
and a folder that is complete, absent, or (a sweep) resumes. The moment is drawn by hypothesis
after an event, the command catching SIGTERM (snn-lab's code has begun), never after a guessed
sleep: whenever the signal lands, the same assertions hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import terminal_signals
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snn_lab import results
from snn_lab import sweep as sw

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self") or not hasattr(signal, "SIGKILL"),
                                reason="reads a process's signal handlers in /proc (Linux)")
RUN = ["--set", "width=256", "--set", "batch=256", "--set", "depth=100", "--set", "trials=2"]  # ~2.5 s
SWEEP = """name: s
seed: 1
width: 32
batch: 32
depth: 20
trials: 2
series: [{label: A, activation: selu}]
sweep: {gain: {linspace: [0.8, 1.2, 12]}}
"""
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def report_outcomes():
    yield
    if TRIED:
        print("\nsignals sent: " + ", ".join(f"{k}: {v}" for k, v in sorted(TRIED.items())))


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for sig (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (sig - 1) & 1)


def _signal_at(proc: subprocess.Popen, sig: int, delay: float) -> tuple[str, str]:
    """Wait until the command catches SIGTERM (or has ended), wait `delay`, send sig; its output."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and not _catches(proc.pid, signal.SIGTERM):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.005)
    time.sleep(delay)  # the random moment: the assertions below hold for any
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"no exit 60 s after signal {sig}") from None


def _no_process_left(pgid: int) -> None:
    """The command's process group is empty: no worker outlived it (orphans keep the group)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("a process of the command outlived it")


def _spawn(args, cwd: Path) -> subprocess.Popen:
    def child():
        terminal_signals()
        os.setsid()  # its own process group, to find leftovers by

    return subprocess.Popen([sys.executable, "-m", "snn_lab", *map(str, args)], cwd=cwd, preexec_fn=child,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _outside(root: Path, folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if folder not in (p, *p.parents)}


SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
SIGNALS = st.sampled_from([signal.SIGINT, signal.SIGTERM])


@settings(SETTINGS, max_examples=3)
@given(sig=SIGNALS, delay=st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 3.0]))
@example(sig=signal.SIGTERM, delay=1.0)
@example(sig=signal.SIGINT, delay=8.0)  # most often after the run has finished: exit 0
def test_a_run_signalled_at_any_moment_exits_130_and_leaves_a_complete_folder_or_none(tmp_path_factory, sig, delay):
    root = tmp_path_factory.mktemp("run")
    (root / "mine.txt").write_text("keep")
    out = root / "r"
    before = _outside(root, out)
    proc = _spawn(["run", "--out", out, "-q", *RUN], root)
    _, err = _signal_at(proc, sig, delay)
    TRIED[f"run exit {proc.returncode}"] = TRIED.get(f"run exit {proc.returncode}", 0) + 1
    _no_process_left(proc.pid)
    assert "Traceback" not in err, err
    if proc.returncode == 0:  # it finished first
        assert results.read(out).meta["complete"]
    else:
        assert proc.returncode == 130, err
        assert err == "interrupted: nothing was written\n", err
        assert not out.exists()
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]
    assert _outside(root, out) == before and (root / "mine.txt").read_text() == "keep"


@settings(SETTINGS, max_examples=1)
@given(sig=SIGNALS, delay=st.sampled_from([0.0, 0.3, 1.0, 2.0, 3.0]))
def test_a_two_job_sweep_signalled_at_any_moment_exits_130_and_resumes(tmp_path_factory, sig, delay):
    root = tmp_path_factory.mktemp("sweep")
    (root / "s.yaml").write_text(SWEEP)
    out = root / "s"
    before = _outside(root, out)
    proc = _spawn(["run", "s.yaml", "--out", out, "-q", "-j", "2"], root)
    _, err = _signal_at(proc, sig, delay)
    TRIED[f"sweep exit {proc.returncode}"] = TRIED.get(f"sweep exit {proc.returncode}", 0) + 1
    _no_process_left(proc.pid)
    assert "Traceback" not in err, err
    if proc.returncode != 0:
        assert proc.returncode == 130, err
        assert err.count("\n") == 1 and err.startswith("interrupted: "), err
        again = subprocess.run([sys.executable, "-m", "snn_lab", "run", "s.yaml", "--out", str(out), "-q"],
                               cwd=root, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
    table = sw.read(out)  # complete and valid, every point present
    assert sorted(set(table.table["point"])) == sorted(p["name"] for p in table.manifest["points"])
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert _outside(root, out) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("status", [0, 2])
def test_a_signal_after_the_command_ended_leaves_at_once_with_its_status(sig, status):
    # Without __main__._finished, Ctrl-C in the interpreter's shutdown killed a finished run (-2).
    code = ("import os, signal, time\nfrom snn_lab import __main__ as m\n"
            f"m._finished({status})\nos.kill(os.getpid(), {int(sig)})\ntime.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                          preexec_fn=terminal_signals)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
