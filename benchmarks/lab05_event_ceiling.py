"""Lab 05, issue 23: how well can *any* network find the planted events in the frames? (a supervised ceiling)

Diagnostic only, not the lab's method: it trains WITH the event labels, which the lab's networks never see.
A small group-normalised CNN reads each scored frame t (1 .. T-2) with its neighbours (frames t-1, t, t+1 as
three channels) and predicts whether t is an event frame (within 1 frame of a planted event, the lab's
tolerance).  Leave one video out: train on the others (flips and 90-degree rotations), predict the left-out
video; the pooled out-of-video predictions are scored with the lab's ``cellkit.events.bootstrap_auc``
beside the frame difference.  If this ceiling is far below 0.80, no score derived from an unsupervised
network's attention can be expected to reach 0.80 on these videos.  One JSON line::

    PYTHONPATH=. python benchmarks/lab05_event_ceiling.py DATA_SEED NET_SEED EPOCHS [STRENGTH]

``FULLDATA=1``: full-size synthetic videos (8 x 120 frames); ``S``: frame size (default 32);
``DATA_ROOT``: where the videos are generated.
"""
import json
import os
import sys
import time

import numpy as np
import keras
from keras import layers

from cellkit import events as ev
from cellkit import video as vid
from lab05_common import FAST, S, conv_stack, load_videos

data_seed, net_seed, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
strength = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
videos, events, names = load_videos(data_seed, strength)


def triples(v):
    """(T, S, S) video -> (T-2, S, S, 3): frames t-1, t, t+1 for t = 1 .. T-2."""
    return np.stack([v[:-2], v[1:-1], v[2:]], axis=-1).astype("float32")


def labels(name):
    return ev.event_labels(events, name, len(videos[name]), tolerance=1)[1:-1].astype("float32")


def build(seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((S, S, 3))
    x = inp
    x = conv_stack(x)
    x = layers.GlobalMaxPooling2D()(x)  # an event is somewhere in the field
    return keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))


t0 = time.process_time()
curves, train_auc = {}, []
for held in names:
    rest = [v for v in names if v != held]
    x = np.concatenate([triples(videos[v]) for v in rest])
    y = np.concatenate([labels(v) for v in rest])
    x = np.ascontiguousarray(np.concatenate([np.rot90(x, k, axes=(1, 2)) for k in range(4)]
                                            + [np.rot90(x[:, ::-1], k, axes=(1, 2)) for k in range(4)]))
    y = np.tile(y, 8)
    model = build(net_seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    train_auc.append(ev.roc_auc(vid.predict(model, x[: len(x) // 8])[:, 0], y[: len(y) // 8]))
    c = np.full(len(videos[held]), np.nan)
    c[1:-1] = vid.predict(model, triples(videos[held]))[:, 0]
    curves[held] = c
fd = {}
for v in names:
    c = ev.frame_difference(videos[v])
    c[0] = c[-1] = np.nan
    fd[v] = c
out = {n: tuple(round(float(a), 3) for a in ev.bootstrap_auc(c, events, tolerance=1, n_boot=300, seed=0))
       for n, c in {"supervised CNN, out of video": curves, "null: frame difference": fd}.items()}
per_type = ev.evaluate({"cnn": curves}, events, tolerance=1).set_index("event").auc.round(2).to_dict()
print(json.dumps(dict(data_seed=data_seed, net_seed=net_seed, epochs=epochs, strength=strength, fast_size=FAST,
                      frame_size=S, train_auc=round(float(np.mean(train_auc)), 3), auc=out, auc_per_type=per_type,
                      cpu_s=round(time.process_time() - t0, 1))))
