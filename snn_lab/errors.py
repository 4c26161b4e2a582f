"""The problems snn-lab reports, each with its exit status: one base, mapped in one place (cli).

    2  bad input: a config, an option, a results or sweep folder, an executor or backend
    3  a baseline for `check` that is missing, damaged or not comparable
    (1 is drift or failed points, 4 `check` cannot judge, 130 interrupted: outcomes, not errors)
"""

from __future__ import annotations


class SnnLabError(Exception):
    """A problem reported as `error: MESSAGE` (one line, or one per problem) and an exit status."""

    exit_status = 2


class BaselineProblem(SnnLabError):
    """The baseline side of `check`."""

    exit_status = 3
