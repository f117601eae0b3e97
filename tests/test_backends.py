"""Every solution notebook runs in fast mode on the JAX backend too (nbval covers TensorFlow).

Each notebook is executed headless by the same runner as ``cellkit run``, in a
kernel whose ``KERAS_BACKEND`` is ``jax``; the test fails with the failing cell's error.
"""

import os

import pytest

from cellkit import course
from cellkit.runner import execute_notebook

LABS = course.labs()


@pytest.mark.notebook
@pytest.mark.parametrize("lab", LABS)
def test_solution_notebook_runs_on_jax(lab, repo_root, tmp_path):
    pytest.importorskip("jax")
    env = {"KERAS_BACKEND": "jax", "CELLKIT_FAST": "1", "CELLKIT_SOURCE": "synthetic",
           "CELLKIT_DATA_DIR": os.environ["CELLKIT_DATA_DIR"], "JAX_PLATFORMS": "cpu"}
    out = tmp_path / f"{lab}.ipynb"
    ok, seconds, error = execute_notebook(repo_root / "solutions" / lab / f"{lab}.ipynb", out, env=env, timeout=600)
    assert ok, f"{lab} failed on JAX after {seconds:.0f} s: {error}"
    text = out.read_text()
    assert "backend : jax" in text, "the notebook's first output must state the backend"
