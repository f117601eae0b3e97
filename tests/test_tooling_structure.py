"""Guards for the layout of the course tooling (issue 21): each one fails when the rule it names is broken."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cellkit"
COURSE = PACKAGE / "course"
WORKER = COURSE / "grading" / "_worker.py"
# Top-level modules kept so that released notebooks and old commands keep working; they only re-export.
COMPAT = {"release.py", "runner.py", "report.py", "cli.py"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool = False) -> list[str]:
    """Return the modules ``path`` imports (``from cellkit import course`` gives ``cellkit.course``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _tooling_files() -> list[Path]:
    return sorted(COURSE.rglob("*.py"))


def _science_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if COURSE not in p.parents and not (p.parent == PACKAGE and p.name in COMPAT)]


def test_no_science_module_imports_the_course_tooling():
    offenders = [f"{p.relative_to(PACKAGE.parent)} imports {m}" for p in _science_files() for m in _imports(p)
                 if m == "cellkit.course" or m.startswith("cellkit.course.")]
    assert not offenders, offenders


def _third_party(module: str) -> bool:
    return module.split(".")[0] not in (*sys.stdlib_module_names, "__future__")


def test_the_worker_imports_only_the_standard_library_before_the_sandbox():
    top = _imports(WORKER, top_level_only=True)
    assert top and not [m for m in top if _third_party(m)], top
    for helper in ("_confine.py", "_integrity.py"):  # loaded before the sandbox is up: stdlib only, anywhere
        assert not [m for m in _imports(WORKER.parent / helper) if _third_party(m)], helper
    # inside the worker, IPython, otter, numpy and cellkit are imported only after the sandbox is set up
    tree = ast.parse(WORKER.read_text())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_worker_main")
    confined = next(n.lineno for n in ast.walk(main) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "_prepare")
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                if any(_third_party(m) for m in names):
                    assert fn.name in ("_worker_main", "_run_tests"), (fn.name, names)
                    assert fn.name != "_worker_main" or node.lineno > confined, (node.lineno, names)
    # what loading the script really pulls in, in isolated mode as the grader starts it
    probe = ("import runpy, sys; before = set(sys.modules); runpy.run_path(sys.argv[1]); "
             "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-I", "-B", "-c", probe, str(WORKER)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", f"loading the worker imported non-standard modules: {out}"


def test_course_modules_form_no_import_cycle():
    modules = {_module(p): p for p in _tooling_files()}
    graph = {}
    for name, path in modules.items():
        deps = {m for m in _imports(path, top_level_only=True) if m in modules and m != name}
        # a package importing its own submodules is how packages work, not a cycle
        graph[name] = {d for d in deps if not d.startswith(name + ".")} if path.name == "__init__.py" else deps
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_tooling_imports_cellkit_at_the_top_of_each_file():
    late = []
    for path in [*_tooling_files(), *(PACKAGE / name for name in sorted(COMPAT))]:
        if path == WORKER:  # the one exception: it imports cellkit only once it is sandboxed (guarded above)
            continue
        top = set(_imports(path, top_level_only=True))
        late += [f"{path.relative_to(PACKAGE.parent)}: {m}" for m in _imports(path)
                 if m.split(".")[0] == "cellkit" and m not in top]
    assert not late, late


@pytest.mark.parametrize("path", _tooling_files(), ids=lambda p: str(p.relative_to(COURSE)))
def test_tooling_modules_stay_short(path):
    assert len(path.read_text().splitlines()) <= 350, f"{path.name}: split it by concern"


def test_the_course_layout_is_spelled_in_one_place():
    spelled = []
    for path in [*_tooling_files(), *(PACKAGE / name for name in sorted(COMPAT))]:
        if path.name == "layout.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        # path pieces: a bare folder name, or a piece of an f-string that builds a path
        pieces = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value in ("solutions", "notebooks") or (id(node) in pieces and (
                        node.value.startswith(("-autograder.zip", "/tests")) or node.value.endswith("solutions/"))):
                    spelled.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value[:60]!r}")
    assert not spelled, spelled


def test_one_sha256():
    definitions = [p for p in PACKAGE.rglob("*.py") if "def sha256(" in p.read_text()]
    assert definitions == [PACKAGE / "atomic.py"], definitions
    assert not [p for p in _tooling_files() if "hashlib.sha256" in p.read_text()]


def test_old_setup_cells_and_commands_keep_working():
    from cellkit import course, report, runner
    from cellkit.course import grader, record
    from cellkit.release import check_version

    assert course.grader is grader and report.record is record and course.check_version is check_version
    assert runner.execute_notebook.__module__ == "cellkit.course.run"
