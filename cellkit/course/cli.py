"""The course commands of ``cellkit``: ``run``, ``course build|check``, ``release``, ``grade``.

:func:`add_commands` adds them to the parser of :mod:`cellkit.cli`, the entry point.
"""

from __future__ import annotations

from cellkit.course.build import build, check
from cellkit.course.grading import grade, merge
from cellkit.course.layout import Layout, labs
from cellkit.course.publish import publish, write_badges
from cellkit.course.release import build_release
from cellkit.course.run import run


def _cmd_run(args) -> int:
    ok = run(args.labs, fast=True if args.fast else (False if args.full else None), source=args.source,
             out=args.out, include_walkthroughs=args.walkthroughs, timeout=args.timeout)
    return 0 if ok else 1


def _cmd_course_build(args) -> int:
    layout = Layout.of()
    for lab in build(args.labs):
        print(f"built {layout.relative(layout.lab_folder(lab))}/ and {layout.relative(layout.autograder_zip(lab))}")
    return 0


def _cmd_course_check(args) -> int:
    problems = check(args.labs)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): the committed student labs are stale; run 'cellkit course build'")
        return 1
    print(f"up to date: {', '.join(labs()) if not args.labs else ', '.join(args.labs)}")
    return 0


def _cmd_release(args) -> int:
    build_release(args.version, out=args.out, labs=args.labs, check=not args.no_check, publishing=bool(args.publish))
    if args.publish:
        layout = Layout.of(None)
        publish(args.publish, args.version, layout)
        if write_badges(layout.root / "README.md", args.publish, args.version, cwd=layout.root):
            print("README.md: badges now point at the release tag; commit it")
    return 0


def _cmd_grade(args) -> int:
    result = grade(args.submissions, args.lab, args.out, workers=args.workers, timeout=args.timeout,
                   memory_limit=args.memory, fast=not args.full, regrade=args.regrade, source=args.source,
                   sandbox=False if args.no_sandbox else None, keep_logs=args.keep_logs, autograder=args.autograder,
                   identity=args.identity, overrides=args.overrides, deadline=args.deadline,
                   late_penalty=args.late_penalty / 100, late_cap=args.late_cap / 100, exports=args.export or (),
                   canvas_column=args.canvas_column, shard=args.shard, show_hidden=args.show_hidden_messages,
                   check_data=not args.no_data_check, times=args.times)
    return 0 if all(r["status"] != "error" for r in result["rows"].values()) else 1


def _cmd_grade_merge(args) -> int:
    merge(args.out, args.parts, lab=args.lab, exports=args.export or (), canvas_column=args.canvas_column,
          overrides=args.overrides)
    return 0


def _export_options(p) -> None:
    p.add_argument("--export", action="append", choices=["canvas", "moodle", "csv"],
                   help="also write OUT_STEM-canvas.csv (Canvas gradebook import), OUT_STEM-moodle.csv (Moodle "
                        "grading worksheet) or OUT_STEM-export.csv; repeat for several")
    p.add_argument("--canvas-column", default=None, metavar="'NAME (ID)'",
                   help="the assignment's column header in a gradebook exported from Canvas, e.g. 'Lab 01 (123456)'")


