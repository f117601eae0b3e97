"""The student notebooks read like exercises and give nothing away.

Every graded task has the rhythm of the course (STYLE.md, section 2): a task box with its goal, an answer
cell with a stub (``...``), the cell that runs its checks, and a question to think about before moving on.
No solution line reaches the student notebook, and no public check names a value the hidden tests expect.
Each failure names the lab, the task and the cell index, so that the master notebook is quick to mend.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted(p.name for p in (ROOT / "labs").iterdir() if (p / f"{p.name}.ipynb").is_file())
CHECK = re.compile(r"""^grader\.check\(\s*["'](\w+)["']\s*\)""")
TASK = re.compile(r"^#+ *Task\b", re.M)


def _student(lab):
    return nbformat.read(ROOT / "labs" / lab / f"{lab}.ipynb", as_version=4)


def _tasks(nb):
    """Yield ``(question, task markdown index, answer cell indices, check index, end index)`` per graded task."""
    checks = [(i, CHECK.search(c.source.strip()).group(1)) for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and CHECK.search(c.source.strip())]
    task_boxes = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and TASK.search(c.source)]
    for k, (check, question) in enumerate(checks):
        box = max((i for i in task_boxes if i < check), default=None)
        following = [i for i in task_boxes if i > check]
        end = following[0] if following else len(nb.cells)
        start = box if box is not None else 0
        answers = [i for i in range(start, check) if "otter_answer_cell" in nb.cells[i].metadata.get("tags", [])]
        yield question, box, answers, check, end


@pytest.mark.parametrize("lab", LABS)
def test_every_task_has_a_goal_a_stub_a_check_and_a_question(lab):
    nb = _student(lab)
    problems = []
    tasks = list(_tasks(nb))
    assert tasks, f"{lab}: no grader.check cell found"
    for question, box, answers, check, end in tasks:
        where = f"{lab}, {question} (checked in cell {check})"
        if box is None:
            problems.append(f"{where}: no '### Task' box before it")
            continue
        if "**Goal**" not in nb.cells[box].source:
            problems.append(f"{where}: the task box (cell {box}) states no **Goal**")
        if not answers:
            problems.append(f"{where}: no answer cell (tagged otter_answer_cell) between cell {box} and the check")
        elif not any(re.search(r"(?<![.\w])\.\.\.(?![.\w])", nb.cells[i].source) for i in answers):
            problems.append(f"{where}: answer cell(s) {answers} have no '...' stub for the student to fill")
        asks = [i for i in range(box, end) if nb.cells[i].cell_type == "markdown"
                and re.search(r"\?\s*($|\*|\)|_)", nb.cells[i].source, re.M)]
        if not asks:
            problems.append(f"{where}: no question for the student between the task box (cell {box}) and the "
                            f"next task (cell {end})")
    assert not problems, "\n".join(problems)


def _solution_lines(lab):
    """Return the substantial lines the master marks as solution (inside BEGIN/END SOLUTION or ``# SOLUTION``)."""
    master = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    lines, inside_cells = set(), False
    for cell in master.cells:
        if cell.cell_type == "raw":
            inside_cells = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(cell.source.strip(), inside_cells)
            continue
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped == "# BEGIN SOLUTION":
                inside = True
            elif stripped == "# END SOLUTION":
                inside = False
            elif (inside or stripped.endswith("# SOLUTION")) and len(stripped) > 24:
                lines.add(stripped.removesuffix("# SOLUTION").strip())
    return lines


@pytest.mark.parametrize("lab", LABS)
def test_no_solution_line_reaches_the_student_notebook(lab):
    nb = _student(lab)
    solution = _solution_lines(lab)
    leaks = [(i, line) for i, c in enumerate(nb.cells) if c.cell_type == "code"
             for line in (s.strip() for s in c.source.splitlines()) if line in solution]
    assert not leaks, f"{lab}: solution lines in the student notebook: " + "; ".join(
        f"cell {i}: {line!r}" for i, line in leaks[:5])


_ANSWER_CHECKS = {"check_answer": 1, "check_param_count": 1, "check_layer_params": 1}


def _expected_values(source: str) -> set:
    """Return the literal numbers a test expects: check_answer / check_param_count / check_layer_params targets."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in _ANSWER_CHECKS:
            pos = _ANSWER_CHECKS[node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id]
            if len(node.args) > pos:
                for sub in ast.walk(node.args[pos]):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, (int, float)) \
                            and not isinstance(sub.value, bool) and abs(sub.value) >= 10:
                        found.add(sub.value)
    return found


def _strings(source: str) -> list[str]:
    """Return every string a test could show: literals and the literal parts of f-strings."""
    return [node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _forms(value) -> set[str]:
    if isinstance(value, float) and not value.is_integer():
        return {repr(value), f"{value:g}"}
    v = int(value)
    return {str(v), f"{v:,}", f"{v:_}"}


@pytest.mark.parametrize("lab", LABS)
def test_public_checks_never_name_an_expected_answer(lab):
    """No string a public test can print contains a value that a test (public or hidden) expects as an answer."""
    master = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    tests = [c.source for c in master.cells if c.cell_type == "code" and re.match(r"\s*(\"\"\" # BEGIN TEST CONFIG|def test_)", c.source)]
    expected = set().union(*(_expected_values(_strip_config(t)) for t in tests)) if tests else set()
    public = sorted((ROOT / "labs" / lab / "tests").glob("*.py"))
    leaks = []
    for path in public:
        for text in _strings(path.read_text()):
            for value in expected:
                for form in _forms(value):
                    if re.search(rf"(?<![\d.,_]){re.escape(form)}(?![\d,_]|\.\d)", text):
                        leaks.append(f"{path.relative_to(ROOT)}: {text!r} names {form}")
    assert not leaks, "\n".join(sorted(set(leaks)))


def _strip_config(source: str) -> str:
    return re.sub(r'""" # BEGIN TEST CONFIG.*?""" # END TEST CONFIG', "", source, flags=re.S)
