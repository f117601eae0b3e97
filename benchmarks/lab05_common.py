"""What the lab 05 diagnostics share: the synthetic videos they read and the small group-normalised CNN.

``FULLDATA=1`` selects the full-size synthetic videos (8 x 120 frames) instead of the fast ones (4 x 40),
``S`` the frame size after the resize (default 32), ``DATA_ROOT`` where the videos are generated.
"""
import os
from pathlib import Path

from keras import layers

from cellkit.data import migration

S = int(os.environ.get("S", "32"))
FAST = os.environ.get("FULLDATA", "0") != "1"


def load_videos(data_seed: int, strength: float = 1.0):
    """Return ``(videos, events, names)`` of the synthetic set ``data_seed`` (generated on first use)."""
    root = Path(os.environ.get("DATA_ROOT", "/tmp/lab05_arrow")) / f"data_{data_seed}_{strength}_{FAST}"
    if not (root / "ground_truth.csv").exists():
        migration.make_synthetic(root, fast=FAST, seed=data_seed, strength=strength)
    videos = migration.load_videos(root, S)
    return videos, migration.read_events(root), list(videos)


def conv_stack(x):
    """Three stride-2 convolutions (8, 16, 32 filters), each group-normalised and rectified."""
    for f in (8, 16, 32):
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.GroupNormalization(groups=4)(x)
        x = layers.ReLU()(x)
    return x
