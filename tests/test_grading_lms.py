"""Grading a class from an LMS: who handed in what (Moodle and Canvas export names), the LMS files written back,
overrides and the late policy, feedback in the students' words, the data pre-flight, shards and their merge.

The unit tests are fast; ``test_moodle_and_canvas_exports_grade_to_the_right_ids`` grades a handful of cheap
lab 01 notebooks (a few seconds each) and ``test_shards_merge_into_the_full_gradebook`` a few more.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from cellkit.course import grading
from cellkit.course.grading import lms
from cellkit.course.grading.gradebook import (LatePolicy, Override, finalize, merge_gradebooks, parse_deadline,
                                              read_overrides, write_gradebook)
from cellkit.course.grading.identity import IdentityError, assign, choose_rule
from cellkit.course.grading.preflight import DataMissing, preflight
from cellkit.course.grading.scoring import cell_places, feedback_text, student_words, task_titles

LAB = "01_mnist"
ROOT = Path(__file__).resolve().parents[1]
UTC = dt.timezone.utc

# the names each LMS gives a download (see docs/instructors.md, "Collect", for where these conventions come from)
MOODLE = ["Eve Adams_1001_assignsubmission_file_/Copy of 01_mnist.ipynb",
          "Bo Li_1002_assignsubmission_file_/01_mnist (1).ipynb",
          "Bo Li_1002_assignsubmission_file_/01_mnist.ipynb",
          "Bo Li_1002_assignsubmission_onlinetext_/onlinetext.html"]
CANVAS = ["adamseve_1001_23456_01_mnist.ipynb",
          "adamseve_LATE_1001_23457_01_mnist-1.ipynb",
          "libo_1002_23460_Copy of 01_mnist (1).ipynb"]


def _touch(root: Path, rels, times=None) -> list[Path]:
    paths = []
    for i, rel in enumerate(rels):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        stamp = (times or {}).get(rel, 1_800_000_000 + i)
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return sorted(paths)


# ------------------------------------------------------------------ identity


def test_moodle_names_give_participant_ids_and_names(tmp_path):
    times = {MOODLE[1]: 1_800_000_500, MOODLE[2]: 1_800_000_100}  # the "(1)" download is the newer file
    subs, rule = assign(_touch(tmp_path, MOODLE, times), tmp_path, LAB)
    assert rule == "moodle"
    got = {s.id: s for s in subs}
    assert set(got) == {"1001", "1002"}
    assert got["1001"].name == "Eve Adams" and got["1001"].rel == MOODLE[0]
    assert got["1002"].name == "Bo Li" and got["1002"].rel == MOODLE[1]  # newest notebook counts
    assert sorted(got["1002"].superseded) == sorted([MOODLE[2], MOODLE[3]])
    # Moodle without folders joins the same parts into one file name
    one = _touch(tmp_path / "flat", ["Eve Adams_1001_assignsubmission_file_Copy of 01_mnist.ipynb"])
    assert [(s.id, s.name) for s in assign(one, tmp_path / "flat", LAB)[0]] == [("1001", "Eve Adams")]


def test_canvas_names_give_user_ids_late_marks_and_resubmissions(tmp_path):
    # the resubmission is newer by its "-1", even with an older file time
    times = {CANVAS[0]: 1_800_000_900, CANVAS[1]: 1_800_000_100}
    subs, rule = assign(_touch(tmp_path, CANVAS, times), tmp_path, LAB)
    assert rule == "canvas"
    got = {s.id: s for s in subs}
    assert set(got) == {"1001", "1002"}
    eve = got["1001"]
    assert (eve.name, eve.rel, eve.late, eve.attempt) == ("adamseve", CANVAS[1], True, 1)
    assert eve.superseded == [CANVAS[0]]
    assert (got["1002"].name, got["1002"].late) == ("libo", False)



def test_canvas_names_as_canvas_writes_them_lowercase_late_and_accents(tmp_path):
    """Canvas's ContentZipper joins sortable name, ``LATE`` and user id with ``_``, then keeps only word
    characters and lower-cases the lot (``gsub(/[^[[:word:]]]/, '').downcase``): the late mark is ``late`` and
    a name keeps its accents.  Either used to fail the whole batch (files not matching the rule)."""
    names = ["adamseve_late_1001_23457_01_mnist-1.ipynb", "adamseve_1001_23456_01_mnist.ipynb",
             "müllerjürgen_1003_23470_Copy of 01_mnist.ipynb", "o_brienpat_1004_23480_01_mnist.ipynb"]
    subs, rule = assign(_touch(tmp_path, names), tmp_path, LAB)
    got = {s.id: s for s in subs}
    assert rule == "canvas" and set(got) == {"1001", "1003", "1004"}
    assert (got["1001"].rel, got["1001"].late, got["1001"].attempt) == (names[0], True, 1)
    assert (got["1003"].name, got["1003"].late) == ("müllerjürgen", False)
    assert got["1004"].name == "o_brienpat"

def test_plain_names_understand_colab_copies_and_browser_numbers(tmp_path):
    assert grading.student_id(tmp_path / "Copy of alice_01_mnist (1).ipynb", tmp_path, LAB) == "alice"
    assert grading.student_id(tmp_path / "bob" / "Copy of 01_mnist.ipynb", tmp_path, LAB) == "bob"
    assert grading.student_id(tmp_path / "carol" / "01_mnist (2).ipynb", tmp_path, LAB) == "carol"
    # two files of one plain id: the newest counts, and the row will be flagged (they may be two students)
    subs, rule = assign(_touch(tmp_path / "p", ["dan_01_mnist.ipynb", "dan/01_mnist.ipynb"],
                               {"dan/01_mnist.ipynb": 1_800_000_999}), tmp_path / "p", LAB)
    assert rule == "plain" and subs[0].rel == "dan/01_mnist.ipynb" and subs[0].superseded == ["dan_01_mnist.ipynb"]


def test_auto_refuses_a_mix_and_a_regex_needs_an_id(tmp_path):
    with pytest.raises(IdentityError, match=r"mix naming schemes.*moodle.*canvas.*plain.*--identity"):
        choose_rule([MOODLE[0], CANVAS[0], "alice_01_mnist.ipynb"])
    with pytest.raises(IdentityError, match="no named group 'id'"):
        assign(_touch(tmp_path, ["a.ipynb"]), tmp_path, LAB, r"(?P<who>\w+)\.ipynb")
    with pytest.raises(IdentityError, match=r"do not match the identity rule 'canvas'.*alice_01_mnist"):
        assign(_touch(tmp_path / "m", ["alice_01_mnist.ipynb"]), tmp_path / "m", LAB, "canvas")
    # a regex of one's own, as nbgrader's named_regexp, with the LMS's time in the name
    rule = r"(?P<id>s\d+)_attempt_(?P<timestamp>[0-9T:-]+)_"
    subs, used = assign(_touch(tmp_path / "r", ["s42_attempt_2026-12-10T23:00:00_01_mnist.ipynb",
                                                "s42_attempt_2026-12-11T08:00:00_01_mnist.ipynb"]),
                        tmp_path / "r", LAB, rule)
    assert used == rule and [s.id for s in subs] == ["s42"]
    assert subs[0].timestamp == dt.datetime(2026, 12, 11, 8, tzinfo=UTC) and subs[0].timestamp_source == "file name"


# ------------------------------------------------------------------ overrides, late policy, exports, merge


def _row(sid, q1, q2, submitted="2026-12-10T12:00:00+00:00", status="ok"):
    return {"id": sid, "name": f"n{sid}", "file": f"{sid}.ipynb", "status": status, "reason": "", "q1": q1, "q2": q2,
            "total": q1 + q2, "possible": 4.0, "submitted": submitted, "sha256": sid, "raw": json.dumps({"q1": q1, "q2": q2})}


def test_overrides_and_late_policy_apply_to_the_tests_points(tmp_path):
    policy = LatePolicy(parse_deadline("2026-12-10T00:00Z"), per_day=0.1, cap=0.3)
    on_time = finalize(_row("1", 1.0, 2.0, "2026-12-09T23:59:00+00:00"), ["q1", "q2"], [], policy)
    assert (on_time["late_days"], on_time["penalty"], on_time["final"]) == (0, 0.0, 3.0)
    late = finalize(_row("2", 2.0, 2.0, "2026-12-11T00:00:01+00:00"), ["q1", "q2"], [], policy)  # 1 day 1 s: 2 days
    assert (late["late_days"], late["penalty"], late["final"]) == (2, 0.8, 3.2)
    very = finalize(_row("3", 2.0, 2.0, "2026-12-20T00:00:00+00:00"), ["q1", "q2"], [], policy)
    assert very["penalty"] == pytest.approx(1.2)  # capped at 30%
    fixes = [Override("3", "q1", 1.0, "partial credit: right idea"), Override("3", "penalty", 0.0, "extension")]
    again = finalize(dict(very), ["q1", "q2"], fixes, policy)
    assert (again["q1"], again["total"], again["penalty"], again["final"]) == (1.0, 3.0, 0.0, 3.0)
    assert again["overridden"] == "q1 2->1; penalty 0.9->0"  # 30% of the overridden 3 points, waived
    assert json.loads(again["raw"]) == {"q1": 2.0, "q2": 2.0}  # the tests' points are kept for the next run
    path = tmp_path / "o.csv"
    path.write_text("id,question,points,comment\n3,q1,1,partial\n3,q9,1,\n")
    with pytest.raises(ValueError, match=r"o.csv, line 3: question 'q9'"):
        read_overrides(path, ["q1", "q2"])
    with pytest.raises(ValueError, match="time zone"):
        parse_deadline("2026-12-10T00:00")


def test_exports_in_the_lms_formats(tmp_path):
    rows = {"1001": finalize(_row("1001", 1.0, 2.0), ["q1", "q2"], [], LatePolicy()),
            "1002": finalize(_row("1002", 0.0, 0.0, status="invalid"), ["q1", "q2"], [], LatePolicy())}
    out = tmp_path / "grades.csv"
    with pytest.raises(ValueError, match="--canvas-column"):
        lms.export("canvas", out, rows, ["q1", "q2"])
    canvas = list(csv.reader(lms.export("canvas", out, rows, ["q1", "q2"], canvas_column="Lab 01 (5550)").open()))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 01 (5550)"]
    assert canvas[1] == ["n1001", "1001", "", "", "", "3"] and canvas[2][1::4] == ["1002", "0"]
    now = dt.datetime(2026, 12, 3, 14, 5, tzinfo=UTC)
    moodle = list(csv.DictReader(lms.export("moodle", out, rows, ["q1", "q2"], now=now).open()))
    assert list(moodle[0]) == lms.MOODLE_COLUMNS
    assert moodle[0]["Identifier"] == "Participant 1001" and moodle[0]["Grade"] == "3.00"
    assert moodle[0]["Maximum Grade"] == "4.00" and moodle[0]["Last modified (grade)"] == "Thursday, 3 December 2026, 2:05 PM"
    assert "q1: 1, q2: 2" in moodle[0]["Feedback comments"] and moodle[1]["Feedback comments"].startswith("Not graded")
    titled = list(csv.DictReader(lms.export("moodle", out, rows, ["q1", "q2"], now=now,
                                            titles={"q1": "Task 1 - Load"}).open()))
    assert "Task 1 - Load: 1, q2: 2" in titled[0]["Feedback comments"], "a student reads task titles, not test ids"
    plain = list(csv.DictReader(lms.export("csv", out, rows, ["q1", "q2"]).open()))
    assert plain[0]["final"] == "3.0" and plain[0]["q2"] == "2.0"
    with pytest.raises(ValueError, match="not the LMS's number"):
        lms.export("moodle", out, {"alice": {**rows["1001"], "id": "alice"}}, ["q1", "q2"])


def test_merge_refuses_a_student_graded_from_two_files(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_gradebook(a, {"1": _row("1", 1.0, 1.0)}, ["q1", "q2"])
    write_gradebook(b, {"2": _row("2", 2.0, 1.0), "1": _row("1", 1.0, 1.0)}, ["q1", "q2"])
    (tmp_path / "b-feedback").mkdir()
    (tmp_path / "b-feedback" / "2.md").write_text("fb")
    rows = merge_gradebooks(tmp_path / "all.csv", [a, b])
    assert sorted(rows) == ["1", "2"] and (tmp_path / "all-feedback" / "2.md").read_text() == "fb"
    write_gradebook(c, {"1": {**_row("1", 0.0, 0.0), "sha256": "other"}}, ["q1", "q2"])
    with pytest.raises(ValueError, match=r"student '1' is in .*a.csv and .*c.csv with different files"):
        merge_gradebooks(tmp_path / "bad.csv", [a, c])


# ------------------------------------------------------------------ feedback in students' words


def test_feedback_speaks_to_the_student():
    released = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    tasks = task_titles(released)
    assert tasks["q2_cnn"].startswith("Task 2") and "CNN" in tasks["q2_cnn"]
    places = cell_places(released)
    assert "Task 2" in places[6] and "import keras" in places[6]
    questions = [{"name": "q1_prepare", "score": 0.0, "possible": 1.0, "cases": [
        {"name": "q1_prepare - 1", "hidden": False, "passed": False, "message": "", "missing": ["prepare"]}]},
        {"name": "q2_cnn", "score": 0.0, "possible": 2.0, "cases": [
            {"name": "test_params", "hidden": True, "passed": False,
             "message": "layer 3 has 51,264 parameters, expected 100,416", "missing": []},
            {"name": "test_shape", "hidden": False, "passed": False,
             "message": "FileNotFoundError: /home/prof/.keras/datasets/mnist.npz", "missing": []}]}]
    cells = [{"number": 6, "status": "error", "error": "NameError: name 'layers' is not defined",
              "place": places[6]}]
    row = {"id": "1001", "file": "x", "status": "flagged", "reason": "code cell 6 raised NameError", "total": 0.0,
           "final": 0.0, "penalty": 0, "possible": 9.0, "q1_prepare": 0.0, "q2_cnn": 1.5, "late_days": 0}
    state = {"questions": questions, "cells": cells, "notes": []}
    text = feedback_text(row, state, LAB, tasks=tasks, overrides=[Override("1001", "q2_cnn", 1.5, "good idea")])
    assert "code cell" not in text and "renamed or deleted" not in text and "/home/prof" not in text
    assert "100,416" not in text  # a hidden check's message may name the expected value: off by default
    assert "`prepare`" in text and "Task 1" in text and "under 'Task 2" in text
    assert "'mnist.npz'" in text and "1.5 / 2" in text and "good idea" in text and "see the feedback" not in text
    assert "100,416" in feedback_text(row, state, LAB, tasks=tasks, show_hidden=True)
    assert student_words("open /tmp/submission/.home/x.npy and ~/.keras/datasets/") == \
        "open 'x.npy' and a folder"


# ------------------------------------------------------------------ pre-flight


def test_preflight_names_missing_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert "SYNTHETIC" in preflight(LAB, "synthetic")
    with pytest.raises(DataMissing, match=r"mnist: .*mnist.npz is missing.*--source synthetic"):
        preflight(LAB, "real")
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").write_bytes(b"not mnist")
    with pytest.raises(DataMissing, match="SHA-256"):
        preflight(LAB, "real")


# ------------------------------------------------------------------ graded end to end (slow: notebooks run)


pytestmark = pytest.mark.usefixtures("no_hidden_tests_left")


def _cheap(student, answer: str):
    """Return lab 01's released notebook cut to its title and one code cell (runs in seconds)."""
    nb = copy.deepcopy(student)
    nb.cells = [nb.cells[0], nbformat.v4.new_code_cell(answer)]
    return nb


