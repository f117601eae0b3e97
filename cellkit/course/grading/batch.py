"""The batch around the notebooks: which files to grade (identity, shards), rows refreshed with overrides and the
late policy, feedback rewritten from the saved state, and the merge of shards' gradebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from cellkit.atomic import sha256, write_text
from cellkit.course.autograder import ensure as ensure_autograder
from cellkit.course.autograder import question_points
from cellkit.course.autograder import tests as autograder_tests
from cellkit.course.grading.gradebook import (_gradebooks_only, finalize, merge_gradebooks, question_columns,
                                              read_gradebook, read_overrides, summary, write_summary)
from cellkit.course.grading.identity import assign
from cellkit.course.grading.lms import check_exports, export
from cellkit.course.grading.scoring import feedback_text, task_titles
from cellkit.course.grading.submissions import metadata_id
from cellkit.course.layout import Layout, resolve_labs


def _plan(files: list[Path], folder: Path, lab: str, rows: dict, regrade: bool, identity: str = "auto",
          shard: tuple[int, int] | None = None, times: dict | None = None,
          exports=()) -> tuple[list[tuple], dict, str]:
    """Return ``(jobs, info, rule)``: ``(student id, file, notes)`` for each file to grade (new, changed, or
    ``regrade``), what the identity rule says about every student (:class:`.identity.Submission`), the rule used.

    The id comes from the file's path only (:mod:`.identity`); a notebook whose metadata claims another id is
    graded under the path's id and flagged.  Of several files of one student the newest counts; under the plain
    rule (or a regex) that is flagged too, since two students' files may have collided on one name.  An export
    for the other LMS than the one whose names identified the students is refused (:func:`.lms.check_exports`).
    """
    subs, rule = assign(files, folder, lab, identity, times)
    check_exports(exports, rule)
    if shard is not None:
        k, n = shard
        subs = [s for s in subs if int(sha256(s.id.encode())[:8], 16) % n == k - 1]
    jobs, info = [], {}
    for sub in subs:
        sid, path, notes = sub.id, sub.path, []
        info[sid] = sub
        claimed = None
        if path.suffix == ".ipynb":
            try:
                claimed = metadata_id(json.loads(path.read_bytes().decode("utf-8-sig", errors="replace")))
            except ValueError:
                claimed = None
        if claimed and claimed != sid:
            notes.append(f"the notebook's metadata says student {claimed!r}, its file name {sid!r}: graded as {sid!r}")
        if sub.superseded and rule not in ("moodle", "canvas"):
            notes.append(f"{len(sub.superseded) + 1} files map to id {sid!r}: graded the newest, {sub.rel}; check "
                         f"they are one student's: {', '.join(sub.superseded[:3])}")
        old = rows.get(sid)
        if old and not regrade and old.get("sha256") == sha256(path) and old.get("status") != "error":
            continue
        jobs.append((sid, path, notes))
    return jobs, info, rule


def _describe(row: dict, sub) -> dict:
    """Return ``row`` with what the identity rule knows: name, path, time, LMS late mark, older files."""
    if sub is None:
        return row
    row.update({"name": sub.name, "file": sub.rel, "lms_late": "LATE" if sub.late else "",
                "submitted": sub.timestamp.isoformat() if sub.timestamp else "",
                "superseded": "; ".join(sub.superseded)})
    return row


def _feedback(row: dict, state: dict, ctx) -> str:
    return feedback_text(row, state, ctx.lab, tasks=ctx.tasks, overrides=ctx.overrides, show_hidden=ctx.show_hidden)


def _refresh(rows: dict, ctx, questions: list[str]) -> list[str]:
    """Apply the overrides and the late policy to every row again, rewrite the feedback they change, and return
    the ids the overrides name that have no row (a typo, or another shard's students)."""
    for sid, row in rows.items():
        sub = ctx.info.get(sid)
        if sub is not None and row.get("sha256") == sha256(sub.path):
            _describe(row, sub)
        before = {k: str(row.get(k)) for k in (*questions, "final", "penalty", "overridden")}
        finalize(row, questions, ctx.overrides, ctx.policy)
        state_file = ctx.feedback_dir / ".state" / f"{sid}.json"
        changed = before != {k: str(row.get(k)) for k in before}
        if state_file.is_file() and (changed or not (ctx.feedback_dir / f"{sid}.md").is_file() or ctx.rewrite):
            write_text(ctx.feedback_dir / f"{sid}.md", _feedback(row, json.loads(state_file.read_text()), ctx))
    return sorted({o.id for o in ctx.overrides} - set(rows))


def _parse_shard(shard) -> tuple[int, int] | None:
    if not shard:
        return None
    try:
        k, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"--shard {shard!r}: expected K/N, e.g. 3/10 for the third of ten parts") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {shard!r}: expected 1 <= K <= N, e.g. 1/2 and 2/2")
    return k, n


def unapplied_overrides(rows: dict[str, dict], overrides) -> list[str]:
    """Return ``"ID QUESTION"`` for each override whose points the rows do not show (a question's column, or
    ``penalty``)."""
    return [f"{o.id} {o.question}" for o in overrides
            if o.id in rows and abs(float(rows[o.id].get(o.question) or 0) - o.points) > 1e-9]


def merge(out, parts, *, lab=None, root=None, exports=(), canvas_column: str | None = None, overrides=None,
          verbose: bool = True) -> dict:
    """Return the merged rows after combining the shards' gradebooks ``parts`` into ``out`` (feedback too), and
    writing its summary and ``exports``.  Overrides and the late policy were applied by each shard's run: an
    overrides file (``overrides``, default ``OUT_STEM-overrides.csv`` if present) that a shard did not apply is
    refused, since the merge cannot rewrite rows or feedback without the late policy."""
    out = Path(out).resolve()
    if "canvas" in exports and not canvas_column:
        export("canvas", out, {}, [])  # raises, naming the option, before anything is written
    parts = _gradebooks_only([Path(p) for p in parts])
    rows = merge_gradebooks(out, parts)
    questions = question_columns(read_gradebook(out))
    overrides_path = Path(overrides) if overrides else out.with_name(f"{out.stem}-overrides.csv")
    if overrides and not overrides_path.is_file():
        raise FileNotFoundError(f"--overrides {overrides}: no such file (expected a CSV id,question,points,comment)")
    missing = unapplied_overrides(rows, read_overrides(overrides_path, questions))
    if missing:
        raise ValueError(f"{overrides_path}: {len(missing)} override(s) not applied by the shards: "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Run every shard's "
                         f"'cellkit grade' again with --overrides {overrides_path} (graded rows are only refreshed), "
                         "then merge again")
    possible = float(next(iter(rows.values()))["possible"]) if rows else 0.0
    points, titles = {q: 0.0 for q in questions}, None
    if lab is not None:
        layout = Layout.of(root)
        name = resolve_labs([str(lab)], layout)[0]
        points = question_points(autograder_tests(ensure_autograder(name, layout)))
        titles = task_titles(nbformat.read(layout.student_notebook(name), as_version=4))
    elif questions and possible:  # without the lab, a question's points are taken as its best score seen
        points = {q: max(float(r.get(q) or 0) for r in rows.values()) for q in questions}
    written = write_summary(out, rows, questions, points)
    written += [export(fmt, out, rows, questions, canvas_column=canvas_column, titles=titles) for fmt in exports]
    text = summary(rows, possible)
    if verbose:
        print(text)
        print(f"merged {len(parts)} gradebook(s), {len(rows)} student(s), into {out}; also wrote "
              f"{', '.join(p.name for p in written)}")
    return {"rows": rows, "summary": text, "gradebook": out, "written": written}
