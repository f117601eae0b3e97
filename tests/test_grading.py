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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from cellkit.course import grading
from cellkit.course.build import otter_assign, refresh_master
from cellkit.course.layout import Layout
from cellkit.release import check_version, notebook_version

LAB = "01_mnist"
ROOT = Path(__file__).resolve().parents[1]


def solution_notebook(lab: str, root: Path):
    """Return the runnable solution notebook of ``lab`` (otter assign's autograder copy of the master)."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "master" / f"{lab}.ipynb"
        staged.parent.mkdir()
        shutil.copy(Layout.of(root).master(lab), staged)
        refresh_master(staged)
        dist = otter_assign(staged, Path(tmp) / "dist")
        return nbformat.read(dist.solution_notebook(lab), as_version=4)


def filled_student_notebook(lab: str, root: Path, solution):
    """Return the released student notebook of ``lab`` with every answer cell filled in from the solution.

    This is what a perfect student submits (same cell ids, same check cells): grading it must give full marks.
    """
    student = nbformat.read(Layout.of(root).student_notebook(lab), as_version=4)
    answers = [c for c in solution.cells if "otter_assign_solution_cell" in c.metadata.get("tags", [])]
    slots = [c for c in student.cells if "otter_answer_cell" in c.metadata.get("tags", [])]
    assert len(answers) == len(slots), f"lab {lab}: answer cells and solution cells differ: rebuild the lab"
    filled = copy.deepcopy(student)
    answer_iter = iter(answers)
    for cell in filled.cells:
        if "otter_answer_cell" in cell.metadata.get("tags", []):
            cell.source = next(answer_iter).source
    return filled


# ------------------------------------------------------------------ corpus


pytestmark = pytest.mark.usefixtures("no_hidden_tests_left")


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


def build_corpus(folder: Path, student, solution, victim: Path, home: Path) -> dict[str, tuple]:
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

    # ---- attacks on the grader itself (issue 17); none may score more than the honest notebook
    forge = ("import json, os, sys\n"
             "cfg = json.loads(sys.argv[-1])\n"
             "fake = [{'name': q, 'cases': [{'case': f'{q} - {i}', 'name': 't', 'passed': True, 'message': ''}"
             " for i in range(1, 9)], 'score': 1000, 'possible': 1} for q in ['q1_prepare', 'q2_cnn', 'q3_count',"
             " 'q4_evaluate', 'q9_bonus']]\n"
             "for msg in ({'event': 'executed', 'cells': [], 'violations': []},"
             " {'event': 'results', 'questions': fake, 'violations': []}):\n"
             "    os.write(cfg['ctl_fd'], (json.dumps(msg) + '\\n').encode())\n"
             "os._exit(0)\n")
    save("forgedpipe", _insert_after_setup(student, forge), "suspicious", "did not come from the worker")
    noop = ("from cellkit import checks as c\n"
            "for name in dir(c):\n"
            "    if name.startswith('check'):\n"
            "        setattr(c, name, lambda *a, **k: None)\n")
    save("nochecks", _insert_after_setup(student, noop), "suspicious", "cellkit.checks.check_")
    noop = ("import otter.test_files.exception_test as e\n"
            "e.test_case.call_func = lambda self, env: None\n")
    save("nootter", _insert_after_setup(student, noop), "suspicious", "exception_test.test_case.call_func")
    nb = copy.deepcopy(student)
    _answer(nb, "test_loss, test_accuracy").source = "test_loss, test_accuracy = 0.0, 0.99\ny_test = y_test[:0]\n"
    save("ytest", nb, "flagged", "rebinds y_test")
    nb = copy.deepcopy(student)
    plain = next(c for c in _code(nb) if "load_digits(config)" in c.source)
    plain.source += "\ny_test = y_test * 0\n"
    save("plainedit", nb, "flagged", "not answer cells were edited")
    nb = _minimal(student, "conv2_params = 4_640\n")
    nb.metadata["cellkit"] = {"student_id": "perfect"}
    nbformat.write(nb, folder / f"aaa_{LAB}.ipynb")  # sorts first; claims the perfect student's id
    expected["aaa"] = ("flagged", "metadata says student 'perfect'")
    secret = home / ".secret-notes"
    save("readhome", _minimal(student, f"raise RuntimeError(open({str(secret)!r}).read())\n"),
         "suspicious", "reading files outside the submission")
    nb = _minimal(student, "conv2_params = 4_640\n")
    nb.cells.append(nbformat.v4.new_markdown_cell("Caf\u00e9"))
    data = nbformat.writes(nb).encode("utf-8").replace("Caf\u00e9".encode("utf-8"), "Caf\u00e9".encode("latin-1"))
    (folder / f"latin1_{LAB}.ipynb").write_bytes(data)
    expected["latin1"] = ("flagged", "not valid UTF-8: 1 byte(s) replaced")

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


def test_corpus_gets_expected_statuses(tmp_path, notebooks, monkeypatch):
    student, solution = notebooks
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the instructor's file")
    home = tmp_path / "home"  # the grader's home for this test: nothing in it may reach a student's feedback
    home.mkdir()
    (home / ".secret-notes").write_text("SECRET-7f3a: the instructor's own notes")
    monkeypatch.setenv("HOME", str(home))
    expected = build_corpus(tmp_path / "subs", student, solution, victim, home)
    result = _grade(tmp_path / "subs", tmp_path / "grades.csv")
    rows = result["rows"]
    table = {sid: (r["status"], r["total"], r["reason"][:90]) for sid, r in rows.items()}
    assert set(rows) == set(expected), table
    wrong = {sid: (status, fragment, rows[sid]["status"], rows[sid]["reason"][:300])
             for sid, (status, fragment) in expected.items()
             if rows[sid]["status"] != status or fragment not in rows[sid]["reason"]}
    assert not wrong, wrong
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
    assert "grading check" in feedback and "grader.check" in feedback and "not defined yet" in feedback
    assert "code cell" not in feedback and "Task 1" in feedback  # in the student's words: tasks, not cell numbers
    assert "9 / 9" in (tmp_path / "grades-feedback" / "perfect.md").read_text()
    assert "needs a person's look" in result["summary"]
    # attacks on the grader: never more than the honest score (0 for these), never ok
    for sid in ("forgedpipe", "nochecks", "nootter", "plainedit", "readhome"):
        assert rows[sid]["total"] == 0.0, (sid, rows[sid])
    assert rows["ytest"]["total"] <= 1.0  # only q4's public range check: 0.99 is a fraction
    assert rows["aaa"]["total"] == rows["latin1"]["total"] > 0  # graded, not zeroed: q3's public test passes
    assert rows["perfect"]["file"] == f"perfect_{LAB}.ipynb"  # the victim keeps its id and its grade
    feedback = "".join(p.read_text() for p in (tmp_path / "grades-feedback").glob("*.md"))
    assert "SECRET-7f3a" not in feedback
    assert "def test_" not in feedback and "hidden=True" not in feedback  # no test source, forged or not
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
    # the killed grader's copies of the submissions were removed by the next run
    left = [p.name for p in Path(tempfile.gettempdir()).glob(f"cellkit-*-{grader.pid}-*")]
    assert not left, left


# ------------------------------------------------------------------ fast unit tests


def test_student_ids_from_file_and_folder_names_never_metadata(tmp_path):
    root = tmp_path
    (root / "Doe Jane_123_assignsubmission_file_").mkdir()
    assert grading.student_id(root / "alice_01_mnist.ipynb", root, LAB) == "alice"
    assert grading.student_id(root / "bob-lab01_mnist.ipynb", root, LAB) == "bob"
    assert grading.student_id(root / "Doe Jane_123_assignsubmission_file_" / "01_mnist.ipynb", root, LAB) == \
        "Doe_Jane_123_assignsubmission_file"
    # the metadata is the student's to edit: it is read (to flag a mismatch), never used as the id
    assert grading.student_id(root / "x_01_mnist.ipynb", root, LAB) == "x"
    assert grading.metadata_id({"metadata": {"cellkit": {"student_id": "s42"}}}) == "s42"


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
    assert grading.read_notebook(b"\x89PNG\r\n\x1a\n\x00")[1].startswith("not a notebook")
    assert "invalid JSON" in grading.read_notebook(b"{")[1]
    nb, problem, notes = grading.read_notebook(nbformat.writes(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("Caf\u00e9")])).encode().replace(b"\xc3\xa9", b"\xe9"))
    assert nb is not None and problem is None and "1 byte(s) replaced" in notes[0]
    assert "Caf\ufffd" in nb.cells[0].source


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
    # --no-sandbox attacks of issue 17: programs started (a late gradebook rewrite, grep on the solutions),
    # a stray autograder zip read with open()
    out = tmp_path / "grades.csv"
    late = f"sleep 3; echo 'spawner,x,ok,,9,9,9,0,x' >> {out}"
    nbformat.write(_minimal(student, "import subprocess\n"
                                    f"subprocess.Popen(['sh', '-c', {late!r}], start_new_session=True)\n"),
                   folder / f"spawner_{LAB}.ipynb")
    nbformat.write(_minimal(student, "import subprocess\nfrom cellkit.course import repo_root\n"
                                    "print(subprocess.run(['grep', '-r', 'hidden=True', str(repo_root())],"
                                    " capture_output=True, text=True).stdout)\n"), folder / f"grep_{LAB}.ipynb")
    stray = tmp_path / "stray" / f"{LAB}-autograder.zip"
    stray.parent.mkdir()
    shutil.copy(ROOT / "build" / "autograder" / f"{LAB}-autograder.zip", stray)
    nbformat.write(_minimal(student, f"import zipfile\nprint(zipfile.ZipFile({str(stray)!r}).read('tests/q1_prepare.py'))\n"),
                   folder / f"strayzip_{LAB}.ipynb")
    # an honest notebook is not suspicious here: libraries start uname and fc-list themselves
    nbformat.write(student, folder / f"untouched_{LAB}.ipynb")
    result = _grade(folder, out, sandbox=False, timeout=120)
    rows = result["rows"]
    assert result["sandbox"] == "process only"
    assert rows["untouched"]["status"] == "flagged" and "starting a program" not in rows["untouched"]["reason"]
    assert rows["writer"]["status"] == "suspicious" and "writing outside" in rows["writer"]["reason"]
    assert not (victim / "x.txt").exists()
    assert rows["reader"]["status"] == "suspicious", rows["reader"]
    for sid in ("spawner", "grep"):
        assert rows[sid]["status"] == "suspicious" and "starting a program" in rows[sid]["reason"], rows[sid]
    assert rows["strayzip"]["status"] == "suspicious" and "reading grader files" in rows["strayzip"]["reason"]
    feedback = "".join(p.read_text() for p in (tmp_path / "grades-feedback").glob("*.md"))
    assert "hidden=True" not in feedback and "def test_" not in feedback
    time.sleep(4)  # a process that outlived its worker would rewrite the gradebook now
    assert grading.read_gradebook(out)["spawner"]["status"] == "suspicious"
    assert sum(1 for line in out.read_text().splitlines() if line.startswith("spawner,")) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreaper is Linux only")
def test_no_sandbox_kills_processes_that_left_their_group(tmp_path):
    """An orphan in a session of its own (what a submission can start) is killed before the next row."""
    from cellkit.course.grading.sandbox import Context

    ctx = Context(LAB, {}, {}, {}, fast=True, source=None, timeout=1, cell_timeout=1, test_timeout=1,
                  memory_limit=1, sandbox=False, protected=[], rw=[], threads=1, feedback_dir=tmp_path,
                  keep_scratch=False)
    marker = tmp_path / "late.txt"
    spawn = ("import subprocess, sys; "
             "subprocess.Popen(['sh', '-c', 'sleep 3; echo late > ' + sys.argv[1]], start_new_session=True)")
    subprocess.run([sys.executable, "-c", spawn, str(marker)], check=True)  # the parent exits at once
    time.sleep(0.5)
    assert ctx.reap_strays(), "the orphan should have become the grader's child"
    time.sleep(3.5)
    assert not marker.exists()


def test_stale_grading_copies_are_removed_but_live_ones_kept(tmp_path):
    from cellkit.course.grading.sandbox import clean_stale_copies

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"cellkit-grade-{dead.pid}-abc").mkdir()
    (tmp_path / f"cellkit-submissions-{dead.pid}-abc").mkdir()
    (tmp_path / f"cellkit-grade-{os.getpid()}-abc").mkdir()
    (tmp_path / "cellkit-test-data-xyz").mkdir()
    removed = {p.name for p in clean_stale_copies(tmp_path)}
    assert removed == {f"cellkit-grade-{dead.pid}-abc", f"cellkit-submissions-{dead.pid}-abc"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cellkit-grade-{os.getpid()}-abc", "cellkit-test-data-xyz"]
