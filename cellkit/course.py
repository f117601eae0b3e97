"""Course tooling: student labs are build outputs of the master notebooks in ``solutions/``.

Each lab has one source of truth, ``solutions/NN_name/NN_name.ipynb``, written in
otter-grader's assign format (exception-style tests, public and hidden).
:func:`build` turns it into

- ``labs/NN_name/NN_name.ipynb``: the student notebook (solutions replaced by ``...``),
- ``labs/NN_name/tests/*.py``: the public tests that ``grader.check`` runs,
- ``build/autograder/NN_name-autograder.zip``: otter's autograder with the hidden tests,

and :func:`check` reports any committed student file that differs from a fresh
build.  The first code cell of every master, the *setup cell*, is generated
here too (Colab install pinned to this course version, otter, ``cellkit.setup``),
so that the repository URL and the version live in one place: this module.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = "https://github.com/cellkit-course/cellkit"
"""The course repository: the Colab install cell and the "Open in Colab" badges point here."""

SETUP_TAG = "cellkit-setup"
LAB_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")


def course_version() -> str:
    """Return the installed cellkit version, which is also the course version."""
    from cellkit import __version__

    return __version__


def release_ref(version: str | None = None) -> str:
    """Return the git tag a release of ``version`` is published under (``v0.1.0``)."""
    return f"v{version or course_version()}"


def pip_spec(version: str | None = None) -> str:
    """Return the pip requirement that installs this course version of cellkit from the repository."""
    return f"cellkit @ git+{REPOSITORY}@{release_ref(version)}"


def colab_url(lab: str, ref: str | None = None) -> str:
    """Return the "Open in Colab" URL of the student notebook of ``lab`` at git ``ref`` (default the release tag)."""
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{ref or release_ref()}/labs/{lab}/{lab}.ipynb"


def setup_cell_source(lab: str, version: str | None = None, *, graded: bool = True) -> str:
    """Return the source of the first code cell of ``lab``'s notebooks (a walkthrough when not ``graded``)."""
    grading = (f'''from cellkit import course

grader = course.grader("{lab}")  # runs the public tests: grader.check("q1")
''' if graded else "")
    return f'''# Setup. In Google Colab this installs the course package, pinned to this course version;
# elsewhere (a local clone, the grader) it installs nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{pip_spec(version)}", "otter-grader"], check=True)

import cellkit
from cellkit.release import check_version

check_version("{version or course_version()}")  # warns, with the fix, if the installed cellkit is another release
{grading}config = cellkit.setup("{lab}")  # prints backend, device, fast/full mode and data source'''


def repo_root() -> Path:
    """Return the repository root (the folder holding ``solutions/``), found from the package's location."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "solutions").is_dir():
        raise FileNotFoundError(f"no solutions/ folder beside the cellkit package at {root}: "
                                "course commands need a clone of the course repository")
    return root


def labs(root: Path | None = None) -> list[str]:
    """Return the names of the labs (``01_mnist``, ...) that have a master notebook."""
    root = root or repo_root()
    return sorted(p.name for p in (root / "solutions").iterdir()
                  if p.is_dir() and LAB_PATTERN.match(p.name) and (p / f"{p.name}.ipynb").is_file())


def resolve_labs(names, root: Path | None = None) -> list[str]:
    """Return full lab names for ``names`` given as ``01``, ``1``, ``01_mnist`` or ``mnist``; all labs when empty."""
    known = labs(root)
    if not names:
        return known
    out = []
    for name in names:
        hits = [k for k in known if k == name or k.split("_", 1)[0] == f"{name:0>2}" or k.split("_", 1)[1] == name]
        if len(hits) != 1:
            raise ValueError(f"lab {name!r}: expected one of {', '.join(known)} (or its number)")
        out.append(hits[0])
    return out


def grader(lab: str, tests_dir: str = "tests"):
    """Return an ``otter.Notebook`` for ``lab`` whose ``check`` runs the lab's public tests.

    In Colab, where the notebook was opened on its own, the public tests shipped
    inside the cellkit package are copied to ``tests_dir`` first.
    """
    import otter

    here = Path(tests_dir)
    if not here.is_dir():
        packaged = Path(__file__).resolve().parent / "_labs" / lab / "tests"
        repo = Path(__file__).resolve().parents[1] / "labs" / lab / "tests"
        source = packaged if packaged.is_dir() else repo
        if source.is_dir() and "google.colab" in sys.modules:
            shutil.copytree(source, here)
    return otter.Notebook(tests_dir=str(here))


# ---------------------------------------------------------------- notebook handling

def _read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _write(nb, path: Path) -> None:
    import nbformat

    from cellkit.atomic import write_text

    write_text(path, nbformat.writes(nb) + "\n")


def _normalise(nb) -> None:
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


def find_setup_cell(nb) -> int | None:
    """Return the index of the setup cell (tagged ``cellkit-setup``), or None."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and SETUP_TAG in cell.metadata.get("tags", []):
            return i
    return None


def walkthroughs(root: Path | None = None) -> list[Path]:
    """Return the ungraded walkthrough notebooks in ``notebooks/``."""
    root = root or repo_root()
    return sorted((root / "notebooks").glob("*.ipynb"))


