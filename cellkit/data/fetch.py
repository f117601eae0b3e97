"""Getting a dataset onto disk: verify a local copy, download a real one, or generate a synthetic one.

:func:`dataset_path` is what a lab calls.  It makes the data source an
explicit, visible choice: ``source="real"`` returns the verified real dataset
(downloading it with a progress bar if it is missing) or raises an error that
says where to put the files and how to choose the synthetic source instead;
``source="synthetic"`` returns a generated copy in the same layout.  Nothing
falls back silently, and nothing half-written is ever used: downloads go
through pooch (temporary file, hash check, rename) and extracted or generated
folders appear in one rename when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import shutil
import zipfile
from pathlib import Path

from cellkit.atomic import atomic_dir, sha256, write_text
from cellkit.config import Config, get_config
from cellkit.data.registry import Dataset, get_dataset
from cellkit.errors import DataError, DataUnavailableError, HashMismatchError

LARGE_DOWNLOAD_BYTES = 5_000_000_000
"""Downloads above this size (bytes) need an explicit opt-in: ``allow_large=True`` or CELLKIT_ALLOW_LARGE_DOWNLOAD=1."""

_VERIFIED = ".cellkit-verified.json"
_COMPLETE = ".cellkit-complete.json"  # a synthetic copy's file list, written last: its presence means complete




def verify(dataset: Dataset | str, folder, *, rehash: bool = False) -> Path:
    """Return ``folder`` after checking that every manifest file is there with the right size and SHA-256.

    Every file's size is checked each time.  Its SHA-256 is computed on the first check; later
    checks trust a small record in the folder (``.cellkit-verified.json``) for files whose size and
    modification time are unchanged, so that a lab's second run costs no hashing.  A change that
    keeps both (a byte flipped in place, the time restored) passes that quick check:
    ``rehash=True`` (``cellkit data fetch NAME --verify``) hashes every file again.

    Raises
    ------
    DataError
        The folder is missing, empty, or lacks some files (the first few are named).
    HashMismatchError
        A file's size or SHA-256 differs from the registry's; the file is named and must not be used.
    """
    dataset = get_dataset(dataset) if isinstance(dataset, str) else dataset
    folder = Path(folder)
    where = f"dataset {dataset.name!r} at {folder}"
    if not folder.is_dir():
        raise DataError(f"{where}: folder not found; expected the layout {dataset.layout}")
    if not dataset.files:
        if not any(folder.iterdir()):
            raise DataError(f"{where}: the folder is empty; expected the layout {dataset.layout}")
        return folder
    missing = [f.path for f in dataset.files if not (folder / f.path).is_file()]
    if len(missing) == len(dataset.files):
        nested = _nested_copy(dataset, folder)
        hint = (f"; the layout is one level down, at {nested}: move its contents up into {folder} "
                f"(or pass path={str(nested)!r})" if nested else "")
        raise DataError(f"{where}: none of the {len(missing):,} expected files is there; "
                        f"expected the layout {dataset.layout}{hint}")
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3:,} more" if len(missing) > 3 else "")
        raise DataError(f"{where}: {len(missing):,} of {len(dataset.files):,} files missing ({shown})")
    record_path = folder / _VERIFIED
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        record = {}
    new_record, bad = {}, []
    for entry in dataset.files:
        path = folder / entry.path
        st = path.stat()
        if entry.bytes is not None and st.st_size != entry.bytes:
            bad.append(f"{path} has {st.st_size:,} bytes, expected {entry.bytes:,}")
            continue
        key = f"{st.st_size}:{st.st_mtime_ns}"
        cached = record.get(entry.path)
        digest = cached["sha256"] if cached and cached.get("key") == key and not rehash else sha256(path)
        if entry.sha256 and digest != entry.sha256:
            bad.append(f"{path} has SHA-256 {digest[:12]}..., expected {entry.sha256[:12]}...")
            continue
        new_record[entry.path] = {"key": key, "sha256": digest}
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3:,} more" if len(bad) > 3 else "")
        raise HashMismatchError(f"{where}: {len(bad):,} file(s) differ from the registry and will not be used: "
                                f"{shown}. Delete them and fetch again (cellkit data fetch {dataset.name}).")
    if new_record != record:
        try:
            write_text(record_path, json.dumps(new_record))
        except OSError:
            pass  # a read-only copy (e.g. a shared drive) is still usable
    return folder


def _nested_copy(dataset: Dataset, folder: Path) -> Path | None:
    """Return the subfolder of ``folder`` that holds the dataset's first file at its layout path, if one does."""
    first = dataset.files[0].path
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / first).is_file():
            return sub
    return None


