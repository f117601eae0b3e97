"""Grad-CAM maps, per-channel overlays and the channel attention of Sharma and Krishnamurthi (lab 04).

Grad-CAM (Selvaraju et al. 2017) explains the score ``y^c`` of class ``c`` (before
the softmax) with the feature maps ``A^k`` of a convolutional layer:

    alpha_k^c = (1 / Z) sum_ij d y^c / d A_ij^k      (gradients averaged over the map)
    L^c = ReLU(sum_k alpha_k^c A^k)                   (weighted sum, keep positive evidence)

For six-channel images the lab follows the seed paper's *channel attention*:
the distance between the (upsampled) CAM and each input channel,
``Attention_i = || L_CAM - Image_i ||_2``, max-normalised over the channels.
Gradients come from :mod:`cellkit.gradients`, so this module has no backend code.
"""

from __future__ import annotations

import numpy as np

from cellkit.gradients import value_and_gradients


def grad_cam_from(activations, gradients) -> np.ndarray:
    """Return Grad-CAM maps (B, h, w) from feature maps and the class score's gradients, both (B, h, w, K).

    The reference of the lab's task: channel weights are the spatial means of the
    gradients, the map is the ReLU of the weighted sum of the feature maps.
    """
    a, g = np.asarray(activations, np.float64), np.asarray(gradients, np.float64)
    if a.shape != g.shape or a.ndim != 4:
        raise ValueError(f"activations, gradients: shapes {a.shape} and {g.shape}, expected two equal (B, h, w, K)")
    weights = g.mean(axis=(1, 2))
    return np.maximum(np.einsum("bhwk,bk->bhw", a, weights), 0.0).astype(np.float32)


def grad_cam(features_fn, score_fn, inputs, class_index, *, combine=grad_cam_from):
    """Return Grad-CAM maps (B, h, w) for class ``class_index`` (one for all samples, or one per sample).

    Parameters
    ----------
    features_fn : callable
        Maps ``inputs`` to the explained feature maps (B, h, w, K) (e.g. a backbone).
    score_fn : callable
        Maps feature maps to class scores (B, num_classes), before any softmax.
    inputs : array
    class_index : int or array of int
    combine : callable
        ``combine(activations, gradients) -> maps``; the lab passes the student's function.
    """
    activations = np.asarray(features_fn(inputs))
    n = activations.shape[0]
    classes = np.broadcast_to(np.asarray(class_index), (n,)).astype(np.int64)
    mask = np.eye(int(np.max(classes)) + 1, dtype=np.float32)[classes]

    def class_score(a):
        import keras

        scores = score_fn(a)
        k = keras.ops.shape(scores)[-1]
        if mask.shape[1] > k:
            raise ValueError(f"class_index: {int(np.max(classes))} is out of range for {k} classes")
        pad = np.zeros((n, k), np.float32)
        pad[:, :mask.shape[1]] = mask
        return keras.ops.sum(scores * keras.ops.cast(pad, scores.dtype), axis=-1)

    _, gradients = value_and_gradients(class_score, activations)
    return np.asarray(combine(activations, gradients))


def model_grad_cam(model, inputs, class_index, *, output: str = "logits", combine=grad_cam_from):
    """Return Grad-CAM maps (B, h, w) of an :class:`cellkit.arcface.ArcFaceClassifier` at its backbone's output.

    ``inputs`` is the model's input dict (``image``, ``cell_type``); ``output`` picks the
    explained head (``"logits"`` for the softmax head, ``"cosine"`` for the ArcFace head).
    """
    cell_type = np.asarray(inputs["cell_type"], np.float32)
    return grad_cam(lambda x: model.backbone(np.asarray(x, np.float32), training=False),
                    lambda a: model.head(a, cell_type, training=False)[output],
                    np.asarray(inputs["image"], np.float32), class_index, combine=combine)


def upsample(maps, size) -> np.ndarray:
    """Return maps (B, h, w) resized bilinearly to (B, H, W) with ``size = (H, W)``."""
    from scipy import ndimage

    maps = np.asarray(maps, np.float32)
    zoom = (1, size[0] / maps.shape[1], size[1] / maps.shape[2])
    return ndimage.zoom(maps, zoom, order=1)


