"""Course tooling: building the labs from their masters, releasing, running, grading.

No science module imports this package (a test keeps it so).  A notebook calls only
three things from it, all available here:

- :func:`grader`: the otter grader whose ``check`` runs a lab's public tests (setup cell);
- :func:`check_version`: warns, with the fix, when the installed cellkit is not the release (setup cell);
- :func:`record`: a lab's key metric and figure for the report of ``cellkit run``.

The rest lives in one module per concern: :mod:`.layout` (where every file of the course
lives), :mod:`.setup_cell` (the first cell of every notebook, written and parsed),
:mod:`.build` (student labs from masters), :mod:`.autograder` (otter's zip),
:mod:`.release`, :mod:`.run` (``cellkit run``), :mod:`.grading` (``cellkit grade``) and
:mod:`.cli`.  The names that ``cellkit.course`` offered when it was one module
(``course.build``, ``course.labs``, ``course.pip_spec``...) are still importable from here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cellkit.course.build import build, build_lab, check, refresh_master
from cellkit.course.layout import (PACKAGED_LABS, Layout, colab_url, course_version, labs, pip_spec,
                                   release_ref, repo_root, repository, resolve_labs, walkthroughs)
from cellkit.course.release import check_version
from cellkit.course.run import record
from cellkit.course.setup_cell import SETUP_TAG
from cellkit.course.setup_cell import find as find_setup_cell
from cellkit.course.setup_cell import source as setup_cell_source


def grader(lab: str, tests_dir: str = "tests"):
    """Return an ``otter.Notebook`` for ``lab`` whose ``check`` runs the lab's public tests.

    In Colab, where the notebook was opened on its own, the public tests shipped
    inside the cellkit package are copied to ``tests_dir`` first.
    """
    import otter

    here = Path(tests_dir)
    if not here.is_dir():
        packaged = PACKAGED_LABS / lab / "tests"
        source = packaged if packaged.is_dir() else Layout(PACKAGED_LABS.parent.parent).public_tests(lab)
        if source.is_dir() and "google.colab" in sys.modules:
            shutil.copytree(source, here)
    return otter.Notebook(tests_dir=str(here))


__all__ = ["grader", "check_version", "record", "repository", "SETUP_TAG", "build", "build_lab", "check",
           "colab_url", "course_version", "find_setup_cell", "labs", "pip_spec", "refresh_master", "release_ref",
           "repo_root", "resolve_labs", "setup_cell_source", "walkthroughs"]
