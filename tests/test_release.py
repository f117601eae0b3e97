"""Releasing to the students' repository: what students get, at a tag that exists, from the one repository setting."""

import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest

from cellkit.course import layout as layout_mod
from cellkit.course import publish as pub
from cellkit.course.release import VersionMismatchWarning, check_version

ROOT = Path(__file__).resolve().parents[1]


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def bare(tmp_path):
    path = tmp_path / "students.git"
    _git("init", "--quiet", "--bare", "--initial-branch", "main", str(path), cwd=tmp_path)
    return path


def test_publish_pushes_the_student_part_at_the_tag_and_nothing_of_the_instructors(bare, tmp_path):
    tag = pub.publish(str(bare), layout=ROOT)
    assert tag == layout_mod.release_ref() and pub.remote_has_tag(str(bare), tag, tmp_path)
    clone = tmp_path / "clone"
    _git("clone", "--quiet", "--branch", tag, str(bare), str(clone), cwd=tmp_path)
    files = {p.relative_to(clone).as_posix() for p in clone.rglob("*") if ".git" not in p.parts and p.is_file()}
    assert "cellkit/__init__.py" in files and "labs/01_mnist/01_mnist.ipynb" in files
    assert "labs/01_mnist/tests/q1_prepare.py" in files or any(f.startswith("labs/01_mnist/tests/") for f in files)
    assert not any(f.startswith(("solutions/", "build/", "tests/")) for f in files), "instructors' files published"
    readme = (clone / "README.md").read_text()
    assert layout_mod.colab_url("01_mnist", tag) in readme
    # publishing the same release again changes nothing
    assert pub.publish(str(bare), layout=ROOT) == tag
    assert len(_git("rev-list", "--all", cwd=bare).split()) == 1


def test_the_install_line_installs_from_the_students_repository(bare, tmp_path):
    """pip builds cellkit from the published tag (offline: no build isolation, no dependencies)."""
    import sys

    tag = pub.publish(str(bare), layout=ROOT)
    out = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), f"cellkit[colab] @ git+file://{bare}@{tag}"], check=True, capture_output=True)
    wheel = next(out.glob("cellkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "cellkit/course/__init__.py" in names and "cellkit/_registry/mnist.json" in names
    assert any(n.startswith("cellkit/_labs/01_mnist/tests/") for n in names), "the public tests travel in the wheel"


def test_a_published_tag_is_never_changed(bare, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("something else\n")
    _git("init", "--quiet", "--initial-branch", "main", cwd=other)
    _git("add", ".", cwd=other)
    _git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "--quiet", "-m", "x", cwd=other)
    tag = layout_mod.release_ref()
    _git("-c", "user.name=x", "-c", "user.email=x@x", "tag", "-a", tag, "-m", "x", cwd=other)
    _git("push", "--quiet", str(bare), "main", tag, cwd=other)
    with pytest.raises(pub.PublishError, match=f"already has the tag {tag} with other content"):
        pub.publish(str(bare), layout=ROOT)


def test_badges_are_written_only_for_a_tag_the_remote_has(bare, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("[![Open](b.svg)](https://colab.research.google.com/github/old-org/old/blob/v0.0.1/labs/01_mnist/01_mnist.ipynb)\n")
    with pytest.raises(pub.PublishError, match="has no tag"):
        pub.write_badges(readme, str(bare))
    assert "old-org" in readme.read_text(), "a refused write leaves the file as it was"
    pub.publish(str(bare), layout=ROOT)
    assert pub.write_badges(readme, str(bare))
    assert layout_mod.colab_url("01_mnist") in readme.read_text()


def test_repository_is_the_one_setting_in_pyproject(tmp_path, monkeypatch):
    fork = tmp_path / "fork"
    (fork / "cellkit").mkdir(parents=True)
    (fork / "pyproject.toml").write_text('[project]\nname = "cellkit"\n[project.urls]\n'
                                         'Repository = "https://github.com/my-course/cellkit-students"\n')
    monkeypatch.setattr(layout_mod, "PACKAGE_DIR", fork / "cellkit")
    assert layout_mod.repository() == "https://github.com/my-course/cellkit-students"
    assert layout_mod.pip_spec("1.2.0") == "cellkit[colab] @ git+https://github.com/my-course/cellkit-students@v1.2.0"
    assert "/github/my-course/cellkit-students/blob/v1.2.0/labs/01_mnist/" in layout_mod.colab_url("01_mnist", "v1.2.0")
    from cellkit.course import setup_cell

    assert 'cellkit[colab] @ git+https://github.com/my-course/cellkit-students@v1.2.0' in setup_cell.source("01_mnist", "1.2.0")


def test_course_commands_outside_a_checkout_say_what_they_need(tmp_path, monkeypatch, capsys):
    from cellkit.cli import main

    monkeypatch.setattr(layout_mod, "PACKAGE_DIR", tmp_path / "site-packages" / "cellkit")
    assert main(["run", "01", "--fast"]) == 2
    err = capsys.readouterr().err
    assert "not run from a clone of the course repository" in err and "solutions/" in err and "make install" in err


def test_version_check_tells_loaded_from_installed():
    assert check_version("0.3.0", installed="0.3.0", loaded="0.3.0")
    with pytest.warns(VersionMismatchWarning, match=r"0.3.0, which is installed, but this session still runs "
                                                    r"cellkit 0.2.0.*restart the session"):
        assert not check_version("0.3.0", installed="0.3.0", loaded="0.2.0")
    with pytest.warns(VersionMismatchWarning, match=r"runs cellkit 0.2.0 \(installed: 0.2.1\).*pip install "
                                                    r"\"cellkit\[colab\] @ git\+.*@v0.3.0\""):
        assert not check_version("0.3.0", installed="0.2.1", loaded="0.2.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_version("0.3.0", installed="0.2.0", loaded="0.3.0")  # what runs is what counts


@pytest.mark.parametrize("publishing", [False, True])
def test_release_says_publish_only_when_it_does_not_publish_itself(tmp_path, capsys, publishing):
    from cellkit.course.release import build_release

    build_release(out=tmp_path / "rel", labs=("01_mnist",), root=ROOT, check=False, publishing=publishing)
    said = capsys.readouterr().out
    assert "private" in said, "the instructors' part must always be named as private"
    assert ("publish " in said) is not publishing, said