def _grade(folder, out, **kwargs):
    options = dict(workers=2, timeout=120, memory_limit=6.0, fast=True, source="synthetic", root=ROOT, verbose=False)
    options.update(kwargs)
    return grading.grade(folder, LAB, out, **options)


def test_moodle_and_canvas_exports_grade_to_the_right_ids(tmp_path):
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    right, wrong = _cheap(student, "conv2_params = 4_640\n"), _cheap(student, "conv2_params = 1\n")
    # Moodle: a zip, folders per participant; Bo Li handed in twice (the newer file, by its zip time, counts)
    moodle = tmp_path / "moodle.zip"
    with zipfile.ZipFile(moodle, "w") as zf:
        for rel, nb, when in [(MOODLE[0], right, (2026, 12, 9, 10, 0, 0)), (MOODLE[2], right, (2026, 12, 9, 11, 0, 0)),
                              (MOODLE[1], wrong, (2026, 12, 10, 9, 0, 0))]:
            zf.writestr(zipfile.ZipInfo(rel, when), nbformat.writes(nb))
    out = tmp_path / "moodle" / "grades.csv"
    result = _grade(moodle, out, exports=["moodle"], deadline="2026-12-10T00:00Z", late_penalty=0.5)
    rows = result["rows"]
    assert result["rule"] == "moodle" and sorted(rows) == ["1001", "1002"], rows
    assert rows["1001"]["name"] == "Eve Adams" and rows["1001"]["file"] == MOODLE[0]
    assert rows["1002"]["file"] == MOODLE[1] and rows["1002"]["superseded"] == MOODLE[2]
    assert rows["1001"]["total"] > rows["1002"]["total"] == 0  # the newer (wrong) notebook was graded
    assert rows["1001"]["late_days"] == 0 and rows["1002"]["late_days"] == 1
    worksheet = list(csv.DictReader((tmp_path / "moodle" / "grades-moodle.csv").open()))
    assert [w["Identifier"] for w in worksheet] == ["Participant 1001", "Participant 1002"]
    assert "Task 3" in worksheet[0]["Feedback comments"] and "q3_count" not in worksheet[0]["Feedback comments"]
    assert float(worksheet[0]["Grade"]) == rows["1001"]["final"] > 0
    summary = (tmp_path / "moodle" / "grades-summary.csv").read_text()
    assert "question,q3_count" in summary and "histogram_final" in summary
    assert "older submissions not graded" in (tmp_path / "moodle" / "grades-summary.txt").read_text()

    # Canvas: a folder; Eve's late resubmission counts and keeps its LATE mark
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    for rel, nb in [(CANVAS[0], wrong), (CANVAS[1], right), (CANVAS[2], wrong)]:
        nbformat.write(nb, canvas / rel)
    out = tmp_path / "canvas-grades" / "grades.csv"
    rows = _grade(canvas, out, exports=["canvas", "csv"], canvas_column="Lab 01 (777)")["rows"]
    assert sorted(rows) == ["1001", "1002"]
    assert (rows["1001"]["file"], rows["1001"]["lms_late"], rows["1001"]["name"]) == (CANVAS[1], "LATE", "adamseve")
    assert rows["1001"]["total"] > 0 and rows["1002"]["total"] == 0
    imported = list(csv.reader((out.parent / "grades-canvas.csv").open()))
    assert imported[0][-1] == "Lab 01 (777)" and [r[1] for r in imported[1:]] == ["1001", "1002"]

    # an override survives a re-grade and rewrites the feedback
    (out.parent / "grades-overrides.csv").write_text("id,question,points,comment\n1002,q3_count,1,counted by hand\n")
    again = _grade(canvas, out, regrade=True)["rows"]
    assert again["1002"]["q3_count"] == 1.0 and again["1002"]["overridden"] == "q3_count 0->1"
    feedback = (out.parent / "grades-feedback" / "1002.md").read_text()
    assert "counted by hand" in feedback and "code cell" not in feedback


