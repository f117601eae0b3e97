"""Publishing a release to the students' repository: what students need, at a tag, and nothing else.

The course repository (instructors') holds the masters with their solutions and hidden tests, so it stays
private.  Students need a public repository for two things: the "Open in Colab" badges open a notebook
there, and each notebook's first cell installs cellkit from there (``pip install "cellkit[colab] @
git+URL@vVERSION"``).  :func:`publish` copies the committed student part of the course repository
(:data:`~cellkit.course.layout.STUDENT_PATHS`: the package, its dataset registry, the student labs and walkthroughs, the
licence and the packaging files) into that repository as one commit, tags it ``vVERSION`` and pushes
both; it refuses to go on when the tag already names other content, and it checks that the tag exists
on the remote before it writes any badge for it.  ``[project.urls] Repository`` in pyproject.toml
names the students' repository, the one setting that badges, install line and README follow.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cellkit.atomic import write_text
from cellkit.course.layout import STUDENT_PATHS, Layout, colab_url, course_version, release_ref, repository

_BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/")


class PublishError(RuntimeError):
    """Publishing a release failed; the message says what to do."""


def _git(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise PublishError(f"git {' '.join(args)} (in {cwd}) failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def remote_has_tag(remote: str, tag: str, cwd: Path) -> bool:
    """Return whether the git remote ``remote`` has the tag ``tag``."""
    out = _git("ls-remote", "--tags", remote, f"refs/tags/{tag}", cwd=cwd).stdout
    return bool(out.strip())


def point_badges(text: str, version: str | None = None) -> str:
    """Return ``text`` (Markdown) with every "Open in Colab" link moved to the release tag of the students' repository."""
    ref = release_ref(version)
    prefix = colab_url("00_x", ref).split("labs/")[0]
    return _BADGE_URL.sub(prefix, text)


def student_tree(layout: Layout, dest: Path, ref: str = "HEAD") -> list[str]:
    """Return the files written to ``dest``: :data:`STUDENT_PATHS` as committed at ``ref`` (never the work tree).

    Raises
    ------
    PublishError
        When the commit lacks one of the paths, or when anything of the instructors' part would be copied.
    """
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "tree.tar"
        _git("archive", "--format=tar", "-o", str(archive), ref, "--", *STUDENT_PATHS, cwd=layout.root)
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            names = [m.name for m in members]
            instructors = {path.name for path in layout.instructor_only()}
            private = [n for n in names if n.split("/")[0] in instructors]
            if private:
                raise PublishError(f"the students' copy would include instructors' files: {private[:3]}")
            tar.extractall(dest, members=members, filter="data")
    return sorted(names)


def publish(remote: str, version: str | None = None, layout: Layout | None = None, *, branch: str = "main",
            message: str | None = None) -> str:
    """Return the tag after publishing the committed student part of the course to the git ``remote``.

    Parameters
    ----------
    remote : str
        The students' repository (a URL or a path git can push to), usually the one that
        ``[project.urls] Repository`` names, e.g. ``git@github.com:my-course/cellkit.git``.
    version : str, optional
        The release; it must be the installed cellkit's version (default).
    branch : str
        The students' branch that receives the release commit.

    Raises
    ------
    PublishError
        The tag exists on the remote already with other content, or a git step fails.
    """
    layout = Layout.of(layout)
    version = version or course_version()
    if version != course_version():
        raise PublishError(f"version={version!r}: the installed cellkit is {course_version()}")
    tag = release_ref(version)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "students"
        if _git("ls-remote", "--heads", remote, branch, cwd=layout.root).stdout.strip():
            _git("clone", "--quiet", "--branch", branch, remote, str(work), cwd=layout.root)
        else:  # an empty repository: the first release starts its history
            work.mkdir()
            _git("init", "--quiet", "--initial-branch", branch, cwd=work)
            _git("remote", "add", "origin", remote, cwd=work)
        for child in work.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        student_tree(layout, work)
        readme = work / "README.md"
        readme.write_text(point_badges(readme.read_text(), version))
        _git("add", "--all", cwd=work)
        if remote_has_tag(remote, tag, layout.root):
            _git("fetch", "--quiet", "origin", f"refs/tags/{tag}:refs/tags/{tag}", cwd=work)
            if _git("diff", "--quiet", "--cached", tag, cwd=work, check=False).returncode:
                raise PublishError(f"{remote} already has the tag {tag} with other content: a release is never "
                                   f"changed once published; raise __version__ in cellkit/__init__.py instead")
            print(f"{remote} already holds {tag} with this content: nothing to publish")
            return tag
        source = _git("rev-parse", "--short", "HEAD", cwd=layout.root).stdout.strip()
        _git("-c", "user.name=cellkit release", "-c", "user.email=release@cellkit.invalid", "commit", "--quiet",
             "--allow-empty", "-m", message or f"Release {version} (course repository at {source})", cwd=work)
        _git("-c", "user.name=cellkit release", "-c", "user.email=release@cellkit.invalid", "tag", "-a", tag,
             "-m", f"cellkit course {version}", cwd=work)
        _git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", f"refs/tags/{tag}", cwd=work)
    if not remote_has_tag(remote, tag, layout.root):
        raise PublishError(f"pushed, but {remote} does not list the tag {tag}: no badge points at it")
    print(f"published {tag} to {remote} ({branch}); badges and install lines point at {repository()}@{tag}")
    return tag


def write_badges(markdown: Path, remote: str, version: str | None = None, cwd: Path | None = None) -> bool:
    """Return whether ``markdown`` changed after pointing its "Open in Colab" badges at the release tag.

    Raises
    ------
    PublishError
        The tag does not exist on ``remote``: a badge must never open a notebook that is not there.
    """
    tag = release_ref(version)
    markdown = Path(markdown)
    if not remote_has_tag(remote, tag, cwd or markdown.parent):
        raise PublishError(f"{remote} has no tag {tag}: publish the release first (cellkit release --publish "
                           f"{remote}); {markdown.name} keeps its badges")
    text = markdown.read_text()
    new = point_badges(text, version)
    if new != text:
        write_text(markdown, new)
    return new != text
