"""Course tooling: student labs built from the masters, staleness detected, otter grading round trip."""

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from cellkit import course


pytestmark = pytest.mark.usefixtures("no_hidden_tests_left")


def test_committed_labs_are_up_to_date(repo_root):
    assert course.check(root=repo_root) == [], "run 'cellkit course build' and commit labs/"


@pytest.fixture
def mini_course(tmp_path, repo_root):
    """A copy of lab 01's master and student folder in a scratch course root."""
    for part in ("solutions", "labs"):
        shutil.copytree(repo_root / part / "01_mnist", tmp_path / part / "01_mnist")
    return tmp_path


def test_check_names_stale_and_missing_files(mini_course):
    assert course.check(root=mini_course) == []
    student = mini_course / "labs" / "01_mnist" / "01_mnist.ipynb"
    nb = nbformat.read(student, as_version=4)
    nb.cells[3].source += "\n# edited by hand"
    nbformat.write(nb, student)
    (mini_course / "labs" / "01_mnist" / "tests" / "q3_count.py").unlink()
    problems = course.check(root=mini_course)
    assert any("01_mnist.ipynb: stale" in p for p in problems)
    assert any("tests/q3_count.py: missing" in p for p in problems)
    course.build(root=mini_course)
    assert course.check(root=mini_course) == []


def test_student_notebook_hides_solutions_and_hidden_tests(repo_root):
    student = (repo_root / "labs" / "01_mnist" / "01_mnist.ipynb").read_text()
    master = (repo_root / "solutions" / "01_mnist" / "01_mnist.ipynb").read_text()
    assert "7 * 7 * 32 * 64 + 64" in master and "7 * 7 * 32 * 64 + 64" not in student
    assert 'layers.Conv2D(32, 3, padding=\\"same\\"' in master
    assert 'layers.Conv2D(32, 3, padding=\\"same\\"' not in student
    assert "test_prepare_scaling" not in student and "test_prepare_scaling" in master
    public = "".join(p.read_text() for p in (repo_root / "labs" / "01_mnist" / "tests").glob("*.py"))
    assert "test_prepare_shape_dtype" in public and "hidden=True" not in public


def test_setup_cell_installs_in_colab_only_and_is_pinned(repo_root):
    for nb_path in [repo_root / "solutions" / "01_mnist" / "01_mnist.ipynb", repo_root / "labs" / "01_mnist" / "01_mnist.ipynb"]:
        nb = nbformat.read(nb_path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert 'if "google.colab" in sys.modules:' in first_code.source
        assert course.pip_spec() in first_code.source
        assert f"@v{course.course_version()}" in first_code.source
        assert "%pip" not in first_code.source and "!pip" not in first_code.source


def test_master_without_setup_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    path = tmp_path / "99_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="no setup cell.*cellkit-setup"):
        course.refresh_master(path)


def test_resolve_labs_accepts_numbers_and_names(repo_root):
    assert course.resolve_labs(["01"], repo_root) == ["01_mnist"]
    assert course.resolve_labs(["1"], repo_root) == ["01_mnist"]
    assert course.resolve_labs(["mnist"], repo_root) == ["01_mnist"]
    with pytest.raises(ValueError, match="lab '42': expected one of"):
        course.resolve_labs(["42"], repo_root)


@pytest.mark.slow
def test_otter_round_trip_full_marks_for_solution_zero_for_untouched_student(tmp_path, repo_root):
    """Grade otter's solution notebook and the untouched student notebook with the autograder zip."""
    built = course.build_lab("01_mnist", repo_root, labs_dir=tmp_path / "labs", autograder_dir=tmp_path / "ag",
                             write_master=False)
    scores = {}
    for who, nb in (("solution", built["solution"]), ("student", built["notebook"])):
        work = tmp_path / who
        work.mkdir()
        shutil.copy(nb, work / "submission.ipynb")
        out = work / "out"
        out.mkdir()
        proc = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(built["autograder"]), "-o", str(out),
                               str(work / "submission.ipynb")], capture_output=True, text=True, cwd=work)
        assert (out / "results.json").is_file(), proc.stdout + proc.stderr
        results = json.loads((out / "results.json").read_text())
        scores[who] = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "score" in t}
    assert set(scores["solution"]) == {"q1_prepare", "q2_cnn", "q3_count", "q4_evaluate"}
    assert all(s == m and m > 0 for s, m in scores["solution"].values()), scores["solution"]
    assert all(s == 0 for s, _ in scores["student"].values()), scores["student"]
