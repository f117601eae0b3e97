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
from pathlib import Path

from cellkit import __version__
from cellkit.atomic import write_text
from cellkit.config import get_config
from cellkit.course.cli import add_commands as add_course_commands
from cellkit.data.fetch import fetch, synthesize
from cellkit.data.registry import datasets, registry_dir, render_markdown


def _cmd_data_list(args) -> int:
    for d in datasets().values():
        print(f"{d.name:28s} labs {','.join(d.labs):10s} {d.source['kind']:8s} {d.licence}")
        print(f"{'':28s} {d.title}")
        if d.manifest:
            pinned = sum(1 for f in d.files if f.sha256)
            print(f"{'':28s} manifest data/datasets/{d.manifest}: {len(d.files):,} files, {pinned:,} with SHA-256")
        elif d.source["kind"] in ("archive", "files"):
            archive = " (the archive's SHA-256 only)" if d.source.get("sha256") else ""
            print(f"{'':28s} NOT PINNED per file: no manifest of its files yet{archive}; a damaged or truncated "
                  "file is found only when a loader reads it")
    return 0


def _cmd_data_fetch(args) -> int:
    config = get_config(data_dir=args.data_dir)
    for name in args.names:
        print(f"{name}: {fetch(name, config, rehash=args.verify)}")
    return 0


def _cmd_data_synth(args) -> int:
    config = get_config(data_dir=args.data_dir, fast=True if args.fast else None, seed=args.seed)
    for name in args.names:
        print(f"{name}: {synthesize(name, config, dest=args.dest, overwrite=args.overwrite)}")
    return 0


def _cmd_data_readme(args) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``cellkit`` command."""
    parser = argparse.ArgumentParser(prog="cellkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cellkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_course_commands(sub)

    data = sub.add_parser("data", help="list, fetch or synthesise datasets",
                          description="Datasets are registered in data/datasets/*.json with pinned URLs and "
                                      "hashes; they are cached under $CELLKIT_DATA_DIR/NAME/.")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("list", help="list the registered datasets", description="List the registered datasets.")
    p.set_defaults(func=_cmd_data_list)
    p = dsub.add_parser("fetch", help="download and verify real datasets",
                        description="Download (with a progress bar), verify every file's SHA-256 and cache "
                                    "the real dataset(s) under DATA_DIR/NAME/. A verified copy already there is "
                                    "used without network; --verify hashes its files again.")
    p.add_argument("names", nargs="+", help="dataset names (see 'cellkit data list')")
    p.add_argument("--data-dir", default=None, help="cache root (default: $CELLKIT_DATA_DIR or the user cache)")
    p.add_argument("--verify", action="store_true",
                   help="hash every file again; without it, a file whose size and modification time are unchanged "
                        "since its last check is trusted")
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
