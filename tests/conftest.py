"""Shared test set-up: every test runs offline, in fast mode, on synthetic data, in a private data folder."""

import os

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
