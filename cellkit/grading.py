"""Grading student submissions: a sandboxed process per notebook, a resumable gradebook, feedback in words.

:func:`grade` takes a folder (or a learning-management system's zip) of ``.ipynb``
files for one lab and, several at a time, runs each submission in its own
process and scratch folder, then scores it with the lab's public *and hidden*
tests (otter-grader's exception-style test files, parsed and scored by otter's
own :class:`otter.test_files.ExceptionTestFile`).  It writes

- the gradebook ``OUT`` (CSV, one row per student: ``id, file, status, reason``,
  the score of each question, ``total, possible, seconds, sha256``), rewritten
  atomically after every submission, so that a grader killed halfway leaves the
  previous complete file and a re-run grades only what is missing;
- one feedback file per student, ``OUT_STEM-feedback/ID.md``: each question, each
  public and hidden test, passed or failed with the check's message in words;
- a summary: the score distribution and every submission that needs a person's look.

Why not ``otter run``?  otter's local runner unpacks the autograder zip, hidden
tests included, beside the submission and executes the notebook there, as the
same user, with no time or memory limit: the student's code can read the hidden
tests while it runs.  Here the notebook runs first with the *public* tests only;
the hidden tests reach the process through a pipe once every cell has run.

Threat model (what the sandbox does, and where it stops)
---------------------------------------------------------
Defended, on Linux with unprivileged user namespaces (``unshare``; probed once):

* **Reading hidden tests, solutions, other submissions, the gradebook**: the
  worker runs in new user, mount, network and PID namespaces; the repository's
  ``solutions/`` and ``build/``, the submissions, the gradebook and feedback
  folder and the host's ``/tmp`` are covered by empty tmpfs mounts, and the mounts
  are then locked by a second, nested user namespace (they cannot be unmounted).
  The hidden tests are not on any file system the worker can see; they arrive
  through a pipe after the last cell has run.
* **Writing or deleting outside the scratch folder**: every host mount is
  remounted read-only; only the scratch folder (seen as ``/tmp/submission``), a
  private ``/tmp`` and the dataset cache are writable.
* **Network**: none (empty network namespace).  **Signals to the grader or other
  workers**: impossible (own PID namespace).
* **Infinite loops, memory bombs, disk filling**: a per-notebook time budget
  (each cell is interrupted when it runs out, the process is killed a little
  later), ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE`` (file size), ``RLIMIT_CPU``
  (a last resort that also ends orphans), no core dumps.

Detected and flagged (a Python audit hook, both modes): opening a protected path,
writing/deleting/renaming outside the scratch folder (the call fails with
``PermissionError`` and the attempt is recorded), plus a static scan of the
submitted code for grader-tampering tools (``ctypes``, ``/proc/``, frame
inspection, ``gc.get_objects``, the words ``autograder``/``solutions``...).

Not defended (say so to your colleagues):

* The hidden tests run *in the student's process* after the student's cells,
  as in otter and nbgrader: they call the student's functions, and code written
  against this grader can monkeypatch the checks, inspect the test's frames for
  expected values, or impersonate the worker's pipe protocol.  The audit hook
  and the static scan catch the usual ways and flag them; a determined attacker
  with ``ctypes`` can defeat any in-process defence.  Keep the hidden tests to
  *properties* (shapes, parameter counts, agreement with a reference) rather
  than secrets, and look at every ``suspicious`` row.
* The dataset cache is writable (real datasets are too large to copy per
  student); a submission could corrupt it for the ones graded after it.
* Without user namespaces (macOS, Windows, hardened Ubuntu 24.04 AppArmor
  profiles, some containers) the worker is an ordinary process of your user: the
  audit hook and resource limits still apply, but native code can read anything
  you can.  :func:`grade` prints ``sandbox: process only`` in that case.  Grade
  untrusted work in a disposable VM or container in that case.
* No limit on the number of processes (``RLIMIT_NPROC`` counts all of your user's
  processes); a fork bomb is contained only by the PID namespace and the kill.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

STATUSES = {
    "ok": "graded; nothing unusual",
    "flagged": "graded, but a person should look (cells raised errors, the structure or a check cell changed, "
               "names the tests need are missing, outputs only...)",
    "suspicious": "graded, but the code tried to leave its sandbox (read the tests, write or delete files outside "
                  "its folder) or to tamper with the grader: read it",
    "timeout": "a cell ran out of the time budget (interrupted; later cells skipped) or the process was killed",
    "out_of_memory": "a cell hit the memory limit (MemoryError) or the process was killed for memory",
    "wrong_lab": "the notebook belongs to another lab: not graded (score 0)",
    "invalid": "not a Jupyter notebook (invalid JSON, another file type, unreadable): not graded (score 0)",
    "error": "the grading process itself failed (crash, lost protocol): re-run, then look",
}
"""Every status a gradebook row can have, and what it means."""

_PRIORITY = ["invalid", "wrong_lab", "error", "suspicious", "timeout", "out_of_memory", "flagged", "ok"]

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

# ---------------------------------------------------------------------------------------------- the worker
# Everything from here to ``_worker_main`` runs in the sandboxed child, started as a plain script
# (``python -I -B cellkit/grading.py --worker``) so that nothing but the standard library is imported
# before the namespaces are set up (a second user namespace can only be entered by a single thread).

_MS = dict(rdonly=1, nosuid=2, nodev=4, noexec=8, remount=32, bind=4096, rec=16384, noatime=1024,
           nodiratime=2048, relatime=1 << 21, strictatime=1 << 24)
_SANDBOX_DIR = "/tmp/submission"


class _CellTimeout(BaseException):
    """Raised inside a cell when the notebook's time budget runs out (BaseException: ``except Exception`` misses it)."""


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(libc, src, target, fstype, flags, data=None):
    import ctypes

    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    if libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mount_flags(options: str) -> int:
    flags = 0
    for opt in options.split(","):
        if opt in ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime"):
            flags |= _MS[opt]
    return flags