def test_shards_merge_into_the_full_gradebook(tmp_path):
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("ann", "ben", "cat", "dan"):
        nbformat.write(_cheap(student, "conv2_params = 4_640\n"), folder / f"{name}_{LAB}.ipynb")
    parts = []
    for k in (1, 2):
        part = tmp_path / f"shard{k}.csv"
        rows = _grade(folder, part, shard=f"{k}/2")["rows"]
        assert rows, f"shard {k}/2 got no student: the hash split is uneven for these names"
        parts.append(part)
    merged = grading.merge(tmp_path / "all.csv", parts, lab=LAB, root=ROOT, exports=["csv"], verbose=False)["rows"]
    assert sorted(merged) == ["ann", "ben", "cat", "dan"]
    assert {p.name for p in (tmp_path / "all-feedback").glob("*.md")} == {"ann.md", "ben.md", "cat.md", "dan.md"}
    with pytest.raises(ValueError, match="1 <= K <= N"):
        _grade(folder, tmp_path / "x.csv", shard="3/2")


def test_a_keras_cache_write_is_not_tampering(tmp_path, monkeypatch):
    """Keras writes its downloads under $KERAS_HOME/datasets: in the sandbox that lands in the scratch folder
    (the instructor's cached files linked read-only beside it), and the row is not suspicious."""
    keras_home = tmp_path / "keras"
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "cached.npz").write_bytes(b"the instructor's copy")
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    folder = tmp_path / "subs"
    folder.mkdir()
    write = ("import os\ncache = os.path.join(os.environ['KERAS_HOME'], 'datasets')\n"
             "assert open(os.path.join(cache, 'cached.npz'), 'rb').read() == b\"the instructor's copy\"\n"
             "open(os.path.join(cache, 'mnist.npz.part'), 'wb').write(b'x')  # what a keras download does first\n"
             "conv2_params = 4_640\n")
    nbformat.write(_cheap(student, write), folder / f"eve_{LAB}.ipynb")
    row = _grade(folder, tmp_path / "grades.csv")["rows"]["eve"]
    assert row["status"] != "suspicious" and "raised" not in row["reason"] and row["total"] > 0, row
    assert sorted(p.name for p in (keras_home / "datasets").iterdir()) == ["cached.npz"]  # the host cache untouched


