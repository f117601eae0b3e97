"""Clustering cell-image representations: background masks, splits by sample, UMAP, Gaussian mixtures, scores.

The reference implementations of lab 06 (Deep InfoMax on BBBC018):

* :func:`foreground_mask` - a two-class Gaussian mixture on each image's
  log-intensity separates cells from background (used for training only);
* :func:`split_by_sample` - every field of a sample goes to the same side, so
  that held-out scores measure generalisation to unseen samples;
* :func:`window_features` - hand-made intensity and density features of each
  sliding window (what the original report suspected its encoder lost);
* :func:`umap_embed`, :func:`gmm_cluster`, :func:`clustering_scores`,
  :func:`pair_separation` - UMAP, a Gaussian mixture and ARI / NMI;
* :func:`field_means`, :func:`cluster_fields` - the same question one level up:
  one representation per field of view (the mean over its windows), clustered.

UMAP runs on numba: its first call in a process compiles for 10-20 seconds on a
laptop CPU, later calls take well under a second for a few thousand points.
"""

from __future__ import annotations

import numpy as np


def foreground_mask(image, *, seed: int = 0, n_pixels: int = 2000) -> np.ndarray:
    """Return a boolean (H, W) foreground mask of a (C, H, W) image from a two-class Gaussian mixture.

    The channels are summed, log-transformed (``log(1e-4 + x)``, so that dim
    cells and bright cells both stand apart from the background), and a
    two-component Gaussian mixture is fitted to ``n_pixels`` random pixels; the
    component with the higher mean is foreground.  A coarse mask, as in the original.
    """
    from sklearn.mixture import GaussianMixture

    image = np.asarray(image, np.float64)
    if image.ndim != 3:
        raise ValueError(f"image: shape {image.shape}, expected (channels, H, W)")
    signal = np.log(1e-4 + np.clip(image.sum(axis=0), 0, None))
    values = signal.reshape(-1, 1)
    g = np.random.default_rng(seed)
    fit_on = values[g.choice(len(values), min(n_pixels, len(values)), replace=False)]
    gmm = GaussianMixture(2, random_state=seed).fit(fit_on)
    labels = gmm.predict(values)
    return (labels == int(np.argmax(gmm.means_[:, 0]))).reshape(signal.shape)


def foreground_masks(images, *, seed: int = 0) -> np.ndarray:
    """Return foreground masks (S, F, H, W) of every field of ``images`` (S, F, C, H, W), one mixture per image."""
    images = np.asarray(images)
    if images.ndim != 5:
        raise ValueError(f"images: shape {images.shape}, expected (samples, fields, channels, H, W)")
    s, f = images.shape[:2]
    return np.stack([[foreground_mask(images[i, j], seed=seed) for j in range(f)] for i in range(s)])


def split_by_sample(samples, *, n_train: int = 10, seed: int = 0) -> tuple[list, list]:
    """Return ``(train samples, test samples)``, each sorted: a random split of whole samples.

    Every field of view of a sample lands on the same side, so the test samples
    (and their morphologies) are never seen in training.
    """
    samples = list(samples)
    if len(set(samples)) != len(samples):
        raise ValueError("samples: expected distinct sample ids, found duplicates")
    if not 1 <= n_train < len(samples):
        raise ValueError(f"n_train={n_train}: expected between 1 and {len(samples) - 1} for {len(samples)} samples")
    order = np.random.default_rng(seed).permutation(len(samples))
    train = sorted(samples[i] for i in order[:n_train])
    test = sorted(samples[i] for i in order[n_train:])
    return train, test


def window_features(images, masks, *, size: int, stride: int) -> np.ndarray:
    """Return intensity and density features of every sliding window: shape (S, F, windows, 2 * C + 2).

    Per window: the mean of each channel over the whole window (how much stain),
    the mean of each channel over its foreground pixels (how bright the cells
    are), the foreground fraction and the number of separate foreground objects
    per 1,000 pixels (how crowded).  Windows are taken as in
    :func:`cellkit.infomax.sliding_windows`.
    """
    from scipy import ndimage

    from cellkit.infomax import sliding_windows

    images, masks = np.asarray(images, np.float32), np.asarray(masks, bool)
    if images.ndim != 5 or masks.shape != images.shape[:2] + images.shape[3:]:
        raise ValueError(f"images {images.shape} and masks {masks.shape}: expected (S, F, C, H, W) and (S, F, H, W)")
    s, f, c = images.shape[:3]
    out = []
    for i in range(s):
        for j in range(f):
            win, _ = sliding_windows(images[i, j], size, stride)
            mwin, _ = sliding_windows(masks[i, j][None].astype(np.float32), size, stride)
            mwin = mwin[:, 0] > 0.5
            area = mwin.sum(axis=(1, 2))
            mean_all = win.mean(axis=(2, 3))
            mean_fg = (win * mwin[:, None]).sum(axis=(2, 3)) / np.maximum(area, 1)[:, None]
            objects = np.array([ndimage.label(m)[1] for m in mwin], np.float32) / (size * size) * 1000
            out.append(np.column_stack([mean_all, mean_fg, area / (size * size), objects]))
    return np.stack(out).reshape(s, f, out[0].shape[0], -1).astype(np.float32)