def _setup_namespace(cfg: dict) -> dict:
    """Return what was done after hiding the protected paths and making the host read-only (inside ``unshare``)."""
    libc = _libc()
    info = {"ro_failed": [], "hidden": []}
    keep = {}
    for path in [cfg["scratch"], *cfg["rw"]]:
        if os.path.isdir(path):
            keep[path] = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    # The Python environment and cellkit itself may live under a folder about to be covered (a clone in
    # /tmp, a venv in /var/tmp): bind them back, read-only, after covering.  Opened before any mount, the
    # recursive bind still carries the tmpfs mounts that hide solutions/ and build/ inside them.
    covered = ("/tmp", "/dev/shm", "/var/tmp")
    reveal = {}
    for path in cfg.get("reveal", []):
        if os.path.isdir(path) and any(path == c or path.startswith(c + "/") for c in covered):
            if not any(path == r or path.startswith(r + "/") for r in [*keep, *reveal]):
                reveal[path] = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4].encode().decode("unicode_escape")
            mounts.append((point, parts[5]))
    for point, options in mounts:
        if point.startswith(("/proc", "/sys", "/dev")):
            continue
        try:
            _mount(libc, None, point, None, _MS["remount"] | _MS["bind"] | _MS["rdonly"] | _mount_flags(options))
        except OSError as exc:
            info["ro_failed"].append(f"{point}: {exc.strerror}")
    for path in [*cfg["hide"], *covered]:
        try:
            if os.path.isdir(path):
                _mount(libc, "tmpfs", path, "tmpfs", _MS["nosuid"] | _MS["nodev"], "size=2g,mode=1777")
                info["hidden"].append(path)
            elif os.path.isfile(path):
                _mount(libc, "/dev/null", path, None, _MS["bind"])
                info["hidden"].append(path)
        except OSError as exc:
            info["ro_failed"].append(f"hide {path}: {exc.strerror}")
    for path, fd in reveal.items():
        os.makedirs(path, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", path, None, _MS["bind"] | _MS["rec"])
        _mount(libc, None, path, None, _MS["remount"] | _MS["bind"] | _MS["rdonly"] | _MS["nosuid"] | _MS["nodev"])
        os.close(fd)
        info.setdefault("revealed", []).append(path)
    for path, fd in keep.items():
        target = _SANDBOX_DIR if path == cfg["scratch"] else path
        os.makedirs(target, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS["bind"] | _MS["rec"])
        _mount(libc, None, target, None, _MS["remount"] | _MS["bind"] | _MS["nosuid"] | _MS["nodev"])
        os.close(fd)
    # Lock: mounts inherited into a less privileged user namespace can no longer be unmounted or made writable.
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        import ctypes

        raise OSError(ctypes.get_errno(), "nested unshare failed")
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    probe = cfg["hide"][0] if cfg["hide"] else "/tmp"
    info["locked"] = libc.umount2(os.fsencode(probe), 0) != 0
    return info


def _set_limits(cfg: dict) -> None:
    import resource

    def lower(kind, value):
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    if cfg.get("memory_limit"):
        lower(resource.RLIMIT_AS, int(cfg["memory_limit"]))
    lower(resource.RLIMIT_FSIZE, int(cfg.get("file_limit", 1 << 30)))
    lower(resource.RLIMIT_CORE, 0)
    lower(resource.RLIMIT_CPU, int((cfg["timeout"] + cfg["test_timeout"] + 120) * max(1, cfg.get("threads", 1)) * 2))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead of killing


def _audit_hook_factory(cfg: dict, violations: list):
    """Return an audit hook that refuses (and records) protected reads and writes outside the writable roots."""
    writable = [os.path.realpath(p) for p in cfg["writable"]]
    protected = [os.path.realpath(p) for p in cfg["protected"]]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.utime": 1,
                   "os.truncate": 1, "shutil.rmtree": 1, "os.rename": 2, "os.symlink": 2, "os.link": 2}
    busy = threading.local()

    def under(path, roots):
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def refuse(kind, path):
        if len(violations) < 50:
            violations.append({"kind": kind, "path": path})
        raise PermissionError(f"grading sandbox: {kind} is not allowed: {path}")

    def real(path):
        if isinstance(path, int):
            return None
        try:
            return os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None

    def hook(event, args):
        if getattr(busy, "on", False):
            return
        if event == "open":
            path = real(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            wants_write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & write_flags)
            busy.on = True
            try:
                if under(path, protected):
                    refuse("reading grader files (tests, solutions, other submissions, the gradebook)", path)
                if wants_write and not under(path, writable) and path != "/dev/null":
                    refuse("writing outside the submission folder", path)
            finally:
                busy.on = False
        elif event in path_events:
            busy.on = True
            try:
                for arg in args[:path_events[event]]:
                    path = real(arg)
                    if path is None:
                        continue
                    if under(path, protected):
                        refuse(f"{event} on grader files", path)
                    if not under(path, writable):
                        refuse(f"{event} outside the submission folder", path)
            finally:
                busy.on = False

    return hook


