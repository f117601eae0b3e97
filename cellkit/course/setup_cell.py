"""The setup cell: the first code cell of every notebook, written here and parsed back here.

It installs cellkit pinned to this course version (in Colab only), calls
:func:`cellkit.course.check_version`, creates the otter grader of a graded lab and
calls :func:`cellkit.setup`.  Its text is part of the released notebooks: notebooks
released before this module existed import ``from cellkit.release import check_version``
and ``from cellkit import course``; both keep working.
"""

from __future__ import annotations

import re

from cellkit.course.layout import course_version, pip_spec

SETUP_TAG = "cellkit-setup"
"""The cell tag that marks the setup cell of a master."""

_VERSION = re.compile(r"""check_version\(\s*["']([^"']+)["']|@v(\d+(?:\.\d+)*[a-z0-9.+-]*)["']""")
_GRADER_LAB = re.compile(r"""course\.grader\(\s*["']([^"']+)["']""")


def source(lab: str, version: str | None = None, *, graded: bool = True) -> str:
    """Return the source of the first code cell of ``lab``'s notebooks (a walkthrough when not ``graded``)."""
    grading = (f'''from cellkit import course

grader = course.grader("{lab}")  # runs the public tests: grader.check("q1")
''' if graded else "")
    return f'''# Setup. In Google Colab this installs the course package, pinned to this course version;
# elsewhere (a local clone, the grader) it installs nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{pip_spec(version)}"], check=True)

import cellkit
from cellkit.course import check_version

check_version("{version or course_version()}")  # warns, with the fix, if the installed cellkit is another release
{grading}config = cellkit.setup("{lab}")  # prints backend, device, fast/full mode and data source'''


def find(nb) -> int | None:
    """Return the index of the setup cell (tagged ``cellkit-setup``), or None."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and SETUP_TAG in cell.metadata.get("tags", []):
            return i
    return None


def _first_match(nb, pattern: re.Pattern) -> re.Match | None:
    """Return the first match of ``pattern`` in the notebook's code cells (the setup cell comes first), or None."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            m = pattern.search(cell.source)
            if m:
                return m
    return None


def pinned_version(nb) -> str | None:
    """Return the cellkit version a notebook's setup cell pins (``...@v0.1.0``), or None when it pins none."""
    m = _first_match(nb, _VERSION)
    return (m.group(1) or m.group(2)) if m else None


def graded_lab(nb) -> str | None:
    """Return the lab a notebook's setup cell creates its grader for (``course.grader("01_mnist")``), or None."""
    m = _first_match(nb, _GRADER_LAB)
    return m.group(1) if m else None
