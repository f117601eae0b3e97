"""Compatibility: ``cellkit.runner`` is now :mod:`cellkit.course.run` (``cellkit run``)."""

from cellkit.course.layout import labs as list_labs
from cellkit.course.run import INLINE_BACKEND, execute_notebook, render_report, run

__all__ = ["INLINE_BACKEND", "execute_notebook", "run", "render_report", "list_labs"]
