"""The grader's side of the sandbox: probing for namespaces, the worker's environment, starting it, its pipes.

Each submission runs in :mod:`cellkit.course.grading._worker`, a child process in its own
session (and, where user namespaces work, its own user, mount, network and PID namespaces),
with a scratch folder that holds the submission and the public tests.  The worker reports on
a control pipe; the tests (hidden ones included) reach it on a second pipe only once the
``executed`` message has arrived, i.e. after the student's last cell ran.

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
  against this grader can inspect the test's frames for expected values, or dig
  the pipe token out of the worker's memory (frames, ``gc``) and forge results;
  replaced checks and otter machinery are put back (``_integrity.py``) and
  messages without the token are ignored and flagged.  The audit hook
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

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from cellkit.course.layout import PACKAGE_DIR

WORKER = Path(__file__).resolve().parent / "_worker.py"
"""The worker script, started as a plain file (``python -I -B``): standard library only until sandboxed."""

TEMP_PREFIX = "cellkit-"
"""Grading copies live in ``TEMP/cellkit-grade-PID-*`` and ``TEMP/cellkit-submissions-PID-*``."""


def clean_stale_copies(tmp=None) -> list[Path]:
    """Return the grading copies removed from the temp folder: those of runs whose process is gone (killed).

    A grader killed with SIGKILL cannot clean up; the next run does, leaving the folders of live runs alone.
    """
    removed = []
    for folder in sorted(Path(tmp or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*")):
        kind, _, rest = folder.name[len(TEMP_PREFIX):].partition("-")
        if kind not in ("grade", "submissions") or not folder.is_dir():
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        if not pid.isdigit() and time.time() - folder.stat().st_mtime < 86400:
            continue  # an older cellkit's copy, without a pid: only once it is a day old
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_paths() -> list[Path]:
    """Return what the worker must not see besides the grader's own files: homes and the host's temp folders."""
    candidates = [Path.home(), Path("/home"), Path("/root"), Path(tempfile.gettempdir()), Path("/var/tmp"),
                  Path("/dev/shm")]
    out = []
    for path in candidates:
        try:
            real = path.resolve()
        except OSError:
            continue
        if real.is_dir() and real != Path("/") and real not in out:
            out.append(real)
    return out


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


class Context:
    """What every worker of one grading run shares: the lab, its tests, the limits, the protected paths."""

    def __init__(self, lab, paths, tests, points, *, fast, source, timeout, cell_timeout, test_timeout,
                 memory_limit, sandbox, protected, rw, threads, feedback_dir, keep_scratch, private=()):
        self.lab, self.paths, self.tests, self.points = lab, paths, tests, points
        self.fast, self.source, self.timeout, self.cell_timeout = fast, source, timeout, cell_timeout
        self.test_timeout, self.memory_limit, self.sandbox = test_timeout, memory_limit, sandbox
        self.protected, self.private, self.rw, self.threads = list(protected), list(private), list(rw), threads
        self.feedback_dir, self.keep_scratch = feedback_dir, keep_scratch
        self.released = None
        self.live = set()
        self.stopping = False
        self.spawning = threading.Lock()  # a worker being started is not yet in ``live``: no reaping meanwhile
        self._before = _children()
        if not sandbox:
            _subreaper(True)

    def reap_strays(self) -> list[int]:
        """Return the processes killed: children of the grader that are no worker and were not there before.

        Without namespaces a submission can start a process in a session of its own that outlives its worker
        (and could rewrite the gradebook once the grader exits).  The grader is the "child subreaper" of its
        descendants (Linux), so such orphans become its children, and this kills them before a row is written.
        """
        with self.spawning:
            live = {p.pid for p in list(self.live)}
            strays = [pid for pid in _children() if pid not in live and pid not in self._before]
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError, PermissionError):
                    pass
        return strays

    def close(self) -> None:
        """Reap the last strays and stop being the subreaper of this process's descendants."""
        self.reap_strays()
        if not self.sandbox:
            _subreaper(False)


def _children() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().children()}
    except psutil.Error:
        return set()