def _send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:  # the grader is gone: stop
        os._exit(3)


def _error_text(exc) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) < 1500 else text[:1500] + " [...]"


def _run_tests(shell_ns: dict, tests: dict, time_left) -> list[dict]:
    """Return one dict per question: name, score, possible, and each test case's result in words."""
    from otter.test_files import ExceptionTestFile
    from otter.test_files.abstract_test import TestCaseResult

    questions = []
    for name in sorted(tests):
        tf = ExceptionTestFile.from_string(tests[name], path=f"<hidden tests>/{name}.py")
        results, cases = [], []
        for tc in tf.test_cases:
            passed, message = True, ""
            needed = [p for p in tc.body._get_func_params() if p != "env"]
            missing = [p for p in needed if p not in shell_ns or shell_ns[p] is None or shell_ns[p] is Ellipsis]
            signal.setitimer(signal.ITIMER_REAL, max(1.0, time_left()))
            try:
                tc.body.call_func(shell_ns)
            except _CellTimeout:
                passed, message = False, "the test ran out of time (your function may loop forever)"
            except BaseException as exc:  # noqa: BLE001 - a student's function can raise anything
                passed, message = False, _error_text(exc)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            results.append(TestCaseResult(test_case=tc, message=message, passed=passed))
            cases.append({"name": getattr(tc.body.test_func, "__name__", tc.name), "hidden": bool(tc.hidden), "passed": passed, "message": message,
                          "missing": [p for p in missing if p not in shell_ns]})
        tf.test_case_results = results
        questions.append({"name": tf.name, "score": float(tf.score), "possible": float(tf.possible), "cases": cases})
    return questions


