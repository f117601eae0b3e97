"""Scoring: what the worker's events mean for a submission, the gradebook row, the feedback in words.

A row's ``status`` is the most serious of the reasons found (:data:`STATUSES`, in the order of
``PRIORITY``); the ``reason`` column lists them all, once each.
"""

from __future__ import annotations

import copy
import re

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

PRIORITY = ["invalid", "wrong_lab", "error", "suspicious", "timeout", "out_of_memory", "flagged", "ok"]


def empty_row(sid: str, file: str, points: dict[str, float], sha: str) -> dict:
    """Return a row scoring 0 on every question, status ``ok`` until a reason says otherwise."""
    return {"id": sid, "file": file, "status": "ok", "reason": "", "total": 0.0,
            "possible": sum(points.values()), "seconds": 0.0, "sha256": sha, **{q: 0.0 for q in points}}


WITHHELD = "(message withheld: it quotes the grader's tests)"


def secret_lines(tests: dict[str, str]) -> set[str]:
    """Return the lines of the test sources long enough to recognise when a message quotes them."""
    return {line.strip() for source in tests.values() for line in source.splitlines() if len(line.strip()) >= 16}


def clean_message(text, secrets: set[str]) -> str:
    """Return ``text`` as the feedback may show it: a string, bounded, and never quoting the tests."""
    text = str(text)[:1500]
    return WITHHELD if any(line in text for line in secrets) else text


