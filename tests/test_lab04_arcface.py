"""Lab 04: RxRx1 loader and synthetic twin, ArcFace head and loss, pseudo-labels, CutMix, gradients, Grad-CAM."""

import math

import numpy as np
import pytest

from cellkit.errors import DataError


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from cellkit.data.rxrx1 import make_synthetic

    root = tmp_path_factory.mktemp("rxrx1") / "copy"
    make_synthetic(root, fast=True, seed=7)
    return root


# ---------------------------------------------------------------- data

def test_synthetic_layout_and_metadata(synthetic_root):
    from cellkit.data import rxrx1

    md = rxrx1.read_metadata(synthetic_root)
    assert list(md.columns) == list(rxrx1.METADATA_COLUMNS)
    assert set(md["cell_type"]) == set(rxrx1.CELL_TYPES)
    assert set(md["well_type"]) == {"treatment", "negative_control", "positive_control"}
    assert set(md["dataset"]) == {"train", "test"}
    # train and test experiments are disjoint (held-out batches)
    assert not set(md[md.dataset == "train"].experiment) & set(md[md.dataset == "test"].experiment)
    row = md.iloc[0]
    for c in range(1, 7):
        path = synthetic_root / "images" / row.experiment / f"Plate{row.plate}" / f"{row.well}_s{row.site}_w{c}.png"
        assert path.is_file(), path
    assert row.site_id == f"{row.experiment}_{row.plate}_{row.well}_{row.site}"
    stack = rxrx1.load_site(synthetic_root, row)
    assert stack.shape == (48, 48, 6) and stack.dtype == np.uint8
    truth = rxrx1.read_ground_truth(synthetic_root)
    assert set(truth.columns) >= {"sirna_id", "channel", "region", "factor"}
    assert truth.loc[truth.well_type == "negative_control", "factor"].item() == 1.0


def test_synthetic_is_deterministic(synthetic_root, tmp_path):
    from cellkit.data import rxrx1
    from cellkit.data.rxrx1 import make_synthetic

    make_synthetic(tmp_path / "again", fast=True, seed=7)  # the fixture's seed
    assert (tmp_path / "again" / "metadata.csv").read_text() == (synthetic_root / "metadata.csv").read_text()
    for i in (0, 57, 200):
        row = rxrx1.read_metadata(synthetic_root).iloc[i]
        assert np.array_equal(rxrx1.load_site(tmp_path / "again", row), rxrx1.load_site(synthetic_root, row))


def test_planted_effect_is_in_the_planted_channel(synthetic_root):
    from cellkit.data import rxrx1

    md = rxrx1.read_metadata(synthetic_root)
    truth = rxrx1.read_ground_truth(synthetic_root).set_index("sirna_id")
    pos_id = truth.index[truth.well_type == "positive_control"][0]
    neg_id = truth.index[truth.well_type == "negative_control"][0]
    channel = int(truth.loc[pos_id, "channel"]) - 1

    def mean_channels(sirna_id):
        rows = rxrx1.select(md, sirna_ids=[sirna_id])
        return np.mean([rxrx1.load_site(synthetic_root, r).mean(axis=(0, 1)) for _, r in rows.iterrows()], axis=0)

    ratio = mean_channels(pos_id) / mean_channels(neg_id)
    assert np.argmax(ratio) == channel, ratio
    assert ratio[channel] > 1.3


def test_sequence_batches_classes_and_weights(synthetic_root):
    from cellkit.data import rxrx1

    md = rxrx1.read_metadata(synthetic_root)
    seq = rxrx1.RxRx1Sequence(synthetic_root, md, [0, 2], batch_size=5, shuffle=True, seed=1, flip=True)
    assert set(seq.metadata["sirna_id"]) == {0, 2}
    inputs, labels = seq[0]
    assert inputs["image"].shape == (5, 48, 48, 6) and inputs["image"].dtype == np.float32
    assert 0.0 <= inputs["image"].min() and inputs["image"].max() <= 1.0
    assert inputs["cell_type"].shape == (5, 4) and np.all(inputs["cell_type"].sum(1) == 1)
    assert labels.shape == (5, 2) and np.all(labels.sum(1) == 1)
    seq.sample_weights = np.arange(len(seq.metadata), dtype=np.float32)
    assert len(seq[0]) == 3
    small = rxrx1.RxRx1Sequence(synthetic_root, md.iloc[:3], [0, 1, 2, 3, 4, 5], batch_size=2, image_size=32,
                                labelled=False)
    (only_inputs,) = small[0]
    assert only_inputs["image"].shape == (2, 32, 32, 6)
    with pytest.raises(ValueError, match="classes"):
        rxrx1.RxRx1Sequence(synthetic_root, md, [], batch_size=2)
    with pytest.raises(ValueError, match="no site left"):
        rxrx1.RxRx1Sequence(synthetic_root, md, [999], batch_size=2)