def standardize(features) -> np.ndarray:
    """Return ``features`` (n, d) with each column shifted to mean 0 and scaled to standard deviation 1."""
    features = np.asarray(features, np.float64)
    sd = features.std(axis=0)
    return ((features - features.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def combine_blocks(*blocks) -> np.ndarray:
    """Return feature blocks (each (n, d_k)) side by side, each standardised and scaled by ``1 / sqrt(d_k)``.

    Without the scaling a 64-dimensional learned code would outweigh an
    8-dimensional block of hand-made features eight to one in every distance.
    """
    if not blocks:
        raise ValueError("blocks: expected at least one (n, d) array")
    n = len(blocks[0])
    if any(np.ndim(b) != 2 or len(b) != n for b in blocks):
        raise ValueError(f"blocks: shapes {[np.shape(b) for b in blocks]}, expected 2-D arrays with the same rows")
    return np.concatenate([standardize(b) / np.sqrt(np.shape(b)[1]) for b in blocks], axis=1)


def umap_embed(features, *, seed: int = 0, n_components: int = 2, n_neighbors: int = 15, n_epochs: int | None = None,
               min_dist: float = 0.1) -> np.ndarray:
    """Return the UMAP embedding (n, n_components) of ``features`` (n, d), deterministic for a seed.

    Pass features on comparable scales (:func:`standardize`, :func:`combine_blocks`).

    ``n_epochs`` (default: UMAP's choice, 200 for large data and 500 for small)
    trades quality for time.  A fixed ``random_state`` makes UMAP single-threaded,
    the price of repeatable numbers.
    """
    import warnings

    import umap

    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) <= n_neighbors:
        raise ValueError(f"features: shape {features.shape}, expected (n, d) with n > n_neighbors={n_neighbors}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, n_epochs=n_epochs,
                            min_dist=min_dist, random_state=seed)
        return reducer.fit_transform(features)


def gmm_cluster(points, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """Return the cluster label (n,) of each point from a Gaussian mixture with ``n_clusters`` full-covariance components."""
    from sklearn.mixture import GaussianMixture

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or len(points) < n_clusters:
        raise ValueError(f"points: shape {points.shape}, expected (n, d) with n >= n_clusters={n_clusters}")
    return GaussianMixture(n_clusters, n_init=3, random_state=seed).fit_predict(points)


def clustering_scores(labels_true, labels_pred) -> dict:
    """Return ``{"ari": adjusted Rand index, "nmi": normalised mutual information}`` of a clustering.

    Both compare a partition with the truth regardless of how clusters are
    numbered: 1 is perfect agreement, ARI is about 0 for a random partition (it
    is adjusted for chance), NMI is 0 for independent partitions.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels_true, labels_pred = np.asarray(labels_true).ravel(), np.asarray(labels_pred).ravel()
    if labels_true.shape != labels_pred.shape:
        raise ValueError(f"labels_true {labels_true.shape} and labels_pred {labels_pred.shape}: expected equal lengths")
    return {"ari": float(adjusted_rand_score(labels_true, labels_pred)),
            "nmi": float(normalized_mutual_info_score(labels_true, labels_pred))}


def pair_separation(features, labels, pair, *, seed: int = 0) -> float:
    """Return the ARI of a two-component Gaussian mixture on the windows of the two samples in ``pair``.

    The mixture sees only the representations (pass them standardised, see
    :func:`combine_blocks`; reduced to their first two principal components) of the windows labelled ``pair[0]`` or ``pair[1]``;
    1 means the pair separates perfectly, about 0 means not at all.
    """
    from sklearn.decomposition import PCA

    features, labels = np.asarray(features, np.float32), np.asarray(labels)
    keep = np.isin(labels, pair)
    if not all(np.any(labels == p) for p in pair):
        raise ValueError(f"pair={pair!r}: expected both labels among the windows' labels")
    points = PCA(2, random_state=seed).fit_transform(features[keep])
    return clustering_scores(labels[keep], gmm_cluster(points, 2, seed=seed))["ari"]


def field_means(codes, keep=None) -> np.ndarray:
    """Return one representation per field: the mean of its windows' codes, shape (S, F, d).

    Parameters
    ----------
    codes : array (S, F, windows, d)
        A representation of every sliding window of every field.
    keep : bool array (S, F, windows), optional
        Windows to average (e.g. those with cells); a field with no kept window
        averages all of its windows.
    """
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 4:
        raise ValueError(f"codes: shape {codes.shape}, expected (samples, fields, windows, d)")
    keep = np.ones(codes.shape[:3], bool) if keep is None else np.asarray(keep, bool)
    if keep.shape != codes.shape[:3]:
        raise ValueError(f"keep: shape {keep.shape}, expected {codes.shape[:3]} (one flag per window)")
    keep = np.where(keep.any(axis=2, keepdims=True), keep, True)
    weights = keep[..., None].astype(np.float64)
    return ((codes * weights).sum(axis=2) / weights.sum(axis=2)).astype(np.float32)


def cluster_fields(points, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """Return the cluster label of each field: standardise, PCA to ``n_clusters - 1`` dimensions, Gaussian mixture.

    Fields are few (4 per sample), too few to estimate one covariance matrix
    per component, so the components share one (``covariance_type="tied"``:
    the field-to-field spread of a sample, estimated from all fields) and the
    mixture is fitted (10 restarts) on the first ``n_clusters - 1`` principal
    components, the most that ``n_clusters`` group centres span.
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or len(points) < 2 * n_clusters or n_clusters < 2:
        raise ValueError(f"points: shape {points.shape}, expected (n, d) with n >= 2 x n_clusters={n_clusters} >= 4")
    z = standardize(points).astype(np.float64)
    z = PCA(min(n_clusters - 1, z.shape[1]), random_state=seed).fit_transform(z)
    return GaussianMixture(n_clusters, covariance_type="tied", n_init=10, reg_covar=1e-4,
                           random_state=seed).fit_predict(z)