def _worker_main(cfg: dict) -> None:
    """Run one submission (in the child): set up the sandbox, execute the cells, then the tests from the pipe."""
    ctl, tests_fd = cfg["ctl_fd"], cfg["tests_fd"]
    info = {"mode": "process"}
    workdir = cfg["scratch"]
    if cfg["sandbox"]:
        try:
            info.update(_setup_namespace(cfg))
            info["mode"] = "namespace"
            workdir = _SANDBOX_DIR
        except OSError as exc:
            _send(ctl, {"event": "fatal", "error": f"sandbox set-up failed: {exc}"})
            os._exit(4)
    os.chdir(workdir)
    home = os.path.join(workdir, ".home")
    os.makedirs(home, exist_ok=True)
    os.environ.update({"HOME": home, "MPLCONFIGDIR": os.path.join(home, "mpl"), "IPYTHONDIR": os.path.join(home, "ipy"),
                       "XDG_CACHE_HOME": os.path.join(home, "cache"), "TMPDIR": os.path.join(workdir, ".tmp"),
                       "NUMBA_CACHE_DIR": os.path.join(home, "numba"), "KERAS_HOME": os.path.join(home, ".keras")})
    os.makedirs(os.environ["KERAS_HOME"], exist_ok=True)
    if cfg.get("keras_datasets") and os.path.isdir(cfg["keras_datasets"]):
        # datasets the instructor downloaded (real MNIST), read-only; keras writes its config in the scratch folder
        os.symlink(cfg["keras_datasets"], os.path.join(os.environ["KERAS_HOME"], "datasets"))
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    cfg["writable"] = [workdir, *cfg["rw"]]  # TMPDIR points inside workdir
    _set_limits(cfg)
    _send(ctl, {"event": "ready", "sandbox": info})

    import nbformat
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    nb = nbformat.read(os.path.join(workdir, cfg["notebook"]), as_version=4)
    violations: list = []
    sys.addaudithook(_audit_hook_factory(cfg, violations))

    deadline = time.monotonic() + cfg["timeout"]

    def on_alarm(signum, frame):
        raise _CellTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    cells = []
    index = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        index += 1
        left = deadline - time.monotonic()
        if left <= 0:
            cells.append({"cell": i, "number": index, "status": "skipped", "error": "", "seconds": 0.0})
            continue
        _send(ctl, {"event": "cell", "cell": i, "number": index})
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, left)
        try:
            result = shell.run_cell(cell.source, store_history=False, silent=False)
            err = result.error_before_exec or result.error_in_exec
        except _CellTimeout as exc:
            err = exc
        except MemoryError as exc:
            err = exc
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        status = "ok"
        if isinstance(err, _CellTimeout):
            status, err_text = "timeout", f"the cell was stopped after the notebook's time budget ({cfg['timeout']:.0f} s) ran out"
        elif isinstance(err, MemoryError):
            status, err_text = "memory", f"MemoryError: the cell exceeded the memory limit ({cfg['memory_limit'] / 2**30:.1f} GiB)"
        elif err is not None:
            status, err_text = "error", _error_text(err)
        else:
            err_text = ""
        cells.append({"cell": i, "number": index, "status": status, "error": err_text,
                      "seconds": round(time.monotonic() - start, 2)})
        sys.stdout.flush()
    _send(ctl, {"event": "executed", "cells": cells, "violations": violations})

    chunks = []
    while True:
        chunk = os.read(tests_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(tests_fd)
    tests = json.loads(b"".join(chunks) or b"{}")
    test_deadline = time.monotonic() + cfg["test_timeout"]
    questions = _run_tests(shell.user_ns, tests, lambda: test_deadline - time.monotonic())
    peak = ""
    try:
        with open("/proc/self/status") as f:
            peak = " ".join(line.split(":", 1)[1].strip() for line in f if line.startswith(("VmPeak", "VmHWM")))
    except OSError:
        pass
    print(f"\n[grader] memory: {peak}", flush=True)
    _send(ctl, {"event": "results", "questions": questions, "violations": violations, "memory": peak})
    sys.stdout.flush()
    os._exit(0)  # skip interpreter shutdown: the student's objects may misbehave in finalisers


# ---------------------------------------------------------------------------------------------- the grader

def _release_paths(lab: str, root: Path | None, *, build_missing: bool = True) -> dict:
    from cellkit.course import repo_root

    root = Path(root) if root else repo_root()
    paths = {"root": root, "notebook": root / "labs" / lab / f"{lab}.ipynb", "public": root / "labs" / lab / "tests",
             "autograder": root / "build" / "autograder" / f"{lab}-autograder.zip"}
    for key in ("notebook", "public"):
        if not paths[key].exists():
            raise FileNotFoundError(f"{paths[key]} is missing: run 'cellkit course build {lab}' first")
    if build_missing and not paths["autograder"].exists():
        # A fresh clone has labs/ (committed) but not build/ (generated): build the autograder from the
        # committed master, leaving labs/ and the master untouched.
        from cellkit.course import build_lab

        master = root / "solutions" / lab / f"{lab}.ipynb"
        if not master.is_file():
            raise FileNotFoundError(f"{paths['autograder']} is missing and so is the master {master}: "
                                    "pass autograder= (the released instructors/autograder zip)")
        print(f"{paths['autograder']} is missing: building it from {master} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            build_lab(lab, root, labs_dir=Path(tmp), write_master=False)
    return paths


def hidden_tests(autograder_zip) -> dict[str, str]:
    """Return ``{question: test file source}`` read from an otter autograder zip (public and hidden cases)."""
    with zipfile.ZipFile(autograder_zip) as zf:
        return {Path(n).stem: zf.read(n).decode("utf-8") for n in zf.namelist()
                if n.startswith("tests/") and n.endswith(".py")}


def question_points(tests: dict[str, str]) -> dict[str, float]:
    """Return each question's points, parsed by otter."""
    from otter.test_files import ExceptionTestFile

    return {name: float(ExceptionTestFile.from_string(src, path=name).possible) for name, src in sorted(tests.items())}


def sandbox_available() -> bool:
    """Return True when this machine can run workers in user/mount/net/PID namespaces (``unshare``)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
                               "--mount-proc", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


# ------------------------------------------------------------------ submissions, ids, structure

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


def _lab_of(nb) -> str | None:
    name = nb.metadata.get("otter", {}).get("assignment_name") if isinstance(nb.metadata.get("otter"), dict) else None
    if name:
        return str(name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            m = re.search(r"""course\.grader\(\s*["']([^"']+)["']""", cell.source)
            if m:
                return m.group(1)
    return None


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


# ------------------------------------------------------------------ one submission

class _Context:
    def __init__(self, lab, paths, tests, points, *, fast, source, timeout, cell_timeout, test_timeout,
                 memory_limit, sandbox, protected, rw, threads, feedback_dir, keep_scratch):
        self.__dict__.update(locals())
        self.released = None
        self.live = set()
        self.stopping = False


def _worker_env(ctx: _Context) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "KERAS_BACKEND", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
                    "TF_CPP_MIN_LOG_LEVEL", "SYSTEMROOT") or k.startswith("CELLKIT_")}
    n = str(ctx.threads)
    env.update({"CELLKIT_FAST": "1" if ctx.fast else "0", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
                "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n, "MALLOC_ARENA_MAX": "2",
                "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2")})
    if ctx.source:
        env["CELLKIT_SOURCE"] = ctx.source
    env.pop("CELLKIT_REPORT_DIR", None)
    env.pop("CELLKIT_REQUIRE_GPU", None)
    return env


def _execute(ctx: _Context, nb_bytes: bytes, scratch: Path) -> dict:
    """Return the worker's events after running one notebook in a sandboxed child process."""
    (scratch / "tests").mkdir(parents=True, exist_ok=True)
    for test in ctx.paths["public"].glob("*.py"):
        shutil.copy(test, scratch / "tests" / test.name)
    (scratch / "submission.ipynb").write_bytes(nb_bytes)
    ctl_r, ctl_w = os.pipe()
    tests_r, tests_w = os.pipe()
    cfg = {"scratch": str(scratch), "notebook": "submission.ipynb", "hide": [str(p) for p in ctx.protected if Path(p).exists()],
           "protected": [str(p) for p in ctx.protected], "rw": [str(p) for p in ctx.rw], "sandbox": ctx.sandbox,
           "memory_limit": ctx.memory_limit, "timeout": ctx.cell_timeout, "test_timeout": ctx.test_timeout,
           "threads": ctx.threads, "ctl_fd": ctl_w, "tests_fd": tests_r,
           "reveal": sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                            Path(__file__).resolve().parents[1])}),
           "keras_datasets": str(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets")}
    cmd = [sys.executable, "-I", "-B", str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    if ctx.sandbox:
        cmd = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--mount-proc",
               "--kill-child", *cmd]
    log = open(scratch.parent / f"{scratch.name}.log", "wb")
    events = {"cells_started": [], "log": str(scratch.parent / f"{scratch.name}.log")}
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=(ctl_w, tests_r), env=_worker_env(ctx), start_new_session=True)
    finally:
        os.close(ctl_w)
        os.close(tests_r)
        log.close()
    ctx.live.add(proc)
    hard = ctx.timeout + ctx.test_timeout + 90
    buffer = b""
    tests_sent = False
    try:
        while True:
            left = start + hard - time.monotonic()
            if left <= 0:
                events["killed"] = f"killed after {hard:.0f} s (hard time limit)"
                break
            ready, _, _ = select.select([ctl_r], [], [], min(left, 5.0))
            if not ready:
                if proc.poll() is not None and not buffer:
                    # process gone; drain what is left
                    pass
                continue
            chunk = os.read(ctl_r, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    events["tampered"] = "unreadable message on the grader's pipe"
                    continue
                kind = msg.get("event")
                if kind == "cell":
                    events["cells_started"].append(msg.get("number"))
                elif kind == "executed":
                    if tests_sent:
                        events["tampered"] = "the 'executed' message arrived twice: the code impersonated the worker"
                        continue
                    events["executed"] = msg
                    try:
                        os.write(tests_w, json.dumps(ctx.tests).encode())
                    except OSError:
                        pass
                    os.close(tests_w)
                    tests_sent = True
                elif kind in ("ready", "results", "fatal"):
                    if kind in events:
                        events["tampered"] = f"the '{kind}' message arrived twice"
                    events[kind] = msg
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        ctx.live.discard(proc)
        os.close(ctl_r)
        if not tests_sent:
            os.close(tests_w)
    events["returncode"] = proc.returncode
    events["seconds"] = round(time.monotonic() - start, 1)
    return events


def _read_notebook(data: bytes):
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
    import warnings

    try:
        with warnings.catch_warnings():  # repeated cell ids are reported by compare_with_release, in words
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds
        return None, f"not a valid Jupyter notebook: {str(exc).splitlines()[0][:200]}"
    return nb, None


def grade_submission(path: Path, ctx: _Context, sid: str) -> tuple[dict, str]:
    """Return ``(gradebook row, feedback Markdown)`` for one submitted file."""
    import nbformat

    data = path.read_bytes()
    row = {"id": sid, "file": path.name, "status": "ok", "reason": "", "total": 0.0,
           "possible": sum(ctx.points.values()), "seconds": 0.0, "sha256": hashlib.sha256(data).hexdigest()}
    for q in ctx.points:
        row[q] = 0.0
    reasons: list[tuple[str, str]] = []
    nb, problem = (None, "not a notebook: the file name does not end in .ipynb") if path.suffix != ".ipynb" \
        else _read_notebook(data)
    questions, cells, events = [], [], {}
    if nb is None:
        reasons.append(("invalid", problem))
    else:
        lab_name = _lab_of(nb)
        if lab_name and lab_name != ctx.lab:
            reasons.append(("wrong_lab", f"this notebook is lab {lab_name}, not {ctx.lab}"))
    if nb is not None and not any(s in ("wrong_lab",) for s, _ in reasons):
        if lab_name is None:
            reasons.append(("flagged", f"no lab name in the notebook (metadata or setup cell); graded as {ctx.lab}"))
        reasons += [("flagged", n) for n in compare_with_release(nb, ctx.released)]
        from cellkit.course import course_version
        from cellkit.release import notebook_version

        pinned = notebook_version(nb)
        if pinned and pinned != course_version():
            reasons.append(("flagged", f"the notebook comes from release {pinned}; graded with cellkit {course_version()}"))
        reasons += [("suspicious", f"suspicious code: {n}") for n in scan_code(nb)]
        clean = nbformat.from_dict(json.loads(nbformat.writes(nb)))
        for cell in clean.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        with tempfile.TemporaryDirectory(prefix="cellkit-grade-") as tmp:
            scratch = Path(tmp) / "work"
            scratch.mkdir()
            events = _execute(ctx, nbformat.writes(clean).encode(), scratch)
            if ctx.keep_scratch:
                keep = ctx.feedback_dir / ".logs"
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(events["log"], keep / f"{sid}.log")
        row["seconds"] = events["seconds"]
        cells = events.get("executed", {}).get("cells", [])
        questions = events.get("results", {}).get("questions", [])
        violations = (events.get("results") or events.get("executed") or {}).get("violations", [])
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        failed = []
        for c in cells:
            where = f"code cell {c['number']}"
            stored = code_cells[c["number"] - 1] if c["number"] - 1 < len(code_cells) else None
            ran_before = stored is not None and stored.get("execution_count") and not any(
                o.get("output_type") == "error" for o in stored.get("outputs", []))
            if c["status"] == "timeout":
                reasons.append(("timeout", f"{where}: {c['error']} (infinite loop?); later cells skipped"))
            elif c["status"] == "memory":
                reasons.append(("out_of_memory", f"{where}: {c['error']}"))
            elif c["status"] == "error":
                extra = " (its stored output shows it ran on the student's machine)" if ran_before else ""
                failed.append(f"{where} raised {c['error'].splitlines()[0][:160]}{extra}")
        if failed:
            more = f" (and {len(failed) - 1} more cell(s), see the feedback)" if len(failed) > 1 else ""
            reasons.append(("flagged", f"{failed[0]}{more}"))
        for v in violations:
            reasons.append(("suspicious", f"blocked {v['kind']}: {v['path']}"))
        if events.get("tampered"):
            reasons.append(("suspicious", events["tampered"]))
        if "fatal" in events:
            reasons.append(("error", events["fatal"]["error"]))
        elif not questions:
            started = events["cells_started"][-1] if events["cells_started"] else None
            at = f" during code cell {started}" if started and "executed" not in events else " while the tests ran"
            rc = events.get("returncode")
            if events.get("killed"):
                reasons.append(("timeout", f"{events['killed']}{at}"))
            elif rc in (-9, 137, -signal.SIGSEGV, 139) or (rc is not None and rc < 0):
                reasons.append(("out_of_memory" if rc in (-9, 137) else "error",
                                f"the process died (exit {rc}){at}: memory, a crash or os._exit"))
            else:
                reasons.append(("error", f"no test results (exit {rc}){at}; see the worker log"))
        missing = sorted({m for q in questions for c in q["cases"] for m in c.get("missing", [])})
        if missing:
            reasons.append(("flagged", f"names the tests need are not defined: {', '.join(missing)} (renamed or deleted?)"))
    for q in questions:
        row[q["name"]] = q["score"]
    row["total"] = round(sum(q["score"] for q in questions), 4)
    statuses = [s for s, _ in reasons] or ["ok"]
    row["status"] = min(statuses, key=_PRIORITY.index)
    seen = []
    for _, text in sorted(reasons, key=lambda r: _PRIORITY.index(r[0])):
        if text not in seen:
            seen.append(text)
    row["reason"] = "; ".join(seen)
    row["_reasons"] = seen  # for the feedback; not a gradebook column
    return row, feedback_text(row, questions, cells, ctx)


def feedback_text(row: dict, questions: list[dict], cells: list[dict], ctx) -> str:
    """Return a student's feedback in Markdown: score, status in words, each public and hidden test's result."""
    lines = [f"# Feedback: lab {ctx.lab}", "",
             f"**Student**: {row['id']} (file `{row['file']}`)  ",
             f"**Score**: {row['total']:g} / {row['possible']:g}  ",
             f"**Status**: {row['status']}: {STATUSES[row['status']]}", ""]
    if row["reason"]:
        lines += ["**What the grader noticed**:", ""] + [f"- {r}" for r in row.get("_reasons") or [row["reason"]]] + [""]
    if not questions:
        lines += ["Your notebook could not be graded, so every question scores 0. If you think this is wrong, "
                  "check that you submitted the right file, then ask your instructor.", ""]
    for q in questions:
        lines += [f"## {q['name']}: {q['score']:g} / {q['possible']:g}", ""]
        for c in q["cases"]:
            kind = "hidden test" if c["hidden"] else "public test"
            verdict = "passed" if c["passed"] else "failed"
            text = f"- {kind} `{c['name'].split(' - ')[-1] if ' - ' in c['name'] else c['name']}`: **{verdict}**"
            if not c["passed"] and c["message"]:
                text += f": {c['message'].splitlines()[0] if c['message'] else ''}"
            lines.append(text)
        lines.append("")
    errors = [c for c in cells if c["status"] != "ok"]
    if errors:
        lines += ["## Cells that did not run cleanly", ""]
        lines += [f"- code cell {c['number']}: {c['status']}: {c['error'].splitlines()[0] if c['error'] else ''}"
                  for c in errors] + [""]
    lines += ["Public tests are the ones `grader.check` ran in your notebook; hidden tests check the same tasks "
              "more thoroughly and only run at grading time.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the gradebook

def read_gradebook(path: Path) -> dict[str, dict]:
    """Return the rows of an existing gradebook keyed by student id (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def write_gradebook(path: Path, rows: dict[str, dict], questions: list[str]) -> None:
    """Write the gradebook atomically: readers (and a killed grader) see the old file or the new one."""
    from cellkit.atomic import write_text

    fields = ["id", "file", "status", "reason", *questions, "total", "possible", "seconds", "sha256"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for sid in sorted(rows):
        writer.writerow(rows[sid])
    write_text(path, buffer.getvalue())


def summary(rows: dict[str, dict], possible: float) -> str:
    """Return the printed summary: counts per status, score distribution, and the rows that need a look."""
    rows = list(rows.values())
    lines = [f"{len(rows)} submission(s): " + ", ".join(f"{s} {sum(r['status'] == s for r in rows)}"
                                                        for s in _PRIORITY if any(r["status"] == s for r in rows))]
    totals = sorted(float(r["total"]) for r in rows)
    if totals and possible:
        mean = sum(totals) / len(totals)
        median = totals[len(totals) // 2] if len(totals) % 2 else (totals[len(totals) // 2 - 1] + totals[len(totals) // 2]) / 2
        lines.append(f"score out of {possible:g}: mean {mean:.2f}, median {median:.2f}, min {totals[0]:g}, max {totals[-1]:g}")
        bins = [0] * 10
        for t in totals:
            bins[min(9, int(t / possible * 10))] += 1
        for i, n in enumerate(bins):
            label = f"{i * 10:3d}-{i * 10 + 9 if i < 9 else 100:3d}%"
            lines.append(f"  {label} | {'#' * n} {n if n else ''}".rstrip())
    look = [r for r in rows if r["status"] != "ok"]
    if look:
        lines.append(f"needs a person's look ({len(look)}):")
        for r in sorted(look, key=lambda r: (_PRIORITY.index(r["status"]), r["id"])):
            lines.append(f"  {r['id']:24s} {r['status']:13s} {float(r['total']):g}/{possible:g}  {r['reason'][:300]}")
    return "\n".join(lines)


def _unpack(submissions: Path, into: Path) -> Path:
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


def grade(submissions, lab, out, *, workers: int | None = None, timeout: float = 600, memory_limit: float = 6.0,
          fast: bool = True, regrade: bool = False, source: str | None = None, cell_timeout: float | None = None,
          test_timeout: float = 120, sandbox: bool | None = None, root=None, keep_logs: bool = False,
          autograder=None, verbose: bool = True) -> dict:
    """Return the gradebook rows (by student id) after grading every submission of ``lab``.

    Parameters
    ----------
    submissions : path
        A folder of ``.ipynb`` files (searched recursively: one folder per student works) or a zip of them.
    lab : str
        ``01``, ``01_mnist`` or ``mnist``.
    out : path
        The gradebook CSV; feedback goes to ``<out stem>-feedback/<id>.md`` beside it.
    workers : int, optional
        Submissions graded at once (default: the CPU cores, within the memory that ``memory_limit`` allows).
    timeout : float
        Seconds each notebook's cells may run in all; a cell running when it runs out is interrupted and the
        rest are skipped; the process is killed ``test_timeout + 90`` s later at the latest.
    memory_limit : float
        GiB of address space per submission (``RLIMIT_AS``; TensorFlow alone maps about 2 GiB).
    fast : bool
        Run the labs in fast mode (``CELLKIT_FAST=1``): the instructor's choice.
    regrade : bool
        Grade again the submissions already in the gradebook (by default only new or changed files are graded).
    source : {"real", "synthetic"}, optional
        The data source (default: ``$CELLKIT_SOURCE``).
    cell_timeout : float, optional
        The budget for the cells (default ``timeout``).
    sandbox : bool, optional
        Use namespaces (default: when available); ``False`` runs plain processes (audit hook and limits only).
    autograder : path, optional
        The otter autograder zip whose tests grade (default ``build/autograder/LAB-autograder.zip``); pass the
        release's ``instructors/autograder/LAB-autograder.zip`` to grade against exactly what was released.

    Returns
    -------
    dict
        ``{"rows": {id: row}, "summary": str, "seconds": float, "graded": int, "sandbox": str}``.
    """
    import nbformat

    from cellkit.course import resolve_labs

    t0 = time.perf_counter()
    root = Path(root) if root else None
    lab = resolve_labs([str(lab)], root)[0]
    paths = _release_paths(lab, root, build_missing=autograder is None)
    if autograder is not None:
        paths["autograder"] = Path(autograder).resolve()
        if not paths["autograder"].is_file():
            raise FileNotFoundError(f"autograder={autograder}: no such zip")
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    if not submissions.exists():
        raise FileNotFoundError(f"submissions={submissions}: no such folder or zip")
    if timeout <= 0 or memory_limit <= 0:
        raise ValueError(f"timeout={timeout}, memory_limit={memory_limit}: expected positive numbers")
    feedback_dir = out.with_name(f"{out.stem}-feedback")
    for needed in (Path(sys.prefix).resolve(), Path(__file__).resolve().parent):
        if submissions == needed or submissions in needed.parents:
            raise ValueError(f"submissions={submissions}: this folder holds the Python environment or cellkit "
                             "itself, which the sandbox must hide; put the submissions in a folder of their own")
    tests = hidden_tests(paths["autograder"])
    points = question_points(tests)
    if sandbox is None:
        sandbox = sandbox_available()
    cores = os.cpu_count() or 1
    try:
        free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        free = 8.0
    with tempfile.TemporaryDirectory(prefix="cellkit-submissions-") as unpacked:
        folder = _unpack(submissions, Path(unpacked)) if submissions.is_file() else submissions
        files = find_submissions(folder, skip=[out])
        if out.parent == folder or folder in out.parents:
            files = [f for f in files if feedback_dir not in f.parents]
        from cellkit.config import get_config

        data_dir = get_config().data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # .git holds every committed master: hidden like solutions/
        protected = [paths["root"] / "solutions", paths["root"] / "build", paths["root"] / ".git", folder,
                     submissions, out, feedback_dir, paths["autograder"]]
        ctx = _Context(lab, paths, tests, points, fast=fast, source=source, timeout=timeout,
                       cell_timeout=cell_timeout or timeout, test_timeout=test_timeout,
                       memory_limit=int(memory_limit * 2**30), sandbox=bool(sandbox), protected=protected,
                       rw=[data_dir], threads=1, feedback_dir=feedback_dir, keep_scratch=keep_logs)
        ctx.released = nbformat.read(paths["notebook"], as_version=4)
        rows = read_gradebook(out)
        jobs, ids = [], {}
        for path in files:
            nb_meta = None
            if path.suffix == ".ipynb":
                try:
                    nb_meta = json.loads(path.read_bytes().decode("utf-8-sig"))
                except (ValueError, UnicodeDecodeError):
                    nb_meta = None
            sid = student_id(path, folder, lab, nb_meta)
            base, n = sid, 2
            while sid in ids:
                sid, n = f"{base}-{n}", n + 1
            ids[sid] = path
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            old = rows.get(sid)
            if old and not regrade and old.get("sha256") == sha and old.get("status") != "error":
                continue
            jobs.append((sid, path, base != sid))
        workers = workers or max(1, min(cores, int(free // max(memory_limit, 1.0)) or 1))
        workers = max(1, min(workers, len(jobs) or 1))
        if verbose:
            print(f"grading {len(jobs)} of {len(files)} submission(s) of {lab} ({len(files) - len(jobs)} already "
                  f"graded), {workers} at a time, {'fast' if fast else 'full'} mode, time budget {timeout:.0f} s, "
                  f"memory {memory_limit:g} GiB, sandbox: {'namespaces' if sandbox else 'process only'}", flush=True)
            if not sandbox:
                print("WARNING sandbox: process only (no user namespaces here): student code runs as your user; "
                      "the audit hook blocks Python-level access to the tests, native code is not stopped",
                      flush=True)
        lock = threading.Lock()
        questions = list(points)
        feedback_dir.mkdir(parents=True, exist_ok=True)

        def one(job):
            sid, path, renamed = job
            try:
                row, text = grade_submission(path, ctx, sid)
            except Exception as exc:  # noqa: BLE001 - one bad submission never aborts the batch
                row = {"id": sid, "file": path.name, "status": "error", "reason": f"grader error: {_error_text(exc)}",
                       "total": 0.0, "possible": sum(points.values()), "seconds": 0.0,
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **{q: 0.0 for q in points}}
                text = feedback_text(row, [], [], ctx)
            if ctx.stopping:  # interrupted: this row is not a grade; the next run grades it
                return None
            if renamed:
                row["reason"] = "; ".join(x for x in [row["reason"], "two files map to the same student id"] if x)
                if row["status"] == "ok":
                    row["status"] = "flagged"
            from cellkit.atomic import write_text

            write_text(feedback_dir / f"{sid}.md", text)
            with lock:
                rows[sid] = row
                write_gradebook(out, rows, questions)
            if verbose:
                print(f"  {sid:24s} {row['status']:13s} {float(row['total']):g}/{row['possible']:g} "
                      f"({row['seconds']:.0f} s) {row['reason'][:120]}", flush=True)
            return row

        if jobs:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                list(pool.map(one, jobs))
            except BaseException:  # Ctrl-C or a kill: stop the workers (their own sessions miss the signal)
                ctx.stopping = True
                for proc in list(ctx.live):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        elif not out.exists():
            write_gradebook(out, rows, questions)
    text = summary(rows, sum(points.values()))
    seconds = time.perf_counter() - t0
    if verbose:
        print(text)
        print(f"graded {len(jobs)} submission(s) in {seconds:.1f} s; gradebook {out}, feedback in {feedback_dir}/")
    return {"rows": rows, "summary": text, "seconds": seconds, "graded": len(jobs),
            "sandbox": "namespaces" if sandbox else "process only", "gradebook": out, "feedback": feedback_dir}


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    _worker_main(json.loads(sys.argv[2]))
