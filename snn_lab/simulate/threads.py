"""How many threads the engine uses, and the small pool that runs its tasks in any order."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

SERIAL_BELOW = 1 << 17  # entries per layer under which threads cost more than they save

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


THREADS_ENV = "SNN_LAB_THREADS"  # a sweep's worker processes share the cores: each gets its part


def default_threads() -> int:
    """Threads for random draws and blocks: $SNN_LAB_THREADS, else the CPUs this process may use."""
    value = os.environ.get(THREADS_ENV, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_for(threads: int | None, entries: int) -> int:
    """`threads` if given, else 1 for a layer too small to split, else default_threads()."""
    if threads is not None:
        return max(1, int(threads))
    return 1 if entries < SERIAL_BELOW else default_threads()


def _get_pool(size: int) -> ThreadPoolExecutor:
    """The shared pool, with at least `size` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(size, thread_name_prefix="snn-lab"), size
        return _pool


def parallel(count: int, task: Callable[[int], None], threads: int,
             stop: threading.Event | None = None) -> None:
    """task(0) ... task(count - 1), on `threads` threads (the caller's included), any order.

    `stop` is set when a task raises (or the caller is interrupted): no task starts after it,
    and long tasks may watch it to end early. Tasks run with numpy's floating-point warnings off:
    they are the simulation's, whose overflow is data, recorded and reported by the run.
    """
    threads = min(threads, count)
    if threads <= 1:
        with np.errstate(all="ignore"):
            for i in range(count):
                task(i)
        return
    stop = threading.Event() if stop is None else stop
    pool = _get_pool(threads - 1)
    items = itertools.count()  # next() on a count is atomic under the GIL

    def work() -> None:
        with np.errstate(all="ignore"):  # per thread (numpy's errstate is): see above
            for i in items:
                if i >= count or stop.is_set():
                    return
                try:
                    task(i)
                except BaseException:
                    stop.set()
                    raise
    helpers = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()  # returns when no item is left (the helpers may still be running one)
    except BaseException:  # a task failed or Ctrl-C: the helpers stop at their next check
        stop.set()
        # Their errors are this one's consequences (Ctrl-C in the middle of an import leaves a
        # helper's import of the same module failing): raise this one, not theirs.
        wait(helpers)
        raise
    for h in helpers:
        h.result()


def run_tasks(tasks: list[Callable[[], None]], threads: int) -> None:
    """Each task once, on `threads` threads, in any order (parallel over a list)."""
    parallel(len(tasks), lambda i: tasks[i](), threads)
