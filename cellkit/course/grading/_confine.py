"""Confining the worker: namespaces and mounts, resource limits, the audit hook.  Standard library only.

Loaded by :mod:`._worker` from this file (not through ``sys.modules``) before anything else runs.
"""

import os
import signal
import threading

_MS = dict(rdonly=1, nosuid=2, nodev=4, noexec=8, remount=32, bind=4096, rec=16384, noatime=1024,
           nodiratime=2048, relatime=1 << 21, strictatime=1 << 24)
SANDBOX_DIR = "/tmp/submission"


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


def setup_namespace(cfg: dict) -> dict:
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
    covered = ("/tmp", "/dev/shm", "/var/tmp", *cfg.get("private", []))
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
        target = SANDBOX_DIR if path == cfg["scratch"] else path
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


def set_limits(cfg: dict) -> None:
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


# What libraries start on their own (platform.processor runs uname, matplotlib's font manager fc-list):
# allowed without namespaces, but only the system's own copy, never a file the notebook could have written.
HARMLESS_PROGRAMS = {"uname", "fc-list", "fc-match", "ldconfig", "nvidia-smi", "lscpu", "getconf", "locale"}
SYSTEM_BIN = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin")


def _program(event, args):
    """Return the program an audited process-creation event starts (a full path when it can be told), or None."""
    if event == "subprocess.Popen":
        executable, argv, env = args[0], args[1], args[3]
        if executable is None:
            argv = argv.split() if isinstance(argv, (str, bytes)) else list(argv or [])
            executable = argv[0] if argv else None
        if not isinstance(executable, (str, bytes, os.PathLike)):
            return None
        executable = os.fsdecode(executable)
        if os.path.isabs(executable) or os.sep in executable:
            return executable
        import shutil

        search = env.get("PATH", env.get(b"PATH")) if isinstance(env, dict) else None
        return shutil.which(executable, path=os.fsdecode(search) if search is not None else None)
    if event in ("os.exec", "os.posix_spawn", "os.spawn"):
        path = args[1] if event == "os.spawn" else args[0]
        return os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else None
    return None  # fork, forkpty, system, pty.spawn: never harmless


def _harmless(program) -> bool:
    """Return True for the system's own copy of a program in ``HARMLESS_PROGRAMS`` (given by its full path)."""
    if not program or not os.path.isabs(program):
        return False
    return os.path.basename(program) in HARMLESS_PROGRAMS and os.path.dirname(program) in SYSTEM_BIN


def audit_hook_factory(cfg: dict, violations: list):
    """Return an audit hook that refuses (and records) protected reads and writes outside the writable roots."""
    writable = [os.path.realpath(p) for p in cfg["writable"]]
    protected = [os.path.realpath(p) for p in cfg["protected"]]
    # the instructor's home, the host's temp folders...: refused unless under what the notebook needs
    private = [os.path.realpath(p) for p in cfg.get("private", [])]
    allowed = [*writable, *(os.path.realpath(p) for p in cfg.get("reveal", []))]
    # without namespaces nothing contains a child process: starting programs is refused there
    spawn_events = () if cfg["sandbox"] else ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                                              "os.spawn", "os.fork", "os.forkpty", "pty.spawn")
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
                if under(path, protected) or path.endswith("-autograder.zip"):
                    refuse("reading grader files (tests, solutions, other submissions, the gradebook)", path)
                if wants_write and not under(path, writable) and path != "/dev/null":
                    refuse("writing outside the submission folder", path)
                if under(path, private) and not under(path, allowed):
                    refuse("reading files outside the submission (the grader's home or temporary files)", path)
                if path.startswith("/proc/") and path.endswith(("/mem", "/environ")):
                    refuse("reading process memory or environment", path)
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
        elif event in spawn_events:
            busy.on = True
            try:
                program = _program(event, args)
                if not _harmless(program):
                    refuse("starting a program (not allowed without the namespace sandbox)", str(program)[:200])
            finally:
                busy.on = False

    return hook
