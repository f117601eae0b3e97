"""Grading and releases: a corpus of good and bad lab 01 submissions, each with the status it must get.

The corpus is generated in ``tmp_path`` from the released student notebook
(``labs/01_mnist``) and the master's solutions; every submission is graded in fast
mode on synthetic data, two at a time.  Most bad submissions start from the
untouched student notebook, which runs in seconds; only the perfect one trains.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cellkit import grading
from cellkit.release import check_version, filled_student_notebook, notebook_version, solution_notebook

LAB = "01_mnist"
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ corpus


@pytest.fixture(scope="module")
def notebooks():
    """Return the released student notebook and the perfectly filled one."""
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    solution = solution_notebook(LAB, ROOT)
    return student, filled_student_notebook(LAB, ROOT, solution=solution)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _answer(nb, text):
    return next(c for c in nb.cells if "otter_answer_cell" in c.metadata.get("tags", []) and text in c.source)


def _insert_after_setup(nb, source):
    nb = copy.deepcopy(nb)
    setup = next(i for i, c in enumerate(nb.cells) if "cellkit-setup" in c.metadata.get("tags", []))
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(source))
    return nb


def _minimal(student, source):
    """Return a cheap lab 01 notebook: the released metadata and title, and one code cell."""
    nb = copy.deepcopy(student)
    nb.cells = [nb.cells[0], nbformat.v4.new_code_cell(source)]
    return nb


def build_corpus(folder: Path, student, solution, victim: Path) -> dict[str, tuple]:
    """Write the corpus into ``folder``; return ``{student id: (expected status, reason fragment)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}

    def save(sid, nb, status, reason):
        nbformat.write(nb, folder / f"{sid}_{LAB}.ipynb")
        expected[sid] = (status, reason)

    save("perfect", solution, "ok", "")
    save("untouched", student, "flagged", "raised")

    (folder / f"badjson_{LAB}.ipynb").write_text('{"cells": [ {"cell_type": "code", ')
    expected["badjson"] = ("invalid", "invalid JSON")
    (folder / f"notnb_{LAB}.ipynb").write_text(json.dumps({"answer": 42}))
    expected["notnb"] = ("invalid", "not a Jupyter notebook")
    (folder / "essay.pdf").write_bytes(b"%PDF-1.4 not a notebook")
    expected["essay"] = ("invalid", "does not end in .ipynb")

    nb = copy.deepcopy(student)
    nb.metadata["otter"]["assignment_name"] = "02_moa"
    save("wrongnotebook", nb, "wrong_lab", "lab 02_moa")

    nb = copy.deepcopy(student)
    q3 = next(i for i, c in enumerate(nb.cells) if 'grader.check("q3_count")' in c.source)
    del nb.cells[q3]
    del nb.cells[2]  # the "1. The data" text
    save("deleted", nb, "flagged", "deleted")

    nb = copy.deepcopy(student)
    nb.cells[2], nb.cells[5] = nb.cells[5], nb.cells[2]
    save("reordered", nb, "flagged", "reordered")

    nb = copy.deepcopy(student)
    nb.cells.insert(4, copy.deepcopy(nb.cells[3]))
    save("duplicated", nb, "flagged", "duplicated")

    nb = copy.deepcopy(student)
    cell = _answer(nb, "def prepare")
    cell.source = ("def prep(images):\n    images = np.asarray(images, dtype=np.float32) / 255.0\n"
                   "    return images[..., np.newaxis]\n\n\nX_train, X_test = prep(x_train), prep(x_test)\n")
    save("renamed", nb, "flagged", "not defined: prepare")

    nb = copy.deepcopy(student)
    setup = next(c for c in nb.cells if "cellkit-setup" in c.metadata.get("tags", []))
    setup.source = 'raise RuntimeError("my Colab session broke")\n' + setup.source
    save("firstcell", nb, "flagged", "code cell 1 raised RuntimeError")

    attack = (f"import os, shutil\nopen({str(victim / 'pwned.txt')!r}, 'w').write('x')\n")
    save("writes", _minimal(student, attack), "suspicious", "writing outside the submission folder")
    attack = f"import os\nos.remove({str(victim / 'keep.txt')!r})\n"
    save("deletes", _minimal(student, attack), "suspicious", "os.remove outside the submission folder")
    attack = ("from cellkit.course import repo_root\n"
              "hidden = (repo_root() / 'build' / 'autograder' / '01_mnist' / 'tests' / 'q1_prepare.py').read_text()\n"
              "print(hidden)\n")
    save("readtests", _minimal(student, attack), "suspicious", "reading grader files")

    nb = copy.deepcopy(student)
    check = next(c for c in nb.cells if 'grader.check("q1_prepare")' in c.source)
    check.source = "pass  # grader.check takes too long"
    save("editedcheck", nb, "flagged", "check cell for q1_prepare was edited")

    nb = copy.deepcopy(solution)
    for cell in _code(nb):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="test accuracy: 0.99\n")]
        cell.execution_count = 1
        cell.source = ""
    save("outputsonly", nb, "flagged", "outputs only")
    return expected


