"""Submissions: finding them, unpacking an LMS zip, naming the student, reading the notebook, its structure.

Everything here looks at the submitted file only; nothing runs the student's code.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
import warnings
import zipfile
from pathlib import Path

from cellkit.course import setup_cell
from cellkit.course.grading.identity import plain_id, safe_id

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
    return safe_id(text)


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


def student_id(path: Path, root: Path, lab: str) -> str:
    """Return the plain rule's student id for ``path`` (see :mod:`.identity` for the LMS presets and regexes).

    ``alice_01_mnist.ipynb`` gives ``alice``, ``alice/01_mnist.ipynb`` gives ``alice``; "Copy of " and " (1)"
    are ignored.  The metadata of a notebook is the student's to edit, so it never decides who gets the grade
    (see :func:`metadata_id`).
    """
    return plain_id(Path(path).relative_to(root).as_posix(), lab)


def metadata_id(raw) -> str | None:
    """Return the id a notebook's metadata claims (``cellkit.student_id``), or None: compared, never trusted."""
    meta = raw.get("metadata", {}) if isinstance(raw, dict) else {}
    meta = meta.get("cellkit", {}) if isinstance(meta, dict) else {}
    return _safe_id(str(meta["student_id"])) if isinstance(meta, dict) and meta.get("student_id") else None


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
    positions, missing, duplicated, edited = [], [], [], []
    for i, rc in fixed:
        src = rc.source.strip()
        count = sources.count(src)
        expected = sum(1 for _, c in fixed if c.source.strip() == src)
        if count > expected:
            duplicated.append(i)
        if count:
            positions.append(sources.index(src))
        elif rc.get("id") in ids:
            positions.append(ids.index(rc.get("id")))  # edited in place: fine for text, not for code
            if rc.cell_type == "code":
                edited.append(i)
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
    if edited:
        notes.append(f"{len(edited)} code cell(s) of the release that are not answer cells were edited: "
                     + ", ".join(label(i) for i in edited[:3]) + (" ..." if len(edited) > 3 else ""))
    notes += reassigned_names(nb, released)
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


def _assigned(source: str) -> set[str]:
    """Return the names a cell binds at its top level (assignments, for targets, definitions; not imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    return names


def reassigned_names(nb, released) -> list[str]:
    """Return, in words, each cell that rebinds a name the release defines in a cell that is not an answer cell.

    The tests read names such as ``y_test`` from the notebook; ``y_test = predictions`` in an answer cell
    (or in a cell of the student's own) would make a test compare the model with itself.
    """
    def is_answer(cell):
        return "otter_answer_cell" in cell.metadata.get("tags", [])

    fixed_sources = {c.source.strip() for c in released.cells if c.cell_type == "code" and not is_answer(c)}
    owned = {}
    for i, cell in enumerate(c for c in released.cells if c.cell_type == "code"):
        if not is_answer(cell):
            for name in _assigned(cell.source):
                owned.setdefault(name, i + 1)
    for cell in released.cells:
        if cell.cell_type == "code" and is_answer(cell):
            for name in _assigned(cell.source):
                owned.pop(name, None)
    notes = []
    for number, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        if cell.source.strip() in fixed_sources:
            continue
        hit = sorted(n for n in _assigned(cell.source) & set(owned) if not n.startswith("_"))
        if hit:
            notes.append(f"code cell {number} rebinds {', '.join(hit[:4])}, which the release defines in its code "
                         f"cell {owned[hit[0]]}: the tests may read {'them' if len(hit) > 1 else 'it'}")
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
    """Return ``(notebook, None, notes)`` or ``(None, reason, notes)`` for the bytes of a submitted file.

    Bytes that are not UTF-8 (a Latin-1 accent typed in an editor) are replaced by U+FFFD and noted: the
    notebook is graded, not zeroed.  A file that is mostly not text stays ``invalid``.
    """
    import nbformat

    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8-sig", errors="ignore").count("\ufffd")
    notes = [f"the file is not valid UTF-8: {bad} byte(s) replaced by U+FFFD, then graded"] if bad else []
    try:
        raw = json.loads(text)
    except ValueError as exc:
        if bad:
            return None, "not a notebook: the file is not UTF-8 text (binary file?)", notes
        return None, f"invalid JSON ({exc}): not a Jupyter notebook, or a truncated download", notes
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        return None, "valid JSON but not a Jupyter notebook (no 'cells' / 'nbformat')", notes
    try:
        with warnings.catch_warnings():  # repeated cell ids are reported by compare_with_release, in words
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds
        return None, f"not a valid Jupyter notebook: {str(exc).splitlines()[0][:200]}", notes
    return nb, None, notes


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
            target = Path(zf.extract(info, into))
            if not info.is_dir():  # keep the zip's time: the identity rule's "newest" and the late policy read it
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(target, (stamp, stamp))
    return into
