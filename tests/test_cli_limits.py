"""The presenter limits (``limits.yaml``) apply to the command line as ``mtl_core.workshop.limits``
says: ``train --background``, ``study`` and ``lessons run`` are refused in one line, exit 2, before
anything is queued or trained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MTL_LAB_LIMITS"}
    env["MTL_LAB_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "limits.yaml").write_text("max_epochs: 1\nmax_concurrent_runs_per_session: 1\n", encoding="utf-8")
    return tmp_path


def _refused(done: subprocess.CompletedProcess[str], cap: str) -> None:
    assert done.returncode == 2, done.stderr
    assert cap in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "Limits file: " in done.stderr  # the CLI names the file (the pages leave server paths out)


def test_train_background_respects_max_epochs(home: Path) -> None:
    _refused(_cli(home, "train", "--background", "--suite", "planted", "--epochs", "5"), "max_epochs")
    assert not (home / "runs.db").exists() or RunStore.at_home(home).count_runs() == 0


def test_train_background_respects_the_concurrency_cap(home: Path) -> None:
    with RunStore.at_home(home) as store:
        store.create_run({"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 1})
    _refused(_cli(home, "train", "--background", "--suite", "planted", "--epochs", "1"),
             "max_concurrent_runs_per_session")
    with RunStore.at_home(home) as store:
        assert store.count_runs() == 1


def test_study_respects_the_limits(home: Path) -> None:
    _refused(_cli(home, "study", "--suite", "planted", "--seeds", "1", "--max-epochs", "5", "--executor", "serial"),
             "max_epochs")


def test_lessons_run_checks_the_preset_before_training(home: Path) -> None:
    _refused(_cli(home, "lessons", "run", "related-tasks"), "max_epochs")