def refresh_master(path: Path, *, write: bool = True, graded: bool = True) -> bool:
    """Return True when the master at ``path`` had to change: setup cell regenerated, outputs cleared, ids stabilised."""
    nb = _read(path)
    before = json.dumps(nb, sort_keys=True)
    lab = path.stem
    idx = find_setup_cell(nb)
    if idx is None:
        raise ValueError(f"{path}: no setup cell; the first code cell must carry the tag {SETUP_TAG!r}")
    nb.cells[idx].source = setup_cell_source(lab, graded=graded)
    _normalise(nb)
    changed = json.dumps(nb, sort_keys=True) != before
    if changed and write:
        _write(nb, path)
    return changed


def _otter_assign(master: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "otter", "assign", "--no-run-tests", str(master), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"otter assign failed on {master}:\n{proc.stdout}\n{proc.stderr}")


def build_lab(lab: str, root: Path | None = None, *, labs_dir: Path | None = None,
              autograder_dir: Path | None = None, write_master: bool = True) -> dict[str, Path]:
    """Return the paths written after building lab ``lab``'s student notebook, public tests and autograder zip."""
    root = root or repo_root()
    master = root / "solutions" / lab / f"{lab}.ipynb"
    labs_dir = labs_dir or root / "labs"
    autograder_dir = autograder_dir or root / "build" / "autograder"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        staged = tmp / "master" / f"{lab}.ipynb"
        staged.parent.mkdir()
        shutil.copy(master, staged)
        refresh_master(staged)
        if write_master and staged.read_bytes() != master.read_bytes():
            shutil.copy(staged, master)
        _otter_assign(staged, tmp / "dist")
        student_nb = tmp / "dist" / "student" / f"{lab}.ipynb"
        nb = _read(student_nb)
        _normalise(nb)
        out = labs_dir / lab
        if out.exists():
            shutil.rmtree(out)
        (out / "tests").mkdir(parents=True)
        _write(nb, out / f"{lab}.ipynb")
        for test in sorted((tmp / "dist" / "student" / "tests").glob("*.py")):
            shutil.copy(test, out / "tests" / test.name)
        zips = list((tmp / "dist" / "autograder").glob("*.zip"))
        autograder_dir.mkdir(parents=True, exist_ok=True)
        zip_path = autograder_dir / f"{lab}-autograder.zip"
        if zips:
            shutil.copy(zips[0], zip_path)
        hidden = autograder_dir / lab / "tests"
        if hidden.parent.exists():
            shutil.rmtree(hidden.parent)
        shutil.copytree(tmp / "dist" / "autograder" / "tests", hidden)
        # otter's solution notebook (solutions kept, test cells removed, assignment name in its metadata):
        # what a perfect submission looks like, for grading round trips
        solution = hidden.parent / f"{lab}-solution.ipynb"
        shutil.copy(tmp / "dist" / "autograder" / f"{lab}.ipynb", solution)
    return {"notebook": out / f"{lab}.ipynb", "tests": out / "tests", "autograder": zip_path, "hidden_tests": hidden,
            "solution": solution}


def build(names=(), root: Path | None = None) -> list[str]:
    """Return the labs built (all by default) into ``labs/`` and ``build/autograder/``."""
    root = root or repo_root()
    built = []
    for lab in resolve_labs(names, root):
        build_lab(lab, root)
        built.append(lab)
    if not names:
        for walkthrough in walkthroughs(root):
            refresh_master(walkthrough, graded=False)
    return built


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def check(names=(), root: Path | None = None) -> list[str]:
    """Return a list of problems: committed student labs or masters that differ from a fresh build (empty: up to date)."""
    root = root or repo_root()
    problems = []
    for walkthrough in walkthroughs(root) if not names else []:
        if refresh_master(walkthrough, write=False, graded=False):
            problems.append(f"notebooks/{walkthrough.name}: setup cell, outputs or cell ids are not normalised "
                            "(run: cellkit course build)")
    for lab in resolve_labs(names, root):
        master = root / "solutions" / lab / f"{lab}.ipynb"
        if refresh_master(master, write=False):
            problems.append(f"solutions/{lab}/{lab}.ipynb: setup cell, outputs or cell ids are not normalised "
                            "(run: cellkit course build)")
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "labs"
            build_lab(lab, root, labs_dir=fresh, autograder_dir=Path(tmp) / "ag", write_master=False)
            want, have = _tree(fresh / lab), _tree(root / "labs" / lab) if (root / "labs" / lab).is_dir() else {}
            for name in sorted(set(want) | set(have)):
                if name not in have:
                    problems.append(f"labs/{lab}/{name}: missing (run: cellkit course build {lab})")
                elif name not in want:
                    problems.append(f"labs/{lab}/{name}: not produced by the master any more (run: cellkit course build {lab})")
                elif want[name] != have[name]:
                    problems.append(f"labs/{lab}/{name}: stale, differs from a fresh build of "
                                    f"solutions/{lab}/{lab}.ipynb (run: cellkit course build {lab})")
    return problems
