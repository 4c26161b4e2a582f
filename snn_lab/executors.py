"""Where a sweep's points run: this process, a local process pool, or a Dask cluster.

Workers only compute: each returns a point's Results and the caller writes it, so a remote
cluster needs no shared file system and an interrupted sweep never leaves a half-written point.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from snn_lab import interrupts
from snn_lab.config import Experiment
from snn_lab.errors import SnnLabError


class ExecutorError(SnnLabError):
    """An executor that cannot start (a missing extra, an unreachable scheduler)."""


def simulate(exp: Experiment, progress: Callable[[int], None] | None = None, meta: dict | None = None,
             backend: str | None = None):
    """Run one experiment and collect its Results (what `snn-lab run` and each point do).

    `progress(n)` counts work(exp) units: the engine's trial-layers, then the theory's layers.
    A theory that cannot be computed leaves NaN columns and meta's theory_notes says why.
    """
    from snn_lab import results, theory
    from snn_lab.simulate import backends, engine

    backend = backends.resolve(backend)
    started, t0 = time.time(), time.perf_counter()
    runs = engine.run_experiment(exp, progress, backend)
    training = None
    if exp.train is not None:  # the training probe (train: block), after the propagation at init
        from snn_lab.train import loop
        training = loop.train_experiment(exp, progress, backend=backend)
    meta = {**results.environment(backend), "seed": exp.seed, "seed_entropy": str(exp.seed), "argv": sys.argv,
            "started_utc": _utc(started), "finished_utc": _utc(time.time()),
            "wall_seconds": round(time.perf_counter() - t0, 3), **(meta or {})}
    # Computed here, with progress, and kept: results.collect reuses these predictions.
    meta["theory_notes"] = theory.notes(exp.series, "correlation" in exp.measure, progress)
    return results.collect(exp, runs, meta, training)


def check_resources(exp: Experiment, available: int | None = None) -> None:
    """Refuse, before anything runs, a run that would not fit in memory (ConfigError, exit 2), or
    whose .npz training task is missing or malformed."""
    from snn_lab.results import check_size
    from snn_lab.simulate.memory import check_memory, memory_available

    available = memory_available() if available is None else available
    check_memory(exp, available)
    check_size(exp, available)
    if exp.train is not None and exp.train.task.kind == "npz":  # its file, read and checked before the run
        from snn_lab.train.loop import load_task
        load_task(exp)


def check_points(points: list, jobs: int = 1) -> None:
    """check_resources for every point of a sweep, before any runs: `jobs` of them share the memory."""
    from snn_lab.simulate.memory import memory_available

    available = memory_available() // jobs
    for p in points:
        check_resources(p.experiment, available)


def work(exp: Experiment) -> int:
    """Units of progress simulate() reports: trials x layers, training updates, then each series'
    theory layers."""
    from snn_lab import theory
    from snn_lab.train.loop import work as training_work

    return sum(s.depth for s in exp.series) * exp.trials + training_work(exp) + theory.safe.work(exp.series)


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def threads_per_job(jobs: int) -> int:
    """Cores per worker, so that `jobs` workers do not oversubscribe the machine."""
    from snn_lab.simulate.threads import default_threads

    return max(1, default_threads() // max(1, jobs))


def worker_environment(jobs: int) -> dict[str, str]:
    """Environment variables for a worker: its share of the cores for the engine's threads
    (which never change a number: the engine runs BLAS on one thread and shares the products
    out itself)."""
    from snn_lab.simulate.threads import THREADS_ENV

    return {THREADS_ENV: str(threads_per_job(jobs))}


@contextmanager
def _environment(env: dict[str, str]):
    """Set variables that worker processes inherit at start; restore them after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(points: list, jobs: int = 1, executor: str = "local", scheduler: str | None = None,
        backend: str | None = None) -> Iterator:
    """Yield (point, Results) as points finish, or (point, an exception) for a point that failed."""
    if executor == "dask":
        yield from _dask(points, jobs, scheduler, backend)
    elif jobs <= 1:
        for p in points:
            try:
                res = simulate(p.experiment, backend=backend)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a failed point is reported; the others still run
                if interrupts.received():  # Ctrl-C that an import turned into another error
                    raise KeyboardInterrupt from exc
                yield p, exc
            else:
                yield p, res
    else:
        yield from _pool(points, jobs, backend)


def _pool(points: list, jobs: int, backend: str | None) -> Iterator:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: a forked child would inherit this process's BLAS threads and locks.
    context = multiprocessing.get_context("spawn")
    # An interrupted sweep leaves without the interpreter's shutdown (cli: os._exit), so the
    # resource tracker, started with the pool and given our -W options, unlinks the pool's
    # semaphores itself: as intended, and not to be reported on the user's terminal.
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in sys.warnoptions:
        sys.warnoptions.append(quiet)
    with _environment(worker_environment(jobs)):
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(points)) or 1, mp_context=context)
        try:
            pending = {pool.submit(simulate, p.experiment, None, None, backend): p for p in points}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    p = pending.pop(fut)
                    exc = fut.exception()
                    yield (p, exc) if exc is not None else (p, fut.result())
        except BaseException:
            # Ctrl-C, SIGTERM, or the consumer closing us early: end the workers by their
            # processes alone. The pool's shutdown takes locks and writes to pipes that an
            # interrupt can leave held or full (it hung past 30 s in CI); the CLI then exits
            # with os._exit, never joining the pool's manager thread.
            _end_workers(list(getattr(pool, "_processes", {}).values()))
            raise
        _stop(pool)


def _end_workers(processes: list) -> None:
    """Terminate worker processes and reap them (killed if they outlive 5 s)."""
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


def _stop(pool) -> None:
    """Shut a process pool down now: cancel what has not started, end what has."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public way to end workers
    pool.shutdown(wait=False, cancel_futures=True)
    _end_workers(processes)
    # A worker ended while it wrote a result leaves half a message in the result pipe, and the
    # pool's manager thread waits for the rest forever; the interpreter joins that thread at
    # exit, so Ctrl-C would hang (seen on Python 3.13). Closing our end of the pipe's writing
    # side (the workers' ends died with them) gives the thread EOF: it ends as a broken pool.
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


def _dask(points: list, jobs: int, scheduler: str | None, backend: str | None) -> Iterator:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ExecutorError("--executor dask needs the dask extra: pip install 'snn-lab[dask]'") from None
    cluster = None
    env = worker_environment(jobs)
    try:
        if scheduler:
            client = Client(scheduler, timeout="5s")
        else:
            # A local cluster on loopback: `jobs` worker processes with one task at a time each.
            # Its HTTP server on a free port: with None it still takes 8787, and warns when taken.
            with _environment(env):
                cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0", env=env)
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ExecutorError(f"cannot reach the Dask scheduler {scheduler or '(local cluster)'}: {exc}") from None
    try:
        futures = {client.submit(simulate, p.experiment, None, None, backend, pure=False,
                                 key=f"snn-lab-{i}-{p.name}"): p
                   for i, p in enumerate(points)}
        for fut in as_completed(futures):
            p = futures[fut]
            if fut.status == "error":
                yield p, fut.exception()
            else:
                yield p, fut.result()
    finally:
        client.cancel(list(futures) if "futures" in locals() else [])
        client.close()
        if cluster is not None:
            cluster.close()
