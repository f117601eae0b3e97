"""Lab 02 (LeNet for mechanism of action on BBBC021): data layer, generator, models and validation helpers."""

import csv

import numpy as np
import pytest

from cellkit.data import bbbc021
from cellkit.errors import DataError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Return the folder of one fast synthetic copy (seed 5), generated once for the module."""
    dest = tmp_path_factory.mktemp("bbbc021") / "copy"
    bbbc021.make_synthetic(dest, fast=True, seed=5)
    return dest


def _write(path, image):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _tiny_layout(root, n=2, shape=(256, 256, 3), dtype=np.uint8):
    for k, moa in enumerate(bbbc021.MOA_CLASSES):
        for i in range(n):
            _write(root / moa / f"bbbc021v1_{k * 10 + i}.png", np.full(shape, 10 * k + i, dtype))
    return root


# ---------------------------------------------------------------- registry


def test_registry_entry_pins_commit_and_every_file(repo_root):
    from cellkit.data.registry import get_dataset

    ds = get_dataset("bbbc021_statpred2019")
    assert ds.source["kind"] == "archive"
    commit = "a9bc84e0ea6963839137c7abaef6f24508efe69d"
    assert ds.source["url"] == f"https://github.com/pharmbio/StatPred_2019/archive/{commit}.zip"
    assert ds.source["members"] == f"StatPred_2019-{commit}/bbbc021v1_subset/"
    assert ds.source["sha256"] is None and "null" in ds.notes
    assert ds.synthetic == "cellkit.data.bbbc021:make_synthetic"
    assert len(ds.files) == 660 and all(len(f.sha256) == 64 and f.bytes > 0 for f in ds.files)
    counts = {}
    for f in ds.files:
        moa = f.path.split("/")[0]
        counts[moa] = counts.get(moa, 0) + 1
        assert bbbc021.FILE_PATTERN.match(f.path.split("/")[1]), f.path
    assert counts == bbbc021.REAL_COUNTS
    assert sum(f.bytes for f in ds.files) == ds.size_bytes
    shared = repo_root.parent / "shared" / "data" / "statpred2019_bbbc021v1_subset_manifest.csv"
    if shared.is_file():
        with open(shared, newline="") as fh:
            rows = {r["path"]: r["sha256"] for r in csv.DictReader(fh)}
        assert rows == {f.path: f.sha256 for f in ds.files}
    cites = " ".join(ds.citations)
    assert "Ljosa" in cites and "Caie" in cites and "Kensert" in cites
    assert "unknown" in ds.licence.lower()


def test_real_number_runs_give_treatment_blocks_of_four():
    from cellkit.data.registry import get_dataset

    files = get_dataset("bbbc021_statpred2019").files
    numbers = [int(bbbc021.FILE_PATTERN.match(f.path.split("/")[1]).group(1)) for f in files]
    labels = [bbbc021.MOA_CLASSES.index(f.path.split("/")[0]) for f in files]
    groups = bbbc021.number_runs(numbers, labels)
    sizes = np.bincount(groups)
    assert len(sizes) == 44 and np.all(sizes % 4 == 0)
    for g in np.unique(groups):  # a group never spans two classes
        assert len({labels[i] for i in np.flatnonzero(groups == g)}) == 1


def test_number_runs_examples_and_errors():
    assert bbbc021.number_runs([5, 6, 0, 1, 2], [1, 1, 0, 0, 1]).tolist() == [2, 2, 0, 0, 1]
    with pytest.raises(ValueError, match="unique"):
        bbbc021.number_runs([1, 1], [0, 0])
    with pytest.raises(ValueError, match="numbers and labels"):
        bbbc021.number_runs([1, 2], [0])


# ---------------------------------------------------------------- generator


def test_generator_layout_counts_and_ground_truth(synthetic):
    names = sorted(p.name for p in synthetic.iterdir() if p.is_dir())
    assert names == sorted(bbbc021.MOA_CLASSES)
    truth = bbbc021.read_ground_truth(synthetic)
    assert len(truth) == 16 * 6
    for row in truth:
        assert (synthetic / row["path"]).is_file()
        assert row["path"].split("/")[0] == row["moa"]
    data = bbbc021.load_bbbc021(synthetic, verbose=False)
    assert data.counts() == bbbc021.synthetic_counts(fast=True)
    assert data.images.shape == (96, 256, 256, 3) and data.images.dtype == np.uint8
    # the loader's treatment groups (runs of file numbers) are exactly the planted treatments
    by_path = {r["path"]: r["treatment"] for r in truth}
    planted = np.array([by_path[p] for p in data.paths])
    for g in np.unique(data.groups):
        assert len(set(planted[data.groups == g])) == 1
    assert len(np.unique(data.groups)) == len(set(planted)) == 24


def test_full_size_counts_match_the_real_subset():
    assert bbbc021.synthetic_counts(fast=False) == bbbc021.REAL_COUNTS
    assert sum(bbbc021.REAL_COUNTS.values()) == 660


def test_generator_is_deterministic(tmp_path):
    from cellkit.data.io import read_image

    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        bbbc021.make_synthetic(tmp_path / name, fast=True, seed=seed, per_moa=4)
    truth = {name: (tmp_path / name / "ground_truth.csv").read_text() for name in "abc"}
    assert truth["a"] == truth["b"] and truth["a"] != truth["c"]
    for p in sorted((tmp_path / "a" / "Eg5_inhibitors").iterdir()):
        assert np.array_equal(read_image(p), read_image(tmp_path / "b" / "Eg5_inhibitors" / p.name))
    with pytest.raises(ValueError, match="per_moa"):
        bbbc021.make_synthetic(tmp_path / "d", fast=True, seed=1, per_moa=6)


def test_planted_phenotypes_show_in_simple_statistics(synthetic):
    data = bbbc021.load_bbbc021(synthetic, verbose=False)
    mean = {name: data.images[data.labels == k].astype(float).mean() for k, name in enumerate(data.class_names)}
    # protein-synthesis inhibitors: small, dim cells; the dimmest class on average
    assert min(mean, key=mean.get) in ("Protein_synthesis", "Eg5_inhibitors")
    truth = bbbc021.read_ground_truth(synthetic)
    cells = {}
    for r in truth:
        cells.setdefault(r["moa"], []).append(int(r["n_cells"]))
    # DNA damage lowers the cell density
    assert np.mean(cells["DNA_damage"]) < np.mean(cells["Protein_synthesis"])


# ---------------------------------------------------------------- channels: red actin, green tubulin, blue DNA

REAL_DEV = "../shared/realdata/bbbc021_dev"  # real images for development, next to the project (absent in a clone)


def _real_dev(repo_root):
    folder = (repo_root / REAL_DEV).resolve()
    if not folder.is_dir():
        pytest.skip(f"{REAL_DEV}: no real development images here")
    return folder


def _dna_is_compact(summary):
    dna = summary["DNA"]
    others = [summary[c] for c in bbbc021.CHANNELS if c != "DNA"]
    # nuclei: a small share of the image, in more separate objects than the cells' actin or tubulin
    return (all(dna["stained_fraction"] < 0.6 * o["stained_fraction"] for o in others)
            and all(dna["objects"] > o["objects"] for o in others))


def test_channel_order_is_actin_tubulin_dna():
    assert bbbc021.CHANNELS == ("F-actin", "beta-tubulin", "DNA")


def test_real_dev_images_show_compact_nuclei_in_the_blue_channel(repo_root):
    from cellkit.data.io import read_image

    folder = _real_dev(repo_root)
    for moa in bbbc021.MOA_CLASSES:
        path = sorted((folder / moa).glob("bbbc021v1_*.png"))[0]
        summary = bbbc021.channel_summary(bbbc021.check_moa_image(read_image(path), path))
        assert _dna_is_compact(summary), f"{path}: the blue channel does not look like nuclei: {summary}"
        assert bbbc021.CHANNELS[2] == "DNA"


def test_synthetic_twin_draws_nuclei_in_blue(synthetic):
    data = bbbc021.load_bbbc021(synthetic, verbose=False)
    for k in range(len(data.class_names)):
        summary = bbbc021.channel_summary(data.images[data.labels == k][:4])
        assert _dna_is_compact(summary), f"{data.class_names[k]}: {summary}"


def test_synthetic_intensities_resemble_the_real_dev_images(repo_root, synthetic):
    from cellkit.data.io import read_image

    folder = _real_dev(repo_root)
    real = np.stack([read_image(p) for moa in bbbc021.MOA_CLASSES for p in sorted((folder / moa).glob("*.png"))[::6]])
    twin = bbbc021.load_bbbc021(synthetic, verbose=False).images
    r, s = bbbc021.channel_summary(real), bbbc021.channel_summary(twin)
    for name in bbbc021.CHANNELS:
        for key in ("background", "p99", "mean"):
            ratio = s[name][key] / r[name][key]
            assert 2 / 3 < ratio < 1.5, f"{name} {key}: synthetic {s[name][key]:.1f}, real {r[name][key]:.1f}"
    assert r["DNA"]["background"] > r["F-actin"]["background"] and s["DNA"]["background"] > s["F-actin"]["background"]


def test_channel_summary_rejects_bad_input():
    with pytest.raises(ValueError, match="expected"):
        bbbc021.channel_summary(np.zeros((2, 8, 8, 3), np.float32))


# ---------------------------------------------------------------- loader errors


def test_loader_reads_a_layout_anywhere_and_samples_by_group(tmp_path):
    root = _tiny_layout(tmp_path / "drive" / "bbbc021v1_subset", n=4)
    data = bbbc021.load_bbbc021(root, verbose=False)
    assert len(data) == 24 and data.images[3, 0, 0, 0] == 3
    small = bbbc021.load_bbbc021(root, per_class=2, seed=0, verbose=False)
    assert small.counts() == {c: 2 for c in bbbc021.MOA_CLASSES}
    with pytest.raises(ValueError, match="per_class"):
        bbbc021.load_bbbc021(root, per_class=0)


def test_small_sample_of_the_real_layout_keeps_three_treatments_per_class(tmp_path):
    from cellkit import validation
    from cellkit.data.registry import get_dataset

    # the real subset's names, with blank images: a run of 36 images must not fill a class's sample alone
    for f in get_dataset("bbbc021_statpred2019").files:
        _write(tmp_path / f.path, np.zeros((256, 256, 3), np.uint8))
    for seed in range(5):
        data = bbbc021.load_bbbc021(tmp_path, per_class=16, seed=seed, verbose=False)
        assert data.counts() == {c: 16 for c in bbbc021.MOA_CLASSES}
        for k in range(len(data.class_names)):
            assert len(np.unique(data.groups[data.labels == k])) >= 3, data.class_names[k]
        train, val = validation.grouped_split(data.groups, data.labels, 0.25, seed=seed)
        assert validation.shared_groups(train, val, data.groups) == []
        assert 0.15 < len(val) / len(data) < 0.4


def test_keras_directory_split_takes_the_first_files_in_name_order_and_leaks_treatments(tmp_path):
    from cellkit import validation
    from cellkit.data.registry import get_dataset

    paths = [f.path for f in get_dataset("bbbc021_statpred2019").files]
    labels = np.array([bbbc021.MOA_CLASSES.index(p.split("/")[0]) for p in paths])
    numbers = np.array([int(p.rsplit("_", 1)[1][:-4]) for p in paths])
    train, val = validation.keras_directory_split(paths, labels, 0.25)
    assert len(val) == sum(int(0.25 * n) for n in bbbc021.REAL_COUNTS.values())
    # string order: in every class the validation files are the first names, not the smallest numbers
    for k in range(len(bbbc021.MOA_CLASSES)):
        names = sorted(p.rsplit("/", 1)[1] for p in np.array(paths)[labels == k])
        picked = sorted(p.rsplit("/", 1)[1] for p in np.array(paths)[val][labels[val] == k])
        assert picked == names[:len(picked)]
    groups = bbbc021.number_runs(numbers, labels)
    assert len(validation.shared_groups(train, val, groups)) >= 5  # treatments on both sides
    with pytest.raises(ValueError, match="paths and labels"):
        validation.keras_directory_split(paths[:3], labels, 0.25)


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        bbbc021.load_bbbc021(tmp_path / "nowhere")
    root = _tiny_layout(tmp_path / "a")
    (root / "DNA_damage" / "bbbc021v1_10.png").unlink()
    (root / "DNA_damage" / "bbbc021v1_11.png").unlink()
    with pytest.raises(DataError, match="empty MoA folder"):
        bbbc021.load_bbbc021(root)
    import shutil

    shutil.rmtree(root / "DNA_damage")
    with pytest.raises(DataError, match="DNA_damage missing"):
        bbbc021.load_bbbc021(root)


@pytest.mark.parametrize("shape,dtype,match", [((128, 128, 3), np.uint8, "expected 256x256x3"),
                                               ((256, 256), np.uint8, "RGB"),
                                               ((256, 256, 3), np.uint16, None)])
def test_loader_rejects_wrong_images(tmp_path, shape, dtype, match):
    root = _tiny_layout(tmp_path / "b")
    target = root / "Eg5_inhibitors" / "bbbc021v1_31.png"
    if dtype == np.uint16:  # Pillow cannot write 16-bit RGB: check the array check directly
        with pytest.raises(DataError, match="expected uint8"):
            bbbc021.check_moa_image(np.zeros(shape, dtype), target)
        return
    _write(target, np.zeros(shape, dtype))
    with pytest.raises(DataError, match=match) as err:
        bbbc021.load_bbbc021(root, verbose=False)
    assert "bbbc021v1_31.png" in str(err.value)


def test_loader_rejects_corrupt_and_misnamed_files(tmp_path):
    root = _tiny_layout(tmp_path / "c")
    (root / "Kinase_inhibitors" / "bbbc021v1_40.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="bbbc021v1_40.png"):
        bbbc021.load_bbbc021(root, verbose=False)
    root = _tiny_layout(tmp_path / "d")
    _write(root / "Kinase_inhibitors" / "image_1.png", np.zeros((256, 256, 3), np.uint8))
    with pytest.raises(DataError, match="unexpected file name"):
        bbbc021.load_bbbc021(root, verbose=False)


# ---------------------------------------------------------------- models


def test_lenet_parameter_counts_and_shapes():
    from cellkit import checks, lenet

    model = lenet.build_lenet()
    checks.check_param_count(model, 1_121_062)
    checks.check_layer_params(model, lenet.LENET_LAYER_PARAMS)
    checks.check_layer_types(model, lenet.LENET_LAYER_TYPES)
    assert [tuple(layer.output.shape[1:]) for layer in model.layers] == list(lenet.LENET_SHAPES)
    assert lenet.conv_params(5, 3, 16) == 1_216 == model.layers[0].count_params()
    assert lenet.dense_params(4 * 4 * 64, 1024) == 1_049_600
    assert sum(lenet.LENET_LAYER_PARAMS) == lenet.LENET_PARAMS


def test_lenet_checks_catch_a_missing_stride():
    import keras
    from keras import layers

    from cellkit import checks

    wrong = keras.Sequential([keras.Input((256, 256, 3)), layers.Conv2D(16, 5, padding="same", activation="relu"),
                              layers.MaxPooling2D(2), layers.Conv2D(32, 5, padding="same"), layers.MaxPooling2D(4),
                              layers.Conv2D(64, 5, padding="same"), layers.MaxPooling2D(4), layers.Flatten(),
                              layers.Dense(1024), layers.Dense(6, activation="softmax")])
    with pytest.raises(checks.CheckFailed, match="expected 1,121,062 parameters, got 4,266,790"):
        checks.check_param_count(wrong, 1_121_062)


def test_random_rot90_matches_numpy_rotations_and_is_identity_at_inference():
    from cellkit import lenet

    layer = lenet.RandomRot90(seed=3)
    x = np.random.default_rng(0).random((16, 5, 5, 2)).astype("float32")
    y = np.asarray(layer(x, training=True))
    ks = []
    for i in range(len(x)):
        matches = [k for k in range(4) if np.allclose(y[i], np.rot90(x[i], k, axes=(0, 1)))]
        assert matches, f"image {i} is not a 90-degree rotation of its input"
        ks.append(matches[0])
    assert len(set(ks)) > 1  # different images get different rotations
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    assert lenet.RandomRot90.from_config(layer.get_config()).seed == 3
    with pytest.raises(ValueError, match="square"):
        lenet.RandomRot90()(np.zeros((1, 4, 6, 1), "float32"), training=True)


def test_improved_model_parts_and_deterministic_inference():
    from cellkit import lenet

    model = lenet.build_improved(seed=0)
    kinds = lenet.layer_kinds(model)
    for kind, n in (("RandomFlip", 1), ("RandomRot90", 1), ("PerImageStandardization", 1),
                    ("BatchNormalization", 3), ("GlobalAveragePooling2D", 1), ("Dropout", 1), ("Dense", 1)):
        assert kinds.count(kind) == n, kind
    assert model.count_params() == lenet.IMPROVED_PARAMS
    assert all(layer.momentum == lenet.BN_MOMENTUM for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    x = np.random.default_rng(1).random((2, 256, 256, 3)).astype("float32")
    a, b = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    assert np.allclose(a, b) and np.allclose(a.sum(axis=1), 1, atol=1e-5)
    # exposure and background of a channel do not change the prediction: the standardisation divides them out
    brighter = x * np.array([2.0, 0.5, 1.5], "float32") + np.array([0.1, 0.0, 0.2], "float32")
    assert np.allclose(np.asarray(model(brighter, training=False)), a, atol=1e-3)
    with pytest.raises(ValueError, match="dropout"):
        lenet.build_improved(dropout=1.0)


def test_per_image_standardization_gives_zero_mean_unit_spread_per_channel():
    from cellkit import lenet

    x = np.random.default_rng(2).random((3, 16, 16, 3)).astype("float32") * np.array([1, 5, 0.5], "float32")
    out = np.asarray(lenet.PerImageStandardization()(x))
    assert np.allclose(out.mean(axis=(1, 2)), 0, atol=1e-4) and np.allclose(out.std(axis=(1, 2)), 1, atol=0.02)
    blank = np.asarray(lenet.PerImageStandardization()(np.zeros((1, 4, 4, 3), "float32")))
    assert np.all(np.isfinite(blank))
    layer = lenet.PerImageStandardization(epsilon=0.01)
    assert lenet.PerImageStandardization.from_config(layer.get_config()).epsilon == 0.01
    with pytest.raises(ValueError, match="epsilon"):
        lenet.PerImageStandardization(epsilon=0)


def test_lenet_learns_a_tiny_problem_and_scores_are_seeded():
    from cellkit import lenet

    rng = np.random.default_rng(0)
    x = rng.random((12, 64, 64, 3)).astype("float32") * 0.2
    y = np.arange(12) % 2
    x[y == 1, 16:48, 16:48, 0] += 0.8  # class 1: a bright red square
    build = lambda: lenet.build_lenet(input_shape=(64, 64, 3), n_classes=2)  # noqa: E731
    first = lenet.fit_and_score(build, x, y, x, y, seed=1, epochs=10, batch_size=4)
    again = lenet.fit_and_score(build, x, y, x, y, seed=1, epochs=10, batch_size=4)
    assert first == again and first >= 0.9


def test_per_class_accuracy_and_accuracy():
    from cellkit import lenet

    y, p = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    assert lenet.accuracy(y, p) == pytest.approx(0.6)
    got = lenet.per_class_accuracy(y, p, 4)
    assert got[:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(got[3])
    with pytest.raises(ValueError, match="uint8"):
        lenet.to_inputs(np.zeros((1, 2, 2, 3), np.float32))


def test_feature_extractor_falls_back_to_random_weights_offline(monkeypatch, capsys):
    from cellkit import lenet

    monkeypatch.setattr(lenet, "_weights_available", lambda module, **kw: False)
    extractor, used = lenet.build_feature_extractor("ResNet50", input_shape=(64, 64, 3), image_size=32)
    assert used is None and "RANDOM weights" in capsys.readouterr().out
    features = extractor.predict(np.zeros((2, 64, 64, 3), "float32"), verbose=0)
    assert features.shape == (2, 2048)
    assert lenet.build_head(2048).output_shape == (None, 6)
    with pytest.raises(ValueError, match="backbone"):
        lenet.build_feature_extractor("VGG16")


def test_architecture_figure_labels_every_layer():
    import matplotlib

    matplotlib.use("Agg")
    from cellkit import lenet

    fig = lenet.plot_architecture()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "128x128x16" in texts and "4x4x64" in texts and "1,216 p" in texts
    assert "1,121,062" in fig.axes[0].get_title() and fig.axes[0].get_xlabel()


# ---------------------------------------------------------------- validation


def test_grouped_split_keeps_groups_apart_and_is_stratified():
    from cellkit import validation

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), rng.integers(2, 7, 30))
    labels = groups % 3
    train, val = validation.grouped_split(groups, labels, 0.25, seed=4)
    assert validation.shared_groups(train, val, groups) == []
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(groups)))
    for k in range(3):  # 10 groups per class: round(2.5) = 2 held out
        assert len(np.unique(groups[val][labels[val] == k])) == 2
    again = validation.grouped_split(groups, labels, 0.25, seed=4)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, validation.grouped_split(groups, labels, 0.25, seed=5)[1])


def test_grouped_split_errors():
    from cellkit import validation

    with pytest.raises(ValueError, match="single group"):
        validation.grouped_split([1, 1, 2, 2], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="more than one class"):
        validation.grouped_split([1, 1, 2, 2, 3, 3], [0, 1, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="val_fraction"):
        validation.grouped_split([1, 2], val_fraction=1.5)


def test_random_split_shares_groups_the_grouped_split_does_not():
    from cellkit import validation

    groups = np.repeat(np.arange(24), 4)
    labels = groups % 6
    train, val = validation.random_split(labels, 0.25, seed=0)
    assert len(val) == 24 and np.all(np.bincount(labels[val]) == 4)
    assert len(validation.shared_groups(train, val, groups)) > 5


def test_grouped_kfold_covers_every_group_once():
    from cellkit import validation

    groups = np.repeat(np.arange(20), 3)
    labels = groups % 4
    folds = validation.grouped_kfold(groups, labels, k=5, seed=0)
    seen = np.concatenate([v for _, v in folds])
    assert sorted(seen.tolist()) == list(range(len(groups)))
    for train, val in folds:
        assert validation.shared_groups(train, val, groups) == []
        assert set(labels[val]) == {0, 1, 2, 3}


def test_mean_and_spread_matches_numpy_and_repeated_scores_calls_each_seed():
    from cellkit import validation

    rng = np.random.default_rng(3)
    s = rng.random(7)
    mean, sd = validation.mean_and_spread(s)
    assert mean == pytest.approx(s.mean()) and sd == pytest.approx(s.std(ddof=1))
    assert validation.mean_and_spread([0.4]) == (0.4, 0.0)
    with pytest.raises(ValueError, match="scores"):
        validation.mean_and_spread([])
    assert validation.repeated_scores(lambda seed: seed / 10, [1, 2, 3]).tolist() == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="distinct"):
        validation.repeated_scores(lambda seed: 0.0, [1, 1])
    assert "over 3 seed(s)" in validation.describe_scores("m", [0.1, 0.2, 0.3])
