"""The data layer: registry, fetching with hash checks, atomic writes, image I/O and their errors."""

import functools
import hashlib
import http.server
import importlib
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cellkit import atomic
from cellkit.config import get_config
from cellkit.data import io as imio
from cellkit.data import registry, synth
from cellkit.errors import DataError, DataUnavailableError, HashMismatchError

# the package re-exports the function fetch(), which shadows the module's name as an attribute
fetch_mod = importlib.import_module("cellkit.data.fetch")

PREFIX = "Toy-abc123/images/"


def _png_bytes(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered toy dataset served as a zip archive by a local HTTP server (loopback only)."""
    files = {f"class_{c}/img_{i}.png": _png_bytes(40 * c + i) for c in range(2) for i in range(3)}
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "toy.zip", "w") as zf:
        zf.writestr("Toy-abc123/README.txt", "not part of the dataset")
        for rel, data in files.items():
            zf.writestr(PREFIX + rel, data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reg = tmp_path / "registry"
    reg.mkdir()

    def register(name="toy", manifest=None, url=None):
        manifest = manifest if manifest is not None else {
            rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()}
        rows = ["path,bytes,sha256"] + [f"{p},{b},{h}" for p, (b, h) in manifest.items()]
        (reg / f"{name}.manifest.csv").write_text("\n".join(rows) + "\n")
        (reg / f"{name}.json").write_text(json.dumps({
            "name": name, "title": "Toy images", "labs": ["00_test"], "licence": "CC0",
            "citations": ["Nobody (2026)."], "layout": "<class>/<img>.png",
            "source": {"kind": "archive", "url": url or f"http://127.0.0.1:{server.server_port}/toy.zip",
                       "sha256": None, "members": PREFIX},
            "manifest": f"{name}.manifest.csv", "synthetic": "test_data_layer:make_toy"}))
        return name

    monkeypatch.setenv("CELLKIT_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("CELLKIT_DATA_DIR", str(tmp_path / "cache"))
    yield {"files": files, "register": register, "server": server}
    server.shutdown()


def make_toy(dest, *, fast, seed):
    """A toy synthetic generator: the same layout, drawn from the seed."""
    g = np.random.default_rng(seed)
    for c in range(2):
        for i in range(2 if fast else 3):
            imio.write_png(Path(dest) / f"class_{c}" / f"img_{i}.png", g.integers(0, 255, (8, 8, 3), dtype=np.uint8))


def test_fetch_downloads_verifies_and_then_works_offline(toy):
    name = toy["register"]()
    folder = fetch_mod.fetch(name, progressbar=False)
    got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert got == sorted(toy["files"])
    assert not (folder / "README.txt").exists(), "only the registered member folder is kept"
    toy["server"].shutdown()  # no network from here on
    assert fetch_mod.fetch(name, progressbar=False) == folder


def test_fetch_without_network_says_where_to_put_files(toy):
    name = toy["register"](url="http://127.0.0.1:9/toy.zip")  # port 9 (discard): nothing listens
    with pytest.raises(DataUnavailableError) as err:
        fetch_mod.fetch(name, progressbar=False)
    msg = str(err.value)
    assert "cannot reach http://127.0.0.1:9/toy.zip" in msg
    assert str(get_config().data_dir / name) in msg
    assert "CELLKIT_SOURCE=synthetic" in msg


def test_download_with_wrong_hash_is_never_used(toy):
    manifest = {rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in toy["files"].items()}
    manifest["class_1/img_2.png"] = (manifest["class_1/img_2.png"][0], "0" * 64)
    name = toy["register"](manifest=manifest)
    with pytest.raises(HashMismatchError, match="class_1/img_2.png"):
        fetch_mod.fetch(name, progressbar=False)
    assert not (get_config().data_dir / name).exists(), "a failed fetch leaves no half-written folder"


def test_local_copy_with_a_corrupted_file_is_rejected_by_name(toy, tmp_path):
    name = toy["register"]()
    folder = fetch_mod.fetch(name, progressbar=False)
    verified = fetch_mod.verify(name, folder)  # cached hashes
    assert verified == folder
    bad = folder / "class_0" / "img_1.png"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x00")
    with pytest.raises(HashMismatchError, match=r"class_0/img_1\.png"):
        fetch_mod.verify(name, folder)


def test_user_supplied_copy_elsewhere_is_verified_and_used(toy, tmp_path):
    name = toy["register"]()
    copy = tmp_path / "drive" / "toy"
    for rel, data in toy["files"].items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    cfg = get_config(source="real")
    assert fetch_mod.dataset_path(name, cfg, path=copy, verbose=False) == copy
    (copy / "class_1" / "img_0.png").unlink()
    with pytest.raises(DataError, match="1 of 6 files missing"):
        fetch_mod.dataset_path(name, cfg, path=copy, verbose=False)


def test_empty_or_missing_folder_errors_name_the_folder(toy, tmp_path):
    name = toy["register"]()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="none of the 6 expected files"):
        fetch_mod.verify(name, empty)
    with pytest.raises(DataError, match="folder not found"):
        fetch_mod.verify(name, tmp_path / "nowhere")
    with pytest.raises(DataError, match="no images found"):
        imio.list_images(empty)


def test_synthetic_source_is_explicit_deterministic_and_cached(toy, capsys):
    name = toy["register"]()
    cfg = get_config(source="synthetic", fast=True)
    first = fetch_mod.dataset_path(name, cfg)
    assert "SYNTHETIC" in capsys.readouterr().out
    pngs = sorted(first.rglob("*.png"))
    assert len(pngs) == 4
    again = fetch_mod.synthesize(name, cfg, dest=first.parent / "again")
    assert [p.read_bytes() for p in pngs] == [p.read_bytes() for p in sorted(again.rglob("*.png"))]
    other = fetch_mod.synthesize(name, cfg.replace(seed=7), dest=first.parent / "other")
    assert pngs[0].read_bytes() != sorted(other.rglob("*.png"))[0].read_bytes()



def test_synthetic_cache_follows_the_generator_source(toy, tmp_path, monkeypatch):
    name = toy["register"]()
    cfg = get_config(source="synthetic", fast=True)
    folder = fetch_mod.synthesize(name, cfg)
    assert folder.name == f"fast-seed{cfg.seed}-{fetch_mod.generator_fingerprint(make_toy)}"
    # a generator whose code changes gets a new cache folder, so an upgrade never reads a stale copy
    module = tmp_path / "toygen_fp.py"
    module.write_text("def make(dest, *, fast, seed):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    toygen = importlib.import_module("toygen_fp")
    before = fetch_mod.generator_fingerprint(toygen.make)
    module.write_text("def make(dest, *, fast, seed):\n    return None\n")
    assert fetch_mod.generator_fingerprint(toygen.make) != before
    assert before != fetch_mod.generator_fingerprint(make_toy)


def test_not_public_dataset_explains_the_choice(tmp_path, monkeypatch):
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "private.json").write_text(json.dumps({
        "name": "private", "title": "t", "labs": ["x"], "licence": "unknown", "citations": [],
        "layout": "wells/A01.tif", "source": {"kind": "none"}}))
    monkeypatch.setenv("CELLKIT_REGISTRY_DIR", str(reg))
    with pytest.raises(DataUnavailableError, match="not public.*wells/A01.tif.*CELLKIT_SOURCE=synthetic"):
        fetch_mod.fetch("private")


def test_registry_rejects_bad_entries(tmp_path, monkeypatch):
    reg = tmp_path / "reg"
    reg.mkdir()
    monkeypatch.setenv("CELLKIT_REGISTRY_DIR", str(reg))
    (reg / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json: invalid JSON"):
        registry.get_dataset("broken")
    (reg / "broken.json").write_text(json.dumps({"name": "broken", "title": "t"}))
    with pytest.raises(DataError, match="missing field"):
        registry.get_dataset("broken")
    with pytest.raises(KeyError, match="unknown dataset 'nope'; registered: broken"):
        registry.get_dataset("nope")


def test_every_registered_dataset_is_complete_and_the_readme_is_current():
    found = registry.datasets()
    assert "mnist" in found
    for d in found.values():
        assert d.citations, f"{d.name}: no citation"
        assert d.licence, f"{d.name}: no licence"
        for entry in d.files:
            assert entry.sha256 is None or len(entry.sha256) == 64, f"{d.name}: bad hash for {entry.path}"
        if d.synthetic:
            assert callable(d.generator()), f"{d.name}: generator {d.synthetic} not found"
    readme = registry.registry_dir().parent / "README.md"
    assert readme.read_text() == registry.render_markdown(), "data/README.md is stale: run 'cellkit data readme'"


# ------------------------------------------------------------------ image I/O

def test_tiff_roundtrip_multipage_multichannel_and_dtypes(tmp_path):
    stack = np.arange(3 * 5 * 4, dtype=np.uint16).reshape(3, 5, 4)  # 3 pages (frames, or channels)
    path = imio.write_tiff(tmp_path / "stack.tif", stack)
    back = imio.read_image(path)
    assert back.dtype == np.uint16 and back.shape == stack.shape and np.array_equal(back, stack)
    assert np.array_equal(imio.read_image(path, key=1), stack[1])
    rgb = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)  # 2 pages of RGB
    back = imio.read_image(imio.write_tiff(tmp_path / "rgb.tif", rgb, photometric="rgb"))
    assert back.shape == (2, 6, 5, 3) and np.array_equal(back, rgb)
    f = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    assert np.array_equal(imio.read_image(imio.write_tiff(tmp_path / "f.tif", f)), f)


def test_png_roundtrip_grey_and_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(imio.read_image(imio.write_png(tmp_path / "a.png", rgb)), rgb)
    grey16 = np.random.default_rng(1).integers(0, 65536, (6, 7), dtype=np.uint16)
    assert np.array_equal(imio.read_image(imio.write_png(tmp_path / "b.png", grey16)), grey16)
    with pytest.raises(ValueError, match="dtype float64: expected uint8 or uint16"):
        imio.write_png(tmp_path / "c.png", np.zeros((3, 3)))


def test_truncated_or_empty_image_names_the_file(tmp_path):
    path = imio.write_png(tmp_path / "cells.png", np.full((64, 64, 3), 7, np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"cells\.png: cannot decode the image.*truncated or corrupt"):
        imio.read_image(path)
    tif = imio.write_tiff(tmp_path / "frame.tif", np.zeros((32, 32), np.uint16))
    tif.write_bytes(tif.read_bytes()[:100])
    with pytest.raises(DataError, match=r"frame\.tif"):
        imio.read_image(tif)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: the file is empty"):
        imio.read_image(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        imio.read_image(tmp_path / "missing.tif")
    with pytest.raises(DataError, match="unsupported image type '.gif'"):
        (tmp_path / "x.gif").write_bytes(b"GIF89a")
        imio.read_image(tmp_path / "x.gif")


def test_validate_image_names_what_was_expected():
    img = np.zeros((64, 64, 3), np.uint8)
    assert imio.validate_image(img, shape=(64, 64, 3), dtype=np.uint8, channels=3) is img
    with pytest.raises(DataError, match=r"A01.tif: shape \(64, 64, 3\), expected 256x256x3"):
        imio.validate_image(img, name="A01.tif", shape=(256, 256, 3))
    with pytest.raises(DataError, match="dtype uint8, expected uint16"):
        imio.validate_image(img, dtype=np.uint16)
    with pytest.raises(DataError, match=r"3 channel\(s\).*expected 6"):
        imio.validate_image(img, channels=6)
    assert imio.validate_image(img, shape=(None, None, 3)) is img


def test_to_float01_states_its_scaling():
    x8, how8 = imio.to_float01(np.array([0, 255], np.uint8))
    assert x8.dtype == np.float32 and x8.tolist() == [0.0, 1.0] and "255" in how8
    x16, how16 = imio.to_float01(np.array([0, 65535], np.uint16))
    assert x16.tolist() == [0.0, 1.0] and "65,535" in how16
    with pytest.raises(DataError, match=r"float pixels in \[-1, 3\]; expected \[0, 1\]"):
        imio.to_float01(np.array([-1.0, 3.0]), name="img")
    scaled = imio.minmax_scale(np.array([[2.0, 4.0], [6.0, 10.0]]))
    assert scaled.min() == 0.0 and scaled.max() == 1.0


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = atomic.write_text(tmp_path / "grades.csv", "old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"], "no temporary file is left behind"


def test_synth_toolkit_is_deterministic_and_in_range():
    a = synth.fluorescence(synth.blob((32, 32), (16, 16), 6, 3), 5, illumination_field=synth.illumination((32, 32), 1))
    b = synth.fluorescence(synth.blob((32, 32), (16, 16), 6, 3), 5, illumination_field=synth.illumination((32, 32), 1))
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1
    disc = synth.blob((41, 41), (20, 20), 10, 0, irregularity=0.0)
    assert abs(disc.sum() - np.pi * 100) < 0.05 * np.pi * 100
    pts = synth.place_points(10, (100, 100), 0, min_distance=15)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 1e9
    assert d.min() >= 15
    assert synth.to_uint8(np.array([0.0, 1.0])).tolist() == [0, 255]


def test_download_progress_is_plain_text_on_stdout(toy, capsys):
    """The bar renders in a terminal, Colab and a saved notebook alike: text, not an ipywidgets widget."""
    name = toy["register"]()
    fetch_mod.fetch(name)
    out = capsys.readouterr().out
    assert "toy.zip: 100%" in out, out
    from tqdm.std import tqdm

    bar = fetch_mod.text_progress_bar("x", total=3, unit="file")
    assert type(bar) is tqdm, "tqdm.auto would draw a widget inside a notebook kernel"
    bar.close()


def test_quick_check_trusts_size_and_time_but_rehash_finds_a_flipped_byte(toy):
    """The quick path's trust rule, stated in verify's docstring, and the --verify path that re-hashes."""
    import os

    name = toy["register"]()
    folder = fetch_mod.fetch(name, progressbar=False)
    victim = folder / "class_1" / "img_1.png"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and time as before
    assert fetch_mod.fetch(name, progressbar=False) == folder, "the quick check trusts size and time"
    with pytest.raises(HashMismatchError, match=r"class_1/img_1\.png"):
        fetch_mod.fetch(name, progressbar=False, rehash=True)


def test_copy_one_folder_too_deep_is_diagnosed_before_any_download(toy):
    name = toy["register"](url="http://127.0.0.1:9/toy.zip")  # nothing listens: a download would fail
    nested = get_config().data_dir / name / "toy-copy"
    for rel, data in toy["files"].items():
        (nested / rel).parent.mkdir(parents=True, exist_ok=True)
        (nested / rel).write_bytes(data)
    with pytest.raises(DataError, match=r"one level down, at .*toy-copy: move its contents up") as err:
        fetch_mod.fetch(name, progressbar=False)
    assert "cannot reach" not in str(err.value), "the diagnosis, not a network error"


def test_partial_copy_names_what_is_missing_when_the_host_cannot_be_reached(toy):
    name = toy["register"](url="http://127.0.0.1:9/toy.zip")
    dest = get_config().data_dir / name
    for rel, data in list(toy["files"].items())[1:]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    with pytest.raises(DataUnavailableError, match=r"incomplete \(1 of 6 files missing \(class_0/img_0\.png\)\)"):
        fetch_mod.fetch(name, progressbar=False)


def test_leftovers_of_a_killed_download_are_removed_by_the_next_fetch(toy):
    name = toy["register"]()
    data_dir = get_config().data_dir
    part = data_dir / f".{name}.abc123.part"  # what atomic_dir leaves when the process is killed
    (part / "class_0").mkdir(parents=True)
    (part / "class_0" / "img_0.png").write_bytes(b"half")
    pooch_tmp = data_dir / ".downloads" / name / "tmpk9x2"  # pooch's temporary download
    pooch_tmp.parent.mkdir(parents=True)
    pooch_tmp.write_bytes(b"partial")
    fetch_mod.fetch(name, progressbar=False)
    assert not part.exists() and not pooch_tmp.exists()
    assert not any(data_dir.glob(".*.part")) and not any((data_dir / ".downloads").rglob("*"))


def test_synthetic_copy_that_lost_a_file_is_generated_again(toy, capsys):
    name = toy["register"]()
    cfg = get_config(source="synthetic", fast=True)
    folder = fetch_mod.synthesize(name, cfg)
    pngs = sorted(folder.rglob("*.png"))
    original = pngs[1].read_bytes()
    pngs[1].unlink()
    assert fetch_mod.synthesize(name, cfg) == folder
    assert "1 file(s) missing" in capsys.readouterr().out
    assert pngs[1].read_bytes() == original, "same seed, same file"
    pngs[2].write_bytes(b"truncated")
    fetch_mod.dataset_path(name, cfg, verbose=False)
    assert len(sorted(folder.rglob("*.png"))) == len(pngs) and pngs[2].read_bytes() != b"truncated"


def test_48_bit_png_is_read_at_its_depth_not_truncated_to_8_bits(tmp_path):
    import imagecodecs

    rgb16 = (np.arange(4 * 4 * 3).reshape(4, 4, 3) * 1000 + 7).astype(np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(imagecodecs.png_encode(rgb16))
    got = imio.read_image(path)
    assert got.dtype == np.uint16 and np.array_equal(got, rgb16), "Pillow alone would return the high bytes as uint8"
    rgb8 = np.full((4, 4, 3), 9, np.uint8)
    imio.write_png(tmp_path / "plain.png", rgb8)
    assert imio.read_image(tmp_path / "plain.png").dtype == np.uint8


def test_data_list_and_fetch_verify_from_the_command_line(toy, capsys):
    import os

    from cellkit.cli import main

    name = toy["register"]()
    assert main(["data", "fetch", name]) == 0
    folder = get_config().data_dir / name
    victim = folder / "class_0" / "img_2.png"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-6] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert main(["data", "fetch", name]) == 0, "the quick check trusts size and time (documented)"
    assert main(["data", "fetch", name, "--verify"]) == 2
    assert "class_0/img_2.png" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "6 files, 6 with SHA-256" in out


def test_unpinned_datasets_say_so_in_the_list(capsys):
    from cellkit.cli import main

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    block = out.split("rxrx1", 1)[1].split("\n")
    assert any("NOT PINNED per file" in line for line in block[:4])
    assert "usiigaci_t98g" in out and "37 files, 37 with SHA-256" in out
