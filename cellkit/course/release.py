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

import datetime
import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from cellkit.atomic import atomic_dir, sha256, write_text
from cellkit.course import autograder
from cellkit.course.build import build_lab
from cellkit.course.build import check as check_labs
from cellkit.course.layout import Layout, ReleaseLayout, colab_url, course_version, pip_spec, release_ref, resolve_labs

BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_IGNORE = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", ".OTTER_LOG")


class VersionMismatchWarning(UserWarning):
    """The installed cellkit is not the version a notebook was released with."""


def _installed_version() -> str | None:
    """Return the cellkit version pip has installed (its metadata), which may differ from the one imported."""
    from importlib import metadata

    try:
        return metadata.version("cellkit")
    except metadata.PackageNotFoundError:
        return None


def check_version(expected: str, *, installed: str | None = None, loaded: str | None = None) -> bool:
    """Return True when the cellkit this session runs is ``expected``; otherwise warn, with the command that fixes it.

    The setup cell of every released notebook calls this with the version it was released with.  Two
    versions can differ from it: the one *loaded* (imported into this Python session) and the one
    *installed* (what pip put on disk, e.g. by the install cell after cellkit was first imported);
    the warning says which, since the fixes differ (restart the session, or install the release).

    Examples
    --------
    >>> check_version("0.1.0", installed="0.1.0", loaded="0.1.0")
    True
    """
    if not isinstance(expected, str) or not re.fullmatch(r"\d+(\.\d+)*([a-z0-9.+-]*)", expected):
        raise ValueError(f"expected={expected!r}: expected a version string such as '0.1.0'")
    loaded = course_version() if loaded is None else loaded
    installed = _installed_version() if installed is None else installed
    if loaded == expected:
        return True
    if installed == expected:
        message = (f"this notebook was released with cellkit {expected}, which is installed, but this session "
                   f"still runs cellkit {loaded}, loaded before the install. Fix: restart the session "
                   "(Colab: Runtime > Restart session; Jupyter: Kernel > Restart) and run the notebook again.")
    else:
        on_disk = f" (installed: {installed})" if installed and installed != loaded else ""
        message = (f"this notebook was released with cellkit {expected}, but this session runs cellkit {loaded}"
                   f"{on_disk}: checks and data may not match the notebook. Fix: run  pip install \"{pip_spec(expected)}\""
                   "  then restart the session (Colab: Runtime > Restart session), or open the notebook of the "
                   "release you have.")
    warnings.warn(message, VersionMismatchWarning, stacklevel=2)
    return False


def colab_badge(lab: str, version: str | None = None) -> str:
    """Return the Markdown "Open in Colab" badge of ``lab``'s student notebook at the release tag of ``version``."""
    return f"[![Open In Colab]({BADGE})]({colab_url(lab, release_ref(version))})"


def _copy_lab(lab: str, layout: Layout, rel: ReleaseLayout, scratch: Path) -> dict:
    """Return the manifest entry of ``lab`` after copying its student, autograder and master parts."""
    fresh = build_lab(lab, layout, labs_dir=scratch / "labs", autograder_dir=scratch / "ag", write_master=False)
    shutil.copytree(layout.lab_folder(lab), rel.student_lab(lab), ignore=_IGNORE)
    zip_path = rel.autograder_zip(lab)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fresh["autograder"], zip_path)
    shutil.copytree(layout.master(lab).parent, rel.master_folder(lab), ignore=_IGNORE)
    notebook = rel.student_notebook(lab)
    return {"student_notebook": rel.relative(notebook), "sha256": sha256(notebook),
            "autograder": rel.relative(zip_path), "autograder_sha256": sha256(zip_path),
            "colab": colab_url(lab, release_ref()),
            "points": autograder.question_points(autograder.tests(zip_path))}


def _leaks(rel: ReleaseLayout, names: list[str]) -> list[str]:
    """Return each student file that names a hidden test case of the release's autograders."""
    hidden = {n for lab in names for n in autograder.hidden_case_names(rel.autograder_zip(lab))}
    return [f"{rel.relative(path)} contains hidden test {name}" for name in sorted(hidden)
            for path in sorted(rel.students.rglob("*"))
            if path.is_file() and name in path.read_text(errors="replace")]


def _readmes(rel: ReleaseLayout, manifest: dict) -> None:
    version, tag = manifest["version"], manifest["tag"]
    lines = [f"# cellkit course, release {version}", "",
             f"Every link opens the lab as released under the tag `{tag}`; the notebook installs cellkit "
             f"{version} itself and warns if another version is installed.", "",
             "| lab | open | points |", "|---|---|---|"]
    for lab, entry in manifest["labs"].items():
        lines.append(f"| {lab} | {colab_badge(lab, version)} | {sum(entry['points'].values()):g} |")
    write_text(rel.students / "README.md", "\n".join(lines) + "\n")
    write_text(rel.instructors / "README.md",
               f"# Instructors' part of release {version} (never publish this folder)\n\n"
               "- `autograder/NN_name-autograder.zip`: otter autograders with the hidden tests; "
               "`cellkit grade SUBMISSIONS --lab NN --out grades.csv` uses the same tests from build/.\n"
               "- `solutions/NN_name/`: the master notebooks (solutions and every test).\n\n"
               "See docs/instructors.md for the whole cycle.\n")


def build_release(version: str | None = None, out=None, labs=(), root=None, *, check: bool = True,
                  publishing: bool = False) -> Path:
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
    publishing : bool
        The caller publishes the student part (``cellkit release --publish``): print no "publish it" step.

    Raises
    ------
    ValueError
        The version is not the installed one, the labs are stale, or a hidden test leaked into the student part.
    """
    layout = Layout.of(root)
    installed = course_version()
    version = version or installed
    if version != installed:
        raise ValueError(f"version={version!r}: the installed cellkit is {installed}; set __version__ in "
                         f"cellkit/__init__.py to {version}, run 'cellkit course build', commit, then release")
    names = resolve_labs(labs, layout)
    if check:
        problems = check_labs(names, layout)
        if problems:
            raise ValueError("the committed labs are stale; run 'cellkit course build' and commit first:\n  "
                             + "\n  ".join(problems))
    tag = release_ref(version)
    out = Path(out) if out else layout.release_dir(version)
    manifest = {"version": version, "tag": tag, "created": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"), "labs": {}}
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory() as scratch:
        rel = ReleaseLayout(tmp)
        for lab in names:
            manifest["labs"][lab] = _copy_lab(lab, layout, rel, Path(scratch))
        leaked = _leaks(rel, names)
        if leaked:
            raise ValueError("hidden tests leaked into the student part of the release:\n  " + "\n  ".join(leaked))
        _readmes(rel, manifest)
        write_text(rel.manifest, json.dumps(manifest, indent=2) + "\n")
    rel = ReleaseLayout(out)
    if publishing:  # the caller pushes the student part itself and says so
        print(f"release {version}: {out}\n  keep {rel.instructors} private")
    else:
        print(f"release {version}: {out}\n  publish {rel.students} (badges pinned to {tag}); keep "
              f"{rel.instructors} private\n  then tag the commit:  git tag {tag} && git push origin {tag}\n"
              f"  (or let 'cellkit release --publish REMOTE' do both)")
    return out