def test_lms_times_replace_file_times(tmp_path):
    from cellkit.course.grading.identity import read_times

    files = _touch(tmp_path / "c", CANVAS[:1] + CANVAS[2:])
    listed = tmp_path / "times.csv"
    listed.write_text("id,submitted\n1001,2026-12-11T08:30:00+01:00\n")
    subs = {s.id: s for s in assign(files, tmp_path / "c", LAB, times=read_times(listed))[0]}
    assert subs["1001"].timestamp == dt.datetime(2026, 12, 11, 7, 30, tzinfo=UTC)
    assert subs["1001"].timestamp_source == "LMS list" and subs["1002"].timestamp_source == "file time"
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text('Identifier,Full name,Last modified (submission)\n'
                         '"Participant 1001","Eve Adams","Thursday, 10 December 2026, 11:59 PM"\nParticipant 1002,Bo,-\n')
    times = read_times(worksheet)
    assert set(times) == {"1001"} and times["1001"].astimezone().hour == 23
    listed.write_text("id,when\n1,x\n")
    with pytest.raises(ValueError, match="expected columns id,submitted"):
        read_times(listed)


def test_bad_options_are_named_as_the_instructor_typed_them(tmp_path):
    """An error names the command-line option (``--shard``, not ``shard=``) and what it expects, before grading."""
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "alice_01_mnist.ipynb").write_text("{}")
    out = str(tmp_path / "grades.csv")

    cases = {("--shard", "3/2"): r"--shard '3/2': expected 1 <= K <= N",
             ("--shard", "2"): r"--shard '2': expected K/N",
             ("--deadline", "2026-12-10T23:59"): r"--deadline '2026-12-10T23:59': give a time zone",
             ("--deadline", "tomorrow"): r"--deadline 'tomorrow': expected ISO 8601",
             ("--identity", r"(?P<who>\w+)"): r"--identity '\(\?P<who>\\w\+\)': the regex has no named group 'id'",
             ("--late-penalty", "10"): r"--late-penalty 10 needs --deadline",
             ("--deadline", "2026-12-10T23:59Z", "--late-penalty", "150"): r"--late-penalty 150: expected a percent "
                                                                          r"between 0 and 100",
             ("--overrides", "nope.csv"): r"--overrides nope.csv: no such file"}
    for args, message in cases.items():
        with pytest.raises(Exception, match=message):
            grading.grade(folder, LAB, out, source="synthetic", **_options(args))
    assert not Path(out).exists()


