"""Lab 06 (Deep InfoMax on BBBC018): loader, synthetic generator, masked MI losses, pairs, masks, splits, scores."""

import csv

import numpy as np
import pytest

from cellkit import clustering, infomax
from cellkit.data import bbbc018
from cellkit.errors import DataError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    dest = tmp_path_factory.mktemp("bbbc018")
    bbbc018.make_synthetic(dest, fast=True, seed=3, size=256)  # smaller fields of view than the lab's, for speed
    return dest


def test_synthetic_layout_and_ground_truth(synthetic):
    files = sorted((synthetic / bbbc018.IMAGE_FOLDER).iterdir())
    assert len(files) == 14 * 4 * 3
    assert (synthetic / bbbc018.IMAGE_FOLDER / "09331-DNA.DIB").is_file()
    truth = bbbc018.load_ground_truth(synthetic)
    assert len(truth) == 14 and len(set(truth.values())) == 14
    with open(synthetic / "ground_truth.csv") as fh:
        rows = {r["sample"]: r for r in csv.DictReader(fh)}
    a, b = (rows[s] for s in bbbc018.OVERLAPPING_PAIR)
    differing = {k for k in a if k not in ("sample", "morphology", "name") and a[k] != b[k]}
    assert differing == {"gain", "cells_per_field"}, differing


def test_loader_shapes_and_scaling(synthetic):
    images, meta = bbbc018.load_bbbc018(synthetic)
    assert images.shape == (14, 4, 3, 256, 256) and images.dtype == np.float32
    assert meta["channels"] == ["DNA", "pH3", "actin"]
    assert meta["samples"][0] == "00731" and meta["fields"][0] == ["1", "2", "3", "4"]
    assert meta["files"][9, 0, 0].endswith("09331-DNA.DIB")
    assert 0 < images.max() <= 4095 / 65535 + 1e-6  # 12-bit values in 16-bit files


def test_generator_is_deterministic(tmp_path):
    bbbc018.make_synthetic(tmp_path / "a", fast=True, seed=5, size=128)
    bbbc018.make_synthetic(tmp_path / "b", fast=True, seed=5, size=128)
    bbbc018.make_synthetic(tmp_path / "c", fast=True, seed=6, size=128)
    name = f"{bbbc018.IMAGE_FOLDER}/13572-actin.DIB"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_both_modes_write_full_size_fields(tmp_path, monkeypatch):
    # lab 06 scores whole fields: fast mode keeps the real 512x512 field of view (a 256x256 one held too few cells)
    drawn = []

    def small_field(params, size, generator):
        drawn.append(size)
        return np.zeros((3, 8, 8)), {"cells": 0, "mitotic": 0}

    monkeypatch.setattr(bbbc018, "render_field", small_field)
    for fast in (True, False):
        drawn.clear()
        bbbc018.make_synthetic(tmp_path / str(fast), fast=fast, seed=1)
        assert drawn == [512] * 14 * 4
    with pytest.raises(ValueError, match="size=32"):
        bbbc018.make_synthetic(tmp_path / "tiny", fast=True, seed=1, size=32)


def test_dib_roundtrip_and_truncation(tmp_path):
    image = np.random.default_rng(0).integers(0, 4096, size=(5, 7)).astype(np.uint16)  # odd width, not square
    path = bbbc018.write_dib(tmp_path / "00011-DNA.DIB", image)
    np.testing.assert_array_equal(bbbc018.read_dib(path), image)
    assert path.stat().st_size == 52 + 2 * 5 * 7  # the Cellomics layout: 52-byte header, no row padding
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        bbbc018.read_dib(path)


def _cellomics_dib_bytes(image, *, planes=1, bits=16, header_length=40, compression=0):
    """A Cellomics DIB assembled byte by byte from the documented layout, independently of cellkit's writer.

    Layout as read by CellProfiler 1.0, CPsubfunctions/CPimread.m (reads 52 header bytes: header length at
    bytes 1-4 must be 40, width 5-8, height 9-12, channels 13-14, bit depth 15-16 = 16, compression 17-20, all
    little-endian; then per channel width*height uint16 little-endian, reshape([W H])' = row-major, top row
    first) and by Bio-Formats, loci/formats/in/CellomicsReader.java (skips 4 bytes, reads width, height,
    planes, bits, compression; pixels from seek(52 + plane * planeSize), little-endian).
    """
    h, w = image.shape
    head = bytearray(52)
    head[0:4] = header_length.to_bytes(4, "little")
    head[4:8] = w.to_bytes(4, "little")
    head[8:12] = h.to_bytes(4, "little")
    head[12:14] = planes.to_bytes(2, "little")
    head[14:16] = bits.to_bytes(2, "little")
    head[16:20] = compression.to_bytes(4, "little")
    body = b"".join(int(v).to_bytes(2, "little") for v in image.ravel())  # row by row, top row first
    return bytes(head) + body * planes


