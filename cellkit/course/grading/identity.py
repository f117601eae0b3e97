"""Who handed in each file: the identity rule, applied to the file's path, never to its content.

A rule is a regular expression with named groups, matched (``re.search``) against the path of a file
relative to the submissions folder, written with ``/``: like the ``named_regexp`` of nbgrader's
``zip_collect``.  Groups it may define:

``id`` (required)
    the student's identifier in the LMS: the gradebook's key and what the exports write back;
``name``
    the student's name or login as the LMS wrote it;
``late``
    non-empty when the LMS marked the submission late (Canvas's ``LATE``);
``attempt``
    a resubmission number (Canvas appends ``-1``, ``-2`` to a file name it has seen before);
``timestamp``
    the submission time, when the LMS writes it into the name (ISO 8601).

Presets (:data:`PRESETS`):

``moodle``
    "Download all submissions": ``Eve Adams_1001_assignsubmission_file_/Copy of 01_mnist.ipynb`` (one folder per
    participant: full name, participant id, plugin) or the same joined into one file name when the download does
    not use folders: student "Eve Adams", id ``1001``.
``canvas``
    "Download Submissions": ``adamseve_1001_23456_01_mnist-1.ipynb``, or with ``_late_`` after the name (Canvas
    lower-cases its ``LATE``; either case is read): name ``adamseve``, user id ``1001``, attachment ``23456``,
    resubmission ``1``.
``plain``
    ``alice_01_mnist.ipynb`` (the lab's name stripped: ``alice``) or ``alice/01_mnist.ipynb`` (the folder).
``auto`` (the default)
    ``moodle`` when every file looks like Moodle's export, ``canvas`` when every file looks like Canvas's,
    ``plain`` when none does; a mix is refused, naming a file of each kind.

Colab's "Save a copy in Drive" names the copy ``Copy of 01_mnist.ipynb`` and a browser saving a second download
``01_mnist (1).ipynb``: both are understood by the plain rule (and ignored by the LMS presets, whose id comes from
the LMS's part of the name).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

PRESETS = {
    "moodle": r"(?:^|/)(?P<name>[^/]+?)_(?P<id>\d+)_assign(?:submission|feedback)_[a-z]+_(?:/.*)?[^/]*$",
    # Canvas's ContentZipper: [sortable name, "LATE" if late, user id].join("_"), then gsub(/[^[[:word:]]]/, "")
    # and downcase (so "late", and a name keeps accents and underscores), then "_ATTACHMENT ID_DISPLAY NAME"
    "canvas": r"(?:^|/)(?P<name>\w+?)(?P<late>_(?i:late))?_(?P<id>\d+)_(?P<attachment>\d{3,})_"
              r"[^/]*?(?:-(?P<attempt>\d+))?(?:\.[A-Za-z0-9]+)?$",
}
"""The LMS presets' regular expressions (``plain`` is :func:`plain_id`, which needs the lab's name)."""

RULES = ("auto", "moodle", "canvas", "plain")

_COPY = re.compile(r"^(?:Copy of |Kopie von |Copie de |Copia de )+", re.I)
_DOWNLOAD_NUMBER = re.compile(r"\s*\(\d+\)$")


class IdentityError(ValueError):
    """The identity rule cannot name the students of this batch (an ambiguous mix, a regex without ``id``)."""


@dataclass
class Submission:
    """One submitted file and who handed it in."""

    path: Path
    rel: str
    id: str
    name: str = ""
    late: bool = False
    attempt: int = 0
    timestamp: dt.datetime | None = None
    timestamp_source: str = ""
    rule: str = ""
    superseded: list[str] = field(default_factory=list)


def safe_id(text: str) -> str:
    """Return ``text`` as a gradebook id and feedback file name: letters, digits, ``._@-``; others become ``_``."""
    text = re.sub(r"[^A-Za-z0-9._@-]+", "_", str(text)).strip("._") or "student"
    return text[:80]


def clean_stem(stem: str) -> str:
    """Return a file stem without Colab's "Copy of " and a browser's " (1)"."""
    return _DOWNLOAD_NUMBER.sub("", _COPY.sub("", stem)).strip()


def plain_id(rel: str, lab: str) -> str:
    """Return the plain rule's id: the file name without the lab's name, else the folder holding the file."""
    parts = rel.split("/")
    stem = clean_stem(Path(parts[-1]).stem)
    number = lab.split("_", 1)[0]
    short = re.sub(rf"[-_ ]*(lab[-_ ]?)?({re.escape(lab)}|{re.escape(lab.split('_', 1)[-1])})$", "", stem,
                   flags=re.I).strip(" -_")
    if (not short or short == stem and stem.lower().startswith(number)) and len(parts) > 1:
        return safe_id(clean_stem(parts[-2]))
    return safe_id(short or stem)


def _compile(rule: str):
    pattern = PRESETS.get(rule, rule)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise IdentityError(f"--identity '{rule}': not a regular expression ({exc}); expected one of "
                            f"{', '.join(RULES)} or a regex with a named group 'id'") from exc
    if "id" not in regex.groupindex:
        raise IdentityError(f"--identity '{rule}': the regex has no named group 'id' (write (?P<id>...)); "
                            f"named groups it may also have: name, late, attempt, timestamp")
    return regex


def check_rule(rule: str) -> str:
    """Return ``rule`` after checking that it is a preset or a regex with a named group ``id`` (else raise)."""
    if rule not in RULES:
        _compile(rule)
    return rule


def _parse_time(text: str) -> dt.datetime | None:
    text = text.strip().replace("_", " ")
    for candidate in (text, text.replace(" UTC", "+00:00").replace("Z", "+00:00")):
        try:
            stamp = dt.datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)
    return None


def _file_time(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc).replace(microsecond=0)


def identify(path: Path, root: Path, lab: str, rule: str) -> Submission | None:
    """Return who handed in ``path`` under ``rule`` (a preset or a regex), or None when the rule does not match."""
    rel = Path(path).relative_to(root).as_posix()
    sub = Submission(Path(path), rel, "", rule=rule)
    if rule == "plain":
        sub.id = plain_id(rel, lab)
    else:
        match = _compile(rule).search(rel)
        if not match:
            return None
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        sub.id = safe_id(groups["id"])
        sub.name = groups.get("name", "").strip()
        sub.late = bool(groups.get("late"))
        sub.attempt = int(groups["attempt"]) if groups.get("attempt", "").isdigit() else 0
        if groups.get("timestamp"):
            sub.timestamp = _parse_time(groups["timestamp"])
            if sub.timestamp is None:
                raise IdentityError(f"{rel}: the identity rule's timestamp {groups['timestamp']!r} is not an ISO "
                                    "8601 time (2026-12-03T09:30:00, optionally with +01:00)")
            sub.timestamp_source = "file name"
    if sub.timestamp is None:
        sub.timestamp, sub.timestamp_source = _file_time(Path(path)), "file time"
    return sub


def choose_rule(rels: list[str]) -> str:
    """Return the preset that fits every path of ``rels`` (see the module docstring), or raise naming a mix."""
    kinds = {"moodle": [], "canvas": [], "plain": []}
    for rel in rels:
        hits = [name for name, pattern in PRESETS.items() if re.search(pattern, rel)]
        kinds[hits[0] if len(hits) == 1 else ("moodle" if "moodle" in hits else "plain")].append(rel)
    present = [k for k, v in kinds.items() if v]
    if len(present) <= 1:
        return present[0] if present else "plain"
    examples = "; ".join(f"{len(kinds[k])} like {k} (e.g. {kinds[k][0]!r})" for k in present)
    raise IdentityError(f"the submissions mix naming schemes, so no rule names every student: {examples}. "
                        "Grade each export in a folder of its own, or pass --identity moodle|canvas|plain or a "
                        "regex with a named group 'id'")


def newest_first(subs: list[Submission]) -> list[Submission]:
    """Return one student's submissions, the one that counts first.

    A notebook counts before any other file (a Moodle folder may also hold an ``onlinetext.html``); then newest is
    decided by, in order: the resubmission number in the name (Canvas's ``-1``, ``-2``), the time the
    LMS wrote into the name or else the file's modification time (for a zip: the time stored in the zip), then
    the path (last in sort order first), so that the choice never depends on the order of a folder listing.
    """
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return sorted(subs, key=lambda s: (s.path.suffix == ".ipynb", s.attempt, s.timestamp or oldest,
                                       s.rel), reverse=True)


def read_times(path, tz: dt.tzinfo | None = None) -> dict[str, dt.datetime]:
    """Return ``{student id: submission time}`` from a CSV the LMS gave: ``id,submitted`` (ISO 8601), or Moodle's
    grading worksheet (``Identifier`` = ``Participant 1001``, ``Last modified (submission)`` as Moodle writes it).

    Moodle writes its times without a zone, in the Moodle user's time zone: they are read in ``tz`` (the deadline's
    zone, which the instructor gives as their Moodle shows it), else in this machine's zone.

    Raises
    ------
    ValueError
        Neither layout, or a time that cannot be read: the file and line are named.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--times {path}: no such file; expected the LMS's submission times, a CSV id,submitted "
                                "(ISO 8601) or Moodle's grading worksheet")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if {"id", "submitted"} <= set(fields):
            id_col, time_col = "id", "submitted"
        elif {"Identifier", "Last modified (submission)"} <= set(fields):
            id_col, time_col = "Identifier", "Last modified (submission)"
        else:
            raise ValueError(f"{path}: expected columns id,submitted (ISO 8601) or Moodle's grading worksheet "
                             f"(Identifier, Last modified (submission)); found {', '.join(fields)}")
        times = {}
        for line, row in enumerate(reader, start=2):
            text = (row.get(time_col) or "").strip()
            if not text or text == "-":
                continue
            stamp = _parse_time(text)
            if stamp is None:
                try:  # Moodle's userdate: "Thursday, 3 December 2026, 9:46 AM", in the Moodle user's time zone
                    stamp = dt.datetime.strptime(text, "%A, %d %B %Y, %I:%M %p")
                    stamp = stamp.replace(tzinfo=tz) if tz is not None else stamp.astimezone()
                except ValueError:
                    raise ValueError(f"{path}, line {line}: submission time {text!r} is neither ISO 8601 nor "
                                     "Moodle's 'Thursday, 3 December 2026, 9:46 AM'") from None
            times[safe_id(re.sub(r"^Participant\s+", "", row[id_col].strip()))] = stamp.astimezone(dt.timezone.utc)
    return times


