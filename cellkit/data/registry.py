"""The dataset registry: one JSON file per real dataset, with pinned URLs, hashes, licence and citation.

The registry lives in the repository's ``data/datasets/`` folder (shipped inside
the package as ``cellkit/_registry`` when installed from a wheel or from git).
Each ``<name>.json`` holds:

``name``, ``title``, ``labs``, ``description``, ``homepage``
    what the dataset is and which lab uses it;
``licence``, ``licence_url``, ``licence_notes``, ``citations``
    the terms of use and what to cite (unknown terms are said to be unknown);
``source``
    how to fetch it: ``{"kind": "archive", "url", "sha256", "members", "size_bytes"}``
    (a zip whose member folder holds the layout), ``{"kind": "files", "base_url"}``
    (one URL per manifest path), ``{"kind": "keras", "loader"}`` or ``{"kind": "none"}``
    (not public: the user supplies the files);
``manifest``
    a CSV beside the JSON with ``path,bytes,sha256`` for every file of the layout;
``layout``
    the folder layout in words, quoted in errors;
``synthetic``
    ``"module:function"`` of the generator that writes the same layout.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
import json
import os
from pathlib import Path

from cellkit.errors import DataError

REQUIRED = ("name", "title", "labs", "licence", "citations", "source", "layout")
SOURCE_KINDS = ("archive", "files", "keras", "none")


def registry_dir() -> Path:
    """Return the folder holding the registry's JSON files.

    ``CELLKIT_REGISTRY_DIR`` overrides it (an instructor's own datasets, the tests);
    otherwise the repository's ``data/datasets`` is preferred (a source checkout or
    an editable install), and an installed wheel falls back to its bundled copy.
    """
    override = os.environ.get("CELLKIT_REGISTRY_DIR")
    if override:
        if not Path(override).is_dir():
            raise DataError(f"CELLKIT_REGISTRY_DIR={override}: folder not found")
        return Path(override)
    repo = Path(__file__).resolve().parents[2] / "data" / "datasets"
    if repo.is_dir():
        return repo
    bundled = Path(__file__).resolve().parents[1] / "_registry"
    if bundled.is_dir():
        return bundled
    raise DataError(f"dataset registry not found: looked in {repo} and {bundled}")


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """One file of a dataset's layout: its relative path, size in bytes and SHA-256."""

    path: str
    bytes: int | None
    sha256: str | None
    extra: tuple = ()


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A registered real dataset (see the module docstring for the fields)."""

    name: str
    title: str
    labs: tuple
    licence: str
    citations: tuple
    source: dict
    layout: str
    description: str = ""
    homepage: str = ""
    licence_url: str = ""
    licence_notes: str = ""
    manifest: str | None = None
    synthetic: str | None = None
    size_bytes: int | None = None
    notes: str = ""
    folder: Path | None = None

    @functools.cached_property
    def files(self) -> tuple[ManifestEntry, ...]:
        """Return the manifest's entries (empty when the dataset has no manifest)."""
        if not self.manifest:
            return ()
        path = (self.folder or registry_dir()) / self.manifest
        if not path.is_file():
            raise DataError(f"dataset {self.name!r}: manifest file {path} is missing")
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "path" not in rows[0]:
            raise DataError(f"{path}: expected a CSV with columns path,bytes,sha256")
        return tuple(
            ManifestEntry(r["path"], int(r["bytes"]) if r.get("bytes") else None, (r.get("sha256") or None),
                          tuple((k, v) for k, v in r.items() if k not in ("path", "bytes", "sha256")))
            for r in rows
        )

    def generator(self):
        """Return the synthetic generator function ``f(dest, *, fast, seed)`` of this dataset."""
        if not self.synthetic:
            raise DataError(f"dataset {self.name!r} has no synthetic generator")
        module, _, func = self.synthetic.partition(":")
        return getattr(importlib.import_module(module), func)


