"""A run's config is validated once where it enters (the Train page's service, the CLI) and once
where it is read back from the run store (the worker) — not again on every hand-over."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_support import train_queued  # puts app/ on sys.path
from services.runs import TrainForm, build_configs, check_configs, queue_runs

from mtl_core.config import TrainConfig
from mtl_core.runs import workers
from mtl_core.runs.store import RunStore


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The configs checked, by seed, in this test (``TrainConfig._check`` is the validation)."""
    monkeypatch.setenv("MTL_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "0")
    seen: list[str] = []
    check = TrainConfig._check
    monkeypatch.setattr(TrainConfig, "_check", lambda self: seen.append(self.seed) or check(self))
    return seen


def test_from_the_train_page_to_the_trainer(checks: list[int], tmp_path: Path) -> None:
    form = TrainForm(suite="planted", tasks=["t1", "t2"], strategy="hard", methods=["ew"], seeds=2,
                     epochs=1, suite_options={"n_tasks": 2, "n_groups": 1, "n_samples": 40})
    configs = check_configs(build_configs(form))  # where it enters: the page
    assert checks == [0, 1]
    ids = queue_runs(configs, owner="me")  # limits, submit and the store take the checked configs
    assert checks == [0, 1]
    store = RunStore.at_home(tmp_path)
    train_queued(store)  # a worker reads each config back from the store, checks it, trains it
    assert checks == [0, 1, 0, 1]
    assert [store.get_run(i).status for i in ids] == ["done", "done"]


def test_a_dict_is_checked_when_submitted(checks: list[int], tmp_path: Path) -> None:
    ids = workers.submit([{"suite": "planted", "seed": 3, "epochs": 1}], home=tmp_path, start=False)
    assert checks == [3] and len(ids) == 1
