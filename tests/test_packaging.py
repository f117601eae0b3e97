"""pyproject.toml and environment.yml list the same dependencies, in ranges Colab's runtime satisfies."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.version import Version


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject(repo_root):
    deps = _pyproject(repo_root)["project"]["dependencies"]
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pkgs = [d for d in env["dependencies"] if isinstance(d, str)]
    listed = [p for p in pip_section if not p.startswith("-e")]
    norm = lambda specs: {Requirement(s).name.lower(): str(Requirement(s).specifier) for s in specs}
    assert norm(listed) == norm(deps), "environment.yml's pip list differs from pyproject.toml's dependencies"
    py = next(p for p in conda_pkgs if p.startswith("python"))
    assert py.replace("python", "") == _pyproject(repo_root)["project"]["requires-python"]


def test_ranges_accept_what_colab_ships(repo_root):
    """Colab today: Python 3.12/3.13, TensorFlow 2.19-2.20, Keras 3.10-3.13, NumPy 2.x: nothing is downgraded."""
    reqs = {Requirement(s).name.lower(): Requirement(s) for s in _pyproject(repo_root)["project"]["dependencies"]}
    colab = {"tensorflow": ["2.19.0", "2.20.0"], "keras": ["3.10.0", "3.11.3", "3.13.0"], "numpy": ["2.0.2", "2.3.4"]}
    for name, versions in colab.items():
        for v in versions:
            assert reqs[name].specifier.contains(Version(v)), f"{name} {v} (Colab) is outside {reqs[name].specifier}"
    requires = _pyproject(repo_root)["project"]["requires-python"]
    for v in ("3.12.0", "3.13.0"):
        assert Requirement(f"python{requires}").specifier.contains(Version(v))


def test_version_lives_in_one_place(repo_root):
    import cellkit

    assert _pyproject(repo_root)["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "cellkit.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", cellkit.__version__)


def test_readme_opens_every_lab_and_names_the_two_commands(repo_root):
    from cellkit import course

    readme = (repo_root / "README.md").read_text()
    for lab in course.labs(repo_root):
        assert course.colab_url(lab) in readme, f"README.md has no Colab badge for {lab} at the release tag"
    makefile = (repo_root / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in readme, f"README.md does not show 'make {target}'"
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no '{target}' target"
    assert re.search(r"^make test$", (repo_root / ".ci" / "run").read_text(), re.M), ".ci/run must call 'make test'"


def test_licence_is_one_spdx_expression_with_its_text(repo_root):
    """The wheel carries the MIT text; pyproject names it as an SPDX string (the table form is deprecated)."""
    assert _pyproject(repo_root)["project"]["license"] == "MIT"
    text = (repo_root / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY" in text
    assert "[LICENSE](LICENSE)" in (repo_root / "README.md").read_text()
