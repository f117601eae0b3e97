"""Lab 03 (cytokines from 64x64 well images): loader, synthetic plate, labels, balancing, CV, statistics, models."""

import numpy as np
import pandas as pd
import pytest

from cellkit import cytokine_models as cm
from cellkit import cytokines as ck
from cellkit import stats
from cellkit.data import cytokines as plate
from cellkit.errors import DataError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Return the folder of one synthetic plate (seed 7), generated once for the module."""
    dest = tmp_path_factory.mktemp("cytokines") / "plate"
    dest.mkdir()
    plate.make_synthetic(dest, fast=True, seed=7)
    return dest


TINY = tuple(f"{r}{c:02d}" for r in "AB" for c in range(1, 9))  # 16 wells: the fewest a plate may have


def _tiny_plate(root, wells=TINY, shape=(64, 64), n_cytokines=3):
    from cellkit.data.io import write_tiff

    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, well in enumerate(wells):
        write_tiff(root / "images" / f"{well}.tif", np.full(shape, 100 * (i + 1), np.uint16))
    table = pd.DataFrame({"well": list(wells), **{f"C{j}": np.arange(len(wells)) * 0.1 * (j + 1)
                                                 for j in range(n_cytokines)}})
    table.to_csv(root / "cytokines.csv", index=False)
    return root


# ---------------------------------------------------------------- loader


def test_loader_reads_a_small_layout(tmp_path):
    root = _tiny_plate(tmp_path / "p")
    images, table = plate.load_plate(root, wells=TINY, n_cytokines=3)
    assert images.shape == (16, 64, 64) and images.dtype == np.uint16
    assert list(table.index) == list(TINY) and table.shape == (16, 3)
    assert images[2, 0, 0] == 300, "images must be stacked in well order"
    images, table = plate.load_plate(root)  # default: every well of the table, any number of cytokines
    assert list(table.index) == list(TINY) and table.shape == (16, 3)


@pytest.mark.parametrize("damage, words", [
    (lambda r: __import__("shutil").rmtree(r), "folder not found"),
    (lambda r: (r / "cytokines.csv").unlink(), "cytokine table not found"),
    (lambda r: (r / "images" / "B01.tif").unlink(), "B01.tif"),
    (lambda r: (r / "images" / "A02.tif").write_bytes(b"not a tiff at all"), "A02.tif"),
    (lambda r: pd.read_csv(r / "cytokines.csv").rename(columns={"well": "Well"}).to_csv(r / "cytokines.csv",
                                                                                      index=False), "'well' column"),
    (lambda r: pd.read_csv(r / "cytokines.csv").iloc[:3].to_csv(r / "cytokines.csv", index=False), "missing from the table"),
    (lambda r: pd.read_csv(r / "cytokines.csv").assign(C1=np.nan).to_csv(r / "cytokines.csv", index=False),
     "missing value"),
    (lambda r: pd.read_csv(r / "cytokines.csv").assign(C1="high").to_csv(r / "cytokines.csv", index=False),
     "non-numeric"),
    (lambda r: pd.read_csv(r / "cytokines.csv").drop(columns="C2").to_csv(r / "cytokines.csv", index=False),
     "expected 3"),
])
def test_loader_errors_name_the_problem(tmp_path, damage, words):
    root = _tiny_plate(tmp_path / "p")
    damage(root)
    with pytest.raises(DataError, match=words):
        plate.load_plate(root, wells=TINY, n_cytokines=3)


def test_loader_reads_any_subset_of_a_96_or_384_well_plate(tmp_path):
    # a 96-well plate, wells written A1 (no zero), images named A1.tif, 2 cytokines, an incomplete plate
    wells = [f"{r}{c}" for r in "CDEFGH" for c in range(3, 7)]  # 24 wells of a 96-well plate
    root = _tiny_plate(tmp_path / "p96", wells=wells, n_cytokines=2)
    images, table = plate.load_plate(root)
    assert images.shape == (24, 64, 64) and table.shape == (24, 2)
    assert table.index[0] == "C03" and table.index[-1] == "H06", "canonical names A01, in plate order"
    # a 384-well subset (row K exists only on 384-well plates), a chosen subset of the table's wells
    root = _tiny_plate(tmp_path / "p384", wells=[f"K{c:02d}" for c in range(1, 21)], n_cytokines=5)
    images, table = plate.load_plate(root, wells=[f"K{c}" for c in range(20, 2, -1)])
    assert table.shape == (18, 5) and table.index[0] == "K20", "the wells asked for, in that order"
    with pytest.raises(DataError, match="not a well of a 96-well plate"):
        plate.load_plate(root, plate=96)


@pytest.mark.parametrize("wells, kwargs, words", [
    (TINY[:15], {}, "at least 16 are needed"),
    (TINY[:15] + ("Q01",), {}, "'Q01': not a well of a 384-well plate"),
    (TINY[:15] + ("A25",), {}, "A25"),
    (TINY, {"plate": 48}, "expected 96 or 384"),
])
def test_loader_says_what_cannot_work(tmp_path, wells, kwargs, words):
    root = _tiny_plate(tmp_path / "p", wells=wells)
    with pytest.raises(DataError, match=words):
        plate.load_plate(root, **kwargs)


def test_loader_needs_a_cytokine_column(tmp_path):
    root = _tiny_plate(tmp_path / "p", n_cytokines=0)
    with pytest.raises(DataError, match="no cytokine column"):
        plate.load_plate(root)


def test_plate_folder_says_what_to_do_without_a_plate(tmp_path):
    from cellkit.config import get_config
    from cellkit.errors import DataUnavailableError

    config = get_config(source="real", data_dir=tmp_path / "cache")
    with pytest.raises(DataUnavailableError, match="not public.*plate_choice = 'path/to/your/plate'.*'synthetic'"):
        plate.plate_folder(config)
    root = _tiny_plate(tmp_path / "mine")
    assert plate.plate_folder(config, root) == root
    with pytest.raises(DataError, match="not found"):
        plate.plate_folder(config, tmp_path / "nowhere")


def test_loader_rejects_wrong_image_shape(tmp_path):
    root = _tiny_plate(tmp_path / "p", shape=(32, 64))
    with pytest.raises(DataError, match=r"A01.tif: shape \(32, 64\), expected a 64x64 grey image"):
        plate.load_plate(root, wells=TINY, n_cytokines=3)


def test_ground_truth_missing_on_real_layout(tmp_path):
    with pytest.raises(DataError, match="only the synthetic plate"):
        plate.load_ground_truth(_tiny_plate(tmp_path / "p"))


def test_well_names():
    assert plate.WELLS[0] == "A01" and plate.WELLS[-1] == "P24" and len(set(plate.WELLS)) == 384
    assert plate.well_name(1, 23) == "B24"
    with pytest.raises(ValueError, match="row=16"):
        plate.well_name(16, 0)


# ---------------------------------------------------------------- synthetic plate


def test_synthetic_layout_and_truth(synthetic):
    names = sorted(p.name for p in (synthetic / "images").iterdir())
    assert names == sorted(f"{w}.tif" for w in plate.WELLS)
    images, table = plate.load_plate(synthetic)
    assert images.shape == (384, 64, 64) and images.dtype == np.uint16
    assert list(table.columns) == list(plate.CYTOKINES)
    np.testing.assert_allclose(table.median().to_numpy(), 0.0, atol=1e-4)  # median-centred
    truth = plate.load_ground_truth(synthetic)
    assert truth.predictable.sum() == 14 and set(truth.index) == set(plate.CYTOKINES)
    assert set(truth[truth.predictable].driver) == set(plate.FEATURES)
    wells = pd.read_csv(synthetic / plate.WELL_FEATURES)
    assert 5 <= wells.nearly_empty.sum() <= 40, "about 5% of wells are nearly empty"
    empty = images[wells.nearly_empty.to_numpy()].mean()
    assert empty < images[~wells.nearly_empty.to_numpy()].mean(), "nearly empty wells must be darker"


def test_synthetic_skew_and_survivors(synthetic):
    _, table = plate.load_plate(synthetic)
    labels, _ = ck.binarise_table(table)
    kept = labels.sum()[labels.sum() >= ck.MIN_PRODUCERS]
    ratio = (384 - kept).sum() / kept.sum()
    assert 3.0 < ratio < 6.0, f"about 4 non-producers per producer expected, got {ratio:.1f}"
    assert 22 <= len(ck.balanced_sets(labels, seed=1)) <= 30, "about 27 cytokines should survive, as in the original"


def test_synthetic_is_deterministic(synthetic, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    plate.make_synthetic(again, fast=True, seed=7)
    assert (again / "cytokines.csv").read_bytes() == (synthetic / "cytokines.csv").read_bytes()
    for well in ("A01", "H12", "P24"):
        assert (again / "images" / f"{well}.tif").read_bytes() == (synthetic / "images" / f"{well}.tif").read_bytes()


def test_synthetic_needs_existing_folder(tmp_path):
    with pytest.raises(ValueError, match="dest="):
        plate.make_synthetic(tmp_path / "missing", fast=True, seed=0)


# ---------------------------------------------------------------- binarise, balance, CV


def test_binarise_kmeans_edge_is_midpoint_of_centres():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0, 0.05, 60), rng.normal(1.0, 0.05, 15)
    labels, edge = ck.binarise(np.concatenate([low, high]))
    assert labels.tolist() == [0] * 60 + [1] * 15
    assert edge == pytest.approx((low.mean() + high.mean()) / 2, abs=1e-6)


def test_binarise_quantile_and_uniform_by_hand():
    values = np.array([0.0, 0.1, 0.2, 0.3, 10.0])
    labels, edge = ck.binarise(values, strategy="uniform")
    assert edge == pytest.approx(5.0) and labels.tolist() == [0, 0, 0, 0, 1]
    labels, edge = ck.binarise(np.arange(10.0), strategy="quantile")
    assert labels.sum() == 5 and edge == pytest.approx(4.5)


@pytest.mark.parametrize("bad, words", [(np.zeros((3, 2)), "1-D"), (np.array([0.0, np.nan, 1.0]), "NaN"),
                                        (np.array([1.0]), "at least 2")])
def test_binarise_rejects_bad_input(bad, words):
    with pytest.raises(ValueError, match=words):
        ck.binarise(bad)


def test_balance_by_hand():
    labels = np.array([0, 0, 1, 0, 0, 1, 0, 0])
    kept = ck.balance(labels, seed=3)
    assert {2, 5} <= set(kept.tolist()) and len(kept) == 4 and list(kept) == sorted(kept)
    assert np.array_equal(kept, ck.balance(labels, seed=3))
    flipped = ck.balance(1 - labels, seed=3)  # producers in the majority: down-sample them instead
    assert np.bincount((1 - labels)[flipped]).tolist() == [2, 2]
    with pytest.raises(ValueError, match="0/1"):
        ck.balance(np.array([0, 2, 1]), seed=0)


def test_balanced_sets_rules():
    n = 200
    table = {}
    table["seven"] = np.r_[np.ones(7), np.zeros(n - 7)]  # 7 producers: dropped
    table["eight"] = np.r_[np.ones(8), np.zeros(n - 8)]  # 8 producers, 16 wells: kept
    table["few_zeros"] = np.r_[np.ones(n - 7), np.zeros(7)]  # 14 balanced wells: dropped
    table["common"] = np.r_[np.ones(50), np.zeros(n - 50)]
    labels = pd.DataFrame(table).astype(int)
    sets = ck.balanced_sets(labels, seed=1)
    assert sorted(sets) == ["common", "eight"]
    assert len(sets["eight"]) == 16 and len(sets["common"]) == 100
    capped = ck.balanced_sets(labels, seed=1, max_per_class=10)
    assert len(capped["common"]) == 20 and labels["common"].to_numpy()[capped["common"]].sum() == 10
    # each cytokine gets its own draw
    labels["twin"] = labels["common"]
    sets = ck.balanced_sets(labels, seed=1)
    assert not np.array_equal(sets["common"], sets["twin"])


def test_two_fold_splits_partition_and_stratify():
    rng = np.random.default_rng(4)
    labels = (rng.random(300) < 0.25).astype(int)
    positions = ck.balance(labels, seed=2)
    folds = ck.two_fold_splits(positions, labels, seed=5)
    assert len(folds) == 2
    (tr0, te0), (tr1, te1) = folds
    assert np.array_equal(np.sort(te0), np.sort(tr1)) and np.array_equal(np.sort(te1), np.sort(tr0))
    assert np.array_equal(np.sort(np.concatenate([te0, te1])), positions)
    for test in (te0, te1):
        assert abs(labels[test].mean() - 0.5) <= 1 / len(test) + 1e-9
    again = ck.two_fold_splits(positions, labels, seed=5)
    assert np.array_equal(again[0][1], te0)
    with pytest.raises(ValueError, match="at least 2"):
        ck.two_fold_splits(np.array([0, 1, 2]), np.array([0, 0, 1]), seed=0)


def test_flips():
    images = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    np.testing.assert_array_equal(ck.flip(images, "h"), images[:, :, ::-1])
    np.testing.assert_array_equal(ck.flip(images, "v"), images[:, ::-1])
    np.testing.assert_array_equal(ck.flip(images, "t")[1], images[1].T)
    x, y = ck.flip_augment(images, np.array([0, 1]), ("h", "t"))
    assert x.shape == (6, 3, 3) and y.tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="flips"):
        ck.flip_augment(images, np.array([0, 1]), ("r",))
    views = cm.flip_views(images)
    assert views.shape == (4, 2, 3, 3) and np.array_equal(views[2], images[:, ::-1])


def test_scores_and_calls_by_hand():
    s = ck.classification_scores([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0])
    assert s == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert ck.call_predictable([0.65, 0.9, 0.64], [0.7, 0.64, 0.9]).tolist() == [True, False, False]
    calls = ck.score_calls({"a": True, "b": True, "c": False, "d": False}, {"a": True, "b": False, "c": True,
                                                                            "d": False, "e": True})
    assert calls == {"n": 4, "tp": 1, "fp": 1, "fn": 1, "tn": 1, "precision": 0.5, "recall": 0.5}



def _discs(n_discs, shape=(32, 32), slots=((6, 6), (6, 24), (24, 6), (24, 24), (15, 15)), order=None):
    """An image with ``n_discs`` separated discs of radius 3 (29 pixels each) at fixed slots."""
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    image = np.zeros(shape)
    for r, c in [slots[i] for i in (order if order is not None else range(len(slots)))][:n_discs]:
        image[(rr - r) ** 2 + (cc - c) ** 2 <= 9] = 1.0
    return image


def test_image_statistics_count_and_measure_regions():
    bar = np.zeros((32, 32))
    bar[14:18, 4:28] = 1.0  # 4 x 24 pixels
    s = ck.image_statistics(np.stack([_discs(3), _discs(1), bar, np.zeros((32, 32))]))
    assert list(s.columns) == list(ck.STATISTICS) and len(s) == 4
    assert s.objects.tolist() == [3, 1, 1, 0]
    assert s.object_area[0] == s.object_area[1] == 29 and s.largest_object[2] == 96
    assert s.dim_fraction[0] == pytest.approx(3 * 29 / 1024)
    # axis ratio of the bar from its coordinate variances ((n^2 - 1) / 12 along each side)
    assert s.object_elongation[2] == pytest.approx(np.sqrt((24 ** 2 - 1) / (4 ** 2 - 1)))
    assert s.object_elongation[1] == pytest.approx(1.0)
    assert s.object_elongation[3] == 1.0 and s["mean"][3] == 0.0  # an empty well: no regions, no NaN
    with pytest.raises(ValueError, match=r"images: expected .*\(n, H, W\)"):
        ck.image_statistics(np.zeros((32, 32)))


def test_baseline_finds_a_planted_count_and_keeps_the_protocol():
    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 20)
    images = np.stack([_discs(4 if label else 2, order=rng.permutation(5)) + rng.normal(0, 0.02, (32, 32))
                       for label in y])
    labels = pd.DataFrame({"IL-6": y, "noise": rng.permutation(y)})
    sets = {"IL-6": np.arange(40), "noise": np.arange(40)}
    results, predictions = ck.baseline_cross_validate(ck.image_statistics(images), labels, sets,
                                                      splitter=ck.two_fold_splits, seed=0)
    assert sorted(predictions) == [(c, "none", f) for c in ("IL-6", "noise") for f in (0, 1)]
    tested = np.concatenate([predictions[("IL-6", "none", f)][0] for f in (0, 1)])
    assert sorted(tested.tolist()) == list(range(40))  # every well tested exactly once
    pooled = cm.pooled_scores((results, predictions)).set_index("cytokine")
    assert pooled.loc["IL-6", "f1"] >= 0.95, "the number of regions separates the classes"
    # the pooled confusion counts: every well once, and the scores follow from them
    counts = pooled[["tn", "fp", "fn", "tp"]]
    assert (counts.sum(axis=1) == 40).all() and (pooled.tp + pooled.fn == 20).all()
    np.testing.assert_allclose(pooled.recall, pooled.tp / 20)
    np.testing.assert_allclose(pooled.precision, pooled.tp / (pooled.tp + pooled.fp))
    assert list(results.columns[:4]) == ["model", "cytokine", "augmentation", "fold"]
    with pytest.raises(ValueError, match="statistics: expected one row per well"):
        ck.baseline_cross_validate(np.zeros((39, 12)), labels, sets, splitter=ck.two_fold_splits)
    with pytest.raises(KeyError, match="IL-8"):
        ck.baseline_cross_validate(np.zeros((40, 12)), labels, {"IL-8": np.arange(40)},
                                   splitter=ck.two_fold_splits)



def test_protocol_folds_are_the_splitters_with_one_seed_per_cytokine():
    y = np.array([0, 1] * 10)
    labels = pd.DataFrame({"A": y, "B": y[::-1]})
    sets = {"A": np.arange(20), "B": np.arange(2, 20)}
    got = list(ck.protocol_folds(labels, sets, splitter=ck.two_fold_splits, seed=5))
    assert [(name, fold) for name, fold, *_ in got] == [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
    for i, name in enumerate(sets):
        expected = ck.two_fold_splits(sets[name], labels[name].to_numpy(), seed=5 + i)
        for (_, fold, train, test, y_all), (e_train, e_test) in zip(got[2 * i:2 * i + 2], expected):
            assert np.array_equal(train, e_train) and np.array_equal(test, e_test)
            assert np.array_equal(y_all, labels[name].to_numpy())
    with pytest.raises(KeyError, match="'C' is not a column of labels"):
        list(ck.protocol_folds(labels, {"C": np.arange(20)}, splitter=ck.two_fold_splits))


# ---------------------------------------------------------------- statistics


def _groups():
    rng = np.random.default_rng(8)
    return {"none": rng.normal(0.7, 0.05, 11), "h": rng.normal(0.75, 0.2, 6), "hvt": rng.normal(0.8, 0.01, 9)}


def test_welch_anova_by_hand():
    groups = [np.asarray(g) for g in _groups().values()]
    k = len(groups)
    n = np.array([len(g) for g in groups])
    m = np.array([g.mean() for g in groups])
    w = n / np.array([g.var(ddof=1) for g in groups])
    grand = np.sum(w * m) / w.sum()
    lam = np.sum((1 - w / w.sum()) ** 2 / (n - 1))
    f = (np.sum(w * (m - grand) ** 2) / (k - 1)) / (1 + 2 * (k - 2) / (k ** 2 - 1) * lam)
    df2 = (k ** 2 - 1) / (3 * lam)
    from scipy import stats as sps

    res = stats.welch_anova(_groups())
    assert res.statistic == pytest.approx(f, rel=1e-9)
    assert res.df[1] == pytest.approx(df2, rel=1e-9)
    assert res.pvalue == pytest.approx(sps.f.sf(f, k - 1, df2), rel=1e-9)


def test_other_tests_match_scipy():
    from scipy import stats as sps

    g = _groups()
    assert stats.classic_anova(g).pvalue == pytest.approx(sps.f_oneway(*g.values()).pvalue, rel=1e-12)
    assert stats.kruskal_wallis(g).pvalue == pytest.approx(sps.kruskal(*g.values()).pvalue, rel=1e-12)
    t = stats.welch_t_test(g["none"], g["h"])
    ref = sps.ttest_ind(g["none"], g["h"], equal_var=False)
    assert t.pvalue == pytest.approx(ref.pvalue, rel=1e-12) and t.statistic == pytest.approx(ref.statistic)
    table = stats.compare_groups(g)
    assert table.test.tolist() == ["Welch's ANOVA", "classic ANOVA", "Kruskal-Wallis"] and (table.n == 26).all()


def test_paired_tests_known_values():
    # exact null distribution: 5 positive differences, the most extreme of 2**5 sign patterns, two-sided
    res = stats.wilcoxon_signed_rank([1, 2, 3, 4, 5.5], [0, 0, 0, 0, 0])
    assert res.pvalue == pytest.approx(2 / 32)
    # 4 cytokines that all rank 3 strategies the same way: chi2 = 8 on 2 df, p = exp(-4)
    table = pd.DataFrame([[0.5, 0.6, 0.7], [0.4, 0.45, 0.9], [0.6, 0.61, 0.62], [0.1, 0.5, 0.55]],
                         columns=["none", "h", "hvt"])
    res = stats.friedman(table)
    assert res.statistic == pytest.approx(8.0) and res.pvalue == pytest.approx(np.exp(-4))
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.1, 3.9, 4.0])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / 2)
    from scipy import stats as sps

    res = stats.paired_t_test(a, b)
    assert res.statistic == pytest.approx(t) and res.pvalue == pytest.approx(2 * sps.t.sf(abs(t), 3))
    assert stats.compare_paired(a, b).test.tolist() == ["Wilcoxon signed-rank", "paired t-test"]


def test_paired_tests_edge_cases():
    assert stats.wilcoxon_signed_rank([0.5, 0.6], [0.5, 0.6]).pvalue == 1.0, "no difference: no evidence"
    assert np.isnan(stats.paired_t_test([0.5, 0.6], [0.4, 0.5]).pvalue), "constant difference: undefined"
    with pytest.raises(ValueError, match="one value of each per cytokine"):
        stats.wilcoxon_signed_rank([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 3 strategies"):
        stats.friedman(np.ones((5, 2)))


def test_paired_table_lines_up_cytokines():
    frame = pd.DataFrame({"cytokine": ["A", "A", "B", "B", "C"], "augmentation": ["none", "h"] * 2 + ["none"],
                          "f1": [0.5, 0.6, 0.7, 0.8, 0.9]})
    wide = stats.paired_table(frame, by="cytokine", column="augmentation")
    assert list(wide.index) == ["A", "B"], "C has no 'h' value: incomplete pairs are dropped"
    assert wide.loc["B", "h"] == 0.8
    assert list(stats.paired_table(frame, by="cytokine", column="augmentation", subset=["B"]).index) == ["B"]


def test_stats_reject_tiny_groups():
    with pytest.raises(ValueError, match="fewer than 2"):
        stats.welch_anova({"a": [0.5], "b": [0.1, 0.2]})
    with pytest.raises(ValueError, match="at least 2"):
        stats.kruskal_wallis([[0.1, 0.2]])


# ---------------------------------------------------------------- models


def test_parameter_counts():
    assert cm.build_wide_cnn().count_params() == cm.PARAMS["wide"] == 3_936_674
    assert cm.build_deeper_cnn().count_params() == cm.PARAMS["deeper"] == 519_010
    for head in cm.HEADS:
        assert cm.build_vit_head(head).count_params() == cm.PARAMS[head]
    assert cm.vit_patch_grid(64) == (2, 5) and cm.vit_patch_grid(224) == (7, 50)
    with pytest.raises(ValueError, match="multiple"):
        cm.vit_patch_grid(40)


def test_position_embeddings_interpolated_like_vit_keras():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 6)).astype("float32")  # class token + 7 x 7 grid
    out = cm.interpolate_position_embeddings(emb, 2)
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out[0], emb[0])  # the class token's embedding is kept
    grid = emb[1:].reshape(7, 7, 6)
    # linear zoom 7 -> 2 maps the corners onto the corners
    np.testing.assert_allclose(out[1:].reshape(2, 2, 6), grid[[0, 0, 6, 6], [0, 6, 0, 6]].reshape(2, 2, 6), atol=1e-5)
    np.testing.assert_allclose(cm.interpolate_position_embeddings(emb, 7), emb, atol=1e-6)
    with pytest.raises(ValueError, match="square grid"):
        cm.interpolate_position_embeddings(emb[:49], 2)


def _small_vit(size):
    import keras_hub

    return keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=32, num_layers=1, num_heads=2,
                                        hidden_dim=16, mlp_dim=32)


def test_pretrained_vit_is_rebuilt_for_64x64(monkeypatch):
    """The 224x224 preset's weights go into a 64x64 backbone: 2 x 2 patches + class token = 5 tokens."""
    import keras_hub

    source = _small_vit(224)  # stands for the ImageNet-21k preset (offline here): a 7 x 7 grid
    monkeypatch.setattr(keras_hub.models.ViTBackbone, "from_preset", classmethod(lambda cls, name, **kw: source))
    backbone, desc = cm.build_vit_backbone(64, verbose=False)
    assert "PRETRAINED" in desc and "interpolated from 7x7 to 2x2" in desc and "5 tokens" in desc
    assert backbone.input_shape == (None, 64, 64, 3) and backbone.output_shape == (None, 5, 16)
    assert not backbone.trainable
    for s, t in zip(source.weights, backbone.weights):
        if "position_embedding" in t.path:
            np.testing.assert_allclose(np.asarray(t), cm.interpolate_position_embeddings(np.asarray(s), 2))
        else:
            np.testing.assert_array_equal(np.asarray(t), np.asarray(s))


