"""The sandboxed worker: runs ONE submission in a child process; standard library only until the sandbox is up.

The grader (:mod:`cellkit.course.grading.sandbox`) starts this file as a plain script,
``python -I -B _worker.py --worker CONFIG_JSON``, inside ``unshare`` when namespaces work.
Nothing but the standard library is imported before the namespaces are set up (a second
user namespace can only be entered by a single thread, and no third-party code should run
before the host is hidden); a guard test keeps it so.  Its helpers, ``_confine.py`` and
``_integrity.py`` beside it, are loaded from their files and kept out of ``sys.modules``.

Protocol: the grader first writes a secret token on the tests pipe; every message the worker
sends on the control pipe carries it, so a student's cell that writes to the pipe cannot pass
for the worker.  The worker reports each cell as it starts, then ``executed`` (one entry per
code cell); the grader answers with the tests; the worker restores the grading machinery
(:mod:`._integrity`), runs every test case and reports which passed.  The grader computes the
scores itself, from the autograder's own questions and points.
"""

import importlib.util
import json
import os
import signal
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
    """Return the helper module ``name`` beside this file, executed but not registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(f"cellkit_grading_{name}", os.path.join(_HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _CellTimeout(BaseException):
    """Raised inside a cell when the notebook's time budget runs out (BaseException: ``except Exception`` misses it)."""


def _send(fd, token, message):
    data = (json.dumps({**message, "token": token}) + "\n").encode()
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:  # the grader is gone: stop
        os._exit(3)


def _read_line(fd):
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks) or b"{}")


def _error_text(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) < 1500 else text[:1500] + " [...]"


def _run_tests(shell_ns, tests, time_left):
    """Return one dict per question: its name and, per test case, whether it passed and the message in words."""
    from otter.test_files import ExceptionTestFile

    questions = []
    for name in sorted(tests):
        tf = ExceptionTestFile.from_string(tests[name], path=f"<hidden tests>/{name}.py")
        cases = []
        for tc in tf.test_cases:
            passed, message = True, ""
            needed = [p for p in tc.body._get_func_params() if p != "env"]
            signal.setitimer(signal.ITIMER_REAL, max(1.0, time_left()))
            try:
                tc.body.call_func(shell_ns)
            except _CellTimeout:
                passed, message = False, "the test ran out of time (your function may loop forever)"
            except BaseException as exc:  # noqa: BLE001 - a student's function can raise anything
                passed, message = False, _error_text(exc)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            cases.append({"case": tc.name, "name": getattr(tc.body.test_func, "__name__", tc.name),
                          "passed": passed, "message": message, "missing": [p for p in needed if p not in shell_ns]})
        questions.append({"name": name, "cases": cases})
    return questions


def _prepare(cfg, confine, send):
    """Return the working folder after confining the process (namespaces when asked) and redirecting HOME & co."""
    info, workdir = {"mode": "process"}, cfg["scratch"]
    if cfg["sandbox"]:
        try:
            info.update(confine.setup_namespace(cfg))
            info["mode"], workdir = "namespace", confine.SANDBOX_DIR
        except OSError as exc:
            send({"event": "fatal", "error": f"sandbox set-up failed: {exc}"})
            os._exit(4)
    os.chdir(workdir)
    home = os.path.join(workdir, ".home")
    os.makedirs(home, exist_ok=True)
    os.environ.update({"HOME": home, "MPLCONFIGDIR": os.path.join(home, "mpl"), "IPYTHONDIR": os.path.join(home, "ipy"),
                       "XDG_CACHE_HOME": os.path.join(home, "cache"), "TMPDIR": os.path.join(workdir, ".tmp"),
                       "NUMBA_CACHE_DIR": os.path.join(home, "numba"), "KERAS_HOME": os.path.join(home, ".keras")})
    os.makedirs(os.environ["KERAS_HOME"], exist_ok=True)
    cache = os.path.join(os.environ["KERAS_HOME"], "datasets")
    os.makedirs(cache, exist_ok=True)  # keras's own download place: a write there is keras's, not tampering
    if cfg.get("keras_datasets") and os.path.isdir(cfg["keras_datasets"]):
        # the datasets the instructor downloaded (real MNIST), each linked read-only; a new file keras writes
        # (a download it tries, which fails without network) lands in the scratch folder, not on the host
        for name in os.listdir(cfg["keras_datasets"]):
            os.symlink(os.path.join(cfg["keras_datasets"], name), os.path.join(cache, name))
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    cfg["writable"] = [workdir, *cfg["rw"]]  # TMPDIR points inside workdir
    confine.set_limits(cfg)
    send({"event": "ready", "sandbox": info})
    return workdir