def _unavailable(dataset: Dataset, dest: Path, why: str, found: str = "") -> DataUnavailableError:
    return DataUnavailableError(
        f"dataset {dataset.name!r}: {why}. {found}Place the files at {dest} (layout: {dataset.layout}), "
        f"or choose the synthetic source (CELLKIT_SOURCE=synthetic, or source='synthetic')."
    )


@contextlib.contextmanager
def _exclusive(data_dir: Path, name: str):
    """Hold a lock on dataset ``name`` in ``data_dir``, so that leftovers of a killed run can be removed safely.

    While one process holds the lock no other is fetching ``name``; so every ``.name.*.part`` folder
    and every file under ``.downloads/name`` is debris of an interrupted run (SIGKILL, power loss)
    and is deleted.  Without ``fcntl`` (Windows) nothing is locked and nothing is cleaned.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(data_dir / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for debris in data_dir.glob(f".{name}.*.part"):
                shutil.rmtree(debris, ignore_errors=True)
            shutil.rmtree(data_dir / ".downloads" / name, ignore_errors=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def text_progress_bar(desc: str, total: int | None = None, unit: str = "B"):
    """Return a plain-text progress bar on standard output (bytes by default; pooch's downloaders accept it).

    pooch's own bar is ``tqdm.auto``, which in a notebook draws an ipywidgets widget: a headless run
    (the course runner, the grader, CI) saves it as widget state that renders nowhere, and Colab
    supports only some ipywidgets versions.  A text bar renders the same in a terminal, in Jupyter,
    in Colab and in a saved notebook.
    """
    import sys

    from tqdm.std import tqdm

    return tqdm(desc=desc, total=total, unit=unit, unit_scale=unit == "B", unit_divisor=1024, file=sys.stdout,
                leave=True, ncols=88, mininterval=0.5)


def _download(url: str, known_hash: str | None, folder: Path, progressbar: bool = True) -> Path:
    import pooch

    fname = url.rstrip("/").split("/")[-1] or "download"
    # pooch sets the bar's total from the response; a bar with no total yet would be falsy to pooch
    bar = text_progress_bar(fname, total=1) if progressbar and not (folder / fname).exists() else False
    downloader = pooch.HTTPDownloader(progressbar=bar, timeout=60)
    return Path(pooch.retrieve(url, known_hash=f"sha256:{known_hash}" if known_hash else None, fname=fname,
                               path=folder, downloader=downloader))


def fetch(name: str, config: Config | None = None, *, progressbar: bool = True, rehash: bool = False,
          allow_large: bool | None = None) -> Path:
    """Return the folder of the real dataset ``name``, downloading and verifying it if needed.

    A folder ``CELLKIT_DATA_DIR/<name>`` that already passes :func:`verify` is used
    with no network access (``rehash=True`` hashes every file again).  A copy in the wrong
    place (the layout one folder down) is reported before any download; a partial copy is
    completed, and if the host cannot be reached the error says what the copy lacks.
    Leftovers of an interrupted download are removed by the next fetch of the same dataset.
    An archive source may name a second, small archive (``metadata_url``, ``metadata_members``),
    which is downloaded and extracted beside it.

    Parameters
    ----------
    allow_large : bool, optional
        Allow a download larger than :data:`LARGE_DOWNLOAD_BYTES`; the default reads the
        environment variable ``CELLKIT_ALLOW_LARGE_DOWNLOAD`` (``1`` allows).

    Raises
    ------
    DataUnavailableError
        The files are not there and the host cannot be reached (or the data is not public),
        or the download is larger than :data:`LARGE_DOWNLOAD_BYTES` and was not allowed (the size is named).
    HashMismatchError
        A downloaded or local file differs from the registry.
    """
    config = config or get_config()
    dataset = get_dataset(name)
    with _exclusive(config.data_dir, name):
        return _fetch(dataset, config.data_dir, progressbar, rehash, allow_large)


def _fetch(dataset: Dataset, data_dir: Path, progressbar: bool, rehash: bool, allow_large: bool | None) -> Path:
    name = dataset.name
    dest = data_dir / name
    found = ""  # what a local copy lacks, said again if the download fails
    if dest.is_dir() and (dataset.files or any(dest.iterdir())):
        try:
            return verify(dataset, dest, rehash=rehash)
        except HashMismatchError:
            raise
        except DataError as exc:
            if dataset.files and _nested_copy(dataset, dest):
                raise  # the files are there, one folder too deep: downloading them again would not help
            found = f"The local copy is incomplete ({str(exc).split(': ', 1)[-1]}). "
    kind = dataset.source["kind"]
    if kind == "none":
        raise _unavailable(dataset, dest, "this dataset is not public, so it cannot be downloaded")
    if kind == "keras":
        raise DataError(f"dataset {name!r} is fetched by {dataset.source['loader']}, not by cellkit.data.fetch")
    size = dataset.source.get("size_bytes") or dataset.size_bytes
    if allow_large is None:
        allow_large = os.environ.get("CELLKIT_ALLOW_LARGE_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")
    if size and size > LARGE_DOWNLOAD_BYTES and not allow_large:
        raise _unavailable(dataset, dest, f"the download is {size / 1e9:,.1f} GB ({size / 2 ** 30:,.0f} GiB), more "
                           f"than cellkit starts without being asked; to download it, set "
                           f"CELLKIT_ALLOW_LARGE_DOWNLOAD=1 (or call fetch({name!r}, allow_large=True)) and make sure "
                           f"{data_dir} has room for it and its extracted copy. Or use a subset you already "
                           f"have: dataset_path({name!r}, config, path=<its folder>)", found)
    downloads = data_dir / ".downloads"
    try:
        with atomic_dir(dest) as tmp:
            if dest.is_dir():
                shutil.copytree(dest, tmp, dirs_exist_ok=True)
            if kind == "archive":
                src = dataset.source
                try:
                    archive = _download(src["url"], src.get("sha256"), downloads / name, progressbar)
                except (OSError, ValueError) as exc:
                    if "hash" in str(exc).lower() and "match" in str(exc).lower():
                        raise HashMismatchError(f"dataset {name!r}: the archive from {src['url']} differs from "
                                                f"the registry's SHA-256 and was discarded ({exc})") from exc
                    raise _unavailable(dataset, dest, f"cannot reach {src['url']} ({type(exc).__name__}: {exc})",
                                       found) from exc
                _extract(archive, src.get("members", ""), tmp)
                if src.get("metadata_url"):  # a second, small archive (e.g. the metadata table) beside the first
                    try:
                        extra = _download(src["metadata_url"], src.get("metadata_sha256"), downloads / name, progressbar)
                    except (OSError, ValueError) as exc:
                        raise _unavailable(dataset, dest, f"cannot reach {src['metadata_url']} "
                                                          f"({type(exc).__name__}: {exc})") from exc
                    _extract(extra, src.get("metadata_members", src.get("members", "")), tmp)
            else:  # one URL per manifest file
                base = dataset.source["base_url"].rstrip("/")
                missing = [entry for entry in dataset.files if not (tmp / entry.path).is_file()]
                bar = text_progress_bar(name, total=len(missing), unit="file") if progressbar else None
                for entry in missing:  # one bar for the dataset, not one per file
                    url = f"{base}/{entry.path}"
                    try:
                        got = _download(url, entry.sha256, downloads / name / Path(entry.path).parent, False)
                    except (OSError, ValueError) as exc:
                        raise _unavailable(dataset, dest, f"cannot reach {url} ({type(exc).__name__}: {exc})",
                                           found) from exc
                    target = tmp / entry.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(got, target)
                    if bar is not None:
                        bar.update(1)
                if bar is not None:
                    bar.close()
            verify(dataset, tmp)
    finally:
        shutil.rmtree(downloads / name, ignore_errors=True)
    return dest


def _extract(archive: Path, members: str, dest: Path) -> None:
    """Extract the zip members under the prefix ``members`` into ``dest``, dropping the prefix."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.startswith(members):
                    continue
                rel = info.filename[len(members):]
                target = (dest / rel).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise DataError(f"{archive}: member {info.filename!r} would be written outside {dest}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: not a valid zip archive ({exc}); it was deleted, fetch again") from exc


def generator_fingerprint(generator) -> str:
    """Return a short hash of the source of ``generator``'s module and of the drawing toolkit it builds on."""
    import inspect

    from cellkit.data import synth

    digest = hashlib.sha256()
    for module in (inspect.getmodule(generator), synth):
        digest.update(Path(inspect.getsourcefile(module)).read_bytes())
    return digest.hexdigest()[:10]


def synthesize(name: str, config: Config | None = None, *, dest=None, overwrite: bool = False) -> Path:
    """Return the folder of a synthetic copy of dataset ``name``, generating it if needed.

    The copy is written by the dataset's generator in the real layout, under
    ``CELLKIT_DATA_DIR/synthetic/<name>/<fast|full>-seed<seed>-<generator fingerprint>``
    unless ``dest`` is given, and appears only when complete.  The fingerprint changes
    with the generator's code, so an updated cellkit never reads a stale synthetic copy.
    The copy records its files and their sizes; one that lost or changed a file since is
    generated again (same seed, same files), so a deleted image is never silently missing.
    """
    config = config or get_config()
    dataset = get_dataset(name)
    generator = dataset.generator()
    if not dest:
        key = f"{config.mode}-seed{config.seed}-{generator_fingerprint(generator)}"
        dest = config.data_dir / "synthetic" / name / key
    dest = Path(dest)
    damage = _synthetic_damage(dest)
    if damage is None and not overwrite:
        return dest
    if damage and (dest / _COMPLETE).is_file():
        print(f"synthetic {name} at {dest}: {damage}; generating it again")
        overwrite = True

    def generate(into: Path) -> None:
        generator(into, fast=config.fast, seed=config.seed)
        files = {str(f.relative_to(into)): f.stat().st_size for f in sorted(into.rglob("*")) if f.is_file()}
        write_text(into / _COMPLETE, json.dumps({"generator": dataset.synthetic, "fast": config.fast,
                                                 "seed": config.seed, "files": files}, indent=0))

    if overwrite or not dest.exists():
        with atomic_dir(dest) as tmp:
            generate(tmp)
        return dest
    # An incomplete folder from an interrupted run, or one another process is writing right now:
    # generate beside it and take its place only if it is still incomplete, never under a reader.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        generate(tmp)
        if not (dest / _COMPLETE).is_file():
            shutil.rmtree(dest, ignore_errors=True)
            try:
                os.replace(tmp, dest)
            except OSError:
                pass  # another process finished first; its copy is identical (same generator and seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _synthetic_damage(folder: Path) -> str | None:
    """Return what is wrong with the synthetic copy in ``folder`` ("not complete", "3 files missing: ..."), or None."""
    try:
        files = json.loads((folder / _COMPLETE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "not complete"
    missing = [rel for rel in files if not (folder / rel).is_file()]
    changed = [rel for rel, size in files.items() if rel not in missing and (folder / rel).stat().st_size != size]
    if not missing and not changed:
        return None
    shown = ", ".join((missing + changed)[:3])
    return f"{len(missing)} file(s) missing and {len(changed)} changed in size ({shown})"


def dataset_path(name: str, config: Config | None = None, *, path=None, verbose: bool = True) -> Path:
    """Return the folder a lab reads dataset ``name`` from, following ``config.source`` and saying which.

    Parameters
    ----------
    name : str
        A registered dataset.
    config : Config, optional
        Defaults to :func:`cellkit.config.get_config`.
    path : str or Path, optional
        A folder holding the real layout (for example a copy on Google Drive); used
        instead of the cache when the source is ``real``, after checking its files.
    """
    config = config or get_config()
    if config.source == "synthetic":
        folder = synthesize(name, config)
        what = f"SYNTHETIC {name} (generated by {get_dataset(name).synthetic}, seed {config.seed}, {config.mode} size)"
    else:
        if path is not None:
            folder = verify(name, path)
        else:
            folder = fetch(name, config)
        what = f"REAL {name} ({get_dataset(name).title})"
    if verbose:
        print(f"Data source: {what}\n  folder: {folder}")
    return folder


def cache_size(folder) -> int:
    """Return the total size in bytes of the files under ``folder``."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


__all__ = ["sha256", "verify", "fetch", "synthesize", "dataset_path", "cache_size"]