def test_offline_vit_says_random_weights(monkeypatch):
    import keras_hub

    def offline(cls, name, **kw):
        raise ConnectionError("no network")

    monkeypatch.setattr(keras_hub.models.ViTBackbone, "from_preset", classmethod(offline))
    monkeypatch.setattr(cm, "VIT_B32", dict(patch_size=32, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32))
    backbone, desc = cm.build_vit_backbone(64, verbose=False)
    assert "RANDOM weights" in desc and "ConnectionError" in desc and "2x2 patches + 1 class token = 5 tokens" in desc
    assert backbone.output_shape == (None, 5, 16)


def test_vit_features_are_the_class_token_of_grey_images_repeated_to_rgb():
    backbone = _small_vit(64)
    rng = np.random.default_rng(3)
    images = rng.random((5, 64, 64)).astype("float32")
    feats = cm.vit_features(backbone, images, batch_size=4)  # the last batch (1 image) is padded, then cut
    assert feats.shape == (5, 16)
    rgb = np.repeat(images[..., None], 3, axis=-1) * 2.0 - 1.0  # grey -> RGB, [0, 1] -> [-1, 1]
    np.testing.assert_allclose(feats, np.asarray(backbone(rgb))[:, 0, :], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["wide", "deeper", "mlp256"])