def _run_cell(shell, source, left, cfg):
    """Return ``(status, error text)`` after running one cell with ``left`` seconds of budget."""
    signal.setitimer(signal.ITIMER_REAL, left)
    try:
        result = shell.run_cell(source, store_history=False, silent=False)
        err = result.error_before_exec or result.error_in_exec
    except (_CellTimeout, MemoryError) as exc:
        err = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if isinstance(err, _CellTimeout):
        return "timeout", f"the cell was stopped after the notebook's time budget ({cfg['timeout']:.0f} s) ran out"
    if isinstance(err, MemoryError):
        return "memory", f"MemoryError: the cell exceeded the memory limit ({cfg['memory_limit'] / 2**30:.1f} GiB)"
    return ("error", _error_text(err)) if err is not None else ("ok", "")


def _worker_main(cfg):
    """Run one submission (in the child): confine it, execute the cells, then the tests from the pipe."""
    ctl, tests_fd = cfg["ctl_fd"], cfg["tests_fd"]
    worker = sys.modules[__name__]  # this script's module: IPython makes the student's namespace __main__
    token = _read_line(tests_fd)  # a local only: the student's code cannot reach it without frame tricks

    def send(message, _send=_send, _token=token):
        _send(ctl, _token, message)

    confine, integrity = _load("_confine"), _load("_integrity")
    workdir = _prepare(cfg, confine, send)
    if cfg.get("import_path"):  # the cellkit the grader runs (a clone), not another copy installed in the venv
        sys.path.insert(0, cfg["import_path"])
    import nbformat
    import numpy
    import numpy.testing
    import otter.test_files
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import cellkit.checks

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    nb = nbformat.read(os.path.join(workdir, cfg["notebook"]), as_version=4)
    violations = []
    sys.addaudithook(confine.audit_hook_factory(cfg, violations))
    machinery = [worker, cellkit.checks, numpy, numpy.testing, json, os, signal, time,
                 *(m for n, m in sorted(sys.modules.items()) if n.startswith("otter.test_files") and m is not None)]
    restore, run_tests, run_cell = integrity.snapshot(machinery), _run_tests, _run_cell

    deadline = time.monotonic() + cfg["timeout"]

    def on_alarm(signum, frame):
        raise _CellTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    cells, index = [], 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        index += 1
        left = deadline - time.monotonic()
        if left <= 0:
            cells.append({"cell": i, "number": index, "status": "skipped", "error": "", "seconds": 0.0})
            continue
        send({"event": "cell", "cell": i, "number": index})
        start = time.monotonic()
        status, err_text = run_cell(shell, cell.source, left, cfg)
        cells.append({"cell": i, "number": index, "status": status, "error": err_text,
                      "seconds": round(time.monotonic() - start, 2)})
        sys.stdout.flush()
    tampered = restore()
    signal.signal(signal.SIGALRM, on_alarm)
    send({"event": "executed", "cells": cells, "violations": violations, "restored": tampered})

    tests = _read_all(tests_fd)
    tampered = restore()  # again: a thread the student started may have patched something meanwhile
    test_deadline = time.monotonic() + cfg["test_timeout"]
    questions = run_tests(shell.user_ns, tests, lambda: test_deadline - time.monotonic())
    peak = ""
    try:
        with open("/proc/self/status") as f:
            peak = " ".join(line.split(":", 1)[1].strip() for line in f if line.startswith(("VmPeak", "VmHWM")))
    except OSError:
        pass
    print(f"\n[grader] memory: {peak}", flush=True)
    send({"event": "results", "questions": questions, "violations": violations, "memory": peak,
          "restored": tampered + restore()})
    sys.stdout.flush()
    os._exit(0)  # skip interpreter shutdown: the student's objects may misbehave in finalisers


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    _worker_main(json.loads(sys.argv[2]))
