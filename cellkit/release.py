"""Releasing a course version: student notebooks for everyone, autograders and solutions for instructors only.

One command, ``cellkit release`` (:func:`build_release`), writes ``build/release/VERSION/``::

    students/                 publish this: what students open
      README.md               one "Open in Colab" badge per lab, pinned to the release tag vVERSION
      NN_name/NN_name.ipynb   the student notebook (identical to labs/ at the tag)
      NN_name/tests/*.py      the public tests that grader.check runs
    instructors/              never publish this
      autograder/NN_name-autograder.zip   otter autograders, hidden tests inside
      solutions/NN_name/NN_name.ipynb     the masters (solutions and every test)
      README.md
    release.json              version, tag, checksums, Colab URLs, points per question

The badges point at ``labs/NN_name/NN_name.ipynb`` *at the tag*, never at the moving
main branch, so a student who opens a lab in week 8 gets the same notebook as one who
opened it in week 1.  Each notebook's setup cell installs cellkit pinned to the same tag
and calls :func:`check_version`, which warns, with the fix, when the installed cellkit
is not the one the notebook was released with.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path

BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


class VersionMismatchWarning(UserWarning):
    """The installed cellkit is not the version a notebook was released with."""


def check_version(expected: str, *, installed: str | None = None) -> bool:
    """Return True when the installed cellkit is ``expected``; otherwise warn, with the command that fixes it.

    The setup cell of every released notebook calls this with the version it was released with.

    Examples
    --------
    >>> check_version("0.1.0", installed="0.1.0")
    True
    """
    from cellkit.course import pip_spec

    if not isinstance(expected, str) or not re.fullmatch(r"\d+(\.\d+)*([a-z0-9.+-]*)", expected):
        raise ValueError(f"expected={expected!r}: expected a version string such as '0.1.0'")
    if installed is None:
        from cellkit import __version__ as installed
    if installed == expected:
        return True
    warnings.warn(
        f"this notebook was released with cellkit {expected}, but cellkit {installed} is installed: checks and "
        f"data may not match the notebook. Fix: run  pip install \"{pip_spec(expected)}\"  (in Colab: "
        "Runtime > Restart session afterwards), or open the notebook of the release you have installed.",
        VersionMismatchWarning, stacklevel=2)
    return False


def notebook_version(nb) -> str | None:
    """Return the cellkit version a notebook's setup cell pins (``...@v0.1.0``), or None when it pins none."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            m = re.search(r"""check_version\(\s*["']([^"']+)["']|@v(\d+(?:\.\d+)*[a-z0-9.+-]*)["']""", cell.source)
            if m:
                return m.group(1) or m.group(2)
    return None


def colab_badge(lab: str, version: str | None = None) -> str:
    """Return the Markdown "Open in Colab" badge of ``lab``'s student notebook at the release tag of ``version``."""
    from cellkit.course import colab_url, release_ref

    return f"[![Open In Colab]({BADGE})]({colab_url(lab, release_ref(version))})"


def solution_notebook(lab: str, root: Path | None = None):
    """Return the runnable solution notebook of ``lab`` (otter assign's autograder copy of the master)."""
    import nbformat

    from cellkit.course import _otter_assign, refresh_master, repo_root

    root = Path(root) if root else repo_root()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "master" / f"{lab}.ipynb"
        staged.parent.mkdir()
        shutil.copy(root / "solutions" / lab / f"{lab}.ipynb", staged)
        refresh_master(staged)
        _otter_assign(staged, Path(tmp) / "dist")
        return nbformat.read(Path(tmp) / "dist" / "autograder" / f"{lab}.ipynb", as_version=4)


def filled_student_notebook(lab: str, root: Path | None = None, solution=None):
    """Return the released student notebook of ``lab`` with every answer cell filled in from the solution.

    This is what a perfect student submits (same cell ids, same check cells): grading it must give full marks.
    """
    import nbformat

    from cellkit.course import repo_root

    root = Path(root) if root else repo_root()
    student = nbformat.read(root / "labs" / lab / f"{lab}.ipynb", as_version=4)
    solution = solution if solution is not None else solution_notebook(lab, root)
    answers = [c for c in solution.cells if "otter_assign_solution_cell" in c.metadata.get("tags", [])]
    slots = [c for c in student.cells if "otter_answer_cell" in c.metadata.get("tags", [])]
    if len(answers) != len(slots):
        raise ValueError(f"lab {lab}: {len(slots)} answer cells in the student notebook but {len(answers)} solution "
                         "cells in the master: rebuild with 'cellkit course build'")
    filled = copy.deepcopy(student)
    answer_iter = iter(answers)
    for cell in filled.cells:
        if "otter_answer_cell" in cell.metadata.get("tags", []):
            cell.source = next(answer_iter).source
    return filled


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _hidden_names(zip_path: Path) -> list[str]:
    """Return the function names of the hidden test cases inside an autograder zip."""
    from cellkit.grading import hidden_tests

    names = []
    for source in hidden_tests(zip_path).values():
        names += re.findall(r"@test_case\([^)]*hidden=True[^)]*\)\s*\ndef (\w+)", source)
    return names


def build_release(version: str | None = None, out=None, labs=(), root=None, *, check: bool = True) -> Path:
    """Return the release folder after writing the student, instructor and manifest parts of ``version``.

    Parameters
    ----------
    version : str, optional
        The version to release; it must be the installed cellkit's ``__version__`` (the setup cells pin it).
    out : path, optional
        Where to write (default ``build/release/VERSION``); replaced atomically.
    labs : sequence of str
        Labs to include (default: all).
    check : bool
        Refuse to release when the committed ``labs/`` differ from a fresh build of the masters.

    Raises
    ------
    ValueError
        The version is not the installed one, the labs are stale, or a hidden test leaked into the student part.
    """
    from cellkit.atomic import atomic_dir
    from cellkit.atomic import write_text
    from cellkit.course import build_lab, colab_url, course_version, release_ref, repo_root, resolve_labs
    from cellkit.course import check as check_labs
    from cellkit.grading import hidden_tests, question_points

    root = Path(root) if root else repo_root()
    installed = course_version()
    version = version or installed
    if version != installed:
        raise ValueError(f"version={version!r}: the installed cellkit is {installed}; set __version__ in "
                         f"cellkit/__init__.py to {version}, run 'cellkit course build', commit, then release")
    names = resolve_labs(labs, root)
    if check:
        problems = check_labs(names, root)
        if problems:
            raise ValueError("the committed labs are stale; run 'cellkit course build' and commit first:\n  "
                             + "\n  ".join(problems))
    tag = release_ref(version)
    out = Path(out) if out else root / "build" / "release" / version
    manifest = {"version": version, "tag": tag, "created": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"), "labs": {}}
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory() as scratch:
        students, instructors = tmp / "students", tmp / "instructors"
        for lab in names:
            fresh = build_lab(lab, root, labs_dir=Path(scratch) / "labs", autograder_dir=Path(scratch) / "ag",
                              write_master=False)
            shutil.copytree(root / "labs" / lab, students / lab,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", ".OTTER_LOG"))
            (instructors / "autograder").mkdir(parents=True, exist_ok=True)
            zip_path = instructors / "autograder" / f"{lab}-autograder.zip"
            shutil.copy(fresh["autograder"], zip_path)
            shutil.copytree(root / "solutions" / lab, instructors / "solutions" / lab,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", ".OTTER_LOG"))
            notebook = students / lab / f"{lab}.ipynb"
            manifest["labs"][lab] = {
                "student_notebook": f"students/{lab}/{lab}.ipynb", "sha256": _sha256(notebook),
                "autograder": f"instructors/autograder/{lab}-autograder.zip", "autograder_sha256": _sha256(zip_path),
                "colab": colab_url(lab, tag), "points": question_points(hidden_tests(zip_path)),
            }
        leaked = []
        for name in {n for lab in names for n in _hidden_names(instructors / "autograder" / f"{lab}-autograder.zip")}:
            for path in students.rglob("*"):
                if path.is_file() and name in path.read_text(errors="replace"):
                    leaked.append(f"{path.relative_to(tmp)} contains hidden test {name}")
        if leaked:
            raise ValueError("hidden tests leaked into the student part of the release:\n  " + "\n  ".join(leaked))
        lines = [f"# cellkit course, release {version}", "",
                 f"Every link opens the lab as released under the tag `{tag}`; the notebook installs cellkit "
                 f"{version} itself and warns if another version is installed.", "",
                 "| lab | open | points |", "|---|---|---|"]
        for lab, entry in manifest["labs"].items():
            lines.append(f"| {lab} | {colab_badge(lab, version)} | {sum(entry['points'].values()):g} |")
        write_text(students / "README.md", "\n".join(lines) + "\n")
        write_text(instructors / "README.md",
                   f"# Instructors' part of release {version} (never publish this folder)\n\n"
                   "- `autograder/NN_name-autograder.zip`: otter autograders with the hidden tests; "
                   "`cellkit grade SUBMISSIONS --lab NN --out grades.csv` uses the same tests from build/.\n"
                   "- `solutions/NN_name/`: the master notebooks (solutions and every test).\n\n"
                   "See docs/instructors.md for the whole cycle.\n")
        write_text(tmp / "release.json", json.dumps(manifest, indent=2) + "\n")
    print(f"release {version}: {out}\n  publish {out / 'students'} (badges pinned to {tag}); keep "
          f"{out / 'instructors'} private\n  then tag the commit:  git tag {tag} && git push origin {tag}")
    return out
