"""Shared test set-up: every test runs offline, in fast mode, on synthetic data, in a private data folder."""

import os
import shutil

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _course_env(tmp_path_factory, monkeypatch):
    """Fast mode, synthetic source and a data folder of the session's own, for every test."""
    data_dir = tmp_path_factory.getbasetemp() / "cellkit-data"
    monkeypatch.setenv("CELLKIT_FAST", "1")
    monkeypatch.setenv("CELLKIT_SOURCE", "synthetic")
    monkeypatch.setenv("CELLKIT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CELLKIT_SEED", "1234")
    monkeypatch.delenv("CELLKIT_REPORT_DIR", raising=False)
    monkeypatch.delenv("CELLKIT_REQUIRE_GPU", raising=False)
    yield


@pytest.fixture
def repo_root():
    """Return the repository root."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.fixture
def no_hidden_tests_left(tmp_path):
    """Remove every autograder zip and hidden-test folder a test wrote: a later grading run must find none."""
    yield
    for path in sorted(tmp_path.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file() and path.name.endswith("-autograder.zip"):
            path.unlink()
        elif path.is_dir() and path.name in ("ag", "autograder", "instructors", "build", "out"):
            shutil.rmtree(path, ignore_errors=True)
