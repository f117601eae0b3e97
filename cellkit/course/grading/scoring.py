"""Scoring: what the worker's events mean for a submission, the gradebook row, the feedback in words.

A row's ``status`` is the most serious of the reasons found (:data:`STATUSES`, in the order of
``PRIORITY``); the ``reason`` column lists them all, once each.
"""

from __future__ import annotations

import signal

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


def cell_reasons(cells: list[dict], nb) -> list[tuple[str, str]]:
    """Return the reasons the executed cells give: time-outs, memory errors, the first cell that raised."""
    reasons, failed = [], []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
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
    return reasons


def process_reasons(events: dict, questions: list[dict]) -> list[tuple[str, str]]:
    """Return the reasons the worker process gives: blocked accesses, tampering, a crash, no results."""
    reasons = []
    violations = (events.get("results") or events.get("executed") or {}).get("violations", [])
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


def feedback_text(row: dict, questions: list[dict], cells: list[dict], lab: str) -> str:
    """Return a student's feedback in Markdown: score, status in words, each public and hidden test's result."""
    lines = [f"# Feedback: lab {lab}", "",
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
