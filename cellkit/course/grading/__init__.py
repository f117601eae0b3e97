"""Grading student submissions: a sandboxed process per notebook, a resumable gradebook, feedback in words.

:func:`grade` takes a folder (or a learning-management system's zip) of ``.ipynb`` files for one lab and,
several at a time, runs each submission in its own process and scratch folder, then scores it with the lab's
public *and hidden* tests (otter-grader's exception-style test files, parsed and scored by otter's own
:class:`otter.test_files.ExceptionTestFile`).  The package splits the work by concern:
:mod:`.submissions` (finding, naming and reading the files; their structure),
:mod:`.sandbox` (the grader's side of the child process), :mod:`._worker` (the child itself,
standard library only until sandboxed), :mod:`.scoring` (statuses, rows, feedback) and
:mod:`.gradebook` (the CSV, overrides, the late policy, the summary), :mod:`.identity` (who handed in each
file: Moodle, Canvas, plain names or a regex), :mod:`.lms` (Canvas and Moodle imports), :mod:`.preflight`
(the lab's data is present) and :mod:`.batch` (shards, refreshing rows, merging).  It writes

- the gradebook ``OUT`` (CSV, one row per student: ``id, name, file, status, reason``, the points of each
  question, ``total, penalty, final, possible, submitted, ...``), rewritten atomically after every submission,
  so that a grader killed halfway leaves the previous complete file and a re-run grades only what is missing;
- one feedback file per student, ``OUT_STEM-feedback/ID.md``, in the student's words: each task, each check
  passed or failed (hidden checks' messages only when asked);
- the summary, printed and saved (``OUT_STEM-summary.txt`` and ``.csv``), and the LMS exports asked for.

Why not ``otter run``?  otter's local runner unpacks the autograder zip, hidden tests included, beside the
submission and executes the notebook there, as the same user, with no time or memory limit: the student's code
can read the hidden tests while it runs.  Here the notebook runs first with the *public* tests only; the hidden
tests reach the process through a pipe once every cell has run.

The threat model (what the sandbox does, and where it stops) is in :mod:`.sandbox`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cellkit.atomic import sha256, write_text
from cellkit.config import get_config
from cellkit.course import setup_cell
from cellkit.course.autograder import ensure as ensure_autograder
from cellkit.course.autograder import parse as parse_tests
from cellkit.course.autograder import question_points
from cellkit.course.autograder import tests as autograder_tests
from cellkit.course.grading.lms import export
from cellkit.course.grading.batch import _describe, _feedback, _parse_shard, _plan, _refresh, merge
from cellkit.course.grading.gradebook import (LatePolicy, finalize, parse_deadline, read_gradebook, read_overrides,
                                              summary, write_gradebook, write_summary)
from cellkit.course.grading.identity import IdentityError, assign, check_rule, read_times
from cellkit.course.grading.preflight import preflight
from cellkit.course.grading.sandbox import (TEMP_PREFIX, Context, clean_stale_copies, execute, private_paths,
                                            sandbox_available)
from cellkit.course.grading.scoring import (PRIORITY, STATUSES, cell_places, cell_reasons, empty_row,
                                            finish_row, process_reasons, score, secret_lines, task_titles)
from cellkit.course.grading.submissions import (compare_with_release, find_submissions, lab_of, metadata_id,
                                                read_notebook, scan_code, student_id, unpack)
from cellkit.course.layout import PACKAGE_DIR, Layout, course_version, resolve_labs

__all__ = ["grade", "grade_submission", "merge", "STATUSES", "PRIORITY", "read_gradebook", "write_gradebook",
           "summary", "student_id", "metadata_id", "compare_with_release", "scan_code", "read_notebook",
           "find_submissions", "sandbox_available", "assign", "IdentityError", "preflight"]


def _static_reasons(nb, ctx: Context) -> list[tuple[str, str]]:
    """Return what the submitted file shows before anything runs: its structure, release, suspicious code."""
    reasons = []
    if lab_of(nb) is None:
        reasons.append(("flagged", f"no lab name in the notebook (metadata or setup cell); graded as {ctx.lab}"))
    reasons += [("flagged", n) for n in compare_with_release(nb, ctx.released)]
    pinned = setup_cell.pinned_version(nb)
    if pinned and pinned != course_version():
        reasons.append(("flagged", f"the notebook comes from release {pinned}; graded with cellkit {course_version()}"))
    reasons += [("suspicious", f"suspicious code: {n}") for n in scan_code(nb)]
    return reasons


def _run(nb, ctx: Context, sid: str) -> dict:
    """Return the worker's events after running ``nb`` (outputs stripped) in a scratch folder."""
    import nbformat

    clean = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    for cell in clean.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}grade-{os.getpid()}-") as tmp:
        scratch = Path(tmp) / "work"
        scratch.mkdir()
        events = execute(ctx, nbformat.writes(clean).encode(), scratch)
        if ctx.keep_scratch:
            keep = ctx.feedback_dir / ".logs"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(events["log"], keep / f"{sid}.log")
    return events