def _unit(x, axis):
    lo = x.min(axis=axis, keepdims=True)
    hi = x.max(axis=axis, keepdims=True)
    return (x - lo) / np.maximum(hi - lo, 1e-12)


def channel_attention(cam, image) -> np.ndarray:
    """Return the seed paper's channel attention (C,) or (B, C): ``|| cam - image_i ||_2``, max-normalised.

    ``cam`` (H, W) or (B, H, W) is upsampled to the image size if needed; the CAM and every
    channel are first min-max scaled to [0, 1], so that the distance compares shapes, not
    brightness.  As printed in the paper, a LARGER value is read as "more attention";
    note that it is a distance, so it grows as the CAM and the channel *disagree*
    (the lab measures both readings, see :func:`channel_concordance`).
    """
    cam, image = np.asarray(cam, np.float32), np.asarray(image, np.float32)
    single = image.ndim == 3
    if single:
        cam, image = cam[None], image[None]
    if image.ndim != 4 or cam.ndim != 3 or cam.shape[0] != image.shape[0]:
        raise ValueError(f"cam, image: shapes {cam.shape} and {image.shape}, expected (H, W) and (H, W, C) "
                         "or (B, H, W) and (B, H, W, C)")
    if cam.shape[1:] != image.shape[1:3]:
        cam = upsample(cam, image.shape[1:3])
    cam = _unit(cam, axis=(1, 2))[..., None]
    image = _unit(image, axis=(1, 2))
    distance = np.sqrt(((cam - image) ** 2).sum(axis=(1, 2)))
    attention = distance / np.maximum(distance.max(axis=1, keepdims=True), 1e-12)
    return attention[0] if single else attention


def channel_concordance(cam, image) -> np.ndarray:
    """Return ``(min_j d_j + e) / (d_i + e)`` for the max-normalised distances ``d`` of :func:`channel_attention`.

    1 for the channel the CAM resembles most, smaller for the others (``e = 1e-3`` keeps a
    perfect match, ``d = 0``, finite).
    """
    attention = np.atleast_2d(channel_attention(cam, image))
    out = (attention.min(axis=1, keepdims=True) + 1e-3) / (attention + 1e-3)
    return out[0] if np.asarray(image).ndim == 3 else out


def gradient_channel_saliency(model, inputs, class_index, *, output: str = "logits") -> np.ndarray:
    """Return (B, C) per-channel saliency: mean of |gradient x input| over the pixels, max-normalised per sample."""
    from cellkit.gradients import gradients_wrt_input

    grads = gradients_wrt_input(model, inputs, class_index, output=output, input_key="image")
    s = np.abs(grads * np.asarray(inputs["image"])).mean(axis=(1, 2))
    return s / np.maximum(s.max(axis=1, keepdims=True), 1e-12)


def plot_channel_overlays(image, cam, channel_names, *, title: str = "Grad-CAM over each channel", alpha=0.45):
    """Return a figure: each channel of ``image`` (H, W, C) in grey with the upsampled CAM over it in colour."""
    import matplotlib.pyplot as plt

    image = np.asarray(image, np.float32)
    cam = np.asarray(cam, np.float32)
    if cam.shape != image.shape[:2]:
        cam = upsample(cam[None], image.shape[:2])[0]
    c = image.shape[-1]
    fig, axes = plt.subplots(2, c, figsize=(1.9 * c, 4.0))
    for i in range(c):
        axes[0, i].imshow(image[..., i], cmap="gray")
        axes[0, i].set_title(f"w{i + 1} {channel_names[i]}", fontsize=8)
        axes[1, i].imshow(image[..., i], cmap="gray")
        axes[1, i].imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=max(float(cam.max()), 1e-6))
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("channel")
    axes[1, 0].set_ylabel("with Grad-CAM")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["grad_cam_from", "grad_cam", "model_grad_cam", "upsample", "channel_attention", "channel_concordance",
           "gradient_channel_saliency", "plot_channel_overlays"]
