"""Recording each lab's key metric and figure for the main job's report.

A notebook calls :func:`record` once; when ``CELLKIT_REPORT_DIR`` is set (the
``cellkit run`` job sets it) the metric and the figure are saved there, and
``cellkit run`` gathers them into ``build/report.md``.  Outside such a run it
only prints the metric.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cellkit.atomic import atomic_path, write_text


def record(lab: str, metric: str, value: float, *, figure=None, note: str = "") -> None:
    """Print ``metric = value`` and, inside a ``cellkit run`` job, save it and ``figure`` for the report."""
    print(f"[report] {lab}: {metric} = {value:.4g}" + (f" ({note})" if note else ""))
    folder = os.environ.get("CELLKIT_REPORT_DIR")
    if not folder:
        return
    folder = Path(folder)
    entry = {"lab": lab, "metric": metric, "value": float(value), "note": note, "figure": None}
    if figure is not None:
        png = folder / f"{lab}.png"
        with atomic_path(png, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
        entry["figure"] = png.name
    write_text(folder / f"{lab}.json", json.dumps(entry, indent=1))