def grade_submission(path: Path, ctx: Context, sid: str) -> tuple[dict, dict]:
    """Return ``(gradebook row, state)`` for one submitted file; ``state`` is what the student's feedback is
    written from (questions with their checks, cells with their places, notes in the student's words)."""
    data = path.read_bytes()
    row = empty_row(sid, path.name, ctx.points, sha256(data))
    nb, problem, notes = (None, "not a notebook: the file name does not end in .ipynb", []) \
        if path.suffix != ".ipynb" else read_notebook(data)
    questions, cells, student_notes = [], [], []
    reasons = [("flagged", n) for n in notes]
    if nb is None:
        reasons.append(("invalid", problem))
    elif lab_of(nb) not in (None, ctx.lab):
        reasons.append(("wrong_lab", f"this notebook is lab {lab_of(nb)}, not {ctx.lab}"))
    else:
        static = _static_reasons(nb, ctx)
        reasons += static
        if any("check cell" in text for _, text in static):
            student_notes.append("a `grader.check` cell was changed, moved or deleted: keep them as they are; "
                                 "the grade comes from the grading checks either way")
        events = _run(nb, ctx, sid)
        row["seconds"] = events["seconds"]
        cells = events.get("executed", {}).get("cells", [])
        questions, score_reasons = score(ctx.test_files, events.get("results", {}).get("questions"), ctx.secrets)
        n_code = sum(c.cell_type == "code" for c in nb.cells)
        reasons += score_reasons + cell_reasons(cells, nb, ctx.secrets) + process_reasons(events, questions, n_code)
        if "results" not in events:
            questions = []  # no honest results: every question scores 0
        places = cell_places(nb)
        for c in cells:
            c["place"] = places.get(c.get("number"), "a cell")
    finish_row(row, questions, reasons)
    row["raw"] = json.dumps({q["name"]: q["score"] for q in questions})
    return row, {"questions": questions, "cells": cells, "notes": student_notes}


def _check_arguments(submissions: Path, timeout: float, memory_limit: float) -> None:
    if not submissions.exists():
        raise FileNotFoundError(f"SUBMISSIONS {submissions}: no such folder or zip (the LMS's download)")
    if timeout <= 0 or memory_limit <= 0:
        raise ValueError(f"--timeout {timeout:g}, --memory {memory_limit:g}: expected positive numbers (seconds, GiB)")
    for needed in (Path(sys.prefix).resolve(), PACKAGE_DIR):
        if submissions == needed or submissions in needed.parents:
            raise ValueError(f"submissions={submissions}: this folder holds the Python environment or cellkit "
                             "itself, which the sandbox must hide; put the submissions in a folder of their own")


