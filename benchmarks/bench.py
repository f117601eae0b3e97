"""Measure what each lab costs: notebook wall time and memory, training and input-pipeline speed, Colab budget.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench.py                          # every lab, fast and full mode
    .venv/bin/python benchmarks/bench.py --labs 01 05 --modes full
    .venv/bin/python benchmarks/bench.py --modes fast --backend jax --out /tmp/bench-jax.md
    .venv/bin/python benchmarks/bench.py --skip-notebooks         # only the training/pipeline rates

For each lab and mode it measures, each part in its own subprocess (so that one
lab's memory, compiled functions or backend never leak into the next):

* **notebook**: the lab's solution notebook executed headless through
  :func:`cellkit.course.run.execute_notebook` (wall time, peak RAM of the kernel's
  process tree, peak GPU memory read by the backend inside the kernel);
* **training**: the lab's real model and batch size, a few ``train_on_batch``
  steps on one real batch of the lab's (synthetic-source) data after a warm-up;
* **pipeline**: the lab's real loader (its ``PyDataset``, or its arrays) iterated
  through the same Keras data adapter ``fit`` uses, on its own (before training, so that
  no prefetched queue flatters it), with the ratio pipeline rate / training rate
  (below 1: the loader is the bottleneck).

The table goes to stdout and, atomically, to ``--out``.  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cellkit.course.layout import Layout

ROOT = Path(__file__).resolve().parents[1]
LABS = {"01": "01_mnist", "02": "02_moa", "03": "03_cytokines", "04": "04_arcface", "05": "05_attention",
        "06": "06_infomax"}
MODES = ("fast", "full")
COLAB_RAM_GB = 12.0  # free Colab tier: about 12 GB of RAM ...
COLAB_GPU_GB = 16.0  # ... and a 16 GB NVIDIA T4
GB = 1e9

# Probe appended to a copy of the notebook: the kernel reports its own peak RSS and the backend's peak GPU memory.
PROBE = r'''
import json as _json, os as _os, resource as _resource
_probe = {"kernel_maxrss_bytes": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss * 1024}
try:
    from cellkit.config import accelerator as _accelerator, gpu_peak_bytes as _gpu_peak_bytes
    _probe.update(device=_accelerator(), gpu_peak_bytes=_gpu_peak_bytes())
except Exception as _exc:
    _probe["probe_error"] = f"{type(_exc).__name__}: {_exc}"
with open(_os.environ["CELLKIT_BENCH_PROBE"], "w") as _fh:
    _json.dump(_probe, _fh)
'''


# --------------------------------------------------------------------------- what each lab trains

@dataclasses.dataclass
class Bench:
    """One lab's training set-up: a compiled model and its data, as the notebook builds them.

    ``data`` is either a ``keras.utils.PyDataset`` (the lab's loader) or a tuple
    ``(x, y)`` of arrays that the notebook passes to ``fit`` with ``batch_size``.
    ``images_per_batch`` counts the images one training step sees (frames, crops or
    wells where a sample holds several); ``what`` says which model, shape and batch.
    ``via_fit=False``: the notebook does not go through ``fit``'s data adapter but reads
    ``data[i]`` itself, so the pipeline is timed that way.
    """

    model: object
    data: object
    batch_size: int | None
    images_per_batch: int
    what: str
    via_fit: bool = True  # False: the notebook indexes its PyDataset itself (lab 03's train_on_batch loop)


def _setup(lab: str, mode: str, source: str):
    import cellkit

    return cellkit.setup(lab, fast=(mode == "fast"), source=source, verbose=False)


def bench_01(config) -> Bench:
    """Lab 01: the notebook's MNIST CNN, batch 64, on the lab's digits."""
    import keras
    import numpy as np
    from keras import layers

    from cellkit.data.mnist import load_digits

    (x, y), _, _ = load_digits(config, verbose=False)
    x = (np.asarray(x, np.float32) / 255.0)[..., np.newaxis]
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Bench(model, (x, y), 64, 64, f"MNIST CNN {model.count_params():,} params, 28x28x1, batch 64")


def bench_02(config) -> Bench:
    """Lab 02: the LeNet for MoA (cellkit.lenet), batch 8 (fast) / 32 (full), 256x256x3 BBBC021 fields."""
    from cellkit import lenet
    from cellkit.data import dataset_path
    from cellkit.data.bbbc021 import load_bbbc021

    data = load_bbbc021(dataset_path("bbbc021_statpred2019", config), per_class=config.pick(full=None, fast=16),
                        seed=config.seed)
    batch = config.pick(full=32, fast=8)
    model = lenet.compile_classifier(lenet.build_lenet())
    return Bench(model, (lenet.to_inputs(data.images), data.labels), batch, batch,
                 f"LeNet {model.count_params() / 1e6:.2f} M params, 256x256x3, batch {batch}")


def bench_03(config) -> Bench:
    """Lab 03: 8 per-cytokine wide CNNs trained as one branched model, fed by BranchBatches (32 wells a branch)."""
    import keras
    import numpy as np

    from cellkit import cytokine_models as cm
    from cellkit.data import dataset_path
    from cellkit.data.cytokines import load_plate
    from cellkit.data.io import minmax_scale

    raw, _ = load_plate(dataset_path("cytokines_wbc", config))
    images = np.stack([minmax_scale(im) for im in raw])
    size = config.pick(full=64, fast=40)
    if size != images.shape[-1]:
        images = keras.ops.convert_to_numpy(keras.ops.image.resize(images[..., None], (size, size),
                                                                   antialias=True))[..., 0]
    source = cm.flip_views(images)  # (4 views: original, h, v, t; wells; size; size)
    branches, batch, kind = 8, 32, "wide"  # the notebook's cross_validate(..., max_branches=8), batch 32
    # a branch's training fold: fast keeps <= 20 wells a class (half in training) with one flip view added;
    # full trains on about half of a balanced set, with all three flips ("hvt", the largest augmentation)
    wells, views = config.pick(full=(80, 4), fast=(20, 2))
    g = np.random.default_rng(config.seed)
    samples = [np.array([(v, w) for v in range(views) for w in g.choice(source.shape[1], wells, replace=False)])
               for _ in range(branches)]
    labels = [g.integers(0, 2, len(s)) for s in samples]
    model = cm.compile_branched(kind, branches, image_size=size, seed=config.seed)  # as cm.fit_branches does
    loader = cm.BranchBatches(source, samples, labels, batch_size=batch, train=True, seed=config.seed)
    return Bench(model, loader, None, batch * branches,
                 f"{branches} wide CNNs as one branched model ({model.count_params() / 1e6:.0f} M params), "
                 f"{size}x{size}, batch {batch} wells x {branches} branches", via_fit=False)


def bench_04(config) -> Bench:
    """Lab 04: ArcFace classifier (small CNN fast / DenseNet121 full) on RxRx1Sequence, batch 16 / 32 sites."""
    import keras

    from cellkit import arcface
    from cellkit.data import dataset_path, rxrx1

    root = dataset_path("rxrx1", config)
    metadata = rxrx1.read_metadata(root)
    if config.source == "synthetic":
        truth = rxrx1.read_ground_truth(root)
        classes = truth.loc[truth["well_type"] != "negative_control", "sirna_id"].tolist()
    else:
        counts = metadata[metadata["well_type"] == "treatment"]["sirna_id"].value_counts()
        classes = sorted(counts.index[:config.pick(full=30, fast=8)].tolist())
        classes += sorted(metadata.loc[metadata["well_type"] == "positive_control", "sirna_id"].unique().tolist())[:5]
    image_size = None if config.source == "synthetic" else config.pick(full=256, fast=64)
    batch = config.pick(full=32, fast=16)
    train_sites = rxrx1.select(metadata, dataset="train", sirna_ids=classes)
    # As the notebook builds it: decoded sites cached in memory after their first read (the first epoch decodes PNGs;
    # the pipeline rate below is the best window, i.e. the cached epochs the rest of training sees).
    loader = rxrx1.RxRx1Sequence(root, train_sites, classes, batch_size=batch, image_size=image_size, shuffle=True,
                                 flip=True, seed=config.seed, cache=True)
    shape = loader[0][0]["image"].shape[1:]
    kind = config.pick(full="densenet121", fast="small")
    backbone = arcface.build_backbone(kind, shape, imagenet=False, verbose=False,  # weights do not change the speed
                                      widths=config.pick(full=(32, 64, 96), fast=(16, 32, 48)))
    model = arcface.ArcFaceClassifier(backbone, len(classes), mix=0.2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model(loader[0][0])  # build, so that the parameters can be counted
    return Bench(model, loader, None, batch,
                 f"ArcFace + {kind} ({model.count_params() / 1e6:.1f} M params), "
                 f"{shape[0]}x{shape[1]}x{shape[2]}, batch {batch} sites")


def bench_05(config) -> Bench:
    """Lab 05: the CNN-LSTM with dot attention, batch 16 sequences (8 frames of 32x32 fast, 12 of 64x64 full)."""
    import keras
    import numpy as np
    from keras import ops

    from cellkit import video as vid
    from cellkit.attention import kl_to_uniform
    from cellkit.data import dataset_path, migration

    frame_size, seq_len = config.pick(full=64, fast=32), config.pick(full=12, fast=8)
    filters, units = config.pick(full=(16, 32, 64), fast=(8, 16, 32)), config.pick(full=64, fast=32)
    videos = migration.load_videos(dataset_path("ctc_2d_training", config), frame_size)
    seqs = np.concatenate([migration.make_sequences(v, seq_len + 1)[0] for v in videos.values()])
    model = vid.attention_lstm(seq_len, frame_size, attention="dot", features=units, units=units, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss={"frame": "mse", "attention": lambda y_true, y_pred: ops.mean(kl_to_uniform(y_pred))},
                  loss_weights={"frame": 1.0, "attention": 0.05})
    targets = {"frame": seqs[:, -1], "attention": np.zeros(seqs.shape[:2], "float32")[:, :-1]}
    return Bench(model, (seqs[:, :-1], targets), 16, 16 * seq_len,
                 f"CNN-LSTM-attention ({model.count_params() / 1e3:.0f} k params), {seq_len} frames of "
                 f"{frame_size}x{frame_size}, batch 16 sequences")


def bench_06(config) -> Bench:
    """Lab 06: Deep InfoMax (baseline encoder) on InfoMaxBatches: 8 samples x 4 fields of 48x48 crops a batch."""
    import keras
    import numpy as np

    from cellkit import clustering, infomax
    from cellkit.data import bbbc018, dataset_path

    raw, meta = bbbc018.load_bbbc018(dataset_path("bbbc018", config))
    scale = np.percentile(raw, 99.9, axis=(0, 1, 3, 4), keepdims=True)
    images = np.clip(raw / scale, 0, 1.5).astype(np.float32)
    s, f, c, h, w = images.shape
    images = images.reshape(s, f, c, h // 2, 2, w // 2, 2).mean(axis=(4, 6))
    samples = list(meta["samples"])
    train, _ = clustering.split_by_sample(samples, n_train=10, seed=config.seed)
    idx = [samples.index(x) for x in train]
    masks = np.stack([[clustering.foreground_mask(images[i, j]) for j in range(f)] for i in idx])
    encoder = infomax.conv_encoder((48, 48, 3), filters=(16, 32, 64), code_dim=64, batchnorm=True, pooling="max")
    model = infomax.InfoMax(encoder, embed_dim=64, prior_weight=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    steps = config.pick(full=60, fast=25)
    loader = infomax.InfoMaxBatches(images[idx], masks, crop=48, batch_samples=8, steps=steps, code_dim=64,
                                    seed=config.seed)
    return Bench(model, loader, None, 8 * f,
                 f"Deep InfoMax, conv encoder ({encoder.count_params() / 1e3:.0f} k params), 48x48x3 crops of "
                 f"{h // 2}x{w // 2} fields, batch 8 samples x {f} fields")


BENCHES = {"01": bench_01, "02": bench_02, "03": bench_03, "04": bench_04, "05": bench_05, "06": bench_06}


# --------------------------------------------------------------------------- measurements

def _adapter_batches(data, batch_size):
    """Return an iterator over the batches ``fit`` would draw from ``data``, through Keras's own data adapter."""
    import keras

    x, y = data if isinstance(data, tuple) else (data, None)
    try:  # the adapter ``fit`` uses (a private Keras module: fall back to plain iteration if it moves)
        from keras.src.trainers.data_adapters import get_data_adapter

        adapter = get_data_adapter(x, y, batch_size=batch_size, shuffle=True)
    except ImportError:
        return _plain_batches(x, y, batch_size)
    return _epochs(adapter, keras.backend.backend())


def _epochs(adapter, backend):
    """Yield batches epoch after epoch as ``fit`` draws them: a new iterator per epoch, then ``on_epoch_end``.

    On TensorFlow ``fit`` builds the ``tf.data`` pipeline once and iterates it every epoch; so does this.
    """
    dataset = adapter.get_tf_dataset() if backend == "tensorflow" else None
    while True:
        if dataset is not None:
            epoch = dataset
        elif backend == "jax":
            epoch = adapter.get_jax_iterator()
        else:
            epoch = adapter.get_numpy_iterator()
        yield from epoch
        adapter.on_epoch_end()


def _plain_batches(x, y, batch_size):
    import numpy as np

    if y is None:  # a PyDataset
        while True:
            for i in range(len(x)):
                yield x[i]
            x.on_epoch_end()
    n = len(x)
    while True:
        order = np.random.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            pick = order[start:start + batch_size]
            yield x[pick], {k: v[pick] for k, v in y.items()} if isinstance(y, dict) else y[pick]


def _best_window(times, windows: int = 3) -> float:
    """Return the lowest mean of ``windows`` consecutive slices of ``times`` (timeit's rule: on a shared
    machine the least disturbed window is the best estimate of the cost itself)."""
    import numpy as np

    return float(min(np.mean(part) for part in np.array_split(np.asarray(times), min(windows, len(times)))))


def measure_throughput(bench: Bench, *, warmup: int = 2, min_steps: int = 3, max_steps: int = 30,
                       target_s: float = 6.0) -> dict:
    """Return training and pipeline rates (images/s) of a :class:`Bench`, and their ratio.

    Pipeline first, on a fresh iterator: one untimed batch, then between ``min_steps`` and
    ``max_steps`` batches drawn through the data adapter ``fit`` uses, stopping after
    ``target_s`` seconds.  It must come first: ``fit``'s adapters prefetch in the background
    (``tf.data`` AUTOTUNE), so batches drawn after a long training phase would come from a
    full queue and say nothing about the loader.  Training: ``warmup`` untimed
    ``train_on_batch`` calls (tracing, compilation) on the first batch, then as many timed
    calls (``min_steps`` at least).  Each rate is the best of three consecutive windows of its
    steps (see :func:`_best_window`).
    """
    import keras

    from cellkit.config import gpu_peak_bytes

    if bench.via_fit:
        batches = _adapter_batches(bench.data, bench.batch_size)
    else:
        batches = _plain_batches(*(bench.data if isinstance(bench.data, tuple) else (bench.data, None)),
                                 bench.batch_size)
    first = next(batches)
    pipeline_times, start = [], time.perf_counter()
    while len(pipeline_times) < min_steps or (len(pipeline_times) < max_steps
                                              and time.perf_counter() - start < target_s):
        t0 = time.perf_counter()
        next(batches)
        pipeline_times.append(time.perf_counter() - t0)
    del batches  # stop any background prefetching before training is timed
    x, y, sw = keras.utils.unpack_x_y_sample_weight(first)
    for _ in range(warmup):
        bench.model.train_on_batch(x, y, sample_weight=sw)
    train_times, start = [], time.perf_counter()
    while len(train_times) < min_steps or (len(train_times) < max_steps and time.perf_counter() - start < target_s):
        t0 = time.perf_counter()
        bench.model.train_on_batch(x, y, sample_weight=sw)
        train_times.append(time.perf_counter() - t0)
    train_s, pipeline_s = _best_window(train_times), _best_window(pipeline_times)
    train_rate, pipeline_rate = bench.images_per_batch / train_s, bench.images_per_batch / pipeline_s
    return {"what": bench.what, "images_per_batch": bench.images_per_batch, "train_steps": len(train_times),
            "train_step_s": train_s, "train_images_per_s": train_rate, "pipeline_batches": len(pipeline_times),
            "pipeline_batch_s": pipeline_s, "pipeline_images_per_s": pipeline_rate,
            "ratio": pipeline_rate / train_rate, "gpu_peak_bytes": gpu_peak_bytes()}


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of this process's children (the kernel and anything it starts) every ``period`` s."""

    def __init__(self, period: float = 0.25):
        super().__init__(daemon=True)
        self.period, self.peak, self.stop = period, 0, threading.Event()

    def run(self):
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(self.period)


def run_notebook(lab: str, mode: str, source: str, timeout: int = 3600, keep_dir=None) -> dict:
    """Return wall time, status and peak memory of one solution notebook executed by cellkit's runner.

    Runs in the calling process, which must be a fresh one (its children's peak RSS is read).
    The notebook is executed from a scratch copy of its folder with a probe cell appended.
    With ``keep_dir``, the executed notebook (outputs, figures) is written there atomically as
    ``<lab>-<mode>.ipynb``, so a long full-mode run leaves its results to read, not only its time.
    """
    import resource

    import nbformat

    from cellkit.course.run import INLINE_BACKEND, REPORT_DIR_ENV, execute_notebook

    name = LABS[lab]
    src = Layout(ROOT).master(name).parent
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        work = Path(tmp) / name
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nb = nbformat.read(src / f"{name}.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        nbformat.write(nb, work / f"{name}.ipynb")
        probe_path = Path(tmp) / "probe.json"
        env = {"CELLKIT_FAST": "1" if mode == "fast" else "0", "CELLKIT_SOURCE": source,
               REPORT_DIR_ENV: str(Path(tmp) / "report"), "CELLKIT_BENCH_PROBE": str(probe_path),
               "MPLBACKEND": INLINE_BACKEND}
        sampler = _TreeSampler()
        sampler.start()
        # the runner writes the executed notebook atomically: straight into keep_dir when it is kept
        executed = Path(keep_dir) / f"{name}-{mode}.ipynb" if keep_dir is not None else Path(tmp) / "executed.ipynb"
        ok, seconds, error = execute_notebook(work / f"{name}.ipynb", executed, env=env, timeout=timeout)
        sampler.stop.set()
        sampler.join()
        probe = json.loads(probe_path.read_text()) if probe_path.is_file() else {}
        recorded = Path(tmp) / "report" / f"{name}.json"  # the key metric the notebook records (cellkit.course.record)
        metric = json.loads(recorded.read_text()) if recorded.is_file() else {}
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    peak = max(children, sampler.peak, probe.get("kernel_maxrss_bytes", 0))
    return {"ok": ok, "seconds": seconds, "error": error, "peak_rss_bytes": peak,
            "gpu_peak_bytes": probe.get("gpu_peak_bytes"), "device": probe.get("device"),
            "metric": metric.get("metric"), "value": metric.get("value")}


def _worker(kind: str, lab: str, mode: str, source: str) -> dict:
    if kind == "notebook":
        return run_notebook(lab, mode, source, keep_dir=os.environ.get("CELLKIT_BENCH_KEEP") or None)
    from cellkit.config import accelerator

    config = _setup(LABS[lab], mode, source)
    result = measure_throughput(BENCHES[lab](config))
    result["device"] = accelerator()
    return result


def _spawn(kind: str, lab: str, mode: str, source: str, env: dict, timeout: int) -> dict:
    """Return the JSON result of a worker subprocess (or an ``error`` entry)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, "--labs", lab, "--modes", mode,
           "--source", source]
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited {proc.returncode}: {tail[:200]}"}


# --------------------------------------------------------------------------- the table

def _gb(nbytes) -> str:
    return "-" if nbytes is None else f"{nbytes / GB:.1f} GB"


def colab_budget(peak_rss_bytes, gpu_peak_bytes, has_gpu: bool) -> str:
    """Return the Colab free-tier verdict: RAM against 12 GB (and GPU memory against a 16 GB T4 on a GPU)."""
    if peak_rss_bytes is None:
        return "-"
    margin = COLAB_RAM_GB - peak_rss_bytes / GB
    text = f"RAM {'fits' if margin >= 0 else 'OVER'}, {abs(margin):.1f} GB {'spare' if margin >= 0 else 'over'}"
    if has_gpu and gpu_peak_bytes is not None:
        gpu_margin = COLAB_GPU_GB - gpu_peak_bytes / GB
        text += f"; T4 {'fits' if gpu_margin >= 0 else 'OVER'}, {abs(gpu_margin):.1f} GB " \
                f"{'spare' if gpu_margin >= 0 else 'over'}"
    return text


def render_table(rows: list[dict], header: dict) -> str:
    """Return the Markdown report: a line on the machine, then one table row per (lab, mode).

    Each row is ``{"lab", "mode", "notebook": dict | None, "throughput": dict | None}`` with
    the dicts of :func:`run_notebook` and :func:`measure_throughput` (or ``{"error": ...}``).
    """
    lines = [
        f"Measured {header['date']} | backend **{header['backend']}** | device: {header['device']} | "
        f"{header['cpus']} CPU core(s), {header['ram_gb']:.0f} GB RAM | data source: {header['source']}",
        "",
        f"Versions: {header['versions']}",
        "",
        "| lab | mode | notebook wall | key metric | peak RAM | peak GPU | model and batch | train (img/s) "
        "| pipeline (img/s) | pipeline / train | Colab free tier (12 GB RAM, 16 GB T4) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    has_gpu = header["device"].startswith("GPU")
    for row in rows:
        nb, tp = row.get("notebook"), row.get("throughput")
        metric = "-"
        if nb is None:
            wall = ram = gpu = "not run"
            budget = "-"
        elif "error" in nb and "ok" not in nb:
            wall, ram, gpu, budget = f"ERROR: {nb['error']}", "-", "-", "-"
        else:
            if nb.get("metric") and nb.get("value") is not None:
                metric = f"{nb['metric']} = {nb['value']:.3g}"
            wall = f"{nb['seconds']:.0f} s" + ("" if nb["ok"] else f" FAILED: {nb['error'][:80]}")
            ram = _gb(nb["peak_rss_bytes"])
            gpu = _gb(nb["gpu_peak_bytes"]) if nb.get("gpu_peak_bytes") else ("no GPU" if not has_gpu else "-")
            budget = colab_budget(nb["peak_rss_bytes"], nb.get("gpu_peak_bytes"), has_gpu)
        if tp is None:
            what = train = pipe = ratio = "not run"
        elif "error" in tp:
            what, train, pipe, ratio = f"ERROR: {tp['error']}", "-", "-", "-"
        else:
            what = f"{tp['what']} ({tp['images_per_batch']} img/step)"
            train = f"{tp['train_images_per_s']:,.0f}"
            pipe = f"{tp['pipeline_images_per_s']:,.0f}"
            ratio = f"{tp['ratio']:.1f}x" + (" **LOADER-BOUND**" if tp["ratio"] < 1 else "")
        lines.append(f"| {row['lab']} | {row['mode']} | {wall} | {metric} | {ram} | {gpu} | {what} | {train} | {pipe} | {ratio} "
                     f"| {budget} |")
    return "\n".join(lines) + "\n"


def machine_header(backend: str, source: str, device: str | None = None) -> dict:
    """Return the facts printed above the table: date, backend, device, CPUs, RAM, versions."""
    from importlib.metadata import PackageNotFoundError, version

    versions = [f"Python {platform.python_version()}"]
    for pkg in ("cellkit", "keras", "tensorflow", "jax", "jaxlib", "numpy"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    try:
        import psutil

        ram = psutil.virtual_memory().total / GB
    except ImportError:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "backend": backend,
            "device": device or "unknown", "cpus": cpus, "ram_gb": ram, "source": source,
            "versions": ", ".join(versions)}


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="+", default=list(LABS), help="lab numbers (default: all)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--backend", choices=("tensorflow", "jax"),
                        default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--source", choices=("synthetic", "real"), default="synthetic")
    parser.add_argument("--skip-notebooks", action="store_true", help="measure only training and pipeline rates")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed to one notebook")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    parser.add_argument("--_worker", choices=("notebook", "throughput"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [lab for lab in args.labs if lab not in LABS]
    if unknown:
        parser.error(f"--labs {' '.join(unknown)}: expected some of {' '.join(LABS)}")

    if args._worker:  # one measurement in this fresh process; the parent reads the last line
        result = _worker(args._worker, args.labs[0], args.modes[0], args.source)
        print("BENCH-RESULT " + json.dumps(result), flush=True)
        return 0

    env = {**os.environ, "KERAS_BACKEND": args.backend, "PYTHONPATH": str(ROOT) + os.pathsep
           + os.environ.get("PYTHONPATH", ""),
           "CELLKIT_BENCH_KEEP": str(args.out.parent / f"{args.out.stem}-executed")}
    rows, device = [], None
    for lab in args.labs:
        name = LABS[lab]
        master = Layout(ROOT).master(name)
        if not master.is_file():
            print(f"lab {lab}: skipped, {master.relative_to(ROOT)} does not exist yet", flush=True)
            continue
        for mode in args.modes:
            row = {"lab": name, "mode": mode, "notebook": None, "throughput": None}
            if not args.skip_notebooks:
                print(f"{name} {mode}: running the notebook ...", flush=True)
                row["notebook"] = _spawn("notebook", lab, mode, args.source, env, args.timeout + 120)
                nb = row["notebook"]
                print(f"  {nb.get('seconds', 0):.0f} s, ok={nb.get('ok')}, peak RAM {_gb(nb.get('peak_rss_bytes'))}"
                      + (f", {nb['error']}" if nb.get("error") else ""), flush=True)
            print(f"{name} {mode}: timing training steps and the input pipeline ...", flush=True)
            row["throughput"] = _spawn("throughput", lab, mode, args.source, env, 1800)
            tp = row["throughput"]
            device = device or tp.get("device") or (row["notebook"] or {}).get("device")
            if "error" in tp:
                print(f"  ERROR {tp['error']}", flush=True)
            else:
                print(f"  train {tp['train_images_per_s']:,.0f} img/s, pipeline {tp['pipeline_images_per_s']:,.0f} "
                      f"img/s ({tp['ratio']:.1f}x)", flush=True)
            rows.append(row)
    text = render_table(rows, machine_header(args.backend, args.source, device))
    print("\n" + text)
    from cellkit.atomic import write_text

    write_text(args.out, text)
    write_text(args.out.with_suffix(".json"), json.dumps(rows, indent=1))  # the raw numbers, for merging runs
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