def assign(files: list[Path], root: Path, lab: str, rule: str = "auto",
           times: dict[str, dt.datetime] | None = None) -> tuple[list[Submission], str]:
    """Return ``(submissions that count, the rule used)``: one per student, older ones in ``superseded``.

    ``times`` (from :func:`read_times`) gives the LMS's submission time of a student, used for the late policy
    instead of the file's time.

    Raises
    ------
    IdentityError
        ``auto`` met a mix of naming schemes, or a file does not match the rule given (named).
    """
    rels = [Path(f).relative_to(root).as_posix() for f in files]
    used = choose_rule(rels) if rule == "auto" else rule
    if used not in ("plain", "moodle", "canvas"):
        _compile(used)
    by_id: dict[str, list[Submission]] = {}
    unmatched = []
    for path in files:
        sub = identify(path, root, lab, used)
        if sub is None:
            unmatched.append(Path(path).relative_to(root).as_posix())
            continue
        by_id.setdefault(sub.id, []).append(sub)
    if unmatched:
        raise IdentityError(f"{len(unmatched)} file(s) do not match the identity rule {used!r}, so their students "
                            f"are unknown: {', '.join(repr(u) for u in unmatched[:3])}"
                            f"{' ...' if len(unmatched) > 3 else ''}; pass another --identity or move them out")
    chosen = []
    for sid, subs in sorted(by_id.items()):
        ordered = newest_first(subs)
        ordered[0].superseded = [s.rel for s in ordered[1:]]
        if times and sid in times:
            ordered[0].timestamp, ordered[0].timestamp_source = times[sid], "LMS list"
        chosen.append(ordered[0])
    return chosen, used
