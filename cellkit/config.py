"""Course-wide configuration: fast or full mode, data source, data directory and seed.

Every setting comes from an environment variable, so that one switch changes a
whole run (the CI, the main job, a student's Colab session) without editing a
notebook:

==================== ============================ ===========================
variable             meaning                      default
==================== ============================ ===========================
``CELLKIT_FAST``     ``1``: small data, few epochs ``0`` (full mode)
``CELLKIT_SOURCE``   ``real`` or ``synthetic``     ``real``
``CELLKIT_DATA_DIR`` where datasets are cached    the user cache directory
``CELLKIT_SEED``     the global random seed       ``1234``
``CELLKIT_REQUIRE_GPU`` ``1``: fail unless the backend places work on a GPU ``0``
==================== ============================ ===========================

Fast mode changes sizes (number of images, epochs), never code paths: a lab
calls :meth:`Config.pick` with both values and runs the same code either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

SOURCES = ("real", "synthetic")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")


def default_data_dir() -> Path:
    """Return the per-user cache folder where datasets are stored by default."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cellkit"))


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of one run.

    Parameters
    ----------
    fast : bool
        Fast mode: small data and few epochs, so a notebook runs in one to two minutes on 2 CPU cores.
    source : {"real", "synthetic"}
        Where the images come from.  Never changed silently: a lab asked for ``real``
        data that cannot be found raises an error that explains how to choose ``synthetic``.
    data_dir : pathlib.Path
        Root of the dataset cache; each dataset lives in ``data_dir / <name>``.
    seed : int
        The global seed; every random choice in the labs derives from it.
    """

    fast: bool = False
    source: str = "real"
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    seed: int = 1234

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}: expected one of {', '.join(SOURCES)}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"seed={self.seed!r}: expected an integer")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed={self.seed}: expected an integer from 0 to 2**32 - 1 (NumPy's seed range)")
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"data_dir={str(self.data_dir)!r} is a file: expected a folder (it is created if missing)")

    @property
    def mode(self) -> str:
        """Return ``"fast"`` or ``"full"``."""
        return "fast" if self.fast else "full"

    def pick(self, full, fast):
        """Return ``fast`` in fast mode and ``full`` otherwise.

        Examples
        --------
        >>> Config(fast=True).pick(full=30, fast=2)
        2
        """
        return fast if self.fast else full

    def replace(self, **changes) -> "Config":
        """Return a copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def get_config(**overrides) -> Config:
    """Return the configuration read from the environment, with explicit overrides applied.

    Parameters
    ----------
    **overrides
        Any field of :class:`Config` (``fast``, ``source``, ``data_dir``, ``seed``);
        ``None`` values are ignored, so that ``get_config(source=None)`` reads the environment.
    """
    seed_raw = os.environ.get("CELLKIT_SEED", "1234")
    try:
        seed = int(seed_raw)
    except ValueError:
        raise ValueError(f"environment variable CELLKIT_SEED={seed_raw!r}: expected an integer") from None
    if not 0 <= seed < 2**32:
        raise ValueError(f"environment variable CELLKIT_SEED={seed_raw!r}: expected an integer from 0 to 2**32 - 1")
    source = os.environ.get("CELLKIT_SOURCE", "real").strip().lower() or "real"
    if source not in SOURCES:
        raise ValueError(f"environment variable CELLKIT_SOURCE={source!r}: expected 'real' or 'synthetic'")
    data_dir = os.environ.get("CELLKIT_DATA_DIR")
    if data_dir and Path(data_dir).expanduser().exists() and not Path(data_dir).expanduser().is_dir():
        raise ValueError(f"environment variable CELLKIT_DATA_DIR={data_dir!r} is a file: expected a folder "
                         f"(it is created if missing)")
    values = dict(
        fast=_env_flag("CELLKIT_FAST"),
        source=source,
        data_dir=Path(data_dir) if data_dir else default_data_dir(),
        seed=seed,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}: expected fast, source, data_dir or seed")
    return Config(**values)


# Lines that TensorFlow's and XLA's C++ libraries write to the process's stderr while they load, and that say
# nothing a student can act on: absl's pre-initialisation banner, informational (I) and warning (W) log lines,
# the CPU-instruction advice, and the failed CUDA probe of a machine without a GPU (the summary names the device).
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+\] "
    r"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_[a-z_]+\.cc:\d+\] failed call to cuInit"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags)"
)