def test_loader_errors(synthetic_root, tmp_path):
    import shutil

    from cellkit.data import rxrx1
    from cellkit.data.io import write_png

    with pytest.raises(DataError, match="metadata file not found"):
        rxrx1.read_metadata(tmp_path)
    (tmp_path / "metadata.csv").write_text("site_id,well_id,cell_type\na,b,HUVEC\n")
    with pytest.raises(DataError, match="missing column"):
        rxrx1.read_metadata(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root, copy)
    row = rxrx1.read_metadata(copy).iloc[0]
    path = rxrx1.image_path(copy, row.experiment, row.plate, row.well, row.site, 4)
    path.unlink()
    with pytest.raises(DataError, match="w4"):
        rxrx1.load_site(copy, row)
    write_png(path, np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError, match="same size"):
        rxrx1.load_site(copy, row)
    write_png(path, np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(DataError, match="grey 8-bit"):
        rxrx1.load_site(copy, row)


def test_metadata_is_filtered_to_the_sites_on_disk(synthetic_root, tmp_path, capsys):
    import shutil

    from cellkit.data import rxrx1

    full = rxrx1.read_metadata(synthetic_root)
    copy = tmp_path / "subset"
    shutil.copytree(synthetic_root, copy)
    keep = "HUVEC-01"
    for folder in (copy / "images").iterdir():
        if folder.name != keep:
            shutil.rmtree(folder)
    row = full[full.experiment == keep].iloc[0]
    rxrx1.image_path(copy, row.experiment, row.plate, row.well, row.site, 6).unlink()  # one incomplete site
    md = rxrx1.read_metadata(copy)
    assert set(md.experiment) == {keep} and len(md) == (full.experiment == keep).sum() - 1
    assert row.site_id not in set(md.site_id)
    assert f"{len(md):,} have their six files on disk" in capsys.readouterr().out
    assert len(rxrx1.read_metadata(copy, present_only=False)) == len(full)
    seq = rxrx1.RxRx1Sequence(copy, md, [0, 1, 2, 3, 4], batch_size=64)
    images, _, _ = rxrx1.load_arrays(seq)  # no missing file on the way
    assert len(images) == len(seq.metadata)
    shutil.rmtree(copy / "images")
    with pytest.raises(DataError, match="none of its"):
        rxrx1.read_metadata(copy)


def test_extract_subset_from_the_archive(synthetic_root, tmp_path):
    import zipfile

    from cellkit.data import rxrx1

    archive = tmp_path / "rxrx1-images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(synthetic_root / "metadata.csv", "rxrx1/metadata.csv")
        for path in (synthetic_root / "images").rglob("*.png"):
            zf.write(path, "rxrx1/" + path.relative_to(synthetic_root).as_posix())
    dest = rxrx1.extract_subset(archive, tmp_path / "huvec", cell_types="HUVEC", plates=[1])
    md = rxrx1.read_metadata(dest, verbose=False)
    assert set(md.cell_type) == {"HUVEC"} and set(md.plate) == {1}
    assert len(md) == (rxrx1.read_metadata(synthetic_root).cell_type == "HUVEC").sum()
    one = rxrx1.extract_subset(archive, tmp_path / "one", experiments=["RPE-02"])
    assert {p.name for p in (one / "images").iterdir()} == {"RPE-02"}
    with pytest.raises(DataError, match="no image matches"):
        rxrx1.extract_subset(archive, tmp_path / "none", experiments="HUVEC-99")


def test_downsampling_averages_areas():
    from cellkit.data import rxrx1

    stack = np.zeros((512, 512, 6), np.uint8)
    stack[::8, ::8, 3] = 255  # one-pixel puncta on an 8-pixel grid: 1/64 of the pixels
    small = rxrx1.downsample(stack, 64)  # 8x8 blocks: every output pixel holds one punctum
    assert small.shape == (64, 64, 6) and small.dtype == np.uint8
    np.testing.assert_allclose(small[..., 3], round(255 / 64), atol=1)  # the mean survives, no aliasing
    odd = rxrx1.downsample(stack, 100)  # not a divisor: PIL's box filter
    assert odd.shape == (100, 100, 6)
    assert abs(float(odd[..., 3].mean()) - 255 / 64) < 0.6
    assert rxrx1.downsample(np.full((10, 10, 6), 7, np.uint8), 20).shape == (20, 20, 6)
    with pytest.raises(ValueError, match="uint8"):
        rxrx1.downsample(stack.astype(np.float32), 64)


def test_fetch_refuses_a_large_download_without_opt_in(tmp_path, monkeypatch):
    import importlib

    from cellkit.config import Config
    from cellkit.errors import DataUnavailableError

    fetch_mod = importlib.import_module("cellkit.data.fetch")  # cellkit.data.fetch is also a function
    def no_network(*args, **kwargs):
        raise AssertionError("fetch must not start the download")

    monkeypatch.setattr(fetch_mod, "_download", no_network)
    monkeypatch.delenv("CELLKIT_ALLOW_LARGE_DOWNLOAD", raising=False)
    config = Config(source="real", data_dir=tmp_path)
    with pytest.raises(DataUnavailableError, match=r"49\.0 GB.*CELLKIT_ALLOW_LARGE_DOWNLOAD=1"):
        fetch_mod.fetch("rxrx1", config, progressbar=False)


def test_fetch_extracts_the_metadata_archive_beside_the_images(synthetic_root, tmp_path, monkeypatch):
    import zipfile

    import importlib

    from cellkit.config import Config
    from cellkit.data import rxrx1

    fetch_mod = importlib.import_module("cellkit.data.fetch")
    images_zip, metadata_zip = tmp_path / "rxrx1-images.zip", tmp_path / "rxrx1-metadata.zip"
    with zipfile.ZipFile(images_zip, "w") as zf:
        for path in (synthetic_root / "images" / "U2OS-01").rglob("*.png"):
            zf.write(path, "rxrx1/" + path.relative_to(synthetic_root).as_posix())
    with zipfile.ZipFile(metadata_zip, "w") as zf:
        zf.write(synthetic_root / "metadata.csv", "rxrx1/metadata.csv")
    archives = {"rxrx1-images.zip": images_zip, "rxrx1-metadata.zip": metadata_zip}
    monkeypatch.setattr(fetch_mod, "_download", lambda url, *a, **k: archives[url.rsplit("/", 1)[-1]])
    monkeypatch.setenv("CELLKIT_ALLOW_LARGE_DOWNLOAD", "1")
    folder = fetch_mod.fetch("rxrx1", Config(source="real", data_dir=tmp_path / "cache"), progressbar=False)
    assert (folder / "metadata.csv").is_file()
    md = rxrx1.read_metadata(folder, verbose=False)
    assert set(md.experiment) == {"U2OS-01"}


def test_registry_entry():
    from cellkit.data.registry import get_dataset

    d = get_dataset("rxrx1")
    assert d.licence == "CC BY-NC-SA 4.0"
    assert d.source["url"].startswith("https://storage.googleapis.com/rxrx/rxrx1/")
    assert d.source["sha256"] is None and "NOT be checked offline" in d.notes
    assert d.generator().__name__ == "make_synthetic"


# ---------------------------------------------------------------- ArcFace

def test_arc_margin_matches_reference_and_geometry():
    from keras import ops

    from cellkit import arcface

    rng = np.random.default_rng(0)
    cosine = rng.uniform(-1, 1, (50, 6)).astype(np.float32)
    labels = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 50)]
    got = ops.convert_to_numpy(arcface.arc_margin_logits(cosine, labels))
    ref = arcface.arc_margin_logits_reference(cosine, labels)
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=2e-3)
    # away from the threshold the true-class logit is s cos(theta + m)
    theta = np.arccos(cosine)
    ok = (labels == 1) & (theta + 0.5 < math.pi)
    np.testing.assert_allclose(ref[ok], 30 * np.cos(theta[ok] + 0.5), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ref[labels == 0], 30 * cosine[labels == 0], rtol=1e-5, atol=1e-5)
    # the margin always lowers the true-class logit, and the result is monotone in the cosine
    grid = np.linspace(-1, 1, 401)[:, None]
    z = arcface.arc_margin_logits_reference(grid, np.ones_like(grid))[:, 0]
    assert np.all(np.diff(z) > 0) and np.all(z <= 30 * grid[:, 0] + 1e-9)
    easy = arcface.arc_margin_logits_reference(grid, np.ones_like(grid), easy_margin=True)[:, 0]
    np.testing.assert_allclose(easy[grid[:, 0] <= 0], 30 * grid[grid[:, 0] <= 0, 0])