def add_commands(sub) -> None:
    """Add the course commands to ``sub``, the subparsers of the ``cellkit`` command."""
    p = sub.add_parser("run", help="execute lab notebooks headless and write a report",
                       description="Execute the solution notebooks of the given labs (all by default) headless, "
                                   "save the executed notebooks under OUT/executed/ and a report (one key metric "
                                   "and figure per lab) in OUT/report.md. Exits 1 if any notebook fails.")
    p.add_argument("labs", nargs="*", help="labs to run: 01, 01_mnist or mnist (default: all)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="fast mode: small data, few epochs (CELLKIT_FAST=1)")
    mode.add_argument("--full", action="store_true", help="full mode: the real lab (CELLKIT_FAST=0)")
    p.add_argument("--source", choices=["real", "synthetic"], help="data source (default: $CELLKIT_SOURCE or real)")
    p.add_argument("--out", default=None, help="output folder (default: build/)")
    p.add_argument("--walkthroughs", action="store_true", help="also run the ungraded notebooks in notebooks/")
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    p.set_defaults(func=_cmd_run)

    course = sub.add_parser("course", help="build and check the student labs",
                            description="The master notebooks in solutions/ are the single source of truth; "
                                        "the student notebooks in labs/ are built from them.")
    csub = course.add_subparsers(dest="course_command", required=True)
    for name, func, short, description in [
            ("build", _cmd_course_build, "build labs/ and build/autograder/ from solutions/",
             "Regenerate each master's setup cell, then run otter assign to write the student notebook and public "
             "tests to labs/NN_name/ and the autograder zip to build/autograder/."),
            ("check", _cmd_course_check, "fail if the committed student labs are stale",
             "Build every lab into a temporary folder and compare it with labs/; exits 1 and names each stale file "
             "if they differ.")]:
        p = csub.add_parser(name, help=short, description=description)
        p.add_argument("labs", nargs="*", help=f"labs to {name} (default: all)")
        p.set_defaults(func=func)

    p = sub.add_parser("release", help="build a release: student notebooks, autograders, solutions apart",
                       description="Write build/release/VERSION/: students/ (notebooks, public tests, README with "
                                   "'Open in Colab' badges pinned to the tag vVERSION), instructors/ (autograder "
                                   "zips with the hidden tests, the masters) and release.json. Refuses when the "
                                   "committed labs are stale or a hidden test would leak.")
    p.add_argument("labs", nargs="*", help="labs to include (default: all)")
    p.add_argument("--version", default=None, help="version to release (default and only allowed: the installed one)")
    p.add_argument("--out", default=None, help="output folder (default: build/release/VERSION)")
    p.add_argument("--no-check", action="store_true", help="skip the check that labs/ match the masters")
    p.add_argument("--publish", metavar="REMOTE", default=None,
                   help="then push the committed student part (package, labs, walkthroughs; no solutions) to the "
                        "students' git repository REMOTE as one commit tagged vVERSION, and point README.md's "
                        "badges at that tag once the remote has it")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("grade", help="grade a folder or zip of submitted notebooks",
                       description="Grade each notebook in its own sandboxed process (time and memory limits, "
                                   "hidden tests only after the cells ran), several at a time; write the gradebook "
                                   "CSV atomically (re-runs skip what is graded), a feedback file per student "
                                   "beside it, and print a summary. See docs/instructors.md.")
    p.add_argument("submissions", help="folder of .ipynb files (one folder per student works) or a zip of them")
    p.add_argument("--lab", required=True, help="the lab: 01, 01_mnist or mnist")
    p.add_argument("--out", default="grades.csv", help="gradebook CSV (default grades.csv); feedback in OUT_STEM-feedback/")
    p.add_argument("--workers", type=int, default=None, help="submissions at once (default: CPU cores within memory)")
    p.add_argument("--timeout", type=float, default=600, help="seconds of run time per notebook (default 600)")
    p.add_argument("--memory", type=float, default=6.0, help="GiB of memory per notebook (default 6)")
    p.add_argument("--full", action="store_true", help="run the labs in full mode (default: fast mode)")
    p.add_argument("--source", choices=["real", "synthetic"], help="data source (default: $CELLKIT_SOURCE or real)")
    p.add_argument("--regrade", action="store_true", help="grade again the submissions already in the gradebook")
    p.add_argument("--no-sandbox", action="store_true", help="plain processes even where namespaces work")
    p.add_argument("--keep-logs", action="store_true", help="keep each notebook's output in OUT_STEM-feedback/.logs/")
    p.add_argument("--autograder", default=None,
                   help="otter autograder zip to grade with (default build/autograder/LAB-autograder.zip; "
                        "e.g. the release's instructors/autograder/ copy)")
    p.add_argument("--identity", default="auto",
                   help="who handed in each file: auto (default), moodle, canvas, plain, or a regex with a named "
                        "group 'id' (and optionally name, late, attempt, timestamp) matched against the file's path")
    p.add_argument("--overrides", default=None,
                   help="CSV id,question,points,comment applied on every run (default OUT_STEM-overrides.csv if any)")
    p.add_argument("--deadline", default=None, help="ISO 8601 with a time zone, e.g. 2026-12-10T23:59+01:00")
    p.add_argument("--late-penalty", type=float, default=0.0, metavar="PERCENT",
                   help="percent of the earned score taken per day (or part of a day) after the deadline")
    p.add_argument("--times", default=None, metavar="CSV",
                   help="the LMS's submission times, used instead of the files' times: a CSV id,submitted (ISO "
                        "8601) or Moodle's grading worksheet (Identifier, Last modified (submission))")
    p.add_argument("--late-cap", type=float, default=100.0, metavar="PERCENT",
                   help="at most this percent (default 100)")
    _export_options(p)
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="grade only the K-th of N disjoint parts of the students (Slurm array, CI matrix); "
                        "combine the gradebooks with 'cellkit grade-merge'")
    p.add_argument("--show-hidden-messages", action="store_true",
                   help="put the grading checks' messages (which may name expected values) in students' feedback")
    p.add_argument("--no-data-check", action="store_true",
                   help="start even when the lab's real datasets are not found on this machine")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("grade-merge", help="combine the gradebooks of 'cellkit grade --shard K/N' runs",
                       description="Write OUT from the shards' gradebooks (and their feedback folders), refusing a "
                                   "student graded from different files in two shards; then the summary and exports.")
    p.add_argument("out", help="the merged gradebook CSV")
    p.add_argument("parts", nargs="+", help="the shards' gradebook CSVs")
    p.add_argument("--lab", required=True, help="the lab: 01, 01_mnist or mnist (for each question's points)")
    p.add_argument("--overrides", default=None,
                   help="the overrides file the shards were graded with (default OUT_STEM-overrides.csv if any): "
                        "refused if a shard did not apply it")
    _export_options(p)
    p.set_defaults(func=_cmd_grade_merge)
