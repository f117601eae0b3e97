"""Configuration from the environment, and the checks' messages in words."""

import numpy as np
import pytest

import cellkit
from cellkit import checks
from cellkit.config import Config, get_config


def test_environment_drives_the_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLKIT_FAST", "0")
    monkeypatch.setenv("CELLKIT_SOURCE", "real")
    monkeypatch.setenv("CELLKIT_SEED", "7")
    monkeypatch.setenv("CELLKIT_DATA_DIR", str(tmp_path))
    cfg = get_config()
    assert (cfg.fast, cfg.source, cfg.seed, cfg.data_dir, cfg.mode) == (False, "real", 7, tmp_path, "full")
    assert cfg.pick(full=30, fast=2) == 30
    assert get_config(fast=True).pick(full=30, fast=2) == 2, "an explicit argument overrides the environment"


@pytest.mark.parametrize("var,value,message", [
    ("CELLKIT_FAST", "maybe", "CELLKIT_FAST='maybe': expected 1 or 0"),
    ("CELLKIT_SOURCE", "imaginary", "CELLKIT_SOURCE='imaginary': expected 'real' or 'synthetic'"),
    ("CELLKIT_SEED", "abc", "CELLKIT_SEED='abc': expected an integer"),
    ("CELLKIT_SEED", "-1", r"CELLKIT_SEED='-1': expected an integer from 0 to 2\*\*32 - 1"),
    ("CELLKIT_SEED", str(2**32), r"CELLKIT_SEED='4294967296': expected an integer from 0 to 2\*\*32 - 1"),
])
def test_bad_environment_values_are_named(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        get_config()


def test_data_dir_that_is_a_file_is_named(monkeypatch, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    monkeypatch.setenv("CELLKIT_DATA_DIR", str(a_file))
    with pytest.raises(ValueError, match=r"CELLKIT_DATA_DIR=.*notes.txt' is a file: expected a folder"):
        get_config()
    with pytest.raises(ValueError, match=r"data_dir=.*notes.txt' is a file"):
        Config(data_dir=a_file)


def test_config_validates_arguments():
    with pytest.raises(ValueError, match="source='web': expected one of real, synthetic"):
        Config(source="web")
    with pytest.raises(ValueError, match="seed='1': expected an integer"):
        Config(seed="1")
    with pytest.raises(ValueError, match="seed=-3: expected an integer from 0"):
        Config(seed=-3)


def test_setup_prints_backend_device_mode_and_source_and_seeds(capsys):
    cfg = cellkit.setup("01_mnist", seed=5)
    out = capsys.readouterr().out
    for word in ("backend : ", "device  : CPU", "mode    : fast", "data    : synthetic", "seed    : 5"):
        assert word in out
    assert "CELLKIT_FAST=0 runs the real lab" in out and "CELLKIT_FAST=1" not in out, "in fast mode, say how to leave it"
    a = np.random.rand(3)
    cellkit.setup("01_mnist", seed=5, verbose=False)
    assert np.array_equal(a, np.random.rand(3)), "the same seed gives the same random numbers"
    assert cfg.seed == 5


def test_require_gpu_fails_clearly_on_a_cpu_machine(monkeypatch):
    monkeypatch.setenv("CELLKIT_REQUIRE_GPU", "1")
    with pytest.raises(RuntimeError, match="CELLKIT_REQUIRE_GPU=1 but the .* backend sees no GPU"):
        cellkit.setup("x", verbose=False)


# ------------------------------------------------------------------ checks

@pytest.fixture(scope="module")
def small_cnn():
    import keras

    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")])


def test_param_count_message_names_both_numbers(small_cnn):
    checks.check_param_count(small_cnn, 40 + 435)
    with pytest.raises(checks.CheckFailed, match="expected 1,121,062 parameters, got 475: is the first"):
        checks.check_param_count(small_cnn, 1_121_062, hint="is the first convolution strided?")
    assert isinstance(checks.CheckFailed("x"), AssertionError), "otter and pytest see a failed test"


def test_layer_checks_point_at_the_first_difference(small_cnn):
    checks.check_layer_types(small_cnn, ["Conv2D", "Flatten", "Dense"])
    with pytest.raises(checks.CheckFailed, match=r"position 2: Flatten instead of MaxPooling2D"):
        checks.check_layer_types(small_cnn, ["Conv2D", "MaxPooling2D", "Flatten", "Dense"])
    checks.check_layer_params(small_cnn, [40, 435])
    with pytest.raises(checks.CheckFailed, match=r"layer 1 with parameters \(.*Conv2D\) has 40 parameters, expected 1,216"):
        checks.check_layer_params(small_cnn, [1216, 435])
    checks.check_output_shape(small_cnn, (3,))
    with pytest.raises(checks.CheckFailed, match=r"expected output shape \(6,\).*got \(3,\)"):
        checks.check_output_shape(small_cnn, (6,))


def test_checks_on_placeholders_and_values():
    with pytest.raises(checks.CheckFailed, match="prepare is not defined yet: replace the ..."):
        checks.check_defined(..., "prepare")
    with pytest.raises(checks.CheckFailed, match="expected model to be a keras.Model, got NoneType \\(did you run the cell"):
        checks.check_param_count(None, 10)
    checks.check_close([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(checks.CheckFailed, match=r"logits differs from the reference at index \(1,\) \(and 0 more\): = 2.5 is too high$"):
        checks.check_close([1.0, 2.5], [1.0, 2.0], name="logits")
    with pytest.raises(checks.CheckFailed, match=r"^p differs from the reference: = 0.2 is too low$"):
        checks.check_close(0.2, 0.3125, name="p")
    with pytest.raises(checks.CheckFailed, match="expected accuracy of at least 0.8, got 0.5"):
        checks.check_metric_at_least(0.5, 0.8)
    with pytest.raises(checks.CheckFailed, match=r"^conv2_params = 18,400 is too low$"):
        checks.check_answer(18_400, 18_496, name="conv2_params")
    with pytest.raises(checks.CheckFailed, match=r"^conv2_params = 18,432: the biases are missing"):
        checks.check_answer(18_432, 18_496, name="conv2_params", mistakes=checks.conv_param_mistakes(3, 64, 32))
    with pytest.raises(checks.CheckFailed, match=r"^choice = 'b' is not the expected answer$"):
        checks.check_answer("b", "c", name="choice")
    with pytest.raises(checks.CheckFailed, match=r"should be a number, got 'many'"):
        checks.check_answer("many", 3, name="n")
    checks.check_answer(18_496.0, 18_496, name="conv2_params")


def test_answer_checks_never_print_the_expected_value():
    """A public check diagnoses; printing the expected value would hand out the answer to 'count' tasks."""
    cases = [(18_432, 18_496, checks.conv_param_mistakes(3, 64, 32)), (1, 18_496, None),
             (0.04, 0.0517, None), ("Adam", "SGD", None)]
    for got, want, mistakes in cases:
        for check in (lambda: checks.check_answer(got, want, name="x", mistakes=mistakes),
                      lambda: checks.check_close(got, want, name="x") if not isinstance(want, str) else None):
            try:
                check()
            except checks.CheckFailed as exc:
                shown = {f"{want:,}", str(want), repr(want)} if not isinstance(want, str) else {want}
                assert not any(s in str(exc) for s in shown), f"{exc} shows the expected {want}"


def test_parameter_mistakes_are_recognised_and_never_include_the_right_count():
    mistakes = checks.conv_param_mistakes(3, 1, 16)  # lab 01's first convolution: 160 parameters
    assert 160 not in mistakes
    assert mistakes[144] == "the biases are missing: each filter has one"
    assert "one side" in mistakes[3 * 16 + 16]
    dense = checks.dense_param_mistakes(1568, 64)
    assert 1568 * 64 + 64 not in dense and "biases" in dense[1568 * 64]
    with pytest.raises(checks.CheckFailed, match=r"expected x to have shape \(any, 28, 28, 1\), got \(5, 28, 28\)"):
        checks.check_shape(np.zeros((5, 28, 28)), (None, 28, 28, 1), name="x")


def test_loss_decreases_on_a_fixed_batch(small_cnn):
    import keras

    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 3
    model = keras.models.clone_model(small_cnn)
    with pytest.raises(checks.CheckFailed, match="not compiled"):
        checks.check_loss_decreases(model, x, y)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    first, last = checks.check_loss_decreases(model, x, y, steps=30)
    assert last < first
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the student's model is untouched"
    frozen = keras.models.clone_model(small_cnn)
    for layer in frozen.layers:
        layer.trainable = False
    frozen.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(checks.CheckFailed, match="expected the loss on one fixed batch to fall"):
        checks.check_loss_decreases(frozen, x, y, steps=5)


def test_gpu_peak_memory_is_none_without_a_gpu():
    from cellkit.config import accelerator, gpu_peak_bytes

    peak = gpu_peak_bytes()
    if accelerator().startswith("GPU"):
        assert peak is None or peak > 0
    else:
        assert peak is None, f"no GPU ({accelerator()}) but a GPU peak of {peak} bytes"


def test_montage_titles_do_not_overlap_each_other_or_the_row_above():
    """Two rows of 'true -> predicted' titles: every title box stays clear of its neighbours and of the images."""
    import matplotlib

    matplotlib.use("Agg")
    from cellkit import plots

    names = [f"Cholesterol_lowering_{i}" for i in range(10)]
    fig = plots.show_misclassified(np.zeros((16, 28, 28)), np.arange(16) % 10, (np.arange(16) + 1) % 10, names)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    images = [ax.get_window_extent(renderer) for ax in fig.axes]
    for i, a in enumerate(titles):
        for b in titles[i + 1:]:
            assert not a.overlaps(b), "two titles overlap"
        for box in images:
            assert not a.overlaps(box), "a title runs into an image"