def _default_workers(memory_limit: float) -> int:
    try:
        free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        free = 8.0
    return max(1, min(os.cpu_count() or 1, int(free // max(memory_limit, 1.0)) or 1))


def _run_jobs(jobs, ctx: Context, rows: dict, out: Path, workers: int, verbose: bool) -> None:
    """Grade ``jobs`` ``workers`` at a time; each row is written to the gradebook as soon as it is known."""
    lock = threading.Lock()
    questions = list(ctx.points)

    def one(job):
        sid, path, notes = job
        try:
            row, state = grade_submission(path, ctx, sid)
        except Exception as exc:  # noqa: BLE001 - one bad submission never aborts the batch
            row = empty_row(sid, path.name, ctx.points, sha256(path))
            finish_row(row, [], [("error", f"grader error: {type(exc).__name__}: {exc}"[:1500])])
            state = {"questions": [], "cells": [], "notes": []}
        if ctx.stopping:  # interrupted: this row is not a grade; the next run grades it
            return None
        if notes:
            row["reason"] = "; ".join(x for x in [row["reason"], *notes] if x)
            if row["status"] == "ok":
                row["status"] = "flagged"
        ctx.reap_strays()  # without namespaces: no process of a submission outlives its row
        _describe(row, ctx.info.get(sid))
        finalize(row, questions, ctx.overrides, ctx.policy)
        write_text(ctx.feedback_dir / ".state" / f"{sid}.json", json.dumps(state))
        write_text(ctx.feedback_dir / f"{sid}.md", _feedback(row, state, ctx))
        with lock:
            rows[sid] = row
            write_gradebook(out, rows, questions)
        if verbose:
            print(f"  {sid:24s} {row['status']:13s} {float(row['final']):g}/{row['possible']:g} "
                  f"({row['seconds']:.0f} s) {row['reason'][:120]}", flush=True)
        return row

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        list(pool.map(one, jobs))
    except BaseException:  # Ctrl-C or a kill: stop the workers (their own sessions miss the signal)
        ctx.stopping = True
        for proc in list(ctx.live):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def grade(submissions, lab, out, *, workers: int | None = None, timeout: float = 600, memory_limit: float = 6.0,
          fast: bool = True, regrade: bool = False, source: str | None = None, cell_timeout: float | None = None,
          test_timeout: float = 120, sandbox: bool | None = None, root=None, keep_logs: bool = False,
          autograder=None, verbose: bool = True, identity: str = "auto", overrides=None, deadline: str | None = None,
          late_penalty: float = 0.0, late_cap: float = 1.0, exports=(), canvas_column: str | None = None,
          shard: str | None = None, show_hidden: bool = False, check_data: bool = True, times=None) -> dict:
    """Return the gradebook rows (by student id) after grading every submission of ``lab``.

    Parameters
    ----------
    submissions : path
        A folder of ``.ipynb`` files (searched recursively: one folder per student works) or a zip of them.
    lab : str
        ``01``, ``01_mnist`` or ``mnist``.
    out : path
        The gradebook CSV; feedback goes to ``<out stem>-feedback/<id>.md`` beside it.
    workers : int, optional
        Submissions graded at once (default: the CPU cores, within the memory that ``memory_limit`` allows).
    timeout : float
        Seconds each notebook's cells may run in all; a cell running when it runs out is interrupted and the
        rest are skipped; the process is killed ``test_timeout + 90`` s later at the latest.
    memory_limit : float
        GiB of address space per submission (``RLIMIT_AS``; TensorFlow alone maps about 2 GiB).
    fast : bool
        Run the labs in fast mode (``CELLKIT_FAST=1``): the instructor's choice.
    regrade : bool
        Grade again the submissions already in the gradebook (by default only new or changed files are graded).
    source : {"real", "synthetic"}, optional
        The data source (default: ``$CELLKIT_SOURCE``).
    cell_timeout : float, optional
        The budget for the cells (default ``timeout``).
    sandbox : bool, optional
        Use namespaces (default: when available); ``False`` runs plain processes (audit hook and limits only).
    autograder : path, optional
        The otter autograder zip whose tests grade (default ``build/autograder/LAB-autograder.zip``); pass the
        release's ``instructors/autograder/LAB-autograder.zip`` to grade against exactly what was released.
    identity : str
        Who handed in each file: ``auto`` (default), ``moodle``, ``canvas``, ``plain`` or a regex with a named
        group ``id`` (see :mod:`.identity`).
    overrides : path, optional
        CSV ``id,question,points,comment`` applied on every run (default ``OUT_STEM-overrides.csv`` if present).
    deadline, late_penalty, late_cap :
        The late policy: ISO 8601 deadline with a time zone; fraction of the earned score taken per day or part of
        a day late; the most taken (see :class:`.gradebook.LatePolicy`).
    exports : list of {"canvas", "moodle", "csv"}
        LMS files to write beside the gradebook (:mod:`.export`); ``canvas`` needs ``canvas_column``.
    shard : str, optional
        ``K/N``: grade only the K-th of N disjoint parts of the students (by a hash of their id), for a Slurm
        array or CI matrix; combine the gradebooks with :func:`merge`.
    show_hidden : bool
        Put the grading checks' messages (which may name expected values) in the students' feedback.
    times : path, optional
        The LMS's submission times, used instead of the files' (:func:`.identity.read_times`).
    check_data : bool
        Refuse to start when the lab's real datasets are not on this machine (:func:`.preflight.preflight`).

    Returns
    -------
    dict
        ``{"rows": {id: row}, "summary": str, "seconds": float, "graded": int, "sandbox": str}``.
    """
    import nbformat

    t0 = time.perf_counter()
    layout = Layout.of(root)
    lab = resolve_labs([str(lab)], layout)[0]
    for needed in (layout.student_notebook(lab), layout.public_tests(lab)):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: run 'cellkit course build {lab}' first")
    if autograder is None:
        zip_path = ensure_autograder(lab, layout)
    else:
        zip_path = Path(autograder).resolve()
        if not zip_path.is_file():
            raise FileNotFoundError(f"--autograder {autograder}: no such zip")
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    _check_arguments(submissions, timeout, memory_limit)
    feedback_dir = out.with_name(f"{out.stem}-feedback")
    tests = autograder_tests(zip_path)
    points = question_points(tests)
    shard_kn, identity = _parse_shard(shard), check_rule(identity)
    policy = LatePolicy(parse_deadline(deadline), late_penalty, late_cap)
    lms_times = read_times(times, tz=policy.zone) if times else None
    overrides_path = Path(overrides) if overrides else out.with_name(f"{out.stem}-overrides.csv")
    if overrides and not overrides_path.is_file():
        raise FileNotFoundError(f"--overrides {overrides}: no such file (expected a CSV id,question,points,comment)")
    override_rows = read_overrides(overrides_path, list(points))
    if "canvas" in exports and not canvas_column:
        export("canvas", out, {}, [])  # raises, naming the option, before anything is graded
    data_note = preflight(lab, source, layout) if check_data else ""
    if verbose and data_note:
        print(data_note, flush=True)
    sandbox = sandbox_available() if sandbox is None else sandbox
    removed = clean_stale_copies()
    if removed and verbose:
        print(f"removed {len(removed)} grading copies left in {tempfile.gettempdir()} by a killed run", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}submissions-{os.getpid()}-") as unpacked:
        folder = unpack(submissions, Path(unpacked)) if submissions.is_file() else submissions
        files = find_submissions(folder, skip=[out])
        if out.parent == folder or folder in out.parents:
            files = [f for f in files if feedback_dir not in f.parents]
        data_dir = get_config().data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        protected = [*layout.instructor_only(), folder, submissions, out, feedback_dir, zip_path]
        ctx = Context(lab, {"root": layout.root, "public": layout.public_tests(lab), "autograder": zip_path},
                      tests, points, fast=fast, source=source, timeout=timeout,
                      cell_timeout=cell_timeout or timeout, test_timeout=test_timeout,
                      memory_limit=int(memory_limit * 2**30), sandbox=bool(sandbox), protected=protected,
                      rw=[data_dir], threads=1, feedback_dir=feedback_dir, keep_scratch=keep_logs,
                      private=private_paths())
        ctx.test_files, ctx.secrets = parse_tests(tests), secret_lines(tests)
        ctx.released = nbformat.read(layout.student_notebook(lab), as_version=4)
        ctx.tasks, ctx.overrides, ctx.policy = task_titles(ctx.released), override_rows, policy
        ctx.show_hidden, ctx.rewrite = show_hidden, regrade
        rows = read_gradebook(out)
        jobs, ctx.info, rule = _plan(files, folder, lab, rows, regrade, identity, shard_kn, lms_times, exports)
        workers = max(1, min(workers or _default_workers(memory_limit), len(jobs) or 1))
        if verbose:
            print(f"grading {len(jobs)} of {len(ctx.info)} student(s) of {lab} ({len(ctx.info) - len(jobs)} already "
                  f"graded; {len(files)} file(s), students named by the {rule!r} rule"
                  f"{f', shard {shard}' if shard else ''}), {workers} at a time, {'fast' if fast else 'full'} mode, "
                  f"time budget {timeout:.0f} s, "
                  f"memory {memory_limit:g} GiB, sandbox: {'namespaces' if sandbox else 'process only'}", flush=True)
            if not sandbox:
                print("WARNING sandbox: process only (no user namespaces here): student code runs as your user; "
                      "the audit hook blocks Python-level access to the tests, native code is not stopped",
                      flush=True)
        feedback_dir.mkdir(parents=True, exist_ok=True)
        if jobs:
            try:
                _run_jobs(jobs, ctx, rows, out, workers, verbose)
            finally:
                ctx.close()
        else:
            ctx.close()
        unknown = _refresh(rows, ctx, list(points))
        write_gradebook(out, rows, list(points))
    text = summary(rows, sum(points.values()))
    text += f"\nWARNING overrides for unknown id(s), not applied: {', '.join(unknown[:8])}" if unknown and not shard \
        else ""
    written = write_summary(out, rows, list(points), points) + [export(
        fmt, out, rows, list(points), canvas_column=canvas_column, tz=policy.zone, titles=ctx.tasks) for fmt in exports]
    seconds = time.perf_counter() - t0
    if verbose:
        print(text)
        print(f"graded {len(jobs)} submission(s) in {seconds:.1f} s; gradebook {out}, feedback in {feedback_dir}/; "
              f"also wrote {', '.join(p.name for p in written)}")
    return {"rows": rows, "summary": text, "seconds": seconds, "graded": len(jobs),
            "sandbox": "namespaces" if sandbox else "process only", "gradebook": out, "feedback": feedback_dir,
            "rule": rule, "written": written}
