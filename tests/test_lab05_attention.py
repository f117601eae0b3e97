"""Lab 05: video readers, synthetic migration videos, attention layers and losses, importance, event scoring."""

import csv

import numpy as np
import pytest

from cellkit import attention as att
from cellkit import events as ev
from cellkit.data import io, migration
from cellkit.errors import DataError


# ---------------------------------------------------------------- readers

def _write_frames(folder, names, shape=(20, 24), dtype=np.uint16, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    frames = {}
    for name in names:
        frames[name] = g.integers(0, top, size=shape, dtype=dtype)
        io.write_tiff(folder / name, frames[name])
    return frames


def test_time_index_parses_ctc_and_usiigaci_names():
    assert migration.time_index("t000.tif") == 0
    assert migration.time_index("/x/01/t117.tif") == 117
    assert migration.time_index("20180101ef002xy01t07.tif") == 7
    with pytest.raises(DataError, match="time index"):
        migration.time_index("frame_final.tif")


def test_frames_are_sorted_naturally(tmp_path):
    names = [f"20180101ef002xy01t{i}.tif" for i in (10, 2, 1, 33)]
    frames = _write_frames(tmp_path / "v", names, dtype=np.uint8)
    got = migration.read_frames(tmp_path / "v")
    order = sorted(names, key=migration.time_index)
    assert [p.name for p in migration.list_frames(tmp_path / "v")] == order
    np.testing.assert_array_equal(got, np.stack([frames[n] for n in order]))
    assert got.dtype == np.uint8


def test_reader_errors_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frames"):
        migration.read_frames(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        migration.read_frames(tmp_path / "missing")
    _write_frames(tmp_path / "mixed", ["t000.tif"], shape=(20, 24))
    _write_frames(tmp_path / "mixed", ["t001.tif"], shape=(22, 24))
    with pytest.raises(DataError, match="t001.tif.*frame size"):
        migration.read_frames(tmp_path / "mixed")
    _write_frames(tmp_path / "badname", ["t000.tif", "last.tif"])
    with pytest.raises(DataError, match="last.tif"):
        migration.read_frames(tmp_path / "badname")
    (tmp_path / "float").mkdir()
    io.write_tiff(tmp_path / "float" / "t000.tif", np.zeros((8, 8), np.float32))
    with pytest.raises(DataError, match="float32.*uint8 or uint16"):
        migration.read_frames(tmp_path / "float")
    _write_frames(tmp_path / "dup", ["t1.tif", "t001.tif"])
    with pytest.raises(DataError, match="same time index"):
        migration.read_frames(tmp_path / "dup")


def test_stack_reader_and_fit_frames(tmp_path):
    g = np.random.default_rng(1)
    stack = g.integers(0, 65535, size=(5, 30, 40), dtype=np.uint16)
    io.write_tiff(tmp_path / "movie.tif", stack)
    got = migration.read_frames(tmp_path / "movie.tif")
    np.testing.assert_array_equal(got, stack)
    fitted = migration.fit_frames(got, 16)
    assert fitted.shape == (5, 16, 16) and fitted.dtype == np.float32
    assert fitted.min() >= 0 and fitted.max() <= 1
    cropped = migration.fit_frames(got, 16, mode="crop")
    assert cropped.shape == (5, 16, 16)
    with pytest.raises(ValueError, match="mode='crop'"):
        migration.fit_frames(got, 64, mode="crop")
    with pytest.raises(ValueError, match="dtype"):
        migration.fit_frames(got.astype(np.float32), 16)


def test_make_sequences_windows():
    video = np.arange(10 * 4 * 4, dtype=np.float32).reshape(10, 4, 4)
    seqs, starts = migration.make_sequences(video, 4, stride=3)
    assert seqs.shape == (3, 4, 4, 4, 1)
    np.testing.assert_array_equal(starts, [0, 3, 6])
    np.testing.assert_array_equal(seqs[1, :, ..., 0], video[3:7])
    with pytest.raises(ValueError, match="length"):
        migration.make_sequences(video, 11)


# ---------------------------------------------------------------- synthetic generator

def test_synthetic_layout_events_and_determinism(tmp_path):
    migration.make_synthetic(tmp_path / "a", fast=True, seed=7)
    migration.make_synthetic(tmp_path / "b", fast=True, seed=7)
    migration.make_synthetic(tmp_path / "c", fast=True, seed=8)
    videos = migration.list_videos(tmp_path / "a")
    assert [v.name for v in videos] == ["01", "02", "03", "04"]
    first = migration.read_frames(videos[0])
    assert first.dtype == np.uint16 and first.shape == (40, 64, 64)
    assert (videos[0] / "t000.tif").is_file() and (videos[0] / "t039.tif").is_file()
    np.testing.assert_array_equal(first, migration.read_frames(tmp_path / "b" / "01"))
    assert not np.array_equal(first, migration.read_frames(tmp_path / "c" / "01"))
    events = migration.read_events(tmp_path / "a")
    assert events == migration.read_events(tmp_path / "b")
    for v in ("01", "02", "03", "04"):
        kinds = sorted(e["event"] for e in events if e["video"] == v)
        assert kinds == sorted(migration.EVENT_TYPES), f"video {v}: every event type once, got {kinds}"
        frames = sorted(e["frame"] for e in events if e["video"] == v)
        first, last = migration.scored_frames(40)
        assert min(np.diff(frames)) >= 5 and first <= frames[0] and frames[-1] <= last
    with open(tmp_path / "a" / "ground_truth.csv") as fh:
        assert next(csv.reader(fh)) == ["video", "frame", "event", "cell"]


def test_synthetic_events_are_visible(tmp_path):
    """A planted division or entry adds a cell: the bright area grows at the event frame."""
    migration.make_synthetic(tmp_path, fast=True, seed=3)
    videos = migration.load_videos(tmp_path, 64)
    for e in migration.read_events(tmp_path):
        if e["event"] == "entry":
            v = videos[e["video"]]
            diff = np.abs(np.diff(v, axis=0)).mean(axis=(1, 2))
            assert diff[e["frame"] - 1] > np.median(diff), "a cell entering the field changes the frame"


def test_events_are_uniform_over_the_scored_frames():
    """Where a frame sits must tell nothing about events: each frame of 1 .. T-2 is drawn equally often."""
    from scipy import stats

    g = np.random.default_rng(0)
    counts = np.zeros(40, int)
    for _ in range(3000):
        plan = migration._plan_events(40, g, gap=5)
        frames = [f for f, _ in plan]
        assert min(np.diff(frames)) >= 5
        np.add.at(counts, frames, 1)
    first, last = migration.scored_frames(40)
    assert counts[:first].sum() == 0 and counts[last + 1:].sum() == 0
    inside = counts[first:last + 1]
    assert stats.chisquare(inside).pvalue > 0.001, f"event frames not uniform: {inside.tolist()}"
    # the ends are not favoured (redrawing until events are spaced would give them about 1.7x)
    assert inside[:3].mean() / inside.mean() < 1.15 and inside[-3:].mean() / inside.mean() < 1.15


def test_event_strength_is_validated(tmp_path):
    with pytest.raises(ValueError, match="strength=0"):
        migration.make_synthetic(tmp_path, fast=True, seed=0, strength=0)


def test_area_resize_is_a_block_mean_and_fit_frames_uses_it():
    g = np.random.default_rng(2)
    image = g.random((64, 64)).astype(np.float32)
    expected = image.reshape(16, 4, 16, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(migration.area_resize(image, 16), expected, atol=1e-5)
    frames = (g.random((2, 64, 64)) * 60000).astype(np.uint16)
    fitted = migration.fit_frames(frames, 16, percentiles=(0, 100))
    block = frames.astype(np.float64).reshape(2, 16, 4, 16, 4).mean(axis=(2, 4))
    block = (block - block.min()) / (block.max() - block.min())  # contrast stretch after the resize
    np.testing.assert_allclose(fitted, block, atol=1e-4)


def test_colour_frames_need_a_named_channel(tmp_path):
    g = np.random.default_rng(3)
    rgb = g.integers(0, 255, size=(12, 10, 3), dtype=np.uint8)
    (tmp_path / "v").mkdir()
    io.write_tiff(tmp_path / "v" / "t000.tif", rgb)
    io.write_tiff(tmp_path / "v" / "t001.tif", rgb[::-1].copy())
    with pytest.raises(DataError, match="t000.tif.*channel='red'"):
        migration.read_frames(tmp_path / "v")
    got = migration.read_frames(tmp_path / "v", channel="green")
    np.testing.assert_array_equal(got[0], rgb[..., 1])
    with pytest.raises(ValueError, match="channel='alpha'"):
        migration.read_frames(tmp_path / "v", channel="alpha")


def test_mask_and_label_stacks_are_not_videos(tmp_path):
    g = np.random.default_rng(4)
    io.write_tiff(tmp_path / "movie.tif", g.integers(0, 255, size=(4, 8, 8), dtype=np.uint8))
    io.write_tiff(tmp_path / "movie_masks.tif", g.integers(0, 3, size=(4, 8, 8), dtype=np.uint8))
    io.write_tiff(tmp_path / "labels.tif", g.integers(0, 3, size=(4, 8, 8), dtype=np.uint16))
    _write_frames(tmp_path / "02", ["t000.tif", "t001.tif", "t001_mask.tif"])
    _write_frames(tmp_path / "02_labels", ["t000.tif"])
    assert [p.name for p in migration.list_videos(tmp_path)] == ["02", "movie.tif"]
    assert [p.name for p in migration.list_frames(tmp_path / "02")] == ["t000.tif", "t001.tif"]


def test_ctc_layout_skips_annotation_folders(tmp_path):
    _write_frames(tmp_path / "01", ["t000.tif", "t001.tif"])
    _write_frames(tmp_path / "01_GT" / "TRA", ["man_track000.tif"])
    _write_frames(tmp_path / "01_ST", ["man_seg000.tif"])
    assert [p.name for p in migration.list_videos(tmp_path)] == ["01"]


def test_registry_entries_and_synthetic_source(monkeypatch):
    from cellkit.data import dataset_path, get_dataset

    ctc = get_dataset("ctc_2d_training")
    assert ctc.source["kind"] == "archive" and ctc.source["url"].endswith("PhC-C2DH-U373.zip")
    usi = get_dataset("usiigaci_t98g")
    assert len(usi.files) == 37 and usi.files[0].path == "T98G_sample/20180101ef002xy01t01.tif"
    assert all(migration.time_index(f.path) == i + 1 for i, f in enumerate(usi.files))
    assert all(f.bytes and len(f.sha256 or "") == 64 for f in usi.files), "every T98G frame is pinned"
    assert "Cell Tracking" not in usi.title and usi.licence == "MIT"
    assert usi.source["base_url"].split("/")[-2] == "9501d80c747cf82870dd596818fcf5c28c94d733"
    folder = dataset_path("ctc_2d_training", verbose=False)
    assert (folder / "ground_truth.csv").is_file() and (folder / "01" / "t000.tif").is_file()


# ---------------------------------------------------------------- attention

def _np(x):
    from keras import ops

    return ops.convert_to_numpy(x)


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_dot_attention_matches_numpy_and_masks():
    g = np.random.default_rng(0)
    q, h = g.normal(size=(3, 6)).astype("float32"), g.normal(size=(3, 5, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 1]], bool)
    c, w = att.DotAttention()(q, h, mask=mask)
    s = np.einsum("btd,bd->bt", h, q) / np.sqrt(6)
    s = np.where(mask, s, -np.inf)
    ref = _softmax(s)
    np.testing.assert_allclose(_np(w), ref, atol=1e-6)
    np.testing.assert_allclose(_np(c), np.einsum("bt,btd->bd", ref, h), atol=1e-5)
    np.testing.assert_allclose(_np(w)[2], [0, 0, 0, 0, 1], atol=1e-7)


@pytest.mark.parametrize("layer", [att.ConcatAttention(units=4), att.LocationAttention(), att.DotAttention(scale=False)])
def test_attention_layers_rows_sum_to_one_and_serialise(layer):
    import keras

    g = np.random.default_rng(1)
    q, h = g.normal(size=(2, 8)).astype("float32"), g.normal(size=(2, 7, 8)).astype("float32")
    mask = np.ones((2, 7), bool)
    mask[1, 3:] = False
    c, w = layer(q, h, mask=mask)
    assert _np(c).shape == (2, 8) and _np(w).shape == (2, 7)
    np.testing.assert_allclose(_np(w).sum(axis=1), 1, atol=1e-6)
    assert np.all(_np(w)[1, 3:] == 0)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object(f"cellkit>{type(layer).__name__}") is type(layer)


def test_all_masked_row_is_uniform_not_nan():
    w = _np(att.masked_softmax(np.zeros((1, 4), "float32"), np.zeros((1, 4), bool)))
    np.testing.assert_allclose(w, 0.25)


def test_location_attention_ignores_content():
    g = np.random.default_rng(2)
    layer = att.LocationAttention()
    q = g.normal(size=(1, 8)).astype("float32")
    _, w1 = layer(q, g.normal(size=(1, 5, 8)).astype("float32"))
    _, w2 = layer(q, g.normal(size=(1, 5, 8)).astype("float32"))
    np.testing.assert_allclose(_np(w1), _np(w2), atol=1e-7)


def test_kl_to_uniform_against_numpy():
    g = np.random.default_rng(3)
    w = g.dirichlet(np.ones(6), size=4).astype("float32")
    ref = np.sum(w * np.log(w * 6), axis=1)
    np.testing.assert_allclose(_np(att.kl_to_uniform(w)), ref, atol=1e-5)
    np.testing.assert_allclose(_np(att.kl_to_uniform(np.full((1, 6), 1 / 6, "float32"))), 0, atol=1e-6)
    np.testing.assert_allclose(_np(att.kl_to_uniform(np.eye(6, dtype="float32")[:1])), np.log(6), atol=1e-5)
    mask = np.array([[1, 1, 1, 0, 0, 0]], bool)
    np.testing.assert_allclose(_np(att.kl_to_uniform(np.array([[1 / 3] * 3 + [0] * 3], "float32"), mask)), 0,
                               atol=1e-6)
    assert float(_np(att.kl_to_uniform_loss(None, w))) == pytest.approx(ref.mean(), abs=1e-5)


def test_importance_and_frame_importance():
    w = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    np.testing.assert_allclose(att.importance(w), np.log(w / w.min(axis=1, keepdims=True)))
    np.testing.assert_allclose(att.importance(w, base=2)[0], [0, 1, np.log2(7)])
    with pytest.raises(ValueError, match="non-negative"):
        att.importance(np.array([[0.5, 0.6, -0.1]]))
    with pytest.raises(ValueError, match="floor"):
        att.importance(w, floor=0)
    curve = att.frame_importance(np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([0, 1]), 4)
    np.testing.assert_allclose(curve[:3], [1.0, 2.5, 5.0])
    assert np.isnan(curve[3])


def test_importance_survives_float32_underflow():
    """A float32 softmax of peaked scores has exact zeros: importance stays finite and ranks the frames."""
    import keras

    scores = np.array([[0.0, 120.0, 10.0, 0.0]], "float32")
    w = keras.ops.convert_to_numpy(keras.ops.softmax(scores, axis=-1))
    assert (w == 0).any()  # the underflow this guards against
    got = att.importance(w)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[0, [0, 3]], 0.0)
    assert got[0, 1] == pytest.approx(np.log(1 / 1e-9), abs=1e-6)
    assert got[0, 1] > got[0, 2] >= 0


def test_attention_variance_and_correlations():
    v = att.attention_variance(np.array([0, 0, 0, 3, 0, 0.0]), window=3)
    assert v[0] == 0 and v[3] == pytest.approx(2.0) and v[2] == pytest.approx(2.0)
    x = np.random.default_rng(4).normal(size=30)
    names, m = att.curve_correlations({"a": x, "b": 2 * x + 1, "c": -x}, method="pearson")
    assert names == ["a", "b", "c"]
    np.testing.assert_allclose(m, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-9)


# ---------------------------------------------------------------- events

def test_roc_auc_and_precision_match_sklearn():
    from sklearn.metrics import roc_auc_score

    g = np.random.default_rng(5)
    s = np.round(g.normal(size=80), 1)  # ties on purpose
    y = g.random(80) < 0.3
    assert ev.roc_auc(s, y) == pytest.approx(roc_auc_score(y, s))
    order = np.argsort(-s, kind="stable")
    assert ev.precision_at_k(s, y, 10) == pytest.approx(y[order[:10]].mean())
    assert np.isnan(ev.roc_auc(s, np.zeros(80, bool)))
    with pytest.raises(ValueError, match="k="):
        ev.precision_at_k(s, y, 0)


def test_event_labels_and_evaluate_perfect_score():
    events = [dict(video="01", frame=5, event="turn"), dict(video="01", frame=12, event="entry"),
              dict(video="02", frame=3, event="turn")]
    lab = ev.event_labels(events, "01", 15, tolerance=1)
    assert np.flatnonzero(lab).tolist() == [4, 5, 6, 11, 12, 13]
    assert np.flatnonzero(ev.event_labels(events, "01", 15, tolerance=0, event="entry")).tolist() == [12]
    perfect = {v: ev.event_labels(events, v, 15).astype(float) for v in ("01", "02")}
    table = ev.evaluate({"oracle": perfect}, events, tolerance=1)
    assert set(table["event"]) == {"any", "turn", "entry"}
    row = table[table.event == "any"].iloc[0]
    assert row.auc == 1.0 and row.precision_at_k == 1.0 and row.event_frames == 9
    d = ev.frame_difference(np.array([[0.0], [1.0], [1.0]]))
    assert np.isnan(d[0]) and d[1:].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------- models

def test_group_norm_does_not_leak_but_batch_norm_does():
    from cellkit import video

    frames = np.random.default_rng(6).random((6, 16, 16, 1)).astype("float32")
    gn = video.normalisation_leak(video.frame_encoder(16, filters=(4, 8), features=8, norm="group"), frames)
    bn = video.normalisation_leak(video.frame_encoder(16, filters=(4, 8), features=8, norm="batch"), frames)
    assert gn["future_leak"] < 1e-5 and gn["train_vs_inference"] < 1e-5
    assert bn["future_leak"] > 0.05 and bn["train_vs_inference"] > 0.05


def test_attention_lstm_and_transformer_shapes():
    from cellkit import video

    x = np.random.default_rng(7).random((2, 4, 16, 16, 1)).astype("float32")
    lstm = video.attention_lstm(4, 16, attention="concat", features=8, units=8, filters=(4, 8))
    out = video.predict(lstm, x)
    assert out["frame"].shape == (2, 16, 16, 1) and out["attention"].shape == (2, 4)
    np.testing.assert_allclose(out["attention"].sum(axis=1), 1, atol=1e-5)
    # output="change": the untrained network copies the last input frame exactly (its change paths start at 0)
    np.testing.assert_allclose(out["frame"], x[:, -1], atol=1e-6)
    whole = video.predict(video.attention_lstm(4, 16, features=8, units=8, filters=(4, 8), output="frame"), x)
    assert whole["frame"].min() >= 0 and whole["frame"].max() <= 1
    with pytest.raises(ValueError, match="output="):
        video.attention_lstm(4, 16, output="pixels")
    tr = video.conv_transformer(4, 16, d_model=8, heads=2, filters=(4, 8))
    out = video.predict(tr, x)
    assert out["frames"].shape == (2, 4, 16, 16, 1) and out["attention"].shape == (2, 4)
    np.testing.assert_allclose(out["attention"].sum(axis=1), 1, atol=1e-5)
    # causal mask: changing the last input frame leaves the predictions of earlier positions unchanged
    y = x.copy()
    y[:, -1] = 0
    np.testing.assert_allclose(video.predict(tr, y)["frames"][:, :-1], out["frames"][:, :-1], atol=1e-5)
    np.testing.assert_allclose(out["frames"], x, atol=1e-6)  # untrained: every next frame = the current one
    assert video.rollout(tr, x[0], 2).shape == (2, 16, 16, 1)
    with pytest.raises(ValueError, match="attention="):
        video.attention_lstm(4, 16, attention="bahdanau")
    with pytest.raises(ValueError, match="frame_size"):
        video.frame_encoder(30)


# ---------------------------------------------------------------- nulls and intervals

def test_position_prior_and_bootstrap_interval():
    np.testing.assert_array_equal(ev.position_prior(5, "index"), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ev.position_prior(5, "centre"), [-2, -1, 0, -1, -2])
    with pytest.raises(ValueError, match="kind="):
        ev.position_prior(5, "edge")
    g = np.random.default_rng(8)
    events = [dict(video=f"{v:02d}", frame=int(f), event="turn") for v in range(6) for f in (5, 15, 25)]
    truth = {f"{v:02d}": ev.event_labels(events, f"{v:02d}", 30).astype(float) for v in range(6)}
    good = {v: y + g.normal(0, 0.3, 30) for v, y in truth.items()}
    noise = {v: g.normal(size=30) for v in truth}
    auc, lo, hi = ev.bootstrap_auc(good, events, n_boot=300, seed=1)
    assert auc == pytest.approx(ev.roc_auc(np.concatenate(list(good.values())), np.concatenate(list(truth.values()))))
    assert lo <= auc <= hi and lo > 0.8
    a0, lo0, hi0 = ev.bootstrap_auc(noise, events, n_boot=300, seed=1)
    assert lo0 < 0.5 + 0.2 and hi0 > a0 > lo0 and hi0 < lo + 0.2
    assert ev.bootstrap_auc(good, events, n_boot=300, seed=1) == (auc, lo, hi)  # seeded


# ---------------------------------------------------------------- the notebook on a real layout without events

@pytest.mark.notebook
def test_notebook_runs_on_event_free_real_layout(repo_root, tmp_path):
    """CELLKIT_SOURCE=real on one Usiigaci-style video folder with no ground_truth.csv runs end to end."""
    from cellkit.runner import execute_notebook

    data = tmp_path / "data"
    src = tmp_path / "synthetic"
    migration.make_synthetic(src, fast=True, seed=11)
    video = data / "ctc_2d_training" / "T98G_sample"
    video.mkdir(parents=True)
    for t, frame in enumerate(migration.read_frames(src / "01")[:37], start=1):
        io.write_tiff(video / f"20180101ef002xy01t{t:02d}.tif", np.pad(frame, ((0, 2), (0, 0)), mode="edge"))
    assert not migration.has_events(data / "ctc_2d_training")
    env = {"CELLKIT_FAST": "1", "CELLKIT_SOURCE": "real", "CELLKIT_VIDEOS": "ctc_2d_training",
           "CELLKIT_DATA_DIR": str(data)}
    out = tmp_path / "05_attention.ipynb"
    ok, seconds, error = execute_notebook(repo_root / "solutions" / "05_attention" / "05_attention.ipynb", out,
                                          env=env, timeout=600)
    assert ok, f"lab 05 failed on an event-free real-layout folder after {seconds:.0f} s: {error}"
    text = out.read_text()
    assert "REAL ctc_2d_training" in text and "No ground_truth.csv here" in text
    assert "nothing to score against" in text