# ------------------------------------------------------------------ the corpus, graded


def _grade(folder, out, **kwargs):
    options = dict(workers=2, timeout=240, memory_limit=6.0, fast=True, source="synthetic", root=ROOT, verbose=False)
    options.update(kwargs)
    return grading.grade(folder, LAB, out, **options)


def test_corpus_gets_expected_statuses(tmp_path, notebooks):
    student, solution = notebooks
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the instructor's file")
    expected = build_corpus(tmp_path / "subs", student, solution, victim)
    result = _grade(tmp_path / "subs", tmp_path / "grades.csv")
    rows = result["rows"]
    table = {sid: (r["status"], r["total"], r["reason"][:90]) for sid, r in rows.items()}
    assert set(rows) == set(expected), table
    for sid, (status, fragment) in expected.items():
        assert rows[sid]["status"] == status, (sid, table[sid])
        assert fragment in rows[sid]["reason"], (sid, rows[sid]["reason"])
    assert rows["perfect"]["total"] == rows["perfect"]["possible"] == 9.0, rows["perfect"]
    assert rows["untouched"]["total"] == 0.0
    assert rows["renamed"]["q1_prepare"] == 0.0
    assert rows["outputsonly"]["total"] == 0.0  # stored outputs are never trusted
    # the sandbox held: nothing written or deleted outside the scratch folder
    assert (victim / "keep.txt").read_text() == "the instructor's file"
    assert not (victim / "pwned.txt").exists()
    # the gradebook on disk matches, one row per student; a feedback file each, in words
    with open(tmp_path / "grades.csv", newline="") as f:
        on_disk = list(csv.DictReader(f))
    assert sorted(r["id"] for r in on_disk) == sorted(expected)
    feedback = (tmp_path / "grades-feedback" / "untouched.md").read_text()
    assert "hidden test" in feedback and "public test" in feedback and "not defined yet" in feedback
    assert "9 / 9" in (tmp_path / "grades-feedback" / "perfect.md").read_text()
    assert "needs a person's look" in result["summary"]
    # a re-run grades nothing again
    again = _grade(tmp_path / "subs", tmp_path / "grades.csv")
    assert again["graded"] == 0 and again["rows"].keys() == rows.keys()


def test_time_and_memory_limits(tmp_path, notebooks):
    student, _ = notebooks
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(_minimal(student, "while True:\n    pass\n"), folder / f"loop_{LAB}.ipynb")
    nbformat.write(_minimal(student, "import numpy as np\nhuge = np.ones(2**31)  # 16 GiB\n"),
                   folder / f"memory_{LAB}.ipynb")
    rows = _grade(folder, tmp_path / "grades.csv", timeout=15, memory_limit=4.0)["rows"]
    assert rows["loop"]["status"] == "timeout", rows["loop"]
    assert "code cell 1" in rows["loop"]["reason"]
    assert rows["memory"]["status"] == "out_of_memory", rows["memory"]
    assert "MemoryError" in rows["memory"]["reason"]


