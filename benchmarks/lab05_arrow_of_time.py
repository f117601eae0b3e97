"""Lab 05, issue 23: can attention find the planted events when the objective is the arrow of time?

Next-frame prediction gives attention no reason to look back (the last frames carry the next one), so
this script tries an unsupervised objective that *needs* particular frames: tell a sequence played
forward from the same sequence reversed.  In the synthetic videos the cells' persistent random walks
look the same both ways; divisions, deaths and entries do not.  A network that learnt the arrow of
time would have to find those frames, and its attention should sit on them.

Model (the lab's pieces): a group-normalised CNN on every pair of consecutive frames (previous and
current as two channels), an LSTM over the pair features, dot attention with the LSTM's last state as
query over the pair features (``values=feats``) or over the LSTM states (``values=states``), and a
sigmoid 'forward?' output from the attended context.  No event labels are used.  The networks train
on every video but the last (forward and reversed sequences, flips and 90-degree rotations of the
frames unless ``AUG=0``); the last video gives a held-out accuracy.  The attention of the forward
sequences of every video becomes per-frame importance (``cellkit.attention.importance``,
``frame_importance``), scored with the lab's own functions (``cellkit.events.bootstrap_auc``,
``evaluate``, tolerance 1 frame) beside the untrained network, the frame difference and the position
prior.  One JSON line per run::

    PYTHONPATH=. python benchmarks/lab05_arrow_of_time.py DATA_SEED NET_SEED SEQ_LEN feats|states EPOCHS [STRENGTH]
    PYTHONPATH=. python benchmarks/lab05_arrow_of_time.py 1 0 8 feats 8          # fast-size videos
    FULLDATA=1 AUG=0 PYTHONPATH=. python benchmarks/lab05_arrow_of_time.py 1 0 8 feats 15

``FULLDATA=1``: the full-size synthetic videos (8 x 120 frames) instead of the fast ones (4 x 40);
``S``: frame size after the resize (default 32); ``DATA_ROOT``: where the videos are generated;
``POOL=max``: the frame-pair encoder ends in global max pooling instead of Flatten (the lab's encoder).
"""
import json
import os
import sys
import time

import numpy as np
import keras
from keras import layers

from cellkit import attention as att
from cellkit import events as ev
from cellkit import video as vid
from cellkit.data import migration
from lab05_common import FAST, S, conv_stack, load_videos

data_seed, net_seed, L, values_kind, epochs = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                               int(sys.argv[5]))
strength = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
if values_kind not in ("feats", "states"):
    raise SystemExit(f"values={values_kind!r}: expected 'feats' or 'states'")
POOL = os.environ.get("POOL", "flatten")  # "max": global max pooling (an event anywhere in the field), fewer weights
videos, events, names = load_videos(data_seed, strength)


def to_pairs(seqs):
    """(n, L+1, S, S, 1) sequences -> (n, L, S, S, 2): each frame with the one before it."""
    return np.concatenate([seqs[:, :-1], seqs[:, 1:]], axis=-1).astype("float32")


def build(seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((L, S, S, 2))
    e_in = keras.Input((S, S, 2))
    x = e_in
    x = conv_stack(x)
    pooled = layers.GlobalMaxPooling2D()(x) if POOL == "max" else layers.Flatten()(x)
    x = layers.Dense(32)(pooled)
    feats = layers.TimeDistributed(keras.Model(e_in, x))(inp)
    states, h, _ = layers.LSTM(32, return_sequences=True, return_state=True)(feats)
    context, w = att.DotAttention()(h, feats if values_kind == "feats" else states)
    out = layers.Dense(1, activation="sigmoid", name="forward")(context)
    return keras.Model(inp, {"forward": out, "attention": layers.Identity(name="attention")(w)})


def dataset(vs):
    xs, ys = [], []
    for v in vs:
        seqs, _ = migration.make_sequences(videos[v], L + 1)
        xs += [to_pairs(seqs), to_pairs(seqs[:, ::-1])]
        ys += [np.ones(len(seqs)), np.zeros(len(seqs))]
    return np.concatenate(xs), np.concatenate(ys).astype("float32")


def curves_of(model):
    out = {}
    for v in names:
        seqs, starts = migration.make_sequences(videos[v], L + 1)
        w = vid.predict(model, to_pairs(seqs))["attention"]
        c = att.frame_importance(att.importance(w), starts + 1, len(videos[v]))  # pair i shows frame start + 1 + i
        c[0] = c[-1] = np.nan  # the lab's scored frames 1 .. T-2
        out[v] = c
    return out


def scored(curve):
    c = np.array(curve, dtype=float)
    c[0] = c[-1] = np.nan
    return c


x_train, y_train = dataset(names[:-1])
x_held, y_held = dataset(names[-1:])
if os.environ.get("AUG", "1") == "1":  # flips and rotations keep the arrow of time
    x_train = np.concatenate([np.rot90(x_train, k, axes=(2, 3)) for k in range(4)]
                             + [np.rot90(x_train[:, :, ::-1], k, axes=(2, 3)) for k in range(4)])
    y_train = np.tile(y_train, 8)
x_train = np.ascontiguousarray(x_train)

t0 = time.process_time()
model = build(net_seed)
untrained = curves_of(model)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss={"forward": "binary_crossentropy", "attention": att.kl_to_uniform_loss},
              loss_weights={"forward": 1.0, "attention": 0.0}, metrics={"forward": "accuracy"})
hist = model.fit(x_train, {"forward": y_train, "attention": np.zeros((len(x_train), L), "float32")},
                 epochs=epochs, batch_size=16, verbose=0, shuffle=True)
p = vid.predict(model, x_held)["forward"][:, 0]
weights = np.concatenate([vid.predict(model, to_pairs(migration.make_sequences(videos[v], L + 1)[0]))["attention"]
                          for v in names])
table = {"arrow attention": curves_of(model), "null: untrained": untrained,
         "null: frame difference": {v: scored(ev.frame_difference(videos[v])) for v in names},
         "null: centre": {v: scored(ev.position_prior(len(videos[v]), "centre")) for v in names}}
auc = {}
for n, c in table.items():
    a, lo, hi = ev.bootstrap_auc(c, events, tolerance=1, n_boot=300, seed=0)
    auc[n] = (round(a, 3), round(lo, 2), round(hi, 2))
per_type = ev.evaluate(table, events, tolerance=1)
per_type = per_type[per_type.model == "arrow attention"].set_index("event").auc.round(2).to_dict()
print(json.dumps(dict(data_seed=data_seed, net_seed=net_seed, L=L, values=values_kind, epochs=epochs,
                      strength=strength, fast_size=FAST, pool=POOL, frame_size=S, aug=os.environ.get("AUG", "1") == "1",
                      acc_train=round(hist.history["forward_accuracy"][-1], 3),
                      acc_heldout=round(float(np.mean((p > 0.5) == (y_held > 0.5))), 3),
                      largest_weight=round(float(weights.max(1).mean()), 3), uniform_weight=round(1 / L, 3),
                      cpu_s=round(time.process_time() - t0, 1), auc=auc, auc_per_type=per_type)))
