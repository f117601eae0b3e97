"""The course's file layout and addresses, in one place.

Every path the course tooling reads or writes is spelled here and nowhere else::

    solutions/NN_name/NN_name.ipynb          the master (solution + tests): the source of truth
    labs/NN_name/NN_name.ipynb               the student notebook, built from the master
    labs/NN_name/tests/*.py                  its public tests (``grader.check``)
    notebooks/*.ipynb                        ungraded walkthroughs
    build/autograder/NN_name-autograder.zip  otter's autograder: public and hidden tests
    build/autograder/NN_name/tests/*.py      the same tests, unpacked
    build/autograder/NN_name/NN_name-solution.ipynb   otter's solution notebook
    build/executed/, build/report/, build/report.md   what ``cellkit run`` writes
    build/release/VERSION/                   what ``cellkit release`` writes (see :class:`ReleaseLayout`)

plus the repository's address, the release tag and the Colab URL derived from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cellkit

DEFAULT_REPOSITORY = "https://github.com/cellkit-course/cellkit"

STUDENT_PATHS = ("cellkit", "data", "labs", "notebooks", "LICENSE", "README.md", "pyproject.toml",
                 "environment.yml")
"""What the students' repository holds (``cellkit release --publish``): enough to ``pip install`` cellkit
and open every lab, and nothing of :meth:`Layout.instructor_only`."""

LAB_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")
PACKAGE_DIR = Path(cellkit.__file__).resolve().parent
PACKAGED_LABS = PACKAGE_DIR / "_labs"
"""Where a wheel carries ``labs/*/tests`` (see pyproject.toml), for a notebook opened on its own in Colab."""


def repository() -> str:
    """Return the public repository students install cellkit from and open the labs in.

    The one place it is set is ``[project.urls] Repository`` in pyproject.toml: in a clone it is read
    from there, in an installed cellkit from the package's metadata (which pip built from the same
    line).  A course that forks this one changes that line, runs ``cellkit course build`` (the setup
    cells' install line) and ``cellkit release --publish`` (badges), and nothing else.
    """
    pyproject = PACKAGE_DIR.parent / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        urls = tomllib.loads(pyproject.read_text()).get("project", {}).get("urls", {})
        if urls.get("Repository"):
            return urls["Repository"].rstrip("/")
    from importlib import metadata

    try:
        for entry in metadata.metadata("cellkit").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "repository" and url.strip():
                return url.strip().rstrip("/")
    except metadata.PackageNotFoundError:
        pass
    return DEFAULT_REPOSITORY


def __getattr__(name: str):
    if name == "REPOSITORY":  # the constant of earlier versions, now a setting
        return repository()
    raise AttributeError(name)


def course_version() -> str:
    """Return the installed cellkit version, which is also the course version."""
    return cellkit.__version__


def release_ref(version: str | None = None) -> str:
    """Return the git tag a release of ``version`` is published under (``v0.1.0``)."""
    return f"v{version or course_version()}"


def pip_spec(version: str | None = None, extra: str = "colab") -> str:
    """Return the pip requirement that installs this course version of cellkit from the repository.

    The ``colab`` extra keeps otter-grader at a version that leaves Colab's own packages as they are.
    """
    return f"cellkit{f'[{extra}]' if extra else ''} @ git+{repository()}@{release_ref(version)}"


def student_path(lab: str) -> str:
    """Return the student notebook's path relative to the repository (``labs/01_mnist/01_mnist.ipynb``)."""
    return f"labs/{lab}/{lab}.ipynb"


def colab_url(lab: str, ref: str | None = None) -> str:
    """Return the "Open in Colab" URL of the student notebook of ``lab`` at git ``ref`` (default the release tag)."""
    owner_repo = repository().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{ref or release_ref()}/{student_path(lab)}"


def autograder_name(lab: str) -> str:
    """Return the file name of ``lab``'s autograder zip (``01_mnist-autograder.zip``)."""
    return f"{lab}-autograder.zip"


class NotACheckout(FileNotFoundError):
    """A course command ran from an installed cellkit, with no course repository beside it."""


def repo_root() -> Path:
    """Return the repository root (the folder holding ``solutions/``), found from the package's location."""
    root = PACKAGE_DIR.parent
    if not (root / "solutions").is_dir():
        raise NotACheckout(
            f"this cellkit is installed at {PACKAGE_DIR}, not run from a clone of the course repository: 'cellkit "
            "run', 'course', 'release' and 'grade' read the master notebooks in solutions/. Clone the course "
            "repository, then in it run 'make install' (or pip install -e \".[course]\") and use its .venv/bin/cellkit. "
            "(A student needs none of this: open a lab's notebook, its first cell installs what it needs.)")
    return root


@dataclass(frozen=True)
class Layout:
    """The paths of a course repository rooted at ``root`` (default: the clone cellkit is imported from)."""

    root: Path

    @classmethod
    def of(cls, root=None) -> "Layout":
        """Return the layout of ``root`` (a path or a Layout), or of the repository cellkit lives in."""
        if isinstance(root, Layout):
            return root
        return cls(Path(root).resolve() if root else repo_root())

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def labs_dir(self) -> Path:
        return self.root / "labs"

    @property
    def walkthroughs_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def autograder_dir(self) -> Path:
        return self.build_dir / "autograder"

    def master(self, lab: str) -> Path:
        return self.solutions / lab / f"{lab}.ipynb"

    def lab_folder(self, lab: str, labs_dir: Path | None = None) -> Path:
        return (labs_dir or self.labs_dir) / lab

    def student_notebook(self, lab: str, labs_dir: Path | None = None) -> Path:
        return self.lab_folder(lab, labs_dir) / f"{lab}.ipynb"

    def public_tests(self, lab: str, labs_dir: Path | None = None) -> Path:
        return self.lab_folder(lab, labs_dir) / "tests"

    def relative(self, path: Path) -> str:
        """Return ``path`` relative to the repository root, as written in messages (``labs/01_mnist/...``)."""
        return Path(path).relative_to(self.root).as_posix()

    def autograder_zip(self, lab: str, autograder_dir: Path | None = None) -> Path:
        return (autograder_dir or self.autograder_dir) / autograder_name(lab)

    def hidden_tests(self, lab: str, autograder_dir: Path | None = None) -> Path:
        return (autograder_dir or self.autograder_dir) / lab / "tests"

    def solution_notebook(self, lab: str, autograder_dir: Path | None = None) -> Path:
        return (autograder_dir or self.autograder_dir) / lab / f"{lab}-solution.ipynb"

    def release_dir(self, version: str) -> Path:
        return self.build_dir / "release" / version

    def instructor_only(self) -> list[Path]:
        """Return what a student's code must never read: masters, built autograders, git history."""
        return [self.solutions, self.build_dir, self.root / ".git"]

    def labs(self) -> list[str]:
        """Return the names of the labs (``01_mnist``, ...) that have a master notebook."""
        return sorted(p.name for p in self.solutions.iterdir()
                      if p.is_dir() and LAB_PATTERN.match(p.name) and self.master(p.name).is_file())

    def walkthroughs(self) -> list[Path]:
        """Return the ungraded walkthrough notebooks."""
        return sorted(self.walkthroughs_dir.glob("*.ipynb"))


def labs(root=None) -> list[str]:
    """Return the names of the labs (``01_mnist``, ...) that have a master notebook."""
    return Layout.of(root).labs()


def walkthroughs(root=None) -> list[Path]:
    """Return the ungraded walkthrough notebooks in ``notebooks/``."""
    return Layout.of(root).walkthroughs()


def resolve_labs(names, root=None) -> list[str]:
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


@dataclass(frozen=True)
class ReleaseLayout:
    """The folders of one release, ``build/release/VERSION/`` (relative names go into release.json)."""

    root: Path

    @property
    def students(self) -> Path:
        return self.root / "students"

    @property
    def instructors(self) -> Path:
        return self.root / "instructors"

    @property
    def manifest(self) -> Path:
        return self.root / "release.json"

    def student_lab(self, lab: str) -> Path:
        return self.students / lab

    def student_notebook(self, lab: str) -> Path:
        return self.students / lab / f"{lab}.ipynb"

    def autograder_zip(self, lab: str) -> Path:
        return self.instructors / "autograder" / autograder_name(lab)

    def master_folder(self, lab: str) -> Path:
        return self.instructors / "solutions" / lab

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()


@dataclass(frozen=True)
class OtterDist:
    """What ``otter assign MASTER DIST`` writes into ``DIST``."""

    root: Path

    def student_notebook(self, lab: str) -> Path:
        return self.root / "student" / f"{lab}.ipynb"

    @property
    def public_tests(self) -> Path:
        return self.root / "student" / "tests"

    @property
    def autograder_zips(self) -> list[Path]:
        return sorted((self.root / "autograder").glob("*.zip"))

    @property
    def all_tests(self) -> Path:
        return self.root / "autograder" / "tests"

    def solution_notebook(self, lab: str) -> Path:
        return self.root / "autograder" / f"{lab}.ipynb"
