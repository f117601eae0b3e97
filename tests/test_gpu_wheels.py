"""The GPU run's wheelhouse: what the GPU image holds stays home, the rest travels in parts that fit a transfer."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / ".ci" / "gpu_wheels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheel(folder: Path, name: str, mib: float) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    path.write_bytes(b"\0" * int(mib * 2**20))
    return path


def test_pack_puts_every_wheel_in_a_part_no_larger_than_the_limit(tmp_path):
    sizes = {"keras": 1.7, "imagecodecs": 2.6, "umap_learn": 0.1, "pynndescent": 0.06, "otter_grader": 0.2,
             "nbclient": 0.03, "ipykernel": 0.12, "pooch": 0.07, "llvmlite": 2.9}
    for name, mib in sizes.items():
        _wheel(tmp_path, name, mib)
    parts = _module().pack(tmp_path, 3)
    assert not list(tmp_path.glob("*.whl")), "every wheel moved into a part"
    packed = sorted(w.name.split("-")[0] for part in parts for w in part.glob("*.whl"))
    assert packed == sorted(sizes)
    for part in parts:
        assert sum(w.stat().st_size for w in part.glob("*.whl")) <= 3 * 2**20, part
    assert len(parts) == 3  # 8.0 MiB in parts of 3 MiB: first fit, largest first, needs no more than 3


def test_a_wheel_larger_than_a_part_is_named(tmp_path):
    _wheel(tmp_path, "playwright", 2.5)
    with pytest.raises(SystemExit, match="playwright-1.0-py3-none-any.whl"):
        _module().pack(tmp_path, 2)


def test_wheels_the_gpu_image_holds_are_left_out(tmp_path):
    for name in ("numpy", "scikit_learn", "keras", "Jinja2", "keras_hub"):
        _wheel(tmp_path, name, 0.01)
    listing = tmp_path / "image.txt"
    listing.write_text("# image\nnumpy\nscikit-learn\njinja2\n")
    dropped = _module().drop_image(tmp_path, listing)
    assert sorted(d.split("-")[0] for d in dropped) == ["Jinja2", "numpy", "scikit_learn"]
    assert sorted(w.name.split("-")[0] for w in tmp_path.glob("*.whl")) == ["keras", "keras_hub"]


def test_gpu_script_lists_its_steps_and_runs_the_slowest_lab_first():
    out = subprocess.run(["bash", str(ROOT / ".ci" / "gpu")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    for step in ("bash .ci/gpu download", "bash .ci/gpu pack", "bash .ci/gpu run"):
        assert step in out.stdout
    script = (ROOT / ".ci" / "gpu").read_text()
    assert "set -- 03 05 02 04 06 01" in script