def test_branch_computes_the_standalone_model(kind):
    size = 40
    model = cm.build_branched(kind, 3, image_size=size)
    singles = [cm.build_single(kind, image_size=size) for _ in range(3)]
    assert model.count_params() == 3 * singles[0].count_params()
    for k, single in enumerate(singles):
        cm.set_branch_weights(model, k, single.get_weights())
    rng = np.random.default_rng(0)
    if kind in cm.CNN_KINDS:
        x = rng.random((5, size, size, 3)).astype("float32")
        parts = [x[..., k:k + 1] for k in range(3)]
    else:
        x = rng.normal(size=(5, 3, 768)).astype("float32")
        parts = [x[:, k] for k in range(3)]
    out = np.asarray(model(x))
    for k, single in enumerate(singles):
        np.testing.assert_allclose(out[:, k], np.asarray(single(parts[k])), rtol=1e-5, atol=1e-6)
        for a, b in zip(cm.branch_weights(model, k), single.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="weights"):
        cm.set_branch_weights(model, 0, singles[0].get_weights()[:-1])


@pytest.mark.parametrize("kind", ["linear", "wide"])
def test_branched_training_equals_independent_models(kind):
    """Two branches trained together take the same Adam steps as two models trained alone.

    The branched loss is the mean over the K = 2 branches, so each branch's gradient is its own divided by 2;
    Adam's step m / (sqrt(v) + eps) with gradient g / 2 equals the step with gradient g and epsilon 2 * eps.
    """
    import keras

    size, batch, steps = 12, 8, 3
    rng = np.random.default_rng(1)
    model = cm.compile_branched(kind, 2, image_size=size, n_features=768, seed=3)
    singles = []
    for k in range(2):
        single = cm.build_single(kind, image_size=size)
        single.set_weights(cm.branch_weights(model, k))
        loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True) if kind in cm.CNN_KINDS
                else keras.losses.BinaryCrossentropy())
        single.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=2e-7), loss=loss)
        singles.append(single)
    for _ in range(steps):
        if kind in cm.CNN_KINDS:
            x = rng.random((batch, size, size, 2)).astype("float32")
            y = rng.integers(0, 2, (batch, 2)).astype("float32")
            model.train_on_batch(x, y)
            for k in range(2):
                singles[k].train_on_batch(x[..., k:k + 1], y[:, k])
        else:
            x = rng.normal(size=(batch, 2, 768)).astype("float32")
            y = rng.integers(0, 2, (batch, 2, 1)).astype("float32")
            model.train_on_batch(x, y)
            for k in range(2):
                singles[k].train_on_batch(x[:, k], y[:, k])
    for k in range(2):
        for a, b in zip(cm.branch_weights(model, k), singles[k].get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp256", "deeper"])
def test_early_stopping_restores_each_branch_to_its_best_epoch(kind):
    k, size = 3, 40
    model = cm.compile_branched(kind, k, image_size=size, seed=1)
    stop = cm.BranchEarlyStopping(patience=1)
    stop.set_model(model)
    stop.on_train_begin()
    stop.on_epoch_end(0, {"branch_losses": np.array([0.7, 0.6, 0.5])})  # every branch improves on infinity
    best = [cm.branch_weights(model, b) for b in range(k)]
    cm.reset_branched(model, seed=9)  # new weights at epoch 2: branches 0 and 2 improve, branch 1 does not
    stop.on_epoch_end(1, {"branch_losses": np.array([0.5, 0.65, 0.4])})
    assert stop.best_epoch.tolist() == [2, 1, 2] and not model.stop_training
    expected = [cm.branch_weights(model, b) if stop.best_epoch[b] == 2 else best[b] for b in range(k)]
    stop.on_epoch_end(2, {"branch_losses": np.array([0.55, 0.9, 0.41])})  # nobody improves: patience 1 is spent
    assert model.stop_training and stop.epochs_run == 3
    cm.reset_branched(model, seed=10)
    stop.on_train_end()
    for b in range(k):
        for got, want in zip(cm.branch_weights(model, b), expected[b]):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="branch_losses"):
        stop.on_epoch_end(3, {"loss": 0.3})


