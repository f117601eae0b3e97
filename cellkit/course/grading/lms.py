"""Gradebook exports an LMS imports: Canvas's gradebook CSV, Moodle's grading worksheet, a plain CSV.

Each is written atomically beside the gradebook (``OUT_STEM-canvas.csv``, ``OUT_STEM-moodle.csv``,
``OUT_STEM-export.csv``) and carries the ``final`` score (tests, overrides, late penalty).  The formats, and where
the instructor uploads each, are in docs/instructors.md ("Export to the LMS").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from cellkit.atomic import write_text

FORMATS = ("canvas", "moodle", "csv")
CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
NOT_GRADED = ("invalid", "wrong_lab", "error")


def _csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _numeric_id(sid: str, fmt: str) -> str:
    if not sid.isdigit():
        raise ValueError(f"--export {fmt}: student id {sid!r} is not the LMS's number; grade the LMS's own download "
                         f"with --identity {fmt} (or auto) so that each row carries the id the LMS imports by")
    return sid


def _moodle_time(stamp: dt.datetime) -> str:
    # Moodle writes (and parses back, with strtotime) userdate's "Thursday, 3 December 2026, 9:30 AM"
    return stamp.strftime("%A, ") + f"{stamp.day} " + stamp.strftime("%B %Y, ") + \
        f"{(stamp.hour % 12) or 12}:{stamp.minute:02d} {'AM' if stamp.hour < 12 else 'PM'}"


def check_exports(exports, rule: str) -> None:
    """Refuse an export for the other LMS than the one whose names gave the ids (``rule``): Canvas user ids and
    Moodle participant ids are both numbers, so the grades would land on whoever carries them in the other system."""
    for fmt, other in (("moodle", "canvas"), ("canvas", "moodle")):
        if fmt in exports and rule == other:
            raise ValueError(f"--export {fmt}: the students were named by the {other!r} rule, so their ids are "
                             f"{other.capitalize()}'s numbers, which {fmt.capitalize()} would read as other "
                             f"students'; export {other} (or csv) for a {other.capitalize()} download")


def comment(row: dict, questions: list[str], titles: dict[str, str] | None = None) -> str:
    """Return the one-line feedback comment an LMS shows beside the grade: per task, penalty, overrides.

    ``titles`` maps a question to the task title the student sees ("Task 2 - Build the CNN"); a question without
    one is named by its id.
    """
    titles = titles or {}
    parts = [f"{titles.get(q) or q}: {float(row.get(q) or 0):g}" for q in questions]
    text = f"Autograded {float(row.get('total') or 0):g}/{float(row['possible']):g} ({', '.join(parts)})"
    if float(row.get("penalty") or 0):
        text += f"; late {row['late_days']} day(s): -{float(row['penalty']):g}"
    if row["status"] in NOT_GRADED:
        text = f"Not graded: {row['status']}"
    return text + ". Details: your feedback file."


def export(fmt: str, out: Path, rows: dict[str, dict], questions: list[str], *, canvas_column: str | None = None,
           now: dt.datetime | None = None, tz: dt.tzinfo | None = None, titles: dict[str, str] | None = None) -> Path:
    """Return the export file of format ``fmt`` written beside the gradebook ``out``.

    Moodle's times are written without a zone, as Moodle shows and parses them: in ``tz`` (the deadline's zone),
    else in this machine's zone.

    Raises
    ------
    ValueError
        An unknown format, ``canvas`` without its assignment column, or ids that are not the LMS's numbers.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise ValueError(f"--export {fmt!r}: expected one of {', '.join(FORMATS)}")
    ordered = [rows[k] for k in sorted(rows)]
    if fmt == "canvas":
        if not canvas_column or not canvas_column.rstrip().endswith(")"):
            raise ValueError("--export canvas needs --canvas-column 'ASSIGNMENT NAME (ASSIGNMENT ID)', the header of "
                             "the assignment's column in a gradebook exported from Canvas, e.g. 'Lab 01 (123456)'")
        table = [[*CANVAS_FIXED, canvas_column]]
        for r in ordered:
            table.append([r.get("name") or r["id"], _numeric_id(r["id"], fmt), "", "", "", f"{float(r['final']):g}"])
        path = out.with_name(f"{out.stem}-canvas.csv")
    elif fmt == "moodle":
        now = now or dt.datetime.now().astimezone()
        now = now.astimezone(tz) if tz is not None else now
        table = [MOODLE_COLUMNS]
        for r in ordered:
            submitted = dt.datetime.fromisoformat(r["submitted"]).astimezone(tz) if r.get("submitted") else None
            table.append([f"Participant {_numeric_id(r['id'], fmt)}", r.get("name") or "", "",
                          "Submitted for grading", f"{float(r['final']):.2f}", f"{float(r['possible']):.2f}", "Yes",
                          _moodle_time(submitted) if submitted else "", _moodle_time(now),
                          comment(r, questions, titles)])
        path = out.with_name(f"{out.stem}-moodle.csv")
    else:
        table = [["id", "name", "final", "total", "penalty", "possible", *questions, "status", "submitted",
                  "late_days", "lms_late", "file"]]
        for r in ordered:
            table.append([r["id"], r.get("name", ""), r["final"], r["total"], r["penalty"], r["possible"],
                          *[r.get(q, "") for q in questions], r["status"], r.get("submitted", ""),
                          r.get("late_days", ""), r.get("lms_late", ""), r["file"]])
        path = out.with_name(f"{out.stem}-export.csv")
    write_text(path, _csv(table))
    return path