def test_head_cosines_and_serialisation():
    import keras

    from cellkit import arcface

    head = arcface.ArcMarginHead(5)
    x = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    cos = keras.ops.convert_to_numpy(head(x))
    np.testing.assert_allclose(cos, arcface.cosine_reference(x, keras.ops.convert_to_numpy(head.kernel)), atol=1e-5)
    clone = arcface.ArcMarginHead.from_config(head.get_config())
    assert clone.num_classes == 5 and clone.scale == 30.0 and clone.margin == 0.5
    with pytest.raises(ValueError, match="margin"):
        arcface.ArcMarginHead(5, margin=2.0)


def test_composite_loss_matches_reference():
    from keras import ops

    from cellkit import arcface

    rng = np.random.default_rng(2)
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 12)]
    logits = rng.normal(size=(12, 4)).astype(np.float32)
    cosine = rng.uniform(-1, 1, (12, 4)).astype(np.float32)
    w = rng.uniform(0, 2, 12).astype(np.float32)
    for mix, weights in ((0.2, None), (0.0, None), (1.0, w), (0.2, w)):
        got = float(ops.convert_to_numpy(arcface.composite_loss(labels, logits, cosine, mix=mix, sample_weight=weights)))
        ref = arcface.composite_loss_reference(labels, logits, cosine, mix=mix, sample_weight=weights)
        assert got == pytest.approx(ref, rel=1e-4)
    assert arcface.composite_loss_reference(labels, logits, cosine, mix=0.0) == pytest.approx(
        arcface.softmax_cross_entropy_reference(labels, logits).mean())
    with pytest.raises(ValueError, match="mix"):
        arcface.composite_loss(labels, logits, cosine, mix=1.5)


