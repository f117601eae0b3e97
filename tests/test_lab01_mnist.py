"""Lab 01 (a first CNN on MNIST): the original lab's network and the offline MNIST loader."""

import gzip
import json

import numpy as np
import pytest

from cellkit.data import mnist
from cellkit.errors import DataError


def _master_build_cnn(repo_root):
    """Return ``build_cnn`` as defined in the master notebook's solution cell."""
    nb = json.loads((repo_root / "solutions" / "01_mnist" / "01_mnist.ipynb").read_text())
    source = next("".join(c["source"]) for c in nb["cells"]
                  if c["cell_type"] == "code" and "def build_cnn" in "".join(c["source"]))
    namespace = {}
    exec(source.split("model = build_cnn()")[0], namespace)
    return namespace["build_cnn"]


def test_master_network_is_the_uppsala_mnist_cnn(repo_root):
    from cellkit import checks

    model = _master_build_cnn(repo_root)()
    checks.check_layer_types(model, ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
                                     "Dropout", "Dense"])
    # 3x3x1x16+16, 3x3x16x32+32, 7x7x32x64+64, 64x10+10
    checks.check_layer_params(model, [160, 4_640, 100_416, 650])
    assert model.count_params() == 105_866
    assert [tuple(layer.output.shape[1:]) for layer in model.layers][:4] == [(28, 28, 16), (14, 14, 16),
                                                                            (14, 14, 32), (7, 7, 32)]


def test_master_trains_with_the_original_settings(repo_root):
    nb = json.loads((repo_root / "solutions" / "01_mnist" / "01_mnist.ipynb").read_text())
    fit = next("".join(c["source"]) for c in nb["cells"] if "model.fit(" in "".join(c["source"]))
    assert "batch_size=64" in fit and "validation_split=0.2" in fit
    assert "full=10" in fit


def _write_idx(path, array, gz=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb", compresslevel=1) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_read_mnist_reads_the_four_idx_files(tmp_path):
    for key, stem in mnist.IDX_FILES.items():
        n = 60_000 if "train" in key else 10_000
        array = np.zeros((n, 28, 28), np.uint8) if key.startswith("x") else (np.arange(n) % 10).astype(np.uint8)
        _write_idx(tmp_path / stem, array, gz=key != "y_test")
    (x_train, y_train), (x_test, y_test) = mnist.read_mnist(tmp_path)
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert y_test[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_read_idx_rejects_a_wrong_file(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x89PNG not an idx file")
    with pytest.raises(DataError, match="magic number"):
        mnist.read_idx(bad)
    _write_idx(tmp_path / "short", np.zeros((3, 28, 28), np.uint8), gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        mnist.read_idx(tmp_path / "short")
    with pytest.raises(DataError, match="neither mnist.npz nor"):
        mnist.read_mnist(tmp_path)


def test_a_wrong_mnist_npz_gives_the_expected_hash_and_is_kept(tmp_path):
    fake = tmp_path / "mnist.npz"
    np.savez(fake, x_train=np.zeros((2, 28, 28), np.uint8))
    before = fake.read_bytes()
    with pytest.raises(DataError, match=mnist.MNIST_NPZ_SHA256):
        mnist.read_mnist(fake)
    with pytest.raises(DataError, match="SHA-256"):
        mnist.read_mnist(tmp_path)  # the folder holding it
    assert fake.read_bytes() == before


def test_load_digits_checks_the_keras_cache_before_keras_can_delete_it(tmp_path, monkeypatch):
    from cellkit.config import get_config

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = mnist.keras_cache_file()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a half-downloaded file")
    with pytest.raises(DataError, match="expected " + mnist.MNIST_NPZ_SHA256):
        mnist.load_digits(get_config(source="real"))
    assert cached.read_bytes() == b"a half-downloaded file"


def test_load_digits_path_needs_the_real_source(tmp_path):
    from cellkit.config import get_config

    with pytest.raises(ValueError, match="CELLKIT_SOURCE=real"):
        mnist.load_digits(get_config(source="synthetic"), path=tmp_path / "mnist.npz")
