"""Building the student labs from the masters, and checking that the committed ones are up to date.

Each lab has one source of truth, its master (``solutions/NN_name/NN_name.ipynb``), written in
otter-grader's assign format (exception-style tests, public and hidden).  :func:`build_lab` turns
it into the student notebook and its public tests (``labs/NN_name/``) and otter's autograder
with the hidden tests (``build/autograder/``); :func:`check` reports any committed student file
that differs from a fresh build.  The paths are those of :mod:`cellkit.course.layout`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cellkit.atomic import write_text
from cellkit.course import setup_cell
from cellkit.course.layout import Layout, OtterDist, resolve_labs


def read_notebook(path: Path):
    """Return the notebook at ``path`` (nbformat 4)."""
    import nbformat

    return nbformat.read(path, as_version=4)


def write_notebook(nb, path: Path) -> None:
    """Write ``nb`` to ``path`` atomically, as nbformat writes it, with a final newline."""
    import nbformat

    write_text(path, nbformat.writes(nb) + "\n")


def normalise(nb) -> None:
    """Make a notebook deterministic: stable cell ids, no outputs or execution counts, no volatile metadata."""
    for i, cell in enumerate(nb.cells):
        digest = hashlib.sha1(f"{i}:{cell.cell_type}:{cell.source}".encode()).hexdigest()[:8]
        cell["id"] = f"c{i:03d}-{digest}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in ("execution", "collapsed", "lines_to_next_cell", "scrolled"):
            cell.metadata.pop(key, None)
    for key in ("widgets", "jupytext"):
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}


def refresh_master(path: Path, *, write: bool = True, graded: bool = True) -> bool:
    """Return True when the master at ``path`` had to change: setup cell regenerated, outputs cleared, ids stabilised."""
    nb = read_notebook(path)
    before = json.dumps(nb, sort_keys=True)
    idx = setup_cell.find(nb)
    if idx is None:
        raise ValueError(f"{path}: no setup cell; the first code cell must carry the tag {setup_cell.SETUP_TAG!r}")
    nb.cells[idx].source = setup_cell.source(Path(path).stem, graded=graded)
    normalise(nb)
    changed = json.dumps(nb, sort_keys=True) != before
    if changed and write:
        write_notebook(nb, path)
    return changed


def otter_assign(master: Path, out: Path) -> OtterDist:
    """Return the layout of ``out`` after running ``otter assign`` on ``master``."""
    cmd = [sys.executable, "-m", "otter", "assign", "--no-run-tests", str(master), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign failed on {master}:\n{proc.stdout}\n{proc.stderr}")
    return OtterDist(Path(out))


def build_lab(lab: str, root=None, *, labs_dir: Path | None = None,
              autograder_dir: Path | None = None, write_master: bool = True) -> dict[str, Path]:
    """Return the paths written after building lab ``lab``'s student notebook, public tests and autograder zip."""
    layout = Layout.of(root)
    master = layout.master(lab)
    notebook, tests = layout.student_notebook(lab, labs_dir), layout.public_tests(lab, labs_dir)
    zip_path, hidden = layout.autograder_zip(lab, autograder_dir), layout.hidden_tests(lab, autograder_dir)
    solution = layout.solution_notebook(lab, autograder_dir)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "master" / master.name
        staged.parent.mkdir()
        shutil.copy(master, staged)
        refresh_master(staged)
        if write_master and staged.read_bytes() != master.read_bytes():
            shutil.copy(staged, master)
        dist = otter_assign(staged, Path(tmp) / "dist")
        nb = read_notebook(dist.student_notebook(lab))
        normalise(nb)
        if layout.lab_folder(lab, labs_dir).exists():
            shutil.rmtree(layout.lab_folder(lab, labs_dir))
        tests.mkdir(parents=True)
        write_notebook(nb, notebook)
        for test in sorted(dist.public_tests.glob("*.py")):
            shutil.copy(test, tests / test.name)
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        if dist.autograder_zips:
            shutil.copy(dist.autograder_zips[0], zip_path)
        if hidden.parent.exists():
            shutil.rmtree(hidden.parent)
        shutil.copytree(dist.all_tests, hidden)
        # otter's solution notebook (solutions kept, test cells removed, assignment name in its metadata):
        # what a perfect submission looks like, for grading round trips
        shutil.copy(dist.solution_notebook(lab), solution)
    return {"notebook": notebook, "tests": tests, "autograder": zip_path, "hidden_tests": hidden,
            "solution": solution}


def build(names=(), root=None) -> list[str]:
    """Return the labs built (all by default) into ``labs/`` and ``build/autograder/``."""
    layout = Layout.of(root)
    built = []
    for lab in resolve_labs(names, layout):
        build_lab(lab, layout)
        built.append(lab)
    if not names:
        for walkthrough in layout.walkthroughs():
            refresh_master(walkthrough, graded=False)
    return built


def _tree(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def check(names=(), root=None) -> list[str]:
    """Return a list of problems: committed student labs or masters that differ from a fresh build (empty: up to date)."""
    layout = Layout.of(root)
    problems = []
    for walkthrough in layout.walkthroughs() if not names else []:
        if refresh_master(walkthrough, write=False, graded=False):
            problems.append(f"{layout.relative(walkthrough)}: setup cell, outputs or cell ids are not normalised "
                            "(run: cellkit course build)")
    for lab in resolve_labs(names, layout):
        if refresh_master(layout.master(lab), write=False):
            problems.append(f"{layout.relative(layout.master(lab))}: setup cell, outputs or "
                            "cell ids are not normalised (run: cellkit course build)")
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "labs"
            build_lab(lab, layout, labs_dir=fresh, autograder_dir=Path(tmp) / "ag", write_master=False)
            want, have = _tree(layout.lab_folder(lab, fresh)), _tree(layout.lab_folder(lab))
            where = layout.relative(layout.lab_folder(lab))
            for name in sorted(set(want) | set(have)):
                if name not in have:
                    problems.append(f"{where}/{name}: missing (run: cellkit course build {lab})")
                elif name not in want:
                    problems.append(f"{where}/{name}: not produced by the master any more "
                                    f"(run: cellkit course build {lab})")
                elif want[name] != have[name]:
                    problems.append(f"{where}/{name}: stale, differs from a fresh build of "
                                    f"{layout.relative(layout.master(lab))} (run: cellkit course build {lab})")
    return problems