def test_classifier_trains_with_compute_loss_override():
    import keras

    from cellkit import arcface

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = {"image": rng.random((16, 16, 16, 6)).astype(np.float32),
         "cell_type": np.eye(4, dtype=np.float32)[rng.integers(0, 4, 16)]}
    y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
    x["image"][..., 0] += np.argmax(y, 1)[:, None, None] * 0.5  # a learnable signal
    model = arcface.ArcFaceClassifier(arcface.small_cnn((16, 16, 6), widths=(8, 16)), 3, embedding_dim=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(x, y, batch_size=16, epochs=25, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert "accuracy" in history
    p = model.predict_proba(x)
    assert p.shape == (16, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert model.get_config()["mix"] == 0.2


def test_densenet_backbone_six_channels_offline():
    from cellkit import arcface

    backbone = arcface.build_backbone("densenet121", (32, 32, 6), imagenet=False, verbose=False)
    assert backbone.input_shape == (None, 32, 32, 6)
    assert backbone.output_shape == (None, 1, 1, 1024)
    with pytest.raises(ValueError, match="kind"):
        arcface.build_backbone("densenet161", (32, 32, 6))


# ---------------------------------------------------------------- semi-supervised

def test_alpha_schedule():
    from cellkit.semisupervised import alpha_schedule

    t = np.arange(0, 30)
    a = alpha_schedule(t, 5, 15, 2.0)
    assert np.all(a[t <= 5] == 0) and np.all(a[t >= 15] == 2.0)
    assert alpha_schedule(10, 5, 15, 2.0) == pytest.approx(1.0)
    assert np.all(np.diff(a) >= 0)
    with pytest.raises(ValueError, match="t1"):
        alpha_schedule(1, 5, 5, 1.0)


def test_pseudo_labels_and_weights():
    from cellkit.semisupervised import pseudo_label_weights, pseudo_labels

    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    np.testing.assert_array_equal(pseudo_labels(p), [[0, 1, 0], [1, 0, 0]])
    rng = np.random.default_rng(0)
    lab, unl = rng.random(6), rng.random(3)
    w = pseudo_label_weights(6, 3, 0.4)
    assert np.sum(w * np.r_[lab, unl]) / 9 == pytest.approx(lab.mean() + 0.4 * unl.mean())


def test_cutmix_pair_and_box():
    from cellkit.semisupervised import cutmix_pair, sample_box

    a, b = np.zeros((8, 10, 6)), np.ones((8, 10, 6))
    mixed, label = cutmix_pair(a, [1, 0], b, [0, 1], (1, 2, 4, 5))
    assert mixed.sum() == 4 * 5 * 6 and a.sum() == 0
    np.testing.assert_allclose(label, [0.75, 0.25])
    with pytest.raises(ValueError, match="box"):
        cutmix_pair(a, [1, 0], b, [0, 1], (6, 0, 4, 4))
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.3, 0.9, 1.0):
        top, left, h, w = sample_box((40, 40), lam, rng)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 40
        assert h * w <= (1 - lam) * 1600 + 1e-9


def _pseudo_label_sequence(root, alpha):
    """A training sequence as lab 04 builds it for pseudo-labelling: labelled sites of classes 1-3, then
    unlabelled held-out sites whose label is the placeholder 0 (before T1) or a pseudo-label (after)."""
    import pandas as pd

    from cellkit.data import rxrx1
    from cellkit.semisupervised import CutMixAugment, pseudo_label_weights

    md = rxrx1.read_metadata(root)
    labelled = rxrx1.select(md, dataset="train", sirna_ids=[1, 2, 3])
    unlabelled = rxrx1.select(md, dataset="test", sirna_ids=[0, 1, 2, 3])
    sites = pd.concat([labelled, unlabelled], ignore_index=True)
    n, m = len(labelled), len(unlabelled)
    labels = np.r_[labelled["sirna_id"].to_numpy(), np.zeros(m, int)]
    seq = rxrx1.RxRx1Sequence(root, sites, [0, 1, 2, 3], batch_size=8, shuffle=True, seed=3, labels=labels,
                              augment=CutMixAugment(probability=1.0, seed=3))
    seq.sample_weights = pseudo_label_weights(n, m, alpha)
    return seq, (n + m) / n, alpha * (n + m) / m


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_cutmix_keeps_placeholder_labels_out_of_the_loss(synthetic_root, alpha):
    # Class 0 marks the unlabelled rows: no labelled row is of class 0 here.
    seq, w_labelled, w_pseudo = _pseudo_label_sequence(synthetic_root, alpha)
    mixed_rows = 0
    for epoch in range(2):
        for i in range(len(seq)):
            _, y, w = seq[i]
            from_unlabelled = y[:, 0] > 0
            # Before T1 (alpha = 0) nothing of an unlabelled row may weigh in the loss; after T1 a
            # pseudo-labelled row keeps its weight alpha(t) (N + M) / M and mixes only with its kind;
            # a labelled row keeps (N + M) / N and never receives a placeholder or a pseudo-label.
            np.testing.assert_allclose(w[from_unlabelled], w_pseudo, rtol=1e-5, err_msg=(
                f"epoch {epoch} batch {i}: rows carrying a placeholder/pseudo-label weigh {w[from_unlabelled]}"))
            np.testing.assert_allclose(y[from_unlabelled, 0], 1.0, atol=1e-6)
            np.testing.assert_allclose(w[~from_unlabelled], w_labelled, rtol=1e-5)
            mixed_rows += int(np.sum(y.max(axis=1) < 1 - 1e-6))
        seq.on_epoch_end()
    assert mixed_rows > 10, "CutMix (probability 1) should have mixed the labels of many labelled rows"


def test_sequences_with_the_same_seed_yield_the_same_batches(synthetic_root):
    from cellkit.data import rxrx1
    from cellkit.semisupervised import CutMixAugment

    md = rxrx1.read_metadata(synthetic_root)

    def make(**kw):
        return rxrx1.RxRx1Sequence(synthetic_root, md, [0, 1, 2, 3], batch_size=6, shuffle=True, flip=True,
                                   seed=5, augment=CutMixAugment(probability=0.5, seed=5), **kw)

    first, second = make(), make(cache=True)
    first[0]  # advancing one sequence must not change what another sees (no shared random state)
    for epoch in range(2):
        for i in reversed(range(len(first))):  # any access order: each batch has its own random stream
            a, b = first[i], second[i]
            np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
            np.testing.assert_array_equal(a[1], b[1])
        first.on_epoch_end()
        second.on_epoch_end()
    assert not np.array_equal(first[0][0]["image"], make()[0][0]["image"]), "epochs should differ"


def test_cutmix_batch_partners_and_areas():
    from cellkit.semisupervised import cutmix_batch

    images = np.broadcast_to(np.arange(8, dtype=np.float32)[:, None, None, None], (8, 32, 32, 2)).copy()
    weights = np.array([2, 2, 2, 2, 0.5, 0.5, 0.5, 0], np.float32)
    mixed, labels, w = cutmix_batch(images, np.eye(8, dtype=np.float32), sample_weight=weights, seed=3)
    own = (mixed[..., 0] == np.arange(8)[:, None, None]).mean(axis=(1, 2))
    np.testing.assert_allclose(np.diag(labels), own, atol=1e-6)  # lambda follows the pasted area exactly
    np.testing.assert_allclose(labels.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(w, weights)
    assert np.all(labels[:4, 4:] == 0) and np.all(labels[4:7, :4] == 0) and np.all(labels[4:7, 7] == 0)
    np.testing.assert_array_equal(mixed[7], images[7])  # a weight-0 row is left alone
    again = cutmix_batch(images, np.eye(8, dtype=np.float32), sample_weight=weights, seed=3)
    np.testing.assert_array_equal(again[0], mixed)
    _, _, none = cutmix_batch(images, np.eye(8, dtype=np.float32), seed=3)
    assert none is None


# ---------------------------------------------------------------- gradients and Grad-CAM

def test_value_and_gradients_analytic():
    from keras import ops

    from cellkit.gradients import value_and_gradients

    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    value, grads = value_and_gradients(lambda v: ops.sum(v ** 2, axis=1), x)
    np.testing.assert_allclose(value, (x ** 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(grads, 2 * x, rtol=1e-5)


def test_gradients_wrt_input_of_a_linear_model():
    import keras

    from cellkit.gradients import gradients_wrt_input

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False)])
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    grads = gradients_wrt_input(model, x, np.array([0, 1, 2, 1]))
    np.testing.assert_allclose(grads, kernel[:, [0, 1, 2, 1]].T, rtol=1e-5)


def test_grad_cam_known_answer():
    from keras import ops

    from cellkit import gradcam

    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    v = np.array([1.0, -2.0, 0.5], np.float32)

    def score(maps):
        return ops.stack([ops.sum(maps * v, axis=(1, 2, 3)), -ops.sum(maps * v, axis=(1, 2, 3))], axis=1)

    np.testing.assert_allclose(gradcam.grad_cam(lambda x: x, score, a, 0),
                               np.maximum(np.einsum("bhwk,k->bhw", a, v), 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradcam.grad_cam(lambda x: x, score, a, 1),
                               np.maximum(-np.einsum("bhwk,k->bhw", a, v), 0), rtol=1e-5, atol=1e-5)


def test_channel_attention_is_max_normalised_distance():
    from cellkit import gradcam

    rng = np.random.default_rng(0)
    image = rng.random((16, 16, 6)).astype(np.float32)
    cam = image[..., 2].copy()  # the CAM IS channel 3
    att = gradcam.channel_attention(cam, image)
    assert att.shape == (6,) and att.max() == pytest.approx(1.0)
    assert np.argmin(att) == 2  # a distance: smallest where the CAM agrees
    assert np.argmax(gradcam.channel_concordance(cam, image)) == 2
    batch = gradcam.channel_attention(np.stack([cam, cam])[:, ::2, ::2], np.stack([image, image]))
    assert batch.shape == (2, 6)


def test_metadata_with_a_non_numeric_plate_names_the_file_and_row(synthetic_root, tmp_path):
    import shutil

    from cellkit.data import rxrx1

    copy = tmp_path / "rx"
    shutil.copytree(synthetic_root, copy)
    table = (copy / "metadata.csv").read_text().splitlines()
    header = table[0].split(",")
    row = table[1].split(",")
    row[header.index("plate")] = "Plate1"
    (copy / "metadata.csv").write_text("\n".join([table[0], ",".join(row), *table[2:]]) + "\n")
    with pytest.raises(DataError, match=r"metadata.csv: column 'plate' must hold whole numbers; row\(s\) 2 hold 'Plate1'"):
        rxrx1.read_metadata(copy)
