"""The ``cellkit`` command line: run labs, build and check the course, manage datasets.

Examples::

    cellkit run --fast --source synthetic       # every lab, headless, report in build/
    cellkit run 02 --fast                       # one lab
    cellkit course build                        # student labs from solutions/
    cellkit course check                        # are the committed labs up to date?
    cellkit data list                           # registered datasets
    cellkit data fetch bbbc021_statpred2019     # download and verify a real dataset
    cellkit data synth bbbc021_statpred2019     # write its synthetic twin
    cellkit release                             # student notebooks, autograders, solutions apart
    cellkit grade submissions.zip --lab 01 --out grades.csv   # sandboxed, resumable grading
"""

from __future__ import annotations

import argparse
import sys


def _cmd_run(args) -> int:
    from cellkit.runner import run

    ok = run(args.labs, fast=True if args.fast else (False if args.full else None), source=args.source,
             out=args.out, include_walkthroughs=args.walkthroughs, timeout=args.timeout)
    return 0 if ok else 1


def _cmd_course_build(args) -> int:
    from cellkit.course import build

    for lab in build(args.labs):
        print(f"built labs/{lab}/ and build/autograder/{lab}-autograder.zip")
    return 0


def _cmd_course_check(args) -> int:
    from cellkit.course import check, labs

    problems = check(args.labs)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): the committed student labs are stale; run 'cellkit course build'")
        return 1
    print(f"up to date: {', '.join(labs()) if not args.labs else ', '.join(args.labs)}")
    return 0


def _cmd_data_list(args) -> int:
    from cellkit.data.registry import datasets

    for d in datasets().values():
        print(f"{d.name:28s} labs {','.join(d.labs):10s} {d.source['kind']:8s} {d.licence}")
        print(f"{'':28s} {d.title}")
        if d.manifest:
            pinned = sum(1 for f in d.files if f.sha256)
            print(f"{'':28s} manifest data/datasets/{d.manifest}: {len(d.files):,} files, {pinned:,} with SHA-256")
    return 0


def _cmd_data_fetch(args) -> int:
    from cellkit.config import get_config
    from cellkit.data.fetch import fetch

    config = get_config(data_dir=args.data_dir)
    for name in args.names:
        print(f"{name}: {fetch(name, config)}")
    return 0


def _cmd_data_synth(args) -> int:
    from cellkit.config import get_config
    from cellkit.data.fetch import synthesize

    config = get_config(data_dir=args.data_dir, fast=True if args.fast else None, seed=args.seed)
    for name in args.names:
        print(f"{name}: {synthesize(name, config, dest=args.dest, overwrite=args.overwrite)}")
    return 0


def _cmd_data_readme(args) -> int:
    from pathlib import Path

    from cellkit.atomic import write_text
    from cellkit.data.registry import registry_dir, render_markdown

    target = Path(registry_dir()).parent / "README.md"
    text = render_markdown()
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is stale: run 'cellkit data readme'")
            return 1
        print(f"{target} is up to date")
        return 0
    write_text(target, text)
    print(f"wrote {target}")
    return 0


def _cmd_release(args) -> int:
    from cellkit.release import build_release

    build_release(args.version, out=args.out, labs=args.labs, check=not args.no_check)
    return 0


def _cmd_grade(args) -> int:
    from cellkit.grading import grade

    result = grade(args.submissions, args.lab, args.out, workers=args.workers, timeout=args.timeout,
                   memory_limit=args.memory, fast=not args.full, regrade=args.regrade, source=args.source,
                   sandbox=False if args.no_sandbox else None, keep_logs=args.keep_logs, autograder=args.autograder)
    return 0 if all(r["status"] != "error" for r in result["rows"].values()) else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``cellkit`` command."""
    parser = argparse.ArgumentParser(prog="cellkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from cellkit import __version__

    parser.add_argument("--version", action="version", version=f"cellkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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
    p = csub.add_parser("build", help="build labs/ and build/autograder/ from solutions/",
                        description="Regenerate each master's setup cell, then run otter assign to write the "
                                    "student notebook and public tests to labs/NN_name/ and the autograder zip "
                                    "to build/autograder/.")
    p.add_argument("labs", nargs="*", help="labs to build (default: all)")
    p.set_defaults(func=_cmd_course_build)
    p = csub.add_parser("check", help="fail if the committed student labs are stale",
                        description="Build every lab into a temporary folder and compare it with labs/; "
                                    "exits 1 and names each stale file if they differ.")
    p.add_argument("labs", nargs="*", help="labs to check (default: all)")
    p.set_defaults(func=_cmd_course_check)

    data = sub.add_parser("data", help="list, fetch or synthesise datasets",
                          description="Datasets are registered in data/datasets/*.json with pinned URLs and "
                                      "hashes; they are cached under $CELLKIT_DATA_DIR/NAME/.")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("list", help="list the registered datasets", description="List the registered datasets.")
    p.set_defaults(func=_cmd_data_list)
    p = dsub.add_parser("fetch", help="download and verify real datasets",
                        description="Download (with a progress bar), verify every file's SHA-256 and cache "
                                    "the real dataset(s) under DATA_DIR/NAME/. A verified copy already there is "
                                    "used without network.")
    p.add_argument("names", nargs="+", help="dataset names (see 'cellkit data list')")
    p.add_argument("--data-dir", default=None, help="cache root (default: $CELLKIT_DATA_DIR or the user cache)")
    p.set_defaults(func=_cmd_data_fetch)
    p = dsub.add_parser("synth", help="write synthetic datasets in the real layout",
                        description="Generate the synthetic twin of the dataset(s): same layout as the real "
                                    "data, with a planted ground truth. Deterministic for a given seed.")
    p.add_argument("names", nargs="+", help="dataset names (see 'cellkit data list')")
    p.add_argument("--dest", default=None, help="output folder (default: DATA_DIR/synthetic/NAME/MODE-seedSEED)")
    p.add_argument("--fast", action="store_true", help="the small fast-mode size")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: $CELLKIT_SEED or 1234)")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if a complete copy exists")
    p.add_argument("--data-dir", default=None, help="cache root (default: $CELLKIT_DATA_DIR or the user cache)")
    p.set_defaults(func=_cmd_data_synth)
    p = dsub.add_parser("readme", help="render data/README.md from the registry",
                        description="Write data/README.md from data/datasets/*.json (or --check it).")
    p.add_argument("--check", action="store_true", help="only check that data/README.md is up to date")
    p.set_defaults(func=_cmd_data_readme)
    p = sub.add_parser("release", help="build a release: student notebooks, autograders, solutions apart",
                       description="Write build/release/VERSION/: students/ (notebooks, public tests, README with "
                                   "'Open in Colab' badges pinned to the tag vVERSION), instructors/ (autograder "
                                   "zips with the hidden tests, the masters) and release.json. Refuses when the "
                                   "committed labs are stale or a hidden test would leak.")
    p.add_argument("labs", nargs="*", help="labs to include (default: all)")
    p.add_argument("--version", default=None, help="version to release (default and only allowed: the installed one)")
    p.add_argument("--out", default=None, help="output folder (default: build/release/VERSION)")
    p.add_argument("--no-check", action="store_true", help="skip the check that labs/ match the masters")
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
    p.set_defaults(func=_cmd_grade)
    return parser


def main(argv=None) -> int:
    """Run the ``cellkit`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, ConnectionError, RuntimeError) as exc:
        print(f"cellkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
