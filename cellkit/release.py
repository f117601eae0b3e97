"""Compatibility: released setup cells run ``from cellkit.release import check_version``; the code is in
:mod:`cellkit.course.release` (and :mod:`cellkit.course.setup_cell` for :func:`notebook_version`)."""

from cellkit.course.release import VersionMismatchWarning, build_release, check_version, colab_badge
from cellkit.course.setup_cell import pinned_version as notebook_version

__all__ = ["VersionMismatchWarning", "build_release", "check_version", "colab_badge", "notebook_version"]