def _options(args) -> dict:
    """The keyword arguments the CLI passes to grade() for ``args`` (the same conversions as cellkit.course.cli)."""
    from cellkit.course.cli import add_commands
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    ns = parser.parse_args(["grade", "x", "--lab", "01", *args])
    return {"shard": ns.shard, "deadline": ns.deadline, "identity": ns.identity, "overrides": ns.overrides,
            "late_penalty": ns.late_penalty / 100, "late_cap": ns.late_cap / 100}


def test_the_guides_grading_commands_run_as_written():
    """Every ``cellkit grade`` / ``grade-merge`` command in docs/instructors.md parses, and one that exports to
    Canvas names the assignment's column (else it stops before grading: a new instructor copies these lines)."""
    import argparse
    import re
    import shlex

    from cellkit.course.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    text = (ROOT / "docs" / "instructors.md").read_text().replace("\\\n", " ")
    commands = re.findall(r"(?:^|`)(cellkit grade(?:-merge)? [^`\n#]*)", text, flags=re.M)
    assert len(commands) >= 6, commands
    for command in (c for c in commands if "..." not in c):  # "cellkit grade ... --shard K/N" is a sketch
        args = shlex.split(command.replace("$SLURM_ARRAY_TASK_ID", "1"))
        try:
            ns = parser.parse_args(args[1:])
        except SystemExit:
            pytest.fail(f"docs/instructors.md: {command!r} does not parse")
        if "canvas" in (ns.export or []):
            assert ns.canvas_column, f"docs/instructors.md: {command!r} exports to Canvas without --canvas-column"