def _subreaper(on: bool) -> None:
    """Make orphaned descendants children of this process (Linux ``PR_SET_CHILD_SUBREAPER``); else nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _worker_env(ctx: Context) -> dict:
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


def _config(ctx: Context, scratch: Path, ctl_w: int, tests_r: int) -> dict:
    keras_datasets = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return {"scratch": str(scratch), "notebook": "submission.ipynb",
            "hide": [str(p) for p in ctx.protected if Path(p).exists()],
            "protected": [str(p) for p in ctx.protected], "private": [str(p) for p in ctx.private],
            "rw": [str(p) for p in ctx.rw], "sandbox": ctx.sandbox,
            "memory_limit": ctx.memory_limit, "timeout": ctx.cell_timeout, "test_timeout": ctx.test_timeout,
            "threads": ctx.threads, "ctl_fd": ctl_w, "tests_fd": tests_r,
            "reveal": sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                             PACKAGE_DIR.parent, keras_datasets)}),
            "import_path": str(PACKAGE_DIR.parent), "keras_datasets": str(keras_datasets)}


def _converse(ctx: Context, proc, ctl_r: int, tests_w: int, token: str, events: dict, start: float) -> bool:
    """Return whether the tests were sent, after reading the worker's messages until it closes its pipe.

    A message without the run's token did not come from the worker: it is counted, never believed.
    """
    hard = ctx.timeout + ctx.test_timeout + 90
    buffer, tests_sent = b"", False
    while True:
        left = start + hard - time.monotonic()
        if left <= 0:
            events["killed"] = f"killed after {hard:.0f} s (hard time limit)"
            return tests_sent
        ready, _, _ = select.select([ctl_r], [], [], min(left, 5.0))
        if not ready:
            continue
        chunk = os.read(ctl_r, 1 << 16)
        if not chunk:
            return tests_sent
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("token") != token:
                events["forged"] = events.get("forged", 0) + 1
                continue
            kind = msg.get("event")
            if kind == "cell":
                events["cells_started"].append(msg.get("number"))
            elif kind == "executed" and not tests_sent:
                events["executed"] = msg
                try:
                    os.write(tests_w, json.dumps(ctx.tests).encode())
                except OSError:
                    pass
                os.close(tests_w)
                tests_sent = True
            elif kind in ("ready", "fatal") or (kind == "results" and tests_sent):
                if kind in events:
                    events["tampered"] = f"the '{kind}' message arrived twice"
                events[kind] = msg
            else:
                events["tampered"] = f"a '{kind}' message out of order"


def execute(ctx: Context, nb_bytes: bytes, scratch: Path) -> dict:
    """Return the worker's events after running one notebook in a sandboxed child process.

    Every process of the submission is gone when this returns: the worker's process group is killed, and
    (without namespaces) :meth:`Context.reap_strays` ends the ones that left it.
    """
    (scratch / "tests").mkdir(parents=True, exist_ok=True)
    for test in ctx.paths["public"].glob("*.py"):
        shutil.copy(test, scratch / "tests" / test.name)
    (scratch / "submission.ipynb").write_bytes(nb_bytes)
    ctl_r, ctl_w = os.pipe()
    tests_r, tests_w = os.pipe()
    cmd = [sys.executable, "-I", "-B", str(WORKER), "--worker", json.dumps(_config(ctx, scratch, ctl_w, tests_r))]
    if ctx.sandbox:
        cmd = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--mount-proc",
               "--kill-child", *cmd]
    log_path = scratch.parent / f"{scratch.name}.log"
    events = {"cells_started": [], "log": str(log_path)}
    token = secrets.token_hex(16)
    start = time.monotonic()
    with open(log_path, "wb") as log, ctx.spawning:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=(ctl_w, tests_r), env=_worker_env(ctx), start_new_session=True)
        finally:
            os.close(ctl_w)
            os.close(tests_r)
        ctx.live.add(proc)
    tests_sent = False
    try:
        os.write(tests_w, f"{token}\n".encode())
        tests_sent = _converse(ctx, proc, ctl_r, tests_w, token, events, start)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker and everything still in its group
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        ctx.live.discard(proc)
        ctx.reap_strays()
        os.close(ctl_r)
        if not tests_sent:
            os.close(tests_w)
    events["returncode"] = proc.returncode
    events["seconds"] = round(time.monotonic() - start, 1)
    return events
