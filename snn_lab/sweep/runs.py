"""Running a held sweep folder: plan the points not yet complete, run them, write each as it
arrives, then aggregate. The CLI and the Python API both go through here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from snn_lab.sweep.folder import plan, start
from snn_lab.sweep.spec import POINTS, Point, Sweep


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a sweep; every point is written whole or not at all."""

    def __init__(self, done: int, total: int):
        super().__init__(done, total)
        self.done, self.total = done, total


@dataclass
class SweepRun:
    """A sweep under way in its folder: what was left to run, and what has happened."""

    sweep: Sweep
    out: Path
    todo: list[Point]
    failed: list[tuple[str, BaseException]] = field(default_factory=list)
    ran: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        """Points already complete when the run began (a resume)."""
        return len(self.sweep.points) - len(self.todo)

    @property
    def done(self) -> int:
        """Points complete in the folder now."""
        return self.skipped + self.ran


def prepare(sweep: Sweep, out: Path, force: bool) -> SweepRun:
    """Plan the held folder `out` (checked against the grid) and write its manifest."""
    todo = plan(sweep, out, force)
    start(sweep, out, force)
    return SweepRun(sweep, out, todo)


def run_points(state: SweepRun, jobs: int = 1, executor: str = "local", scheduler: str | None = None,
               backend: str | None = None, advance: Callable[[int], None] | None = None) -> SweepRun:
    """Run `state.todo`, writing each point's results folder as it arrives; failures are collected."""
    from snn_lab import executors, results

    t0 = time.perf_counter()
    runner = executors.run(state.todo, jobs, executor, scheduler, backend)
    try:
        for point, res in runner:
            if isinstance(res, BaseException):
                state.failed.append((point.name, res))
            else:
                results.write(res, state.out / POINTS / point.name, force=True)
                state.ran += 1
            if advance:
                advance(1)
    except KeyboardInterrupt:
        runner.close()  # ends the workers now (executors._stop), not whenever the generator is collected
        raise Interrupted(state.done, len(state.sweep.points)) from None
    finally:
        state.seconds += time.perf_counter() - t0
    return state
