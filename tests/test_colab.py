"""What a student meets in Google Colab: an install cell that leaves the runtime intact, a quiet setup cell.

Colab's runtime is described by its published package list in ``../shared/colab/`` (absent from a
student's clone: those tests skip). The install cell must change none of the packages Colab ships: an
upgraded ipykernel or jupyter_client under a running runtime is a known cause of crashes, and ipywidgets 8
and wrapt 1.x replace what Colab's frontend and TensorFlow were installed with.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
COLAB_DIR = ROOT.parent / "shared" / "colab"
COLAB_PYTHON = "3.13"  # the Python of the runtime the package list was taken from (see its README)
# Colab ships these for its own frontend and runtime; the issue that led here lists them by name.
PROTECTED = ("ipykernel", "jupyter-client", "ipywidgets", "notebook", "wrapt", "tensorflow", "keras", "numpy", "jax")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _colab_packages() -> dict[str, str]:
    lists = sorted(COLAB_DIR.glob("colab-*runtime-*.txt")) if COLAB_DIR.is_dir() else []
    if not lists:
        pytest.skip("no Colab package list (../shared/colab/ is not part of a student's clone)")
    pins = {}
    for line in lists[-1].read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_norm(name)] = version.strip()
    return pins


def _student_requirements() -> list[str]:
    """The requirements of the Colab install cell: cellkit's dependencies plus its ``colab`` extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["colab"]


def test_student_requirements_accept_every_version_colab_ships():
    """Offline: each requirement of the student install is met by the version Colab already has."""
    colab = _colab_packages()
    for name in PROTECTED:
        assert name in colab, f"the Colab list no longer has {name}: update PROTECTED"
    for spec in _student_requirements():
        req = Requirement(spec)
        have = colab.get(_norm(req.name))
        if have is not None:
            assert req.specifier.contains(Version(have), prereleases=True), (
                f"the install cell would replace Colab's {req.name} {have}: cellkit asks for {req}")


def _resolve(requirements: list[str], constraints: Path, report: Path) -> subprocess.CompletedProcess:
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                             "linux_x86_64") for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
           "--report", str(report), "--python-version", COLAB_PYTHON, "--implementation", "cp",
           "--only-binary=:all:", *platforms, "-c", str(constraints), *requirements]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


_OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                      r"resolution|Could not fetch URL|Network is unreachable|ConnectTimeout|ProxyError")


@pytest.fixture(scope="module")
def colab_constraints(tmp_path_factory):
    """A pip constraints file pinning every package of Colab's runtime at its version."""
    pins = _colab_packages()
    path = tmp_path_factory.mktemp("colab") / "constraints.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    return path, pins


@pytest.mark.slow
def test_colab_install_resolves_without_changing_colab(colab_constraints, tmp_path):
    """pip resolves the student install with every Colab package held at Colab's version (index metadata only)."""
    constraints, pins = colab_constraints
    proc = _resolve(_student_requirements(), constraints, tmp_path / "plan.json")
    if proc.returncode and _OFFLINE.search(proc.stderr) and "ResolutionImpossible" not in proc.stderr:
        pytest.skip("the package index cannot be reached")
    assert proc.returncode == 0, ("the Colab install cell cannot keep Colab's packages as they are:\n"
                                  + proc.stderr[-3000:])
    import json

    plan = json.loads((tmp_path / "plan.json").read_text())
    installed = {_norm(item["metadata"]["name"]): item["metadata"]["version"] for item in plan["install"]}
    changed = {n: (pins[n], v) for n, v in installed.items() if n in pins and pins[n] != v}
    assert not changed, f"the install cell would change Colab's packages: {changed}"
    assert installed["otter-grader"].startswith("5."), installed["otter-grader"]


@pytest.mark.slow
def test_resolution_check_catches_a_requirement_that_replaces_colabs_kernel(colab_constraints, tmp_path):
    """The check above can fail: the kernel cellkit used to require (ipykernel >= 6.29) cannot stay at 6.17.1."""
    constraints, _ = colab_constraints
    proc = _resolve(["ipykernel>=6.29"], constraints, tmp_path / "plan.json")
    if proc.returncode and _OFFLINE.search(proc.stderr) and "ResolutionImpossible" not in proc.stderr:
        pytest.skip("the package index cannot be reached")
    assert proc.returncode != 0 and "ResolutionImpossible" in proc.stderr


def test_setup_prints_no_native_startup_noise_and_keeps_real_errors(capfd):
    """The backend's C++ banners written to descriptor 2 are dropped; any other line comes through."""
    from cellkit.config import quiet_native_startup

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796280808.764332    7398 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796280809.062521    7398 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.",
        "E0000 00:00:1796280821.506578    7398 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    real = ["E0000 00:00:1796280821.506578    7398 bfc_allocator.cc:1] Allocator ran out of memory",
            "UserWarning: something a student should read"]
    with quiet_native_startup():
        for line in noise + real:
            os.write(2, (line + "\n").encode())
    err = capfd.readouterr().err
    for line in noise:
        assert line not in err
    for line in real:
        assert line in err


@pytest.mark.notebook
def test_setup_cell_output_has_no_native_log_lines(tmp_path):
    """A headless kernel runs a lab's setup the way a student's notebook does; its output has no C++ log lines."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import cellkit\nconfig = cellkit.setup('01_mnist')\nimport keras\nkeras.ops.ones(2)")])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "mode    : fast" in text
    assert not re.search(r"^[IWE]\d{4} |absl::InitializeLog|cuInit", text, re.M), text


@pytest.mark.notebook
def test_public_checks_pass_with_the_otter_that_colab_installs(tmp_path):
    """Lab 01's filled student notebook passes every check with otter-grader 5 (the `colab` extra's range).

    ``make install`` puts that otter beside the instructors' one, in ``.venv/otter-colab``; the kernel
    imports it first, as a Colab runtime would.
    """
    import nbformat
    from nbclient import NotebookClient

    from test_grading import filled_student_notebook, solution_notebook

    overlay = Path(sys.prefix) / "otter-colab"
    if not (overlay / "otter").is_dir():
        pytest.skip("no Colab otter beside this environment (make install puts it in .venv/otter-colab)")
    nb = filled_student_notebook("01_mnist", ROOT, solution_notebook("01_mnist", ROOT))
    nb.cells.insert(1, nbformat.v4.new_code_cell("import otter\nprint('otter', otter.__version__)"))
    env_path = os.pathsep.join([str(overlay), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path  # the kernel inherits it
    try:
        # run in a copy of the lab folder: otter writes its log (.OTTER_LOG) beside the notebook
        import shutil

        shutil.copytree(ROOT / "labs" / "01_mnist" / "tests", tmp_path / "tests")
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    outputs = ["".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in c.outputs)
               for c in nb.cells if c.cell_type == "code"]
    versions = re.findall(r"^otter (\S+)$", "\n".join(outputs), re.M)
    assert versions and versions[0].startswith("5."), f"the kernel imported otter {versions}, not the Colab one"
    checks = [(c.source.strip(), out) for c, out in zip([c for c in nb.cells if c.cell_type == "code"], outputs)
              if c.source.strip().startswith("grader.check(")]
    assert len(checks) >= 4
    for source, out in checks:
        assert "All test cases passed" in out, f"{source} with otter 5: {out}"