def score(test_files: dict, reported, secrets: set[str]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Return ``(questions, reasons)``: each question scored by otter from which of the autograder's own test
    cases passed, clamped to its points.

    The worker only says which test case passed; the questions, the test cases, their names, whether they
    are hidden and their points all come from the autograder zip.  A case the worker did not report failed;
    a question or case the autograder does not have is ignored and makes the row ``suspicious``.
    """
    from otter.test_files.abstract_test import TestCaseResult

    reasons, by_name = [], {}
    for q in reported if isinstance(reported, list) else []:
        name = q.get("name") if isinstance(q, dict) else None
        if name in test_files and name not in by_name:
            by_name[name] = {c.get("case"): c for c in q.get("cases", []) if isinstance(c, dict)}
        else:
            reasons.append(("suspicious", f"the worker reported a question the autograder does not have or twice: "
                                          f"{str(name)[:60]!r}"))
    questions = []
    for name, tf in test_files.items():
        got, results, cases = by_name.get(name, {}), [], []
        for extra in sorted(set(got) - {tc.name for tc in tf.test_cases}, key=str):
            reasons.append(("suspicious", f"the worker reported a test case the autograder does not have: "
                                          f"{str(extra)[:60]!r}"))
        for tc in tf.test_cases:
            c = got.get(tc.name)
            passed = bool(c) and c.get("passed") is True
            message = "" if passed else clean_message(c.get("message", "") if c else "the test did not run", secrets)
            missing = [m for m in (c.get("missing", []) if c else []) if isinstance(m, str) and m.isidentifier()]
            results.append(TestCaseResult(test_case=tc, message=message, passed=passed))
            cases.append({"name": getattr(tc.body.test_func, "__name__", tc.name), "hidden": bool(tc.hidden),
                          "passed": passed, "message": message, "missing": missing})
        scored = copy.copy(tf)  # the parsed files are shared by the threads: never set results on them
        scored.test_case_results = results
        possible = float(tf.possible)
        questions.append({"name": name, "score": max(0.0, min(possible, float(scored.score))), "possible": possible,
                          "cases": cases})
    if any(m == WITHHELD for q in questions for m in (c["message"] for c in q["cases"])):
        reasons.append(("suspicious", "a test's message quoted the grader's tests (withheld from the feedback)"))
    return questions, reasons


def cell_reasons(cells: list[dict], nb, secrets: set[str] = frozenset()) -> list[tuple[str, str]]:
    """Return the reasons the executed cells give: time-outs, memory errors, the first cell that raised."""
    reasons, failed = [], []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for c in cells:
        c["error"] = clean_message(c.get("error", ""), secrets)
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
    return reasons


def process_reasons(events: dict, questions: list[dict], n_code_cells: int) -> list[tuple[str, str]]:
    """Return the reasons the worker process gives: forged or missing messages, blocked accesses, tampering,
    a crash, an early exit, a cell count that disagrees with the notebook."""
    reasons = []
    executed, results = events.get("executed"), events.get("results")
    violations = (results or executed or {}).get("violations", [])
    for v in violations if isinstance(violations, list) else []:
        if isinstance(v, dict):
            reasons.append(("suspicious", f"blocked {str(v.get('kind'))[:120]}: {str(v.get('path'))[:200]}"))
    restored = sorted({str(r)[:120] for e in (executed, results) if e for r in e.get("restored", [])})
    if restored:
        reasons.append(("suspicious", "the code replaced parts of the grading machinery (put back before the "
                                      f"hidden tests ran): {', '.join(restored[:6])}"))
    if events.get("forged"):
        reasons.append(("suspicious", f"{events['forged']} message(s) on the grader's pipe did not come from the "
                                      "worker (forged or garbled): ignored"))
    if events.get("tampered"):
        reasons.append(("suspicious", events["tampered"]))
    if executed is not None and len(executed.get("cells", [])) != n_code_cells:
        reasons.append(("suspicious", f"the worker reported {len(executed.get('cells', []))} code cells, the "
                                      f"notebook has {n_code_cells}"))
    if "fatal" in events:
        reasons.append(("error", str(events["fatal"].get("error"))[:300]))
    elif results is None:
        started = events["cells_started"][-1] if events["cells_started"] else None
        at = f" during code cell {started}" if started and executed is None else " while the tests ran"
        rc = events.get("returncode")
        if events.get("killed"):
            reasons.append(("timeout", f"{events['killed']}{at}"))
        elif rc in (-9, 137) or (rc is not None and rc < 0):
            reasons.append(("out_of_memory" if rc in (-9, 137) else "error",
                            f"the process died (exit {rc}){at}: memory, a crash or os._exit"))
        elif events.get("forged"):
            reasons.append(("suspicious", f"the process ended (exit {rc}){at} after writing forged messages: "
                                          "no test ran"))
        else:
            reasons.append(("error", f"no test results (exit {rc}){at}: the notebook ended the process early "
                                     "(os._exit, sys.exit in a thread...) or the worker failed; see the worker log"))
    missing = sorted({m for q in questions for c in q["cases"] for m in c.get("missing", [])})
    if missing:
        failed = any(c.get("status") in ("error", "timeout", "memory") for c in (executed or {}).get("cells", []))
        why = "a cell above failed before defining them, or renamed or deleted?" if failed else "renamed or deleted?"
        reasons.append(("flagged", f"names the tests need are not defined: {', '.join(missing)} ({why})"))
    return reasons


def finish_row(row: dict, questions: list[dict], reasons: list[tuple[str, str]]) -> dict:
    """Return ``row`` with the question scores, the total, the status and the reasons (each once) filled in."""
    for q in questions:
        row[q["name"]] = q["score"]
    row["total"] = round(sum(q["score"] for q in questions), 4)
    statuses = [s for s, _ in reasons] or ["ok"]
    row["status"] = min(statuses, key=PRIORITY.index)
    seen = []
    for _, text in sorted(reasons, key=lambda r: PRIORITY.index(r[0])):
        if text not in seen:
            seen.append(text)
    row["reason"] = "; ".join(seen)
    row["_reasons"] = seen  # for the feedback; not a gradebook column
    return row


STUDENT_STATUS = {
    "ok": "graded.",
    "flagged": "graded; your instructor will look at something the grader noticed before the grade is final.",
    "suspicious": "graded; your instructor will look at your notebook before the grade is final.",
    "timeout": "graded, but a cell was still running when the time for your notebook ran out (a loop that never "
               "ends?), so the cells after it did not run.",
    "out_of_memory": "graded, but a cell needed more memory than the grader gives one notebook, so it stopped there.",
    "wrong_lab": "not graded: this file is another lab's notebook. Check that you uploaded the right file.",
    "invalid": "not graded: this file is not a Jupyter notebook the grader can open (a download that did not "
               "finish, or another kind of file). Download it again from Colab (File > Download > .ipynb).",
    "error": "not graded yet: the grader itself failed on your notebook; your instructor will grade it again.",
}
"""What a status means, in the student's words (the gradebook's :data:`STATUSES` are the instructor's)."""

_HOST_PATH = re.compile(r"(?<![\w.:/~])(?:~/|/)(?:[\w.@+-]+/)+([\w.@+-]*)")


def student_words(text: str) -> str:
    """Return ``text`` without host paths (a path becomes its last part) and without the grader's cell numbers."""
    text = _HOST_PATH.sub(lambda m: f"'{m.group(1)}'" if m.group(1) else "a folder", str(text))
    return text


def _code_cells_under_headings(nb, heading_pattern: str):
    """Yield ``(heading, code cell)`` for each code cell, with the last markdown heading above it that matches."""
    heading = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.findall(heading_pattern, cell.source, re.M)
            if found:
                heading = found[-1].replace("\u00b7", "-").strip()
        elif cell.cell_type == "code":
            yield heading, cell


def task_titles(released) -> dict[str, str]:
    """Return ``{question: task title}`` from the released notebook: the task heading above each check cell."""
    titles = {}
    for heading, cell in _code_cells_under_headings(released, r"^#+\s*(Task\b.*?)\s*$"):
        for q in re.findall(r"""grader\.check\(\s*["']([^"']+)["']""", cell.source):
            titles.setdefault(q, heading or q)
    return titles


def cell_places(nb) -> dict[int, str]:
    """Return ``{code cell number: where it is, in words}``: the heading above it and its first line of code.

    Colab shows no cell numbers, so the feedback says "the cell under 'Task 2 - Build the CNN' that starts with
    `def build_cnn():`" instead of "code cell 9".
    """
    places = {}
    for number, (heading, cell) in enumerate(_code_cells_under_headings(nb, r"^#+\s*(.+?)\s*$"), start=1):
        first = next((line.strip() for line in cell.source.splitlines() if line.strip()
                      and not line.strip().startswith("#")), "")
        where = f"the cell under '{heading}'" if heading else "a cell near the top"
        places[number] = f"{where} that starts with `{first[:60]}`" if first else f"an empty cell ({where[4:]})"
    return places


def feedback_text(row: dict, state: dict, lab: str, *, tasks: dict[str, str] | None = None,
                  overrides: list | None = None, show_hidden: bool = False) -> str:
    """Return a student's feedback in Markdown, in their words: score, then each task with its checks.

    ``state`` holds what grading found (``questions``, ``cells`` with their places, ``notes`` for the student).
    Hidden checks say passed or failed; their messages (which may name expected values) only with
    ``show_hidden``.  Overrides appear as the instructor's comments under their task.
    """
    tasks, overrides = tasks or {}, [o for o in (overrides or []) if o.id == row["id"]]
    total, final = float(row.get("total") or 0), float(row.get("final") or row.get("total") or 0)
    lines = [f"# Feedback: lab {lab}", "", f"**Score**: {final:g} / {float(row['possible']):g}  "]
    if float(row.get("penalty") or 0):
        lines.append(f"(the checks gave {total:g}; submitted {row['late_days']} day(s) after the deadline: "
                     f"-{float(row['penalty']):g})  ")
    lines += [f"**Your notebook was** {STUDENT_STATUS[row['status']]}", ""]
    older = [p.strip().rsplit("/", 1)[-1] for p in (row.get("superseded") or "").split(";") if p.strip()]
    if older:  # the student's own file names, without the LMS's folder
        lines += [f"You handed in {len(older) + 1} files; the newest, `{str(row.get('file', '')).rsplit('/', 1)[-1]}`,"
                  f" was graded (not graded: {', '.join(f'`{o}`' for o in older)}).", ""]
    lines += [f"- {student_words(n)}" for n in state.get("notes", [])] + ([""] if state.get("notes") else [])
    questions = state.get("questions", [])
    if not questions:
        lines += ["Every task scores 0. If you think this is wrong, check that you uploaded the right file, then ask "
                  "your instructor.", ""]
    for q in questions:
        score = float(row.get(q["name"], q["score"]) or 0)
        lines += [f"## {tasks.get(q['name'], q['name'])}: {score:g} / {q['possible']:g}", ""]
        missing = sorted({m for c in q["cases"] for m in c.get("missing", [])})
        if missing:
            lines.append(f"- The checks of this task use {', '.join(f'`{m}`' for m in missing)}, which did not exist "
                         "when your notebook ran from the top: a cell above failed, or a name the task gives was "
                         "changed (keep those names).")
        for c in q["cases"]:
            name = c["name"].split(" - ")[-1] if " - " in c["name"] else c["name"]
            verdict = "passed" if c["passed"] else "failed"
            if c["hidden"]:
                text = f"- grading check `{name}`: **{verdict}**"
                if not c["passed"] and show_hidden and c["message"]:
                    text += f": {student_words(c['message'].splitlines()[0])}"
            else:
                text = f"- check `{name}` (the one `grader.check` runs in your notebook): **{verdict}**"
                if not c["passed"] and c["message"] and not missing:
                    text += f": {student_words(c['message'].splitlines()[0])}"
            lines.append(text)
        for o in overrides:
            if o.question == q["name"]:
                lines.append(f"- your instructor set this task to {o.points:g} point(s)"
                             + (f": {o.comment}" if o.comment else ""))
        lines.append("")
    for o in overrides:
        if o.question == "penalty":
            lines += [f"Late penalty set by your instructor to {o.points:g}" + (f": {o.comment}" if o.comment else ""),
                      ""]
    errors = [c for c in state.get("cells", []) if c["status"] != "ok"]
    if errors:
        lines += ["## Cells that did not run cleanly when your notebook was run from the top", ""]
        if len(errors) > 3:
            lines += [f"{len(errors)} cells did not run cleanly. Later errors often follow from the first one: fix "
                      "it, then check with Runtime > Restart session and run all before you hand in. The first "
                      "three:", ""]
        for c in errors[:3]:
            what = {"error": "raised", "timeout": "ran out of time", "memory": "ran out of memory",
                    "skipped": "did not run (no time left)"}.get(c["status"], c["status"])
            detail = student_words(c["error"].splitlines()[0]) if c.get("error") and c["status"] == "error" else ""
            lines.append(f"- {c.get('place') or 'a cell'}: {what}" + (f" `{detail}`" if detail else ""))
        lines.append("")
    lines += ["The checks marked `grader.check` are the ones you could run in your notebook; grading checks test the "
              "same tasks more thoroughly and run only at grading time.", ""]
    return "\n".join(lines)