def _load(path: Path) -> Dataset:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from exc
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
    if raw["name"] != path.stem:
        raise DataError(f"{path}: name {raw['name']!r} differs from the file name {path.stem!r}")
    kind = raw["source"].get("kind")
    if kind not in SOURCE_KINDS:
        raise DataError(f"{path}: source kind {kind!r}, expected one of {', '.join(SOURCE_KINDS)}")
    fields = {f.name for f in dataclasses.fields(Dataset)}
    unknown = set(raw) - fields
    if unknown:
        raise DataError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    raw["labs"] = tuple(raw["labs"])
    raw["citations"] = tuple(raw["citations"])
    return Dataset(folder=path.parent, **raw)


def datasets() -> dict[str, Dataset]:
    """Return every registered dataset by name."""
    return {p.stem: _load(p) for p in sorted(registry_dir().glob("*.json"))}


def get_dataset(name: str) -> Dataset:
    """Return the registered dataset called ``name``.

    Raises
    ------
    KeyError
        Naming the datasets that are registered.
    """
    path = registry_dir() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in registry_dir().glob("*.json"))) or "none"
        raise KeyError(f"unknown dataset {name!r}; registered: {known}")
    return _load(path)


def render_markdown() -> str:
    """Return ``data/README.md``: the registry as a table and one section per dataset."""
    lines = [
        "# Datasets",
        "",
        "Generated by `cellkit data readme` from the JSON files in `data/datasets/`; do not edit by hand.",
        "Each real dataset is fetched by `cellkit data fetch NAME` (or on first use in a lab) into",
        "`$CELLKIT_DATA_DIR/NAME/` in its original layout, every file checked against its SHA-256.",
        "A copy you already have (for example on Google Drive) is used as it is: point `CELLKIT_DATA_DIR`",
        "at its parent folder, or pass its path to the lab's loader. Each dataset also has a synthetic",
        "generator (`cellkit data synth NAME`) that writes the same layout with a known ground truth.",
        "",
        "| dataset | lab(s) | files | size | licence |",
        "|---|---|---|---|---|",
    ]
    ds = datasets()
    for d in ds.values():
        size = f"{d.size_bytes / 1e6:,.1f} MB" if d.size_bytes else "-"
        nfiles = f"{len(d.files):,}" if d.manifest else "-"
        lines.append(f"| [{d.name}](#{d.name}) | {', '.join(d.labs)} | {nfiles} | {size} | {d.licence} |")
    for d in ds.values():
        src = d.source
        lines += ["", f"## {d.name}", "", f"**{d.title}**", ""]
        if d.description:
            lines += [d.description, ""]
        if d.homepage:
            lines.append(f"- Homepage: {d.homepage}")
        if src["kind"] == "archive":
            lines.append(f"- Download: {src['url']} (archive; keeps `{src.get('members', '')}`)")
        elif src["kind"] == "files":
            lines.append(f"- Download: one URL per file under {src['base_url']}")
        elif src["kind"] == "keras":
            lines.append(f"- Download: `{src['loader']}` (Keras's own loader and hash check)")
        else:
            lines.append("- Download: not public; supply your own files in the layout below")
        if d.manifest:
            pinned = sum(1 for f in d.files if f.sha256)
            lines.append(f"- Manifest: `data/datasets/{d.manifest}` ({len(d.files):,} files, {pinned:,} with SHA-256)")
        lines.append(f"- Layout: {d.layout}")
        lic = d.licence + (f" ({d.licence_url})" if d.licence_url else "")
        lines.append(f"- Licence: {lic}")
        if d.licence_notes:
            lines.append(f"- Licence notes: {d.licence_notes}")
        if d.synthetic:
            lines.append(f"- Synthetic generator: `{d.synthetic}`")
        if d.notes:
            lines.append(f"- Notes: {d.notes}")
        lines += ["", "Cite:", ""] + [f"- {c}" for c in d.citations]
    return "\n".join(lines) + "\n"
