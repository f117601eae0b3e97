"""Executing notebooks headless (``cellkit run``) and the short report, with :func:`record`, its notebook side.

:func:`run` executes each lab's solution notebook in a scratch copy of its
folder, with the chosen mode and data source in the environment, saves the
executed notebook under ``build/executed/`` and gathers the metric and figure
each lab records with :func:`record` into ``build/report.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from cellkit.atomic import atomic_path, write_text
from cellkit.course.layout import Layout, resolve_labs

# Kernels draw with the inline backend, so executed notebooks keep their figures (Agg would drop them).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
REPORT_DIR_ENV = "CELLKIT_REPORT_DIR"
"""Set by :func:`run` for the kernels: where :func:`record` saves each lab's metric and figure."""


def record(lab: str, metric: str, value: float, *, figure=None, note: str = "") -> None:
    """Print ``metric = value`` and, inside a ``cellkit run`` job, save it and ``figure`` for the report."""
    print(f"[report] {lab}: {metric} = {value:.4g}" + (f" ({note})" if note else ""))
    folder = os.environ.get(REPORT_DIR_ENV)
    if not folder:
        return
    folder = Path(folder)
    entry = {"lab": lab, "metric": metric, "value": float(value), "note": note, "figure": None}
    if figure is not None:
        png = folder / f"{lab}.png"
        with atomic_path(png, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
        entry["figure"] = png.name
    write_text(folder / f"{lab}.json", json.dumps(entry, indent=1))


def execute_notebook(path: Path, out: Path, *, env: dict[str, str] | None = None, timeout: int = 1800,
                     kernel: str = "python3") -> tuple[bool, float, str]:
    """Return ``(ok, seconds, error)`` after executing ``path`` in a scratch copy of its folder and saving it to ``out``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    scratch = out.parent / f".{out.stem}.scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(path.parent, scratch, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    nb = nbformat.read(path, as_version=4)
    old_env = dict(os.environ)
    os.environ.update(env or {})
    start = time.perf_counter()
    error = ""
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(scratch)}})
        client.execute()
        ok = True
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        ok = False
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    seconds = time.perf_counter() - start
    write_text(out, nbformat.writes(nb))
    shutil.rmtree(scratch, ignore_errors=True)
    return ok, seconds, error


def run(names=(), *, fast: bool | None = None, source: str | None = None, out: Path | None = None,
        include_walkthroughs: bool = False, timeout: int = 1800, root=None) -> bool:
    """Return True when every selected notebook ran; writes executed notebooks and ``report.md`` under ``out``."""
    layout = Layout.of(root)
    out = Path(out or layout.build_dir)
    executed = out / "executed"
    report_dir = out / "report"
    for d in (executed, report_dir):
        d.mkdir(parents=True, exist_ok=True)
    env = {REPORT_DIR_ENV: str(report_dir.resolve()), "MPLBACKEND": INLINE_BACKEND}
    if fast is not None:
        env["CELLKIT_FAST"] = "1" if fast else "0"
    if source is not None:
        env["CELLKIT_SOURCE"] = source
    targets = [(lab, layout.master(lab)) for lab in resolve_labs(names, layout)]
    if include_walkthroughs:
        targets += [(p.stem, p) for p in layout.walkthroughs()]
    rows = []
    for lab, path in targets:
        for stale in report_dir.glob(f"{lab}.*"):
            stale.unlink()
        print(f"running {layout.relative(path)} ...", flush=True)
        ok, seconds, error = execute_notebook(path, executed / f"{lab}.ipynb", env=env, timeout=timeout)
        print(f"  {'ok' if ok else 'FAILED'} in {seconds:.1f} s" + (f": {error}" if error else ""), flush=True)
        rows.append((lab, ok, seconds, error))
    write_text(out / "report.md", render_report(rows, report_dir, env))
    print(f"report: {out / 'report.md'}")
    return all(ok for _, ok, _, _ in rows)


def render_report(rows, report_dir: Path, env: dict[str, str]) -> str:
    """Return the Markdown report: one line per notebook with status, wall time, key metric and figure."""
    import keras

    mode = "fast" if env.get("CELLKIT_FAST", os.environ.get("CELLKIT_FAST", "0")) in ("1", "true") else "full"
    source = env.get("CELLKIT_SOURCE", os.environ.get("CELLKIT_SOURCE", "real"))
    lines = [
        "# cellkit course run",
        "",
        f"Mode: **{mode}**, data source: **{source}**, Keras backend: **{keras.backend.backend()}**, "
        f"{os.cpu_count()} CPU core(s). Executed notebooks are in `executed/`.",
        "",
        "| notebook | status | wall time | key metric | figure |",
        "|---|---|---|---|---|",
    ]
    for lab, ok, seconds, error in rows:
        metric, figure = "-", "-"
        entry_path = report_dir / f"{lab}.json"
        if entry_path.is_file():
            entry = json.loads(entry_path.read_text())
            metric = f"{entry['metric']} = {entry['value']:.4g}" + (f" ({entry['note']})" if entry.get("note") else "")
            if entry.get("figure"):
                figure = f"![{lab}](report/{entry['figure']})"
        status = "ok" if ok else f"FAILED: {error}"
        lines.append(f"| {lab} | {status} | {seconds:.0f} s | {metric} | {figure} |")
    return "\n".join(lines) + "\n"