def test_read_dib_follows_documented_cellomics_layout(tmp_path):
    image = np.arange(6 * 9, dtype=np.uint16).reshape(6, 9) * 75  # 12-bit range, every pixel distinct, odd width
    image[0, 0], image[-1, -1] = 4095, 1
    path = tmp_path / "03997-DNA.DIB"
    path.write_bytes(_cellomics_dib_bytes(image))
    got = bbbc018.read_dib(path)
    assert got.dtype == np.uint16 and got.shape == (6, 9)
    np.testing.assert_array_equal(got, image)  # top row first, no padding, pixels from byte 52
    # a two-plane file: the first plane is returned
    path.write_bytes(_cellomics_dib_bytes(image, planes=2))
    np.testing.assert_array_equal(bbbc018.read_dib(path), image)
    # cellkit's writer produces the same bytes as the documented layout
    ours = bbbc018.write_dib(tmp_path / "ours.DIB", image).read_bytes()
    assert ours[:20] == _cellomics_dib_bytes(image)[:20] and ours[52:] == _cellomics_dib_bytes(image)[52:]
    for kwargs, message in [({"bits": 8}, "8 bits per pixel"), ({"header_length": 108}, "header length 108"),
                            ({"compression": 1}, "compression 1")]:
        path.write_bytes(_cellomics_dib_bytes(image, **kwargs))
        with pytest.raises(DataError, match=message):
            bbbc018.read_dib(path)
    path.write_bytes(_cellomics_dib_bytes(image)[:40])
    with pytest.raises(DataError, match="too short"):
        bbbc018.read_dib(path)


def test_group_wells_runs_of_four_across_a_decade():
    wells = ["03997", "03998", "03999", "04000", "00731", "00732", "00733", "00734", "12345", "12346", "12347",
             "12348", "12349", "12350", "12351", "12352"]
    where = bbbc018.group_wells(wells)
    assert where["03997"] == ("03997", "1") and where["04000"] == ("03997", "4")  # one sample across the decade
    assert where["00734"] == ("00731", "4")
    assert where["12348"] == ("12345", "4") and where["12349"] == ("12349", "1")  # a run of 8 is two samples
    assert sorted({s for s, _ in where.values()}) == ["00731", "03997", "12345", "12349"]
    with pytest.raises(DataError, match="03997-03999: a run of 3"):
        bbbc018.group_wells(["03997", "03998", "03999"])


def test_loader_groups_real_names_across_a_decade(tmp_path):
    folder = tmp_path / bbbc018.IMAGE_FOLDER
    folder.mkdir()
    for k, well in enumerate(["03997", "03998", "03999", "04000", "09331", "09332", "09333", "09334"]):
        for c, channel in enumerate(("DNA", "pH3", "actin")):
            bbbc018.write_dib(folder / f"{well}-{channel}.DIB", np.full((4, 6), 10 * k + c, np.uint16))
    images, meta = bbbc018.load_bbbc018(tmp_path)
    assert meta["samples"] == ["03997", "09331"] and images.shape == (2, 4, 3, 4, 6)
    assert meta["files"][0, 3, 0].endswith("04000-DNA.DIB")
    np.testing.assert_allclose(images[0, 3, :, 0, 0] * 65535, [30, 31, 32])
    (folder / "04000-DNA.DIB").unlink()
    with pytest.raises(DataError, match="no file for channel.*DNA"):
        bbbc018.load_bbbc018(tmp_path)


def _write_custom(folder, fmt, *, skip=None, odd_size=None):
    from cellkit.data.io import write_png, write_tiff

    folder.mkdir(parents=True, exist_ok=True)
    for sample in ("plateA", "plateB"):
        for field in (1, 2):
            for k in range(3):
                if skip == (sample, field, k):
                    continue
                size = odd_size if odd_size and (sample, field, k) == ("plateB", 2, 1) else 16
                img = np.full((size, size), 100 * k + field, np.uint16)
                path = folder / f"{sample}_f{field}_d{k}.{fmt}"
                (write_tiff if fmt == "tif" else write_png)(path, img)


CUSTOM = dict(pattern=r"(?P<sample>plate\w)_f(?P<field>\d)_(?P<channel>d\d)\.(tif|png)",
              channels={"d0": "DNA", "d1": "pH3", "d2": "actin"})


