"""Data: the registry of real datasets, fetching with hash checks, image I/O and synthetic generators.

Submodules: ``registry`` (what exists), ``fetch`` (getting it on disk),
``io`` (reading and writing images), ``synth`` (the drawing toolkit), and one
module per lab's dataset (``digits``, ``bbbc021``, ...) holding its loader and
its synthetic generator.
"""

from cellkit.data.fetch import dataset_path, fetch, sha256, synthesize, verify
from cellkit.data.io import list_images, minmax_scale, read_image, to_float01, validate_image
from cellkit.data.registry import datasets, get_dataset

__all__ = ["dataset_path", "fetch", "sha256", "synthesize", "verify", "list_images", "minmax_scale",
           "read_image", "to_float01", "validate_image", "datasets", "get_dataset"]
