"""benchmarks/bench.py: its measurement and table code on a tiny fake lab (no timing assertions)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("cellkit_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cellkit_bench"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_tiny_fake_lab_table():
    import keras

    bench = _load_bench()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((40, 4)).astype("float32")
    y = np.arange(40) % 3
    fake = bench.Bench(model, (x, y), 8, 8, "tiny dense, batch 8")
    measured = bench.measure_throughput(fake, warmup=1, min_steps=2, max_steps=2, target_s=0.0)
    assert measured["train_steps"] == 2 and measured["pipeline_batches"] == 2
    assert measured["train_images_per_s"] > 0 and measured["pipeline_images_per_s"] > 0
    assert np.isclose(measured["ratio"], measured["pipeline_images_per_s"] / measured["train_images_per_s"])

    slow_loader = dict(measured, pipeline_images_per_s=1.0, train_images_per_s=4.0, ratio=0.25)
    rows = [
        {"lab": "99_fake", "mode": "fast", "throughput": measured,
         "notebook": {"ok": True, "seconds": 12.0, "error": "", "peak_rss_bytes": 2.5e9, "gpu_peak_bytes": None,
                      "metric": "test accuracy", "value": 0.98765}},
        {"lab": "99_fake", "mode": "full", "notebook": None, "throughput": slow_loader},
        {"lab": "98_broken", "mode": "fast", "notebook": {"error": "timed out after 10 s"},
         "throughput": {"error": "worker exited 1: ValueError"}},
    ]
    header = bench.machine_header("tensorflow", "synthetic", "CPU")
    text = bench.render_table(rows, header)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # header line + one row each
    assert all(line.count("|") == table[0].count("|") for line in table)
    fast, full, broken = table[1:]
    assert "12 s" in fast and "2.5 GB" in fast and "no GPU" in fast and "9.5 GB spare" in fast and "test accuracy = 0.988" in fast
    assert "LOADER-BOUND" in full and "0.2x" in full and "not run" in full
    assert "LOADER-BOUND" not in fast
    assert "ERROR: timed out" in broken and "ERROR: worker exited 1" in broken
    assert "tensorflow" in text and "CPU core" in text


def test_colab_budget_words():
    bench = _load_bench()
    assert bench.colab_budget(13e9, None, False) == "RAM OVER, 1.0 GB over"
    assert bench.colab_budget(2e9, 6e9, True) == "RAM fits, 10.0 GB spare; T4 fits, 10.0 GB spare"
    assert bench.colab_budget(None, None, False) == "-"


def test_run_notebook_keeps_the_executed_notebook(tmp_path, monkeypatch):
    """A measured notebook's outputs survive the scratch folder when keep_dir is given."""
    import nbformat

    bench = _load_bench()
    lab = tmp_path / "repo" / "solutions" / "99_fake"
    lab.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('fake lab says', 6 * 7)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab / "99_fake.ipynb")
    monkeypatch.setattr(bench, "ROOT", tmp_path / "repo")
    monkeypatch.setitem(bench.LABS, "99", "99_fake")
    result = bench.run_notebook("99", "fast", "synthetic", timeout=120, keep_dir=tmp_path / "kept")
    assert result["ok"], result["error"]
    kept = nbformat.read(tmp_path / "kept" / "99_fake-fast.ipynb", as_version=4)
    assert "fake lab says 42" in "".join(o.get("text", "") for o in kept.cells[0].outputs)
    # written atomically, and the runner's scratch copy is gone: nothing half-written or temporary left
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["99_fake-fast.ipynb"]