@pytest.mark.parametrize("fmt", ["tif", "png"])
def test_loader_custom_pattern(tmp_path, fmt):
    _write_custom(tmp_path, fmt)
    images, meta = bbbc018.load_bbbc018(tmp_path, **CUSTOM)
    assert images.shape == (2, 2, 3, 16, 16) and meta["samples"] == ["plateA", "plateB"]
    np.testing.assert_allclose(images[1, 1, :, 0, 0] * 65535, [2, 102, 202])  # channel order follows the mapping


def test_loader_errors(tmp_path):
    _write_custom(tmp_path / "missing", "tif", skip=("plateA", 2, 2))
    with pytest.raises(DataError, match="sample plateA, field 2: no file for channel.*actin"):
        bbbc018.load_bbbc018(tmp_path / "missing", **CUSTOM)
    _write_custom(tmp_path / "sizes", "tif", odd_size=20)
    with pytest.raises(DataError, match=r"plateB_f2_d1.tif: size \(20, 20\)"):
        bbbc018.load_bbbc018(tmp_path / "sizes", **CUSTOM)
    with pytest.raises(DataError, match="none of the 12 image files matches"):
        bbbc018.load_bbbc018(tmp_path / "sizes")
    with pytest.raises(ValueError, match="named groups"):
        bbbc018.find_fields(tmp_path / "sizes", pattern=r"(?P<sample>\w+)\.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        bbbc018.load_bbbc018(tmp_path / "empty")


def test_pair_masks():
    pos, neg = infomax.pair_masks(np.array([2, 0, 2, 1]))
    want = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], float)
    np.testing.assert_array_equal(np.asarray(pos), want)
    np.testing.assert_array_equal(np.asarray(neg), 1 - want)
    np.testing.assert_array_equal(infomax.sample_ids_for(3, 2), [0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_jsd_matches_numpy_reference(seed):
    from keras import ops

    g = np.random.default_rng(seed)
    local, glob = g.normal(size=(6, 5, 4)).astype("float32"), g.normal(size=(6, 4)).astype("float32")
    ids, mask = np.repeat(np.arange(3), 2), (g.uniform(size=(6, 5)) < 0.6).astype("float32")
    got = float(ops.convert_to_numpy(infomax.masked_jsd_loss(local, glob, ids, mask)))
    assert got == pytest.approx(infomax.masked_jsd_loss_numpy(local, glob, ids, mask), rel=1e-5)
    # background local vectors take no part
    moved = local + 30.0 * (1 - mask)[..., None]
    assert float(ops.convert_to_numpy(infomax.masked_jsd_loss(moved, glob, ids, mask))) == pytest.approx(got, rel=1e-5)


def test_infonce_prefers_aligned_codes():
    from keras import ops

    g = np.random.default_rng(0)
    centres = g.normal(size=(3, 8)).astype("float32") * 3
    ids = np.repeat(np.arange(3), 2)
    glob = centres[ids]
    local = np.repeat(glob[:, None], 4, axis=1)
    mask = np.ones((6, 4), "float32")
    aligned = float(ops.convert_to_numpy(infomax.masked_infonce_loss(local, glob, ids, mask)))
    shuffled = float(ops.convert_to_numpy(infomax.masked_infonce_loss(local[::-1], glob, ids, mask)))
    assert aligned < 0.1 < shuffled


def test_reverse_gradient_and_pool_mask():
    from keras import ops

    x = np.array([1.5, -2.0], "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(infomax.reverse_gradient(x)), x)
    masks = np.zeros((1, 8, 8), "float32")
    masks[0, :4, :4] = 1
    flags = ops.convert_to_numpy(infomax.pool_mask(masks, 4))
    np.testing.assert_array_equal(flags, [[1, 0, 0, 0]])


def test_infomax_trains_and_encoder_shapes():
    import keras

    keras.utils.set_random_seed(0)
    enc = infomax.conv_encoder((16, 16, 3), filters=(4, 8, 8), code_dim=6)
    assert [tuple(o.shape[1:]) for o in enc.outputs] == [(4, 4, 8), (6,)]
    g = np.random.default_rng(0)
    imgs, msks = g.uniform(size=(4, 2, 3, 24, 24)).astype("float32"), np.ones((4, 2, 24, 24), "float32")
    data = infomax.InfoMaxBatches(imgs, msks, crop=16, batch_samples=3, steps=2, code_dim=6, seed=0)
    batch = data[0][0]
    assert batch["images"].shape == (3, 2, 3, 16, 16) and batch["prior"].shape == (6, 6)
    np.testing.assert_array_equal(data[0][0]["images"], batch["images"])  # deterministic batches
    model = infomax.InfoMax(enc, embed_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    # the two terms are logged on their own, and the total is their weighted sum
    np.testing.assert_allclose(history["loss"], np.add(history["mi_loss"], 0.1 * np.asarray(history["prior_loss"])),
                               rtol=1e-4)
    codes = infomax.embed_fields(enc, imgs[:2], size=16, stride=8)
    assert codes.shape == (2, 2, 4, 6)


def test_sliding_windows():
    image = np.arange(2 * 6 * 8).reshape(2, 6, 8)
    windows, corners = infomax.sliding_windows(image, 4, 2)
    assert windows.shape == (6, 2, 4, 4) and corners.tolist()[:3] == [[0, 0], [0, 2], [0, 4]]
    np.testing.assert_array_equal(windows[4], image[:, 2:6, 2:6])
    with pytest.raises(ValueError, match="size"):
        infomax.sliding_windows(image, 7, 1)


def test_foreground_mask_finds_cells():
    image = np.full((3, 40, 40), 0.01, np.float32) + np.random.default_rng(0).uniform(0, 0.005, (3, 40, 40))
    image[:, 10:20, 5:25] = 0.6
    mask = clustering.foreground_mask(image, seed=0)
    assert mask.dtype == bool and mask[10:20, 5:25].all() and mask.sum() == 200


def test_split_by_sample():
    ids = [f"{k:04d}" for k in range(14)]
    train, test = clustering.split_by_sample(ids, n_train=10, seed=1)
    assert len(train) == 10 and len(test) == 4 and sorted(train + test) == ids
    assert train == sorted(train) and (train, test) == clustering.split_by_sample(ids, n_train=10, seed=1)
    assert clustering.split_by_sample(ids, n_train=10, seed=2) != (train, test)
    with pytest.raises(ValueError, match="n_train"):
        clustering.split_by_sample(ids, n_train=14)


def test_clustering_scores_and_pair_separation():
    s = clustering.clustering_scores([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 4, 4])
    assert s == {"ari": pytest.approx(1.0), "nmi": pytest.approx(1.0)}
    assert clustering.clustering_scores([0, 1, 0, 1], [0, 0, 1, 1])["ari"] < 0
    g = np.random.default_rng(0)
    x = np.concatenate([g.normal(0, 1, (50, 4)), g.normal(6, 1, (50, 4))]).astype("float32")
    labels = np.array(["a"] * 50 + ["b"] * 50)
    assert clustering.pair_separation(clustering.standardize(x), labels, ("a", "b")) == pytest.approx(1.0)
    combined = clustering.combine_blocks(x, x[:, :1])
    assert combined.shape == (100, 5)
    np.testing.assert_allclose(combined[:, :4].std(axis=0), 0.5, rtol=1e-4)  # 1 / sqrt(4)


def test_window_features_intensity_and_density():
    images = np.zeros((1, 1, 3, 16, 16), np.float32)
    masks = np.zeros((1, 1, 16, 16), bool)
    images[0, 0, 0, 2:4, 2:4] = 0.8
    masks[0, 0, 2:4, 2:4] = True
    masks[0, 0, 10:12, 2:4] = True
    f = clustering.window_features(images, masks, size=8, stride=8)
    assert f.shape == (1, 1, 4, 8)
    assert f[0, 0, 0, 3] == pytest.approx(0.8)  # DNA mean over the foreground of window 1
    assert f[0, 0, 0, 6] == pytest.approx(4 / 64) and f[0, 0, 0, 7] == pytest.approx(1000 / 64)


def test_registry_entry():
    from cellkit.data.registry import get_dataset

    d = get_dataset("bbbc018")
    assert d.source["url"].endswith("BBBC018_v1_images.zip") and d.generator() is bbbc018.make_synthetic
    assert any("Ljosa" in c for c in d.citations) and "06_infomax" in d.labs


def test_field_means_and_cluster_fields():
    g = np.random.default_rng(0)
    codes = g.normal(size=(3, 4, 5, 6))
    keep = np.ones((3, 4, 5), bool)
    keep[0, 0, :4] = False  # only window 4 counts in field (0, 0)
    keep[1, 1] = False  # no window kept: all of them count
    means = clustering.field_means(codes, keep)
    assert means.shape == (3, 4, 6)
    np.testing.assert_allclose(means[0, 0], codes[0, 0, 4], rtol=1e-6)
    np.testing.assert_allclose(means[1, 1], codes[1, 1].mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="keep"):
        clustering.field_means(codes, keep[:, :, :2])
    # four well separated groups of four fields are recovered exactly, whatever the numbering
    centres = g.normal(size=(4, 10)) * 5
    points = np.repeat(centres, 4, axis=0) + g.normal(size=(16, 10)) * 0.3
    labels = clustering.cluster_fields(points, 4, seed=1)
    assert clustering.clustering_scores(np.repeat(np.arange(4), 4), labels)["ari"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_clusters"):
        clustering.cluster_fields(points[:6], 4)