@pytest.mark.parametrize("kind", ["linear", "wide"])
def test_branch_losses_are_each_branch_s_own_training_loss(kind):
    """The metric that early stopping watches is, per branch, the loss a lone model reports for the same batch."""
    import keras

    size, batch, k = 12, 8, 3
    rng = np.random.default_rng(4)
    model = cm.compile_branched(kind, k, image_size=size, seed=2)
    if kind in cm.CNN_KINDS:
        x = rng.random((batch, size, size, k)).astype("float32")
        y = rng.integers(0, 2, (batch, k)).astype("float32")
    else:
        x = rng.normal(size=(batch, k, 768)).astype("float32")
        y = rng.integers(0, 2, (batch, k, 1)).astype("float32")
    out = np.asarray(model(x))
    logs = model.train_on_batch(x, y, return_dict=True)  # the metric sees the step's forward pass, before the update
    for b in range(k):
        if kind in cm.CNN_KINDS:
            want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y[:, b], out[:, b])
        else:
            want = keras.losses.BinaryCrossentropy()(y[:, b], out[:, b])
        np.testing.assert_allclose(logs["branch_losses"][b], float(want), rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], np.mean(logs["branch_losses"]), rtol=1e-4)


def test_cross_validate_one_model_per_cytokine_fold_augmentation():
    rng = np.random.default_rng(2)
    n = 60
    labels = pd.DataFrame({"A": (rng.random(n) < 0.4).astype(int), "B": (rng.random(n) < 0.5).astype(int)})
    features = rng.normal(size=(4, n, 768)).astype("float32")
    features[:, :, :100] += labels["A"].to_numpy()[:, None]  # A is predictable from features 0-99, B is not
    sets = ck.balanced_sets(labels, seed=0, min_producers=8)
    kwargs = dict(splitter=ck.two_fold_splits, augmentations=("none", "h"), epochs=15, max_branches=3, seed=4,
                  verbose=False)
    results, predictions = cm.cross_validate("linear", features, labels, sets, **kwargs)
    assert len(results) == 2 * 2 * 2 and set(predictions) == {(c, a, f) for c in "AB" for a in ("none", "h")
                                                              for f in (0, 1)}
    for (name, aug, fold), (test, y_true, y_pred) in predictions.items():
        assert np.array_equal(y_true, labels[name].to_numpy()[test]) and len(y_pred) == len(test)
    tested = np.sort(np.concatenate([predictions[("A", "none", f)][0] for f in (0, 1)]))
    assert np.array_equal(tested, sets["A"]), "every balanced well is tested exactly once"
    pooled = cm.pooled_scores((results, predictions))
    assert pooled.set_index(["cytokine", "augmentation"]).loc[("A", "none"), "f1"] > 0.8
    again, _ = cm.cross_validate("linear", features, labels, sets, **kwargs)
    pd.testing.assert_frame_equal(results, again)


def test_a_well_of_another_bit_depth_is_named_not_upcast(tmp_path):
    """One 8-bit well among 16-bit ones would be stacked as uint16 and read 257 times too dark."""
    from cellkit.data.io import write_tiff

    root = _tiny_plate(tmp_path / "p")
    write_tiff(root / "images" / "B03.tif", np.full((64, 64), 100, np.uint8))
    with pytest.raises(DataError, match=r"mix pixel types.*uint8: B03 \(1 wells\)"):
        plate.load_plate(root, wells=TINY, n_cytokines=3)
