"""Compatibility: notebooks call ``from cellkit import report; report.record(...)``; the code is
:func:`cellkit.course.run.record` (also ``cellkit.course.record``)."""

from cellkit.course.run import record

__all__ = ["record"]
