"""Repository-wide pytest set-up, read before any test or notebook is collected.

nbval executes the notebooks in solutions/ and notebooks/ in kernels started from
this process's environment, so the course switches are set here, at import time:
fast mode, the synthetic source, a private data folder, and no GPU requirement.
"""

import os
import tempfile

os.environ.setdefault("CELLKIT_FAST", "1")
os.environ.setdefault("CELLKIT_SOURCE", "synthetic")
os.environ.setdefault("CELLKIT_DATA_DIR", tempfile.mkdtemp(prefix="cellkit-test-data-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("CELLKIT_REPORT_DIR", None)