def test_merge_takes_the_guides_glob_and_checks_the_overrides(tmp_path):
    """``grade-merge grades.csv shards/grades-*.csv`` also matches each shard's summary and exports: they are
    skipped (another CSV is refused, named); overrides beside the merged gradebook that a shard did not apply are
    refused with the fix, instead of being lost."""
    from cellkit.course.grading.gradebook import write_summary

    shards = tmp_path / "shards"
    shards.mkdir()
    points = {"q1": 2.0, "q2": 2.0}
    for k, rows in ((1, {"1": _row("1", 1.0, 1.0)}), (2, {"2": _row("2", 2.0, 0.0)})):
        part = shards / f"grades-{k}.csv"
        rows = {sid: finalize(r, ["q1", "q2"], [], LatePolicy()) for sid, r in rows.items()}
        write_gradebook(part, rows, ["q1", "q2"])
        write_summary(part, rows, ["q1", "q2"], points)
        lms.export("csv", part, rows, ["q1", "q2"])
    parts = sorted(shards.glob("grades-*.csv"))
    assert len(parts) == 6
    merged = grading.merge(tmp_path / "grades.csv", parts, verbose=False)["rows"]
    assert sorted(merged) == ["1", "2"]
    stray = shards / "notes.csv"
    stray.write_text("student,remark\n1,ok\n")
    with pytest.raises(ValueError, match=r"notes.csv: not a gradebook \(no id column\)"):
        grading.merge(tmp_path / "grades.csv", [*parts, stray], verbose=False)
    # an override written beside the merged gradebook that the shards never saw
    (tmp_path / "grades-overrides.csv").write_text("id,question,points,comment\n2,q2,1,by hand\n")
    with pytest.raises(ValueError, match=r"grades-overrides.csv.*not applied by the shards: 2 q2.*--overrides"):
        grading.merge(tmp_path / "grades.csv", parts, verbose=False)
    # the shards graded with it (cellkit grade ... --overrides): the merge goes through
    part2 = shards / "grades-2.csv"
    rows2 = {"2": finalize(_row("2", 2.0, 0.0), ["q1", "q2"], [Override("2", "q2", 1.0, "by hand")], LatePolicy())}
    write_gradebook(part2, rows2, ["q1", "q2"])
    merged = grading.merge(tmp_path / "grades.csv", parts, verbose=False)["rows"]
    assert float(merged["2"]["q2"]) == 1.0 and merged["2"]["overridden"] == "q2 0->1"


