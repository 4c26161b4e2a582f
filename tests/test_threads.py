"""The engine's thread pool: every task runs once, long tasks may watch `stop`, a failure stops
the others."""

from __future__ import annotations

import threading
import time

import pytest

from snn_lab.simulate import threads


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_every_task_runs_once_and_long_tasks_run_to_the_end(n_threads):
    """A task that watches `stop` is never told to stop when nothing failed, even after the
    calling thread has run out of items (the engine's small-network parts rely on it)."""
    stop = threading.Event()
    steps = {}

    def task(i: int) -> None:
        for k in range(20 if i else 1):  # task 0 ends at once; the others take a while
            if stop.is_set():
                return
            time.sleep(0.002)
            steps[i] = k + 1
    threads.parallel(4, task, n_threads, stop)
    assert steps == {0: 1, 1: 20, 2: 20, 3: 20}
    assert not stop.is_set()


def test_a_failing_task_stops_the_others_and_its_error_reaches_the_caller():
    stop = threading.Event()
    finished = []

    def task(i: int) -> None:
        if i == 0:
            time.sleep(0.01)
            raise KeyboardInterrupt
        for _ in range(500):
            if stop.is_set():
                return
            time.sleep(0.002)
        finished.append(i)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        threads.parallel(2, task, 2, stop)
    assert stop.is_set() and finished == []
    assert time.monotonic() - start < 0.5  # the other task stopped at its next check, not after 1 s


def test_an_interrupt_is_raised_not_a_helpers_consequent_error():
    """Ctrl-C in the caller's task wins over the error it causes in a helper (an import cut short
    by Ctrl-C fails the same import in a helper: that ImportError once replaced the interrupt)."""
    stop, helper_started = threading.Event(), threading.Event()

    def task(i: int) -> None:
        if threading.current_thread() is threading.main_thread():
            assert helper_started.wait(30)
            raise KeyboardInterrupt
        helper_started.set()
        assert stop.wait(30)  # set by parallel() when the caller's task raises
        raise RuntimeError("a consequence of the interrupt")

    with pytest.raises(KeyboardInterrupt):
        threads.parallel(2, task, 2, stop)
