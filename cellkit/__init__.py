"""cellkit: the helper package of the cellkit deep-learning course on cell microscopy images.

The package carries the plumbing of the labs (configuration, data loading and
synthetic data, plotting, checks, course tooling) and the reference
implementations that the graded checks compare against.  Each concern lives in
a module named after it: ``cellkit.config``, ``cellkit.data``, ``cellkit.checks``,
``cellkit.plots``, ``cellkit.course`` and so on.
"""

__version__ = "0.1.0"

from cellkit.config import Config, get_config, setup  # noqa: E402

__all__ = ["Config", "get_config", "setup", "__version__"]
