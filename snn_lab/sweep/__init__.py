"""Sweeps: a grid over config keys -> one experiment per point (spec.py) -> a folder of runs and
sweep.csv (folder.py), run point by point (runs.py)."""

from snn_lab.sweep.folder import (SweepTable, finish, hold, is_sweep, manifest, plan, pooled, read,
                                  start)
from snn_lab.sweep.runs import Interrupted, SweepRun, prepare, run_points
from snn_lab.sweep.spec import (DERIVED, MANIFEST, MAX_POINTS, POINTS, SERIES_ONLY, SPECS, SWEEP_VERSION,
                                TABLE, TOP_ONLY, Axis, Point, Sweep, SweepError, load, point_name,
                                point_seed, targets)

__all__ = ["DERIVED", "MANIFEST", "MAX_POINTS", "POINTS", "SERIES_ONLY", "SPECS", "SWEEP_VERSION", "TABLE",
           "TOP_ONLY", "Axis", "Interrupted", "SweepRun", "prepare", "run_points", "Point", "Sweep", "SweepError", "SweepTable", "finish", "hold", "is_sweep",
           "load", "manifest", "plan", "point_name", "point_seed", "pooled", "read", "start", "targets"]
