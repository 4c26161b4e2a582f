"""The one figure writer: a figure to files, laid out once, metadata stripped, written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from snn_lab import safefs
from snn_lab.plot.base import METADATA, STYLE
from snn_lab.results import FILES


def write_figure(fig: Figure, files: list[tuple[Path, str]]) -> list[Path]:
    """Save one figure to each (path, format), laid out once: every file has the same geometry."""
    with rc_context(STYLE):
        # Lay out once, the same way whatever the formats and their order; then no layout
        # engine at all, so that savefig draws only once per file.
        fig.draw_without_rendering()
        fig.set_layout_engine(None)
        for path, fmt in files:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=METADATA[fmt])
            safefs.write_bytes(path, buf.getvalue())  # atomic; a link at path is replaced, not followed
    return [path for path, _ in files]


def find_latest(root: str | Path = "results") -> Path | None:
    """The most recent complete results folder directly under root (meta.json's finished_utc,
    then its modification time), or None."""
    root = Path(root)
    best, best_key = None, None
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # hidden: a run still being built, or an old one being replaced
        if not all((folder / f).is_file() for f in FILES):
            continue
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            mtime = (folder / "meta.json").stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or not meta.get("complete"):
            continue
        key = (str(meta.get("finished_utc") or ""), mtime)
        if best_key is None or key > best_key:
            best, best_key = folder, key
    return best
