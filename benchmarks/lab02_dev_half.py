"""Lab 02's LeNet against variants of the improved model, on the real development half of BBBC021.

Used to choose lab 02's improved model (issue 24): each variant is trained once per seed on the
lab's fixed grouped split (``validation.grouped_split(..., 0.25, seed=1234)``, the notebook's) of the
332 real images in ``../shared/realdata/bbbc021_dev`` (23-24 of the 44 treatment groups), 30 epochs,
Adam, batch 32, and scored on the held-out treatments.  One JSON line per run, then a summary::

    PYTHONPATH=. python benchmarks/lab02_dev_half.py lenet 1,2,3 30
    PYTHONPATH=. python benchmarks/lab02_dev_half.py std+aug+gap+bn9 1,2,3 30

A variant is a ``+``-joined set of parts: ``lenet`` (the lab's reference network), ``std``
(per-image standardisation), ``aug`` (flips and 90-degree rotations), ``gap`` (global average
pooling instead of Flatten + Dense 1,024), ``nobn`` (no batch normalisation), ``bn9`` (batch
normalisation with momentum 0.9 instead of 0.99), ``k3`` (3x3 kernels).  ``LR``, ``BS`` and
``SPLIT_SEED`` in the environment change the learning rate, batch size and split.  Only the
development half is used on purpose: the lab is judged on all 660 images.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import keras
from keras import layers

from cellkit import lenet, validation
from cellkit.data.bbbc021 import load_bbbc021

DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "bbbc021_dev"


def conv_stack(x, bn=True, widths=((16, 2, 2), (32, 1, 4), (64, 1, 4)), k=5, momentum=0.99):
    for f, s, p in widths:
        x = layers.Conv2D(f, k, strides=s, padding="same", use_bias=not bn)(x)
        if bn:
            x = layers.BatchNormalization(momentum=momentum)(x)
        x = layers.Activation("relu")(x)
        if p:
            x = layers.MaxPooling2D(p)(x)
    return x


def build(variant, seed):
    parts = set(variant.split("+"))
    if variant == "lenet":
        return lenet.build_lenet()
    inp = keras.Input((256, 256, 3))
    x = inp
    if "std" in parts:
        x = lenet.PerImageStandardization()(x)
    if "aug" in parts:
        x = lenet.augmentation(seed)(x)
    x = conv_stack(x, "nobn" not in parts, k=3 if "k3" in parts else 5, momentum=0.9 if "bn9" in parts else 0.99)
    if "gap" in parts:
        x = layers.Dropout(0.3, seed=seed)(layers.GlobalAveragePooling2D()(x))
    else:
        x = layers.Dropout(0.5, seed=seed)(layers.Flatten()(x))
        x = layers.Dropout(0.5, seed=seed)(layers.Dense(1024, activation="relu")(x))
    return keras.Model(inp, layers.Dense(6, activation="softmax")(x))


def main(variant, seeds, epochs):
    data = load_bbbc021(DEV)
    tr, va = validation.grouped_split(data.groups, data.labels, 0.25, seed=int(os.environ.get("SPLIT_SEED", 1234)))
    X, y = lenet.to_inputs(data.images), data.labels
    lr, bs = float(os.environ.get("LR", 1e-3)), int(os.environ.get("BS", 32))
    scores = []
    for seed in seeds:
        start = time.time()
        keras.utils.set_random_seed(seed)
        model = lenet.compile_classifier(build(variant, seed), lr)
        h = model.fit(X[tr], y[tr], validation_data=(X[va], y[va]), epochs=epochs, batch_size=bs, verbose=0)
        acc = lenet.accuracy(y[va], lenet.predict_classes(model, X[va]))
        scores.append(acc)
        print(json.dumps(dict(variant=variant, seed=seed, lr=lr, epochs=epochs, acc=round(acc, 4),
                              params=model.count_params(), secs=round(time.time() - start), n_train=len(tr),
                              n_val=len(va), curve=[round(a, 3) for a in h.history["val_accuracy"]])), flush=True)
    print("SUMMARY", variant, "mean %.3f sd %.3f" % validation.mean_and_spread(scores), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3]))
