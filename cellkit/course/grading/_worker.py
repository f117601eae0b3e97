"""The sandboxed worker: runs ONE submission in a child process; standard library only until the sandbox is up.

The grader (:mod:`cellkit.course.grading.sandbox`) starts this file as a plain script,
``python -I -B _worker.py --worker CONFIG_JSON``, inside ``unshare`` when namespaces work.
Nothing but the standard library is imported before the namespaces are set up (a second
user namespace can only be entered by a single thread, and no third-party code should run
before the host is hidden); a guard test keeps it so.  Then it executes the notebook's
cells with IPython, reports each cell on the control pipe, reads the tests from the second
pipe once every cell has run, runs them and reports the results.
"""

import json
import os
import signal
import sys
import threading
import time

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

    if cfg.get("import_path"):  # the cellkit the grader runs (a clone), not another copy installed in the venv
        sys.path.insert(0, cfg["import_path"])
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


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    _worker_main(json.loads(sys.argv[2]))
