"""The gradebook: one CSV row per student, written atomically; overrides, the late policy, the saved summary, merges.

A row keeps what the tests gave (``raw``: the points per question, as JSON) apart from what the gradebook shows:
the question columns and ``total`` are the tests' points with the instructor's overrides applied, ``penalty`` the
late penalty, ``final`` what goes to the LMS.  Overrides and the late policy are applied again on every run, so
neither a re-grade nor a resubmission loses them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from cellkit.atomic import write_text
from cellkit.course.grading.scoring import PRIORITY

BEFORE = ["id", "name", "file", "status", "reason"]
AFTER = ["total", "penalty", "final", "possible", "submitted", "late_days", "lms_late", "overridden", "superseded",
         "seconds", "sha256", "raw"]
SPECIAL_OVERRIDES = ("penalty",)
"""Override rows may name a question or ``penalty`` (points taken off for lateness; 0 waives it: an extension)."""


def read_gradebook(path: Path) -> dict[str, dict]:
    """Return the rows of an existing gradebook keyed by student id (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def question_columns(rows: dict[str, dict]) -> list[str]:
    """Return the question columns of rows read back from a gradebook (those between ``reason`` and ``total``)."""
    for row in rows.values():
        keys = list(row)
        if "reason" in keys and "total" in keys:
            return keys[keys.index("reason") + 1:keys.index("total")]
    return []


def write_gradebook(path: Path, rows: dict[str, dict], questions: list[str]) -> None:
    """Write the gradebook atomically: readers (and a killed grader) see the old file or the new one."""
    fields = [*BEFORE, *questions, *AFTER]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for sid in sorted(rows):
        writer.writerow(rows[sid])
    write_text(path, buffer.getvalue())


# ------------------------------------------------------------------ overrides and the late policy


@dataclass(frozen=True)
class Override:
    """One line of the overrides file: points for one question (or ``penalty``) of one student, and why."""

    id: str
    question: str
    points: float
    comment: str = ""


def read_overrides(path, questions: list[str]) -> list[Override]:
    """Return the overrides in the CSV ``path`` (columns ``id,question,points,comment``); none when it is absent.

    Raises
    ------
    ValueError
        A missing column, an unknown question or points that are not a number: the file and line are named.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("id", "question", "points") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected id,question,points,comment")
        out = []
        for line, row in enumerate(reader, start=2):
            question = (row["question"] or "").strip()
            if question not in questions and question not in SPECIAL_OVERRIDES:
                raise ValueError(f"{path}, line {line}: question {question!r}; expected one of "
                                 f"{', '.join([*questions, *SPECIAL_OVERRIDES])}")
            try:
                points = float(row["points"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: points {row['points']!r} is not a number") from None
            if not math.isfinite(points):
                raise ValueError(f"{path}, line {line}: points {row['points']!r} is not a finite number")
            out.append(Override((row["id"] or "").strip(), question, points, (row.get("comment") or "").strip()))
    return out


@dataclass(frozen=True)
class LatePolicy:
    """Points off for lateness: ``per_day`` of the earned score per day or part of a day after ``deadline``,
    at most ``cap`` (both fractions: 0.1 and 0.5 for "10% a day, at most half")."""

    deadline: dt.datetime | None = None
    per_day: float = 0.0
    cap: float = 1.0

    def __post_init__(self):
        if not (0 <= self.per_day <= 1 and 0 <= self.cap <= 1):
            bad, value = ("--late-penalty", self.per_day) if not 0 <= self.per_day <= 1 else ("--late-cap", self.cap)
            raise ValueError(f"{bad} {value * 100:g}: expected a percent between 0 and 100 (in Python, a fraction "
                             f"between 0 and 1; got {value:g})")
        if self.per_day and self.deadline is None:
            raise ValueError(f"--late-penalty {self.per_day * 100:g} needs --deadline (ISO 8601 with a time zone, "
                             "e.g. 2026-12-10T23:59+01:00): without it no submission is late")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError(f"deadline {self.deadline}: give a time zone (2026-12-10T23:59+01:00, or Z for UTC)")

    @property
    def zone(self) -> dt.tzinfo | None:
        """The deadline's time zone: Moodle's worksheet times (which carry none) are read and written in it."""
        return self.deadline.tzinfo if self.deadline is not None else None

    def days_late(self, submitted: str) -> int:
        if self.deadline is None or not submitted:
            return 0
        seconds = (dt.datetime.fromisoformat(submitted) - self.deadline).total_seconds()
        return max(0, math.ceil(seconds / 86400))


def parse_deadline(text: str | None) -> dt.datetime | None:
    """Return the deadline ``text`` (ISO 8601 with a time zone) as an aware datetime, or None."""
    if not text:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--deadline {text!r}: expected ISO 8601 with a time zone, e.g. 2026-12-10T23:59+01:00") \
            from None
    if stamp.tzinfo is None:
        raise ValueError(f"--deadline {text!r}: give a time zone, e.g. {text}+01:00 (or Z for UTC): "
                         "submission times are compared in UTC")
    return stamp


def finalize(row: dict, questions: list[str], overrides: list[Override], policy: LatePolicy) -> dict:
    """Return ``row`` with overrides and the late penalty applied to its tests' points (``raw``)."""
    try:
        raw = json.loads(row.get("raw") or "{}")
    except ValueError:
        raw = {}
    if not raw:  # a row from an older gradebook: its question columns are what the tests gave
        raw = {q: float(row.get(q) or 0) for q in questions}
        row["raw"] = json.dumps(raw)
    scores = {q: float(raw.get(q, 0.0)) for q in questions}
    changed, penalty_override = [], None
    for o in overrides:
        if o.id != row["id"]:
            continue
        if o.question == "penalty":
            penalty_override = o
            continue
        if o.points != scores[o.question]:  # an override equal to the tests' points changes nothing: not listed
            changed.append(f"{o.question} {scores[o.question]:g}->{o.points:g}")
        scores[o.question] = o.points
    total = round(sum(scores.values()), 4)
    days = policy.days_late(row.get("submitted", ""))
    penalty = round(total * min(policy.cap, policy.per_day * days), 4)
    if penalty_override is not None:
        if penalty_override.points != penalty:
            changed.append(f"penalty {penalty:g}->{penalty_override.points:g}")
        penalty = penalty_override.points
    row.update(scores)
    row.update({"total": total, "late_days": days, "penalty": penalty, "final": round(max(0.0, total - penalty), 4),
                "overridden": "; ".join(changed)})
    return row


# ------------------------------------------------------------------ summary


def _median(values: list[float]) -> float:
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def histogram(rows: list[dict], possible: float, column: str = "final") -> list[tuple[str, int]]:
    """Return ``(bin label, count)`` for the ``column`` scores in 10% bins (the last bin holds 100%)."""
    bins = [0] * 10
    for r in rows:
        bins[min(9, max(0, int(float(r.get(column) or r.get("total") or 0) / possible * 10)))] += 1
    return [(f"{i * 10}-{i * 10 + 9 if i < 9 else 100}%", n) for i, n in enumerate(bins)]


def _lowering(row: dict) -> list[str]:
    """Return the entries of ``row``'s ``overridden`` (``q2_cnn 3->2``) that give a question less than the tests."""
    out = []
    for entry in (row.get("overridden") or "").split("; "):
        question, _, change = entry.rpartition(" ")
        if question and question != "penalty" and "->" in change:
            tests, given = (float(x) for x in change.split("->"))
            out += [entry] if given < tests else []
    return out


def summary(rows: dict[str, dict], possible: float) -> str:
    """Return the summary: counts per status, score distribution, and the rows that need a look."""
    rows = list(rows.values())
    lines = [f"{len(rows)} submission(s): " + ", ".join(f"{s} {sum(r['status'] == s for r in rows)}"
                                                        for s in PRIORITY if any(r["status"] == s for r in rows))]
    finals = sorted(float(r.get("final") or r.get("total") or 0) for r in rows)
    if finals and possible:
        lines.append(f"final score out of {possible:g}: mean {sum(finals) / len(finals):.2f}, median "
                     f"{_median(finals):.2f}, min {finals[0]:g}, max {finals[-1]:g}")
        for label, n in histogram(rows, possible):
            lines.append(f"  {label:>8} | {'#' * n} {n if n else ''}".rstrip())
    late = [r for r in rows if float(r.get("penalty") or 0) > 0]
    if late:
        lines.append(f"late penalty applied to {len(late)}: " + ", ".join(
            f"{r['id']} ({r['late_days']} d, -{float(r['penalty']):g})" for r in sorted(late, key=lambda r: r["id"])))
    over = [r for r in rows if r.get("overridden")]
    if over:
        lines.append(f"overridden by hand ({len(over)}): " + ", ".join(f"{r['id']} ({r['overridden']})" for r in over))
    lowered = [f"{r['id']} ({e})" for r in rows for e in _lowering(r)]
    if lowered:
        lines.append(f"overrides that lower the tests' points ({len(lowered)}): check they still apply, e.g. after a "
                     f"resubmission: {', '.join(lowered)}")
    superseded = [r for r in rows if r.get("superseded")]
    if superseded:
        lines.append(f"older submissions not graded ({len(superseded)} student(s); the newest counts):")
        lines += [f"  {r['id']:24s} graded {r['file']}; not graded: {r['superseded']}" for r in superseded]
    look = [r for r in rows if r["status"] != "ok"]
    if look:
        lines.append(f"needs a person's look ({len(look)}):")
        for r in sorted(look, key=lambda r: (PRIORITY.index(r["status"]), r["id"])):
            lines.append(f"  {r['id']:24s} {r['status']:13s} {float(r.get('final') or r['total']):g}/{possible:g}  "
                         f"{r['reason'][:300]}")
    return "\n".join(lines)


def question_table(rows: dict[str, dict], questions: list[str], points: dict[str, float]) -> list[dict]:
    """Return per question: its points, mean score, and the share of graded submissions with full and zero marks."""
    graded = [r for r in rows.values() if r["status"] not in ("invalid", "wrong_lab", "error")]
    out = []
    for q in questions:
        scores = [float(r.get(q) or 0) for r in graded]
        n = len(scores) or 1
        out.append({"question": q, "points": points.get(q, ""), "graded": len(scores),
                    "mean": round(sum(scores) / n, 3),
                    "full_marks": round(sum(s >= points.get(q, 0) > 0 for s in scores) / n, 3),
                    "zero": round(sum(s <= 0 for s in scores) / n, 3)})
    return out


def write_summary(out: Path, rows: dict[str, dict], questions: list[str], points: dict[str, float]) -> list[Path]:
    """Write ``OUT_STEM-summary.txt`` (the summary and a per-question table) and ``OUT_STEM-summary.csv``
    (``section,key,value...`` rows: per-question pass rates, then the histogram), each atomically."""
    possible = sum(points.values())
    table = question_table(rows, questions, points)
    text = [summary(rows, possible), "", "per question (graded submissions): points, mean, full marks, zero"]
    text += [f"  {t['question']:20s} {t['points']:>6g} {t['mean']:>7.2f} {t['full_marks']:>7.0%} {t['zero']:>7.0%}"
             for t in table]
    txt = out.with_name(f"{out.stem}-summary.txt")
    write_text(txt, "\n".join(text) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "key", "points", "graded", "mean", "full_marks", "zero", "count"])
    for t in table:
        writer.writerow(["question", t["question"], t["points"], t["graded"], t["mean"], t["full_marks"], t["zero"],
                         ""])
    for label, n in histogram(list(rows.values()), possible or 1):
        writer.writerow(["histogram_final", label, "", "", "", "", "", n])
    for status in PRIORITY:
        writer.writerow(["status", status, "", "", "", "", "", sum(r["status"] == status for r in rows.values())])
    path = out.with_name(f"{out.stem}-summary.csv")
    write_text(path, buffer.getvalue())
    return [txt, path]