def test_gradebook_survives_a_killed_grader(tmp_path, notebooks):
    student, _ = notebooks
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("ann", "ben", "cat"):  # a few seconds each, so that the kill lands halfway
        nbformat.write(_minimal(student, "import time\ntime.sleep(4)\nconv2_params = 4_640"),
                       folder / f"{name}_{LAB}.ipynb")
    out = tmp_path / "grades.csv"
    cmd = [sys.executable, "-m", "cellkit.cli", "grade", str(folder), "--lab", "01", "--out", str(out),
           "--workers", "1", "--timeout", "120", "--source", "synthetic"]
    grader = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(grading.read_gradebook(out)) < 1:
        time.sleep(0.2)
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    first = grading.read_gradebook(out)
    assert 1 <= len(first) < 3, "the grader should have been killed halfway"
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=300)
    with open(out, newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    assert sorted(ids) == ["ann", "ben", "cat"]  # complete, no duplicates
    final = grading.read_gradebook(out)
    for sid, row in first.items():
        assert final[sid]["seconds"] == row["seconds"], "a graded row must not be graded again"


# ------------------------------------------------------------------ fast unit tests


def test_student_ids_from_file_names_folders_and_metadata(tmp_path):
    root = tmp_path
    (root / "Doe Jane_123_assignsubmission_file_").mkdir()
    assert grading.student_id(root / "alice_01_mnist.ipynb", root, LAB) == "alice"
    assert grading.student_id(root / "bob-lab01_mnist.ipynb", root, LAB) == "bob"
    assert grading.student_id(root / "Doe Jane_123_assignsubmission_file_" / "01_mnist.ipynb", root, LAB) == \
        "Doe_Jane_123_assignsubmission_file"
    assert grading.student_id(root / "x.ipynb", root, LAB, {"metadata": {"cellkit": {"student_id": "s42"}}}) == "s42"


def test_structure_checks_name_what_changed(notebooks):
    student, _ = notebooks
    assert grading.compare_with_release(student, student) == []
    nb = copy.deepcopy(student)
    check = next(c for c in nb.cells if 'grader.check("q2_cnn")' in c.source)
    check.source = 'grader.check("q2_cnn")\nprint("done")'
    nb.cells.append(copy.deepcopy(check))
    notes = " | ".join(grading.compare_with_release(nb, student))
    assert "q2_cnn appears 2 times" in notes and "q2_cnn was edited" in notes


def test_code_scan_and_invalid_notebooks():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import ctypes\nf = sys._getframe(1)")])
    found = " ".join(grading.scan_code(nb))
    assert "ctypes" in found and "frames" in found
    assert grading._read_notebook(b"\x89PNG\r\n\x1a\n\x00")[1].startswith("not a notebook")
    assert "invalid JSON" in grading._read_notebook(b"{")[1]


def test_gradebook_rows_are_unique_and_atomic(tmp_path):
    out = tmp_path / "g.csv"
    rows = {"b": {"id": "b", "status": "ok", "total": 1}, "a": {"id": "a", "status": "ok", "total": 2}}
    grading.write_gradebook(out, rows, [])
    rows["a"]["total"] = 3
    grading.write_gradebook(out, rows, [])
    back = grading.read_gradebook(out)
    assert list(back) == ["a", "b"] and back["a"]["total"] == "3"
    assert [p.name for p in tmp_path.iterdir()] == ["g.csv"]


def test_version_check_warns_with_the_fix():
    assert check_version("0.1.0", installed="0.1.0")
    with pytest.warns(UserWarning, match=r"pip install .*@v9\.9\.9"):
        assert not check_version("9.9.9", installed="0.1.0")
    with pytest.raises(ValueError, match="expected"):
        check_version("latest")
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    from cellkit import __version__

    assert notebook_version(student) == __version__


def test_release_keeps_solutions_apart(tmp_path):
    from cellkit.release import build_release

    out = build_release(out=tmp_path / "rel", labs=["01"], root=ROOT)
    manifest = json.loads((out / "release.json").read_text())
    entry = manifest["labs"][LAB]
    assert entry["colab"].endswith(f"/blob/{manifest['tag']}/labs/{LAB}/{LAB}.ipynb")
    assert (out / "students" / LAB / f"{LAB}.ipynb").read_bytes() == (ROOT / "labs" / LAB / f"{LAB}.ipynb").read_bytes()
    assert (out / "instructors" / "autograder" / f"{LAB}-autograder.zip").is_file()
    assert (out / "instructors" / "solutions" / LAB / f"{LAB}.ipynb").is_file()
    student_text = " ".join(p.read_text(errors="replace") for p in (out / "students").rglob("*") if p.is_file())
    assert "test_prepare_scaling" not in student_text and "BEGIN SOLUTION" not in student_text
    assert manifest["tag"] in (out / "students" / "README.md").read_text()
    assert sum(entry["points"].values()) == 9


def test_process_only_mode_still_blocks_grader_files(tmp_path, notebooks):
    """Without namespaces (macOS, hardened hosts) the audit hook still refuses and reports the same attempts."""
    student, _ = notebooks
    folder = tmp_path / "subs"
    folder.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    nbformat.write(_minimal(student, f"open({str(victim / 'x.txt')!r}, 'w')"), folder / f"writer_{LAB}.ipynb")
    nbformat.write(_minimal(student, "from cellkit.course import repo_root\n"
                                    "print((repo_root() / 'solutions' / '01_mnist' / '01_mnist.ipynb').read_text())"),
                   folder / f"reader_{LAB}.ipynb")
    result = _grade(folder, tmp_path / "grades.csv", sandbox=False, timeout=60)
    rows = result["rows"]
    assert result["sandbox"] == "process only"
    assert rows["writer"]["status"] == "suspicious" and "writing outside" in rows["writer"]["reason"]
    assert not (victim / "x.txt").exists()
    assert rows["reader"]["status"] == "suspicious", rows["reader"]
