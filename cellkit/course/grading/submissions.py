"""Submissions: finding them, unpacking an LMS zip, naming the student, reading the notebook, its structure.

Everything here looks at the submitted file only; nothing runs the student's code.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

from cellkit.course import setup_cell

_SUSPICIOUS_CODE = [
    (r"\bctypes\b", "uses ctypes (native calls can bypass the sandbox)"),
    (r"/proc/", "reads /proc (process internals)"),
    (r"_getframe|inspect\.(stack|currentframe|getouterframes)|f_back|f_locals", "inspects call frames"),
    (r"gc\.get_(objects|referrers)", "walks the garbage collector's objects"),
    (r"sys\.addaudithook|sys\.audit\b", "touches audit hooks"),
    (r"\bos\.(read|write|dup2?|fdopen)\s*\(", "reads or writes raw file descriptors"),
    (r"autograder|solutions[/\\]|hidden[_ ]tests?|\bbuild/", "names grader files (autograder, solutions, hidden tests)"),
    (r"checks\.\w+\s*=(?!=)|setattr\(\s*checks", "replaces a cellkit check"),
    (r"otter\.(execute|test_files|run)", "touches otter's grading internals"),
]


def _safe_id(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("._") or "student"
    return text[:80]


def find_submissions(folder: Path, skip=()) -> list[Path]:
    """Return the submitted files under ``folder`` (every visible file; non-notebooks are graded as invalid)."""
    skip = {Path(s).resolve() for s in skip}
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if not path.is_file() or any(p.startswith(".") or p in ("__MACOSX", ".ipynb_checkpoints") for p in rel):
            continue
        if path.resolve() in skip:
            continue
        out.append(path)
    return out


def student_id(path: Path, root: Path, lab: str, nb=None) -> str:
    """Return the student's identifier: notebook metadata ``cellkit.student_id``, else the file or folder name.

    LMS exports name files ``<student>_<...>_01_mnist.ipynb`` or put ``01_mnist.ipynb`` in a folder per
    student; the lab's own name is stripped so that ``alice_01_mnist.ipynb`` gives ``alice``.
    """
    if nb is not None:
        meta = nb.get("metadata", {}).get("cellkit", {}) if isinstance(nb, dict) else {}
        if isinstance(meta, dict) and meta.get("student_id"):
            return _safe_id(str(meta["student_id"]))
    rel = path.relative_to(root)
    stem = path.stem
    number = lab.split("_", 1)[0]
    short = re.sub(rf"[-_ ]*(lab[-_ ]?)?({re.escape(lab)}|{re.escape(lab.split('_', 1)[-1])})$", "", stem, flags=re.I)
    if (not short or short == stem and stem.lower().startswith(number)) and len(rel.parts) > 1:
        return _safe_id(rel.parts[-2])
    return _safe_id(short or stem)


def lab_of(nb) -> str | None:
    """Return the lab a notebook says it is (otter's assignment name, else its setup cell's grader), or None."""
    name = nb.metadata.get("otter", {}).get("assignment_name") if isinstance(nb.metadata.get("otter"), dict) else None
    if name:
        return str(name)
    return setup_cell.graded_lab(nb)


_CHECK = re.compile(r"""^[ \t]*grader\.check\(\s*["']([^"']+)["']\s*\)""", re.M)


def compare_with_release(nb, released) -> list[str]:
    """Return, in words, how a submission's structure departs from the released student notebook.

    Check cells (``grader.check("q")``) must be present once, unedited and in order; the other cells that
    are not answer cells are matched by cell id, else by source: missing, duplicated or reordered ones are named.
    """
    notes = []
    rel_checks = [(i, c) for i, c in enumerate(released.cells) if c.cell_type == "code" and _CHECK.search(c.source)]
    by_id = {c.get("id"): c for c in nb.cells if c.get("id")}
    order = []
    for _, rc in rel_checks:
        q = _CHECK.search(rc.source).group(1)
        hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and q in _CHECK.findall(c.source)]
        same_id = by_id.get(rc.get("id"))
        if not hits:
            if same_id is not None:
                notes.append(f"check cell for {q} was edited (it no longer runs grader.check(\"{q}\"))")
            else:
                notes.append(f"check cell for {q} was deleted")
            continue
        if len(hits) > 1:
            notes.append(f"check cell for {q} appears {len(hits)} times")
        if all(nb.cells[i].source.strip() != rc.source.strip() for i in hits):
            notes.append(f"check cell for {q} was edited")
        order.append(hits[0])
    if order != sorted(order):
        notes.append("check cells are out of order")

    fixed = [(i, c) for i, c in enumerate(released.cells)
             if "otter_answer_cell" not in c.metadata.get("tags", []) and not _CHECK.search(c.source)
             and c.source.strip()]
    sources = [c.source.strip() for c in nb.cells]
    ids = [c.get("id") for c in nb.cells]
    positions, missing, duplicated = [], [], []
    for i, rc in fixed:
        src = rc.source.strip()
        count = sources.count(src)
        expected = sum(1 for _, c in fixed if c.source.strip() == src)
        if count > expected:
            duplicated.append(i)
        if count:
            positions.append(sources.index(src))
        elif rc.get("id") in ids:
            positions.append(ids.index(rc.get("id")))  # edited in place: fine for a plain cell
        else:
            missing.append(i)

    def label(i):
        first = released.cells[i].source.strip().splitlines()[0][:50]
        return f"{released.cells[i].cell_type} cell {i + 1} ('{first}')"

    if missing:
        notes.append(f"{len(missing)} cell(s) of the release deleted: " + ", ".join(label(i) for i in missing[:3])
                     + (" ..." if len(missing) > 3 else ""))
    if duplicated:
        notes.append(f"{len(duplicated)} cell(s) duplicated: " + ", ".join(label(i) for i in duplicated[:3]))
    if positions != sorted(positions):
        notes.append("cells were reordered")
    seen_ids = [x for x in ids if x]
    if len(seen_ids) != len(set(seen_ids)) and not duplicated:
        notes.append("cells were duplicated (repeated cell ids)")
    released_code = [c for c in released.cells if c.cell_type == "code" and c.source.strip()]
    empty_with_output = [c for c in nb.cells if c.cell_type == "code" and not c.source.strip() and c.get("outputs")]
    if released_code and len(empty_with_output) >= max(1, len(released_code) // 2):
        return [f"outputs only: {len(empty_with_output)} code cells have outputs but no code, so they cannot be "
                     "re-executed; the grade comes from re-execution (stored outputs are never trusted): look at the "
                     "outputs by hand"]
    return notes


def scan_code(nb) -> list[str]:
    """Return the suspicious constructs found in the code cells, one line each (cell number and why)."""
    found = []
    number = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        for pattern, why in _SUSPICIOUS_CODE:
            if re.search(pattern, cell.source):
                found.append(f"code cell {number} {why}")
    return found


def read_notebook(data: bytes):
    """Return ``(notebook, None)`` or ``(None, reason)`` for the bytes of a submitted file."""
    import nbformat

    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text (binary file?)"
    except ValueError as exc:
        return None, f"invalid JSON ({exc}): not a Jupyter notebook, or a truncated download"
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        return None, "valid JSON but not a Jupyter notebook (no 'cells' / 'nbformat')"
    try:
        with warnings.catch_warnings():  # repeated cell ids are reported by compare_with_release, in words
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds
        return None, f"not a valid Jupyter notebook: {str(exc).splitlines()[0][:200]}"
    return nb, None


def unpack(submissions: Path, into: Path) -> Path:
    """Return the folder of an LMS zip's contents, extracted safely (no paths outside, bounded size)."""
    limit = 4 << 30
    with zipfile.ZipFile(submissions) as zf:
        if sum(i.file_size for i in zf.infolist()) > limit:
            raise ValueError(f"{submissions}: more than 4 GiB uncompressed; unpack it yourself and pass the folder")
        for info in zf.infolist():
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts:
                continue
            zf.extract(info, into)
    return into
