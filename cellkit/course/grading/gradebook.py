"""The gradebook: one CSV row per student, written atomically after every submission; the printed summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cellkit.atomic import write_text
from cellkit.course.grading.scoring import PRIORITY


def read_gradebook(path: Path) -> dict[str, dict]:
    """Return the rows of an existing gradebook keyed by student id (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def write_gradebook(path: Path, rows: dict[str, dict], questions: list[str]) -> None:
    """Write the gradebook atomically: readers (and a killed grader) see the old file or the new one."""
    fields = ["id", "file", "status", "reason", *questions, "total", "possible", "seconds", "sha256"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for sid in sorted(rows):
        writer.writerow(rows[sid])
    write_text(path, buffer.getvalue())


def summary(rows: dict[str, dict], possible: float) -> str:
    """Return the printed summary: counts per status, score distribution, and the rows that need a look."""
    rows = list(rows.values())
    lines = [f"{len(rows)} submission(s): " + ", ".join(f"{s} {sum(r['status'] == s for r in rows)}"
                                                        for s in PRIORITY if any(r["status"] == s for r in rows))]
    totals = sorted(float(r["total"]) for r in rows)
    if totals and possible:
        mean = sum(totals) / len(totals)
        median = totals[len(totals) // 2] if len(totals) % 2 else (totals[len(totals) // 2 - 1] + totals[len(totals) // 2]) / 2
        lines.append(f"score out of {possible:g}: mean {mean:.2f}, median {median:.2f}, min {totals[0]:g}, max {totals[-1]:g}")
        bins = [0] * 10
        for t in totals:
            bins[min(9, int(t / possible * 10))] += 1
        for i, n in enumerate(bins):
            label = f"{i * 10:3d}-{i * 10 + 9 if i < 9 else 100:3d}%"
            lines.append(f"  {label} | {'#' * n} {n if n else ''}".rstrip())
    look = [r for r in rows if r["status"] != "ok"]
    if look:
        lines.append(f"needs a person's look ({len(look)}):")
        for r in sorted(look, key=lambda r: (PRIORITY.index(r["status"]), r["id"])):
            lines.append(f"  {r['id']:24s} {r['status']:13s} {float(r['total']):g}/{possible:g}  {r['reason'][:300]}")
    return "\n".join(lines)
