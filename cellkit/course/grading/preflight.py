"""Before a batch: are the datasets the lab reads on this machine?  Said once, by name, instead of 300 times.

The sandbox has no network, so a notebook that needs real data the grader's machine lacks fails in its first
cell, and a grader that did not look first turns a class of correct notebooks into ``flagged 0/9`` rows.
"""

from __future__ import annotations

from pathlib import Path

from cellkit.atomic import sha256
from cellkit.config import get_config
from cellkit.data.fetch import verify
from cellkit.data.mnist import MNIST_NPZ_SHA256, keras_cache_file
from cellkit.data.registry import datasets
from cellkit.errors import DataError


class DataMissing(DataError):
    """The lab's real datasets are not all present: nothing was graded."""


def _keras_file(dataset) -> tuple[str, str | None]:
    if dataset.name == "mnist":
        return str(keras_cache_file()), MNIST_NPZ_SHA256
    raise DataError(f"dataset {dataset.name!r}: loaded by {dataset.source.get('loader')}, which the pre-flight "
                    "does not know; grade with --no-data-check if it is cached")


def preflight(lab: str, source: str | None = None, layout=None) -> str:
    """Return one line saying which data the batch of ``lab`` uses, after checking that the real data is present.

    With the synthetic source nothing is needed (the twins are generated in the data cache on first use).

    Raises
    ------
    DataMissing
        A real dataset the lab reads is missing or fails its check; every one is named with the command that
        fetches it and the alternative (``--source synthetic``).
    """
    config = get_config(source=source)
    needed = [d for d in datasets().values() if lab in d.labs]
    if not needed:
        return f"data: lab {lab} reads no registered dataset"
    names = ", ".join(d.name for d in needed)
    if config.source == "synthetic":
        return f"data: SYNTHETIC twins of {names} (source synthetic): no real data needed; the grades say nothing " \
               "about the real data"
    problems, found = [], []
    for d in needed:
        try:
            if d.source.get("kind") == "keras":
                path, digest = _keras_file(d)
                if not Path(path).is_file():
                    raise DataError(f"{path} is missing")
                if digest and sha256(Path(path)) != digest:
                    raise DataError(f"{path} has SHA-256 {sha256(Path(path))[:12]}..., expected {digest[:12]}...")
                found.append(f"{d.name} ({path})")
            else:
                found.append(f"{d.name} ({verify(d, config.data_dir / d.name)})")
        except DataError as exc:
            how = ("python -c 'import keras; keras.datasets.mnist.load_data()'" if d.source.get("kind") == "keras"
                   else f"cellkit data fetch {d.name}")
            problems.append(f"{d.name}: {str(exc).splitlines()[0][:300]} (get it with: {how})")
    if problems:
        raise DataMissing(f"lab {lab} reads real data that this machine lacks, and the sandbox has no network, so "
                          f"every notebook would fail: {'; '.join(problems)}. Or grade on the synthetic twins "
                          "(--source synthetic) and say so to the students")
    return f"data: REAL {', '.join(found)}"
