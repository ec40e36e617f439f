"""Shared fixtures: every test gets its own MTL_LAB_HOME and single-threaded torch."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("mtl_home")
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