# ------------------------------------------------------------------ shards


SIBLINGS = ("-summary.csv", "-canvas.csv", "-moodle.csv", "-export.csv", "-overrides.csv")
"""What the grader writes beside a gradebook ``STEM.csv``: ``STEM-summary.csv``, the exports, the overrides."""


def _gradebooks_only(parts: list[Path]) -> list[Path]:
    """Return ``parts`` without the files the grader writes beside a gradebook that is itself in ``parts`` (a glob
    such as ``shards/grades-*.csv`` matches ``grades-1-summary.csv`` too); refuse any other CSV, naming it."""
    names = {p.resolve() for p in parts}
    kept = []
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"{part}: no such gradebook")
        sibling = next((s for s in SIBLINGS if part.name.endswith(s)), None)
        if sibling and part.with_name(part.name[:-len(sibling)] + ".csv").resolve() in names:
            continue
        with open(part, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if "id" not in header or "sha256" not in header:
            raise ValueError(f"{part}: not a gradebook (no id column); expected the CSVs that 'cellkit grade --shard "
                             "K/N --out ...' wrote, e.g. shards/*/grades.csv")
        kept.append(part)
    return kept


def merge_gradebooks(out: Path, parts: list[Path]) -> dict[str, dict]:
    """Return the rows of ``parts`` (gradebooks of shards of one lab) after writing them to ``out`` as one.

    The parts' feedback folders (``STEM-feedback/``) are merged into ``out``'s.  A student in two parts with
    different files is refused, naming both gradebooks; the same file graded twice keeps one row.
    """
    import shutil

    rows, origin, questions = {}, {}, None
    parts = _gradebooks_only([Path(p) for p in parts])
    for part in parts:
        got = read_gradebook(part)
        qs = question_columns(got)
        if questions is None:
            questions = qs
        elif got and qs != questions:
            raise ValueError(f"{part}: questions {qs} differ from {questions} of {parts[0]}: another lab?")
        for sid, row in got.items():
            if sid in rows and rows[sid].get("sha256") != row.get("sha256"):
                raise ValueError(f"student {sid!r} is in {origin[sid]} and {part} with different files: the shards "
                                 "were made from different submissions; grade them again from one folder")
            rows[sid], origin[sid] = row, part
    out = Path(out)
    feedback = out.with_name(f"{out.stem}-feedback")
    for part in parts:
        src = Path(part).with_name(f"{Path(part).stem}-feedback")
        if src.is_dir() and src.resolve() != feedback.resolve():
            shutil.copytree(src, feedback, dirs_exist_ok=True)
    write_gradebook(out, rows, questions or [])
    return rows
