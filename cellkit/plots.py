"""Figures the labs share: training curves, image montages, confusion matrices, misclassified examples.

Every function returns the matplotlib ``Figure`` it draws, with labelled axes
and a title a student can quote.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_history(history, metrics=("loss", "accuracy"), title: str = "Training curves"):
    """Return a figure of each metric per epoch, training and validation side by side.

    ``history`` is a ``keras.callbacks.History`` or its ``.history`` dict.
    """
    plt = _plt()
    hist = getattr(history, "history", history)
    metrics = [m for m in metrics if m in hist]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        epochs = np.arange(1, len(hist[m]) + 1)
        ax.plot(epochs, hist[m], "o-", label="training")
        if f"val_{m}" in hist:
            ax.plot(epochs, hist[f"val_{m}"], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(m)
        ax.set_title(f"{title}: {m}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def montage(images, labels=None, *, ncols: int = 8, title: str = "Examples", cmap="gray", size: float = 1.4):
    """Return a figure showing ``images`` (an array (N, H, W[, C]) or a list of images) in a grid, titled by label.

    Long labels are wrapped to the width of their image, and each row gets the height its titles
    need, so that a title never runs into its neighbour or into the images above it.
    """
    import textwrap

    plt = _plt()
    images = [np.asarray(im) for im in images]  # a list may mix grey and colour images
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    width = max(8, int(size * 14))  # characters of an 8-point title that fit over one image
    titles = ["\n".join(textwrap.wrap(str(labels[i]), width) or [""]) for i in range(n)] if labels is not None else []
    lines = max((t.count("\n") + 1 for t in titles), default=0)
    row_height = size + 0.16 * lines
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, row_height * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            im = images[i]
            if im.ndim == 3 and im.shape[-1] == 1:
                im = im[..., 0]
            ax.imshow(im, cmap=cmap if im.ndim == 2 else None)
            if titles:
                ax.set_title(titles[i], fontsize=8)
    fig.suptitle(title)
    return fig


def plot_confusion(y_true, y_pred, class_names=None, *, normalize: bool = True, title: str = "Confusion matrix"):
    """Return a figure of the confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    labels = np.arange(len(class_names)) if class_names is not None else None
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    k = cm.shape[0]
    names = class_names if class_names is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else f"{cm[i, j]}", ha="center", va="center",
                    fontsize=7, color="white" if shown[i, j] > (0.5 if normalize else shown.max() / 2) else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title + (" (fraction of each true class)" if normalize else " (counts)"))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def show_misclassified(images, y_true, y_pred, class_names=None, *, n: int = 16, title: str = "Misclassified"):
    """Return a montage of up to ``n`` misclassified images titled 'true -> predicted'."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    name = (lambda i: class_names[i]) if class_names is not None else str
    labels = [f"{name(y_true[i])}\n-> {name(y_pred[i])}" for i in wrong]
    return montage(np.asarray(images)[wrong], labels, title=f"{title}: {len(np.flatnonzero(y_true != y_pred))} "
                   f"of {len(y_true)} wrong (true -> predicted)")