def test_a_missing_name_after_a_failed_cell_is_not_called_a_rename():
    """The gradebook's reason for a name the tests need: after a failing cell it was most likely never defined
    (an unanswered task), which the instructor should read before suspecting a rename."""
    from cellkit.course.grading.scoring import process_reasons

    questions = [{"name": "q4", "cases": [{"missing": ["test_accuracy"]}]}]
    cells = [{"number": 1, "status": "ok"}, {"number": 2, "status": "error"}]
    events = {"executed": {"cells": cells}, "results": {}, "cells_started": [1, 2]}
    text = "; ".join(t for _, t in process_reasons(events, questions, 2))
    assert "test_accuracy" in text and "a cell above failed" in text and "renamed" in text
    events["executed"]["cells"] = [{"number": 1, "status": "ok"}, {"number": 2, "status": "ok"}]
    text = "; ".join(t for _, t in process_reasons(events, questions, 2))
    assert "test_accuracy (renamed or deleted?)" in text and "failed" not in text


def test_moodle_worksheet_times_are_read_in_the_deadlines_time_zone(tmp_path):
    """Moodle writes the worksheet's times without a zone, in the Moodle user's zone.  Read on a machine in another
    zone (a UTC cluster node), a submission 29 minutes before a +01:00 deadline became a day late: the times are
    read in the deadline's zone, which the instructor gives as their Moodle shows it."""
    from cellkit.course.grading.identity import read_times

    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text('Identifier,Last modified (submission)\n"Participant 1004","Thursday, 10 December 2026, '
                         '11:30 PM"\n')
    deadline = parse_deadline("2026-12-10T23:59+01:00")
    times = read_times(worksheet, tz=deadline.tzinfo)
    assert times["1004"] == dt.datetime(2026, 12, 10, 22, 30, tzinfo=UTC)
    row = finalize({**_row("1004", 2.0, 2.0, times["1004"].isoformat())}, ["q1", "q2"], [],
                   LatePolicy(deadline, per_day=0.1))
    assert row["late_days"] == 0 and row["penalty"] == 0
    # the export writes Moodle's times in the same zone, as Moodle shows and parses them
    rows = {"1004": row}
    now = dt.datetime(2026, 12, 12, 9, 0, tzinfo=UTC)
    sheet = list(csv.DictReader(lms.export("moodle", tmp_path / "g.csv", rows, ["q1", "q2"], now=now,
                                           tz=deadline.tzinfo).open()))
    assert sheet[0]["Last modified (submission)"] == "Thursday, 10 December 2026, 11:30 PM"
    assert sheet[0]["Last modified (grade)"] == "Saturday, 12 December 2026, 10:00 AM"


