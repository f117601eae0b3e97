"""Reading otter's autograder zip: the tests (public and hidden), their names and the points per question."""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

from cellkit.course.build import build_lab
from cellkit.course.layout import Layout

_HIDDEN_CASE = re.compile(r"@test_case\([^)]*hidden=True[^)]*\)\s*\ndef (\w+)")


def tests(autograder_zip) -> dict[str, str]:
    """Return ``{question: test file source}`` read from an otter autograder zip (public and hidden cases)."""
    with zipfile.ZipFile(autograder_zip) as zf:
        return {Path(n).stem: zf.read(n).decode("utf-8") for n in zf.namelist()
                if n.startswith("tests/") and n.endswith(".py")}


def parse(test_sources: dict[str, str]) -> dict:
    """Return ``{question: otter ExceptionTestFile}`` parsed by otter from the test sources."""
    from otter.test_files import ExceptionTestFile

    return {name: ExceptionTestFile.from_string(src, path=f"<hidden tests>/{name}.py")
            for name, src in sorted(test_sources.items())}


def question_points(test_sources: dict[str, str]) -> dict[str, float]:
    """Return each question's points, parsed by otter."""
    return {name: float(tf.possible) for name, tf in parse(test_sources).items()}


def hidden_case_names(autograder_zip) -> list[str]:
    """Return the function names of the hidden test cases inside an autograder zip."""
    names = []
    for source in tests(autograder_zip).values():
        names += _HIDDEN_CASE.findall(source)
    return names


def ensure(lab: str, root=None) -> Path:
    """Return ``lab``'s autograder zip, building it from the committed master when ``build/`` lacks it.

    A fresh clone has ``labs/`` (committed) but not ``build/`` (generated); building leaves ``labs/``
    and the master untouched.
    """
    layout = Layout.of(root)
    zip_path = layout.autograder_zip(lab)
    if zip_path.exists():
        return zip_path
    master = layout.master(lab)
    if not master.is_file():
        raise FileNotFoundError(f"{zip_path} is missing and so is the master {master}: "
                                "pass autograder= (the released instructors/autograder zip)")
    print(f"{zip_path} is missing: building it from {master} ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_lab(lab, layout, labs_dir=Path(tmp), write_master=False)
    return zip_path