@contextlib.contextmanager
def quiet_native_startup():
    """Hide the C++ start-up noise of the Keras backend's libraries; pass every other stderr line through.

    Native libraries write straight to file descriptor 2, below Python's ``sys.stderr`` and before
    ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so in a notebook their banners appear as cell output ("failed
    call to cuInit", oneDNN notices) and read like failures.  Inside this block descriptor 2 goes to a
    temporary file; on exit each line that is not known start-up noise (:data:`_NATIVE_NOISE`) is written
    back to ``sys.stderr``, so real errors and warnings still show.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (some embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not _NATIVE_NOISE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend so that a run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import keras

    keras.utils.set_random_seed(seed)


def accelerator() -> str:
    """Return a description of the device the active Keras backend computes on, e.g. ``"GPU (NVIDIA H100)"``.

    Only the active backend is asked, so under JAX no TensorFlow is imported.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"GPU ({len(gpus)} x {gpus[0].name})"
        return "CPU"
    if backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform in ("gpu", "cuda", "rocm"):
            return f"GPU ({len(jax.devices())} x {dev.device_kind})"
        return dev.platform.upper()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"GPU ({torch.cuda.get_device_name(0)})"
        return "CPU"
    return "CPU"


def gpu_peak_bytes() -> int | None:
    """Return the active backend's peak GPU memory in bytes since the process started, or None without a GPU.

    Like :func:`accelerator`, only the active backend is asked (JAX: ``peak_bytes_in_use``
    of the first device; TensorFlow: ``get_memory_info("GPU:0")["peak"]``).
    """
    if not accelerator().startswith("GPU"):
        return None
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            return int((jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0)) or None
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    except (RuntimeError, ValueError, AttributeError):  # a backend without memory statistics
        return None
    return None


def describe(config: Config | None = None, lab: str | None = None) -> str:
    """Return the one-paragraph summary every notebook prints first."""
    import keras

    config = config or get_config()
    lines = [
        f"cellkit {_version()} | lab {lab or '-'}",
        f"backend : {keras.backend.backend()} (Keras {keras.__version__})",
        f"device  : {accelerator()}",
        f"mode    : {config.mode} ({'small data, few epochs; CELLKIT_FAST=0 runs the real lab' if config.fast else 'the real lab; CELLKIT_FAST=1 runs a small version in a minute or two'})",
        f"data    : {config.source} (set CELLKIT_SOURCE=real or synthetic), cached under {config.data_dir}",
        f"seed    : {config.seed}",
    ]
    return "\n".join(lines)


def _version() -> str:
    from cellkit import __version__

    return __version__


def setup(lab: str | None = None, *, fast: bool | None = None, source: str | None = None,
          seed: int | None = None, data_dir=None, verbose: bool = True) -> Config:
    """Return the run's configuration after seeding every generator and printing the summary.

    This is the first call of every notebook.  Arguments override the environment.

    Parameters
    ----------
    lab : str, optional
        The lab's name, printed in the summary and used by the checks.
    fast, source, seed, data_dir : optional
        Override ``CELLKIT_FAST``, ``CELLKIT_SOURCE``, ``CELLKIT_SEED``, ``CELLKIT_DATA_DIR``.
    verbose : bool
        Print the summary (backend, device, mode, data source).

    Raises
    ------
    RuntimeError
        When ``CELLKIT_REQUIRE_GPU=1`` and the active backend places no work on a GPU.
    """
    config = get_config(fast=fast, source=source, seed=seed, data_dir=data_dir)
    with quiet_native_startup():  # the first import of the backend and its device probe
        set_seed(config.seed)
        accelerator()
    if _env_flag("CELLKIT_REQUIRE_GPU") and not accelerator().startswith("GPU"):
        import keras

        raise RuntimeError(
            f"CELLKIT_REQUIRE_GPU=1 but the {keras.backend.backend()} backend sees no GPU "
            f"(device: {accelerator()}); check the CUDA install, or unset CELLKIT_REQUIRE_GPU"
        )
    if verbose:
        print(describe(config, lab))
    return config