def test_feedback_names_the_file_graded_when_a_student_handed_in_several():
    """A student who uploaded two files learns which one was graded, by its own name (never the LMS's folder)."""
    row = {"id": "1003", "file": "Carol Chen_1003_assignsubmission_file_/Copy of 01_mnist (1).ipynb",
           "superseded": "Carol Chen_1003_assignsubmission_file_/01_mnist.ipynb; "
                         "Carol Chen_1003_assignsubmission_onlinetext_/onlinetext.html",
           "status": "ok", "reason": "", "total": 9.0, "final": 9.0, "penalty": 0, "possible": 9.0, "late_days": 0}
    text = feedback_text(row, {"questions": [], "cells": [], "notes": []}, LAB)
    assert "`Copy of 01_mnist (1).ipynb`" in text and "`01_mnist.ipynb`" in text and "`onlinetext.html`" in text
    assert "assignsubmission" not in text and "Carol Chen_1003" not in text
    single = feedback_text({**row, "superseded": ""}, {"questions": [], "cells": [], "notes": []}, LAB)
    assert "01_mnist (1).ipynb" not in single


def test_an_export_for_the_other_lms_is_refused_before_grading(tmp_path):
    """Canvas user ids and Moodle participant ids are both numbers: a Moodle worksheet made from a Canvas download
    would put grades on whichever Moodle participants carry those numbers.  Refused, naming both, before grading."""
    folder = tmp_path / "canvas"
    _touch(folder, CANVAS)
    with pytest.raises(ValueError, match=r"--export moodle.*'canvas' rule.*Canvas"):
        grading.grade(folder, LAB, tmp_path / "grades.csv", source="synthetic", exports=["moodle"])
    folder = tmp_path / "moodle"
    _touch(folder, MOODLE)
    with pytest.raises(ValueError, match=r"--export canvas.*'moodle' rule.*Moodle"):
        grading.grade(folder, LAB, tmp_path / "grades.csv", source="synthetic", exports=["canvas"],
                      canvas_column="Lab 01 (1)")
    assert not (tmp_path / "grades.csv").exists()


def test_an_override_that_now_lowers_the_tests_points_is_listed_for_a_look():
    """Bob's override gave Task 2 two points the tests denied; he resubmitted and the tests now give three: the
    override (which still applies, as the guide says) lowered his score silently.  The summary lists it."""
    from cellkit.course.grading.gradebook import summary

    fix = [Override("2", "q2", 1.0, "the check is too strict")]
    before = finalize(_row("2", 2.0, 0.0), ["q1", "q2"], fix, LatePolicy())
    after = finalize(_row("2", 2.0, 2.0), ["q1", "q2"], fix, LatePolicy())  # the resubmission passes q2
    assert (before["overridden"], after["overridden"]) == ("q2 0->1", "q2 2->1")
    assert "lower the tests' points" not in summary({"2": before}, 4.0)
    text = summary({"2": after}, 4.0)
    assert "overrides that lower the tests' points" in text and "2 (q2 2->1)" in text
    waived = finalize(_row("3", 2.0, 2.0), ["q1", "q2"], [Override("3", "penalty", 0.0, "extension")], LatePolicy())
    assert waived["overridden"] == "" and "penalty" not in summary({"3": waived}, 4.0)  # 0 -> 0 changes nothing


def test_merge_checks_the_canvas_column_before_writing(tmp_path):
    part = tmp_path / "grades-1.csv"
    write_gradebook(part, {"1": finalize(_row("1", 1.0, 1.0), ["q1", "q2"], [], LatePolicy())}, ["q1", "q2"])
    with pytest.raises(ValueError, match="--canvas-column"):
        grading.merge(tmp_path / "grades.csv", [part], exports=["canvas"], verbose=False)
    assert not (tmp_path / "grades.csv").exists()


def test_missing_files_are_named_by_their_option(tmp_path):
    from cellkit.course.grading.identity import read_times

    with pytest.raises(FileNotFoundError, match=r"--times .*nope.csv: no such file; expected"):
        read_times(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match=r"SUBMISSIONS .*nothere: no such folder or zip"):
        grading.grade(tmp_path / "nothere", LAB, tmp_path / "g.csv", source="synthetic")
    with pytest.raises(ValueError, match=r"--timeout 0, --memory 6: expected positive numbers"):
        grading.grade(tmp_path, LAB, tmp_path / "g.csv", source="synthetic", timeout=0)
    with pytest.raises(FileNotFoundError, match=r"--autograder .*x.zip: no such zip"):
        grading.grade(tmp_path, LAB, tmp_path / "g.csv", source="synthetic", autograder=tmp_path / "x.zip")
